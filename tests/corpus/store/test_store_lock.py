"""The per-version writer lock of `Store.begin`: a second process waits for the first writer."""

from __future__ import annotations

import subprocess
import sys
import time

from tokenmill.corpus.store.versions import Store, version_id

HOLDER = """
import sys, time
from tokenmill.corpus.store.versions import Store
attempt = Store(sys.argv[1]).begin("load", sys.argv[2])
attempt.write_json("stats.json", {"writer": "first"})
print("locked", flush=True)
time.sleep(1.5)
attempt.commit({}, [], "load-v1", [], {})
"""


def test_second_process_waits_for_the_writer_then_sees_its_commit(store: Store):
    vid = version_id("load", {"lock": 1}, [], "load-v1")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, store.url, vid], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    attempt = store.begin("load", vid)
    waited = time.monotonic() - started
    assert holder.wait(timeout=30) == 0
    assert waited > 0.5 and store.exists(vid)
    kept = attempt.commit({}, [], "load-v1", [], {})
    assert store.read_json(vid, "stats.json") == {"writer": "first"} and kept.stats == {}


def test_abandoned_attempt_in_the_same_process_is_taken_over(store: Store):
    vid = version_id("load", {"lock": 2}, [], "load-v1")
    abandoned = store.begin("load", vid)
    retry = store.begin("load", vid)
    abandoned.abort()
    retry.commit({}, [], "load-v1", [], {})
    assert store.exists(vid)
    store.begin("load", vid).abort()
