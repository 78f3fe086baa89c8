"""Failed attempts of any version are removed at the next commit once no live writer owns them,
as the writer lock (local) or lease (object store) says; a live writer's attempt is kept."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from tokenmill.corpus.store import versions
from tokenmill.corpus.store.cleanup import UNLOCKED_STALE_SECONDS
from tokenmill.corpus.store.lease import Lease
from tokenmill.corpus.store.versions import ATTEMPTS, Store, version_id


def vid_of(name: str, step: str = "load") -> str:
    return version_id(step, {"name": name}, [], f"{step}-v1")


def commit_empty(store: Store, vid: str, step: str = "load") -> None:
    store.begin(step, vid).commit({}, [], f"{step}-v1", [], {})


def test_a_dead_writers_staging_of_another_id_goes_and_a_live_ones_stays(store: Store, tmp_path: Path):
    dead = store.begin("load", vid_of("dead"))
    dead.write_json("stats.json", {"partial": True})
    dead.unlock()  # as if killed: the OS frees its lock, its staging folder stays
    live = store.begin("clean", vid_of("live", "clean"))
    live.write_json("stats.json", {"partial": True})
    locks = Path(store.root, "dedup", ".locks")
    locks.mkdir(parents=True)
    other_process = open(locks / f"{vid_of('held', 'dedup')}.lock", "a")
    fcntl.flock(other_process, fcntl.LOCK_EX)  # a writer elsewhere holds this version's lock
    held = Path(store.root, "dedup", ".staging", f"{vid_of('held', 'dedup')}.0badc0de")
    held.mkdir(parents=True)

    commit_empty(store, vid_of("next"))
    assert not Path(dead.path).exists()
    assert Path(live.path).exists() and held.exists()

    other_process.close()
    live.abort()
    commit_empty(store, vid_of("after"))
    assert not held.exists() and list(Path(store.root, "load", ".staging").iterdir()) == []


def test_a_staging_folder_without_a_lock_file_goes_only_once_old(store: Store):
    staging = Path(store.root, "filter", ".staging")
    old, fresh = staging / f"{vid_of('old', 'filter')}.0000aaaa", staging / f"{vid_of('fresh', 'filter')}.0000bbbb"
    foreign = staging / "not-an-attempt"
    for folder in (old, fresh, foreign):
        folder.mkdir(parents=True)
    long_ago = time.time() - UNLOCKED_STALE_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    os.utime(foreign, (long_ago, long_ago))
    assert store.collect_garbage() == [str(old)]
    assert fresh.exists() and foreign.exists()


def test_an_expired_lease_frees_its_attempts_and_a_live_lease_keeps_them(s3_bucket):
    store = Store(f"{s3_bucket}/store", lease_seconds=1)
    dead = store.begin("load", vid_of("dead"))
    dead.write_bytes("part-00000.bin", b"half")
    dead.lease._stop.set()  # killed: no more renewals, its lease object stays until it expires
    versions._LEASED.pop(dead.lease.folder)
    live_vid = vid_of("live", "clean")
    live_lease = Lease(store.fs, f"{store.root}/clean/.locks/{live_vid}", seconds=30).acquire()
    live_part = f"{store.version_dir(live_vid)}/{ATTEMPTS}/0badc0de/part-00000.bin"
    store.fs.pipe_file(live_part, b"being written")
    time.sleep(1.5)

    commit_empty(store, vid_of("next"))
    assert store.fs.find(dead.path) == []
    assert store.fs.find(live_part) == [live_part]
    assert store.fs.find(f"{store.root}/load/.locks/{vid_of('dead')}") == []  # taken over, then released
    live_lease.release()
