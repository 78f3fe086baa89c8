"""The LocalCluster every step runs on: workers spawned with allocator settings fit for numpy work,
a working dashboard, and no routine shuffle warnings."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dask
import dask.dataframe as dd
import httpx
import pandas as pd
import psutil
from distributed import Client

from tokenmill.corpus.store.runtime import (
    SHUFFLE_LOGGER,
    WORKER_MALLOC_THRESHOLD,
    DaskSettings,
    RoutineShuffleLogs,
    dask_client,
    early_cluster,
    worker_environ,
)

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


def test_dashboard_link_serves_the_bokeh_dashboard(client):
    response = httpx.get(client.dashboard_link, timeout=30)
    assert response.status_code == 200
    assert "Dask needs bokeh" not in response.text
    assert "Dask Diagnostic UI" in response.text and "bokeh" in response.text.lower()


ROUTINE = ("initialized by task", "deactivated due to stimulus 'task-finished-")


@contextmanager
def warnings_of(logger: logging.Logger) -> Iterator[list[str]]:
    """The WARNING messages `logger` passes to its handlers meanwhile."""
    captured: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: captured.append(record.getMessage())
    logger.addHandler(handler)
    try:
        yield captured
    finally:
        logger.removeHandler(handler)


def p2p_shuffle(client: Client) -> None:
    """One p2p shuffle, waited for until the scheduler has deactivated it (and logged so)."""
    frame = dd.from_pandas(pd.DataFrame({"key": range(2_000), "value": range(2_000)}), npartitions=4)
    shuffled = frame.shuffle(on="key", npartitions=3, shuffle_method="p2p")
    assert len(client.compute(shuffled).result()) == 2_000
    deadline = time.monotonic() + 30
    while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.plugins["shuffle"].active_shuffles)):
        assert time.monotonic() < deadline, "the shuffle was never deactivated"
        time.sleep(0.05)


def test_routine_shuffle_warnings_are_dropped_and_others_still_pass(client):
    logger = logging.getLogger(SHUFFLE_LOGGER)
    (installed,) = [f for f in logger.filters if isinstance(f, RoutineShuffleLogs)]
    with warnings_of(logger) as filtered:
        p2p_shuffle(client)
        logger.warning("Shuffle %s restarted due to stimulus '%s", "abc123", "worker-left-1")
    assert filtered == ["Shuffle abc123 restarted due to stimulus 'worker-left-1"]

    logger.removeFilter(installed)
    try:
        with warnings_of(logger) as unfiltered:
            p2p_shuffle(client)
    finally:
        logger.addFilter(installed)
    assert all(any(r in m for m in unfiltered) for r in ROUTINE), "without the filter the shuffle logs both"


def test_a_cluster_started_early_is_the_one_handed_out_and_closed_when_nobody_takes_it():
    settings = DaskSettings(n_workers=1)
    baseline = worker_processes()
    with early_cluster(settings):
        with dask_client(settings) as client:
            assert client.submit(sum, [1, 2]).result() == 3
            assert worker_processes() > baseline
            with dask_client(DaskSettings(n_workers=1)) as again:  # the same settings share the client
                assert again is client
        assert client.status == "closed"
    with early_cluster(settings):
        pass  # the flow failed before asking for a cluster
    deadline = time.monotonic() + 30
    while worker_processes() > baseline and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker_processes() == baseline


def test_an_early_clusters_workers_import_the_modules_asked_for_before_any_task():
    settings = DaskSettings(n_workers=1)
    module = "tokenmill.corpus.dedup.minhash"  # numba: nothing a worker imports by itself
    with early_cluster(settings, [module]), dask_client(settings) as client:
        deadline = time.monotonic() + 60
        while not all(client.run(lambda: module in sys.modules).values()):
            assert time.monotonic() < deadline, "the workers never imported it"
            time.sleep(0.2)


def worker_processes() -> int:
    """Dask worker processes this test process spawned (multiprocessing's resource tracker aside)."""
    return sum("spawn_main" in " ".join(p.cmdline()) for p in psutil.Process().children(recursive=True))
