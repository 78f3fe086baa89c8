"""The Dask runtime every step receives: a LocalCluster sized to the machine, or any scheduler.

Steps never start clusters; the CLI and flows open one here and pass the client down. Asking
again, with the same settings, while a client is open in this process gives that client, so
a pipeline shares one cluster across its steps.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import psutil
from pydantic import Field

from tokenmill.corpus.store.errors import ConfigError
from tokenmill.corpus.store.settings import Settings
from tokenmill.corpus.store.versions import Store, StoreSettings

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

_active = ContextVar("tokenmill_dask_client", default=None)
DAEMON_CLUSTER_ENV = "TOKENMILL_DAEMON_CLUSTER"


class DaskSettings(Settings):
    address: str | None = Field(
        default=None,
        description="scheduler address (tcp://host:8786) of an existing cluster; "
        "DASK_SCHEDULER_ADDRESS when unset; a LocalCluster when neither is given",
    )
    n_workers: int | None = Field(default=None, ge=1, description="LocalCluster worker processes (default: cores)")
    threads_per_worker: int = Field(default=1, ge=1, description="threads per worker; the steps are CPU-bound Python")
    memory_limit_gb: float | None = Field(
        default=None, gt=0, description="memory per worker in GiB (default: 80% of RAM over workers)"
    )
    profile: bool = Field(
        default=False,
        description="Dask's statistical profiler in LocalCluster workers (the dashboard's Profile tab); it "
        "samples each worker's stack every 10 ms and slowed the filter step by 15-25% on 2 cores",
    )

    def resolved_address(self) -> str | None:
        return self.address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None


# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also freezes glibc's mmap
# threshold at 128 KiB: every temporary numpy array above it is mmapped and page-faulted anew,
# and every free at the heap top handed back. MinHash signing ran 3.8 MB/s per worker against
# 10-12 in a plain process; with both thresholds at 32 MiB, 6.3-8 (measured). A worker then keeps
# at most 32 MiB of freed heap. Values set in Dask's config (other than its default) win.
WORKER_MALLOC_THRESHOLD = 32 * 2**20
DASK_DEFAULT_TRIM_THRESHOLD = 65536


def worker_environ() -> dict[str, object]:
    """The environment LocalCluster workers are spawned with: Dask's own, with the malloc thresholds."""
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.setdefault("MALLOC_MMAP_THRESHOLD_", WORKER_MALLOC_THRESHOLD)
    if int(environ.get("MALLOC_TRIM_THRESHOLD_", DASK_DEFAULT_TRIM_THRESHOLD)) == DASK_DEFAULT_TRIM_THRESHOLD:
        environ["MALLOC_TRIM_THRESHOLD_"] = WORKER_MALLOC_THRESHOLD
    return environ


def local_cluster_size(settings: DaskSettings) -> tuple[int, int]:
    """(workers, bytes per worker): one process per core, 80% of RAM shared among them."""
    workers = settings.n_workers or os.cpu_count() or 1
    if settings.memory_limit_gb is not None:
        return workers, int(settings.memory_limit_gb * 2**30)
    return workers, int(psutil.virtual_memory().total * 0.8 / workers)


# distributed's p2p shuffle logs a WARNING when each shuffle starts and when it ends normally: a
# dozen lines per dedup run, in the scheduler, which for a LocalCluster is this process.
SHUFFLE_LOGGER = "distributed.shuffle._scheduler_plugin"


class RoutineShuffleLogs(logging.Filter):
    """Drops those two routine messages; a restarted or failed shuffle still logs its warning."""

    ROUTINE = re.compile(
        r"Shuffle \w+ (initialized by task .+ executed on worker \S+"
        r"|deactivated due to stimulus 'task-finished-[\d.]+')$"
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return self.ROUTINE.match(record.getMessage()) is None


def quiet_routine_shuffle_logs() -> None:
    """Install `RoutineShuffleLogs` on the shuffle scheduler's logger, once per process."""
    logger = logging.getLogger(SHUFFLE_LOGGER)
    if not any(isinstance(f, RoutineShuffleLogs) for f in logger.filters):
        logger.addFilter(RoutineShuffleLogs())


def shared_client(settings: DaskSettings) -> Client | None:
    """The client `dask_client(settings)` would hand out again: one open in this context with these settings."""
    active = _active.get()
    return active[1] if active is not None and active[0] == settings else None


def check_store_reach(store: StoreSettings, dask: DaskSettings) -> None:
    """Refuse a local store with an external cluster unless the user says every worker mounts it: the
    workers would write parts to their own disks, and the driver would commit a folder it never got."""
    address = dask.resolved_address()
    if address and Store(store.root, store.options).local and not store.shared_filesystem:
        raise ConfigError(
            f"store.root '{store.root}' is a local path but the Dask cluster at {address} is external: its "
            "workers cannot write there; use an object store (s3://…, gs://…) or, if every worker mounts this "
            "path, set store.shared_filesystem = true"
        )


def _open(settings: DaskSettings) -> tuple[Client, LocalCluster | None]:
    """A client of the scheduler `settings` name, or of the daemon's cluster, or of a new LocalCluster."""
    from distributed import Client

    for name in ("distributed", "distributed.core", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet_routine_shuffle_logs()
    address = settings.resolved_address() or daemon_cluster(settings)
    if address:
        return Client(address), None
    return open_local_cluster(settings)


def daemon_cluster(settings: DaskSettings) -> str | None:
    """The scheduler of the tokenmill daemon's running LocalCluster (DAEMON_CLUSTER_ENV, set in the runs
    it forks) when that cluster was started with these settings: a run takes it as it would start one."""
    held = os.environ.get(DAEMON_CLUSTER_ENV)
    if not held:
        return None
    cluster = json.loads(held)
    return cluster["address"] if DaskSettings.model_validate(cluster["settings"]) == settings else None


def open_local_cluster(settings: DaskSettings) -> tuple[Client, LocalCluster]:
    """A new LocalCluster sized to this machine by `settings`, and a client of it."""
    import dask
    from distributed import Client, LocalCluster

    workers, memory = local_cluster_size(settings)
    worker_config = {
        "distributed.nanny.pre-spawn-environ": worker_environ(),
        "distributed.worker.profile.enabled": settings.profile,
    }
    with dask.config.set(worker_config):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=settings.threads_per_worker,
            processes=True,
            memory_limit=memory,
            dashboard_address=":0",
            # Workers shut down while a failed step unwinds log heartbeat failures (at ERROR, with
            # tracebacks) over the one-line error; task errors and dead workers reach the driver
            # through their futures anyway.
            silence_logs=logging.CRITICAL,
        )
    return Client(cluster), cluster


def _close(client: Client, cluster: LocalCluster | None) -> None:
    client.close()
    if cluster is not None:
        cluster.close()


# A cluster started ahead by `early_cluster`, waiting for the `dask_client` call that takes it.
_early: list[tuple[DaskSettings, Future]] = []


@contextmanager
def early_cluster(settings: DaskSettings, warm_modules: Sequence[str] = ()) -> Iterator[None]:
    """Start now, in a thread, the cluster that `dask_client(settings)` will hand out within this block:
    the CLI opens it before importing Prefect and starting its flow run, so workers spawn while
    those take their seconds. Each worker then imports `warm_modules` (the first step's code: numba,
    pandas, pyarrow take a second or two) while the driver is still starting its flow run, rather
    than when the first task arrives. Closed on exit if nothing took it (the flow failed first)."""
    with ThreadPoolExecutor(1, thread_name_prefix="tokenmill-early-cluster") as pool:
        entry = (settings, pool.submit(_open_warm, settings, tuple(warm_modules)))
        _early.append(entry)
        try:
            yield
        finally:
            if entry in _early:
                _early.remove(entry)
                if entry[1].exception() is None:
                    _close(*entry[1].result())


def _open_warm(settings: DaskSettings, modules: tuple[str, ...]) -> tuple[Client, LocalCluster | None]:
    client, cluster = _open(settings)
    if modules:
        client.run(import_modules, modules, wait=False)
    return client, cluster


async def import_modules(modules: Sequence[str]) -> None:
    """Import `modules` in a thread of this worker (a coroutine: `Client.run` fires and forgets only
    those; the thread keeps the worker's event loop, and its heartbeats, free meanwhile)."""
    await asyncio.get_running_loop().run_in_executor(None, lambda: [importlib.import_module(m) for m in modules])


def _take_early(settings: DaskSettings) -> tuple[Client, LocalCluster | None] | None:
    for entry in _early:
        if entry[0] == settings:
            _early.remove(entry)
            return entry[1].result()
    return None


@contextmanager
def dask_client(settings: DaskSettings | None = None) -> Iterator[Client]:
    """Yield a connected client (the one `early_cluster` started, if any); close what was opened for
    this call on exit."""
    settings = settings or DaskSettings()
    shared = shared_client(settings)
    if shared is not None:
        yield shared
        return
    client, cluster = _take_early(settings) or _open(settings)
    token = _active.set((settings, client))
    try:
        yield client
    finally:
        _active.reset(token)
        _close(client, cluster)
