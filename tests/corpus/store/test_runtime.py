"""The LocalCluster every step runs on: workers spawned with allocator settings fit for numpy work."""

from __future__ import annotations

import os

import dask
from tokenmill.corpus.store.runtime import WORKER_MALLOC_THRESHOLD, worker_environ

MALLOC_KEYS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")


def test_workers_keep_dask_environment_and_get_the_malloc_thresholds(client):
    environ = client.run(lambda: {k: os.environ.get(k) for k in MALLOC_KEYS})
    threshold = str(WORKER_MALLOC_THRESHOLD)
    assert environ and all(e == dict(zip(MALLOC_KEYS, (threshold, threshold, "1"))) for e in environ.values())


def test_thresholds_set_in_dask_config_are_kept():
    environ = "distributed.nanny.pre-spawn-environ"
    with dask.config.set({f"{environ}.MALLOC_MMAP_THRESHOLD_": 1024, f"{environ}.MALLOC_TRIM_THRESHOLD_": 4096}):
        assert [worker_environ()[k] for k in MALLOC_KEYS[:2]] == [1024, 4096]


def test_workers_run_without_the_statistical_profiler(client):
    enabled = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
    assert enabled and set(enabled.values()) == {False}
