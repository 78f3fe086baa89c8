"""The LocalCluster every step runs on: workers spawned with allocator settings fit for numpy work."""

from __future__ import annotations

import os

import dask

from tokenmill.corpus.runtime import WORKER_MALLOC_MMAP_THRESHOLD, worker_environ


def test_workers_keep_dask_environment_and_get_the_mmap_threshold(client):
    environ = client.run(lambda: {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "OMP_NUM_THREADS")})
    assert environ and all(
        e == {"MALLOC_MMAP_THRESHOLD_": str(WORKER_MALLOC_MMAP_THRESHOLD), "OMP_NUM_THREADS": "1"}
        for e in environ.values()
    )


def test_a_threshold_set_in_dask_config_is_kept():
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 1024}):
        assert worker_environ()["MALLOC_MMAP_THRESHOLD_"] == 1024
