"""The store on a real S3 API (moto's server on loopback): leases, in-place attempts, commits
that copy nothing, dead writers cleaned only once their lease expired."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tokenmill.corpus.store.errors import StoreIOError
from tokenmill.corpus.store.lease import Lease
from tokenmill.corpus.store.step import VersionKey, Written, commit_version
from tokenmill.corpus.store.versions import ATTEMPTS, MANIFEST, Attempt, Store

KEY = VersionKey("load", "load-v1", {"a": 1}, ())


def written(attempt: Attempt, payload: bytes = b"rows") -> Written:
    return Written([attempt.write_bytes("part-00000.bin", payload)], {"docs_out": 1})


def test_a_lease_is_exclusive_and_taken_over_only_after_it_expires(s3_bucket):
    store = Store(f"{s3_bucket}/store")
    folder = f"{store.root}/load/.locks/v"
    first = Lease(store.fs, folder, seconds=2).acquire()
    taken = []
    waiter = threading.Thread(target=lambda: taken.append(Lease(store.fs, folder, seconds=2).acquire()))
    waiter.start()
    time.sleep(2.5)  # first is alive: its renewals keep the second waiting past the lease length
    assert not taken
    first.release()
    waiter.join(timeout=10)
    assert taken and taken[0].path.endswith("000000000000.lease")
    taken[0]._stop.set()  # the holder dies: no more renewals
    time.sleep(2.5)
    successor = Lease(store.fs, folder, seconds=2).acquire(timeout=10)
    assert successor.path.endswith("000000000001.lease")
    with pytest.raises(StoreIOError, match="lost the writer lease"):
        taken[0].check()
    successor.check()
    successor.release()


def test_commit_is_one_manifest_beside_the_attempt_and_force_replaces_it(s3_bucket):
    store = Store(f"{s3_bucket}/store")
    made = commit_version(store, KEY, written)
    base = made.manifest.base
    assert base.startswith(f"{ATTEMPTS}/")
    folder = store.version_dir(KEY.id)
    objects = sorted(p[len(folder) + 1:] for p in store.fs.find(folder))
    assert objects == sorted([MANIFEST, f"{base}/part-00000.bin", f"{base}/stats.json"])
    assert store.fs.cat(store.file_path(KEY.id, "part-00000.bin")) == b"rows"
    assert store.read_json(KEY.id, "stats.json") == {"docs_out": 1}
    assert [m.id for m in store.versions()] == [KEY.id]
    replaced = commit_version(store, KEY, lambda attempt: written(attempt, b"new rows"), force=True)
    assert replaced.manifest.base != base
    assert store.fs.cat(store.file_path(KEY.id, "part-00000.bin")) == b"new rows"
    assert not store.fs.exists(f"{folder}/{base}")
    assert not store.fs.exists(f"{store.root}/load/.locks/{KEY.id}") or not store.fs.ls(
        f"{store.root}/load/.locks/{KEY.id}", refresh=True)


WRITER = """
import sys, time
from tokenmill.corpus.store.step import VersionKey, Written, commit_version
from tokenmill.corpus.store.versions import Store
store = Store(sys.argv[1], lease_seconds=float(sys.argv[2]))
key = VersionKey("load", "load-v1", {"a": 1}, ())
def write(attempt):
    attempt.write_bytes("part-00000.bin", b"half")
    print("writing", flush=True)
    time.sleep(float(sys.argv[3]))
    return Written([attempt.write_bytes("stats.json", b"{}")], {"docs_out": 1})
version = commit_version(store, key, write)
print("cached" if version.cached else "committed", flush=True)
"""


def start_writer(root: str, lease: float, sleep: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, root, str(lease), str(sleep)],
                            stdout=subprocess.PIPE, text=True)


def test_a_killed_writer_leaves_nothing_visible_and_is_cleaned_after_its_lease(s3_bucket):
    root = f"{s3_bucket}/store"
    writer = start_writer(root, lease=3, sleep=60)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    store = Store(root, lease_seconds=3)
    assert not store.exists(KEY.id) and store.versions() == []
    dead = store.fs.ls(f"{store.version_dir(KEY.id)}/{ATTEMPTS}", refresh=True)
    assert len(dead) == 1
    started = time.monotonic()
    made = commit_version(store, KEY, written)
    assert time.monotonic() - started < 10  # waited for the dead lease (3 s), not forever
    assert not made.cached
    assert store.fs.ls(f"{store.version_dir(KEY.id)}/{ATTEMPTS}", refresh=True) == \
        [f"{store.version_dir(KEY.id)}/{made.manifest.base}"]


def test_two_writers_at_once_commit_the_version_once(s3_bucket):
    root = f"{s3_bucket}/store"
    writers = [start_writer(root, lease=30, sleep=2) for _ in range(2)]
    outcomes = sorted(w.communicate(timeout=120)[0].split()[-1] for w in writers)
    assert outcomes == ["cached", "committed"]
    store = Store(root)
    assert len(store.fs.ls(f"{store.version_dir(KEY.id)}/{ATTEMPTS}", refresh=True)) == 1


def test_store_options_reach_the_filesystem_and_the_workers(s3_server, s3_bucket, client, monkeypatch):
    """An endpoint given only in `store.options` works on the driver and on the Dask workers."""
    import fsspec

    from tokenmill.corpus.store.workers import prepare_workers

    monkeypatch.setattr(fsspec.config, "conf", {})
    options = {"endpoint_url": s3_server, "key": "tokenmill-test", "secret": "tokenmill-test"}
    store = Store(f"{s3_bucket}/opts", options)
    assert fsspec.config.conf["s3"]["endpoint_url"] == s3_server
    prepare_workers(client, store)
    conf = client.run(lambda: dict(__import__("fsspec").config.conf.get("s3", {})))
    assert all(c["endpoint_url"] == s3_server for c in conf.values())
    store.fs.pipe_file(f"{store.root}/x.txt", b"seen")
    assert set(client.run(lambda: __import__("fsspec").open(f"{store.url}/x.txt", "rb").open().read()).values()) \
        == {b"seen"}
