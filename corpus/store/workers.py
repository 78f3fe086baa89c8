"""What every Dask worker needs before a step's first task, wherever it runs.

A LocalCluster's workers are spawned by tokenmill with the malloc environment of
`runtime.worker_environ`; workers of an external cluster (dask-kubernetes, dask-jobqueue,
`dask worker` by hand) start without it and without the store's storage options. A worker
plugin gives both to every worker, including ones that join later.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from typing import Any

import fsspec
from distributed.diagnostics.plugin import WorkerPlugin

from tokenmill.corpus.store.runtime import WORKER_MALLOC_THRESHOLD
from tokenmill.corpus.store.versions import Store, use_storage_options

PLUGIN_NAME = "tokenmill-worker-setup"
# glibc's mallopt parameters (malloc.h): the same two thresholds `worker_environ` sets.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def tune_malloc(threshold: int = WORKER_MALLOC_THRESHOLD) -> bool:
    """Set glibc's mmap and trim thresholds in this running process (mallopt), as the environment does
    for processes tokenmill spawns; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, threshold))


class WorkerSetup(WorkerPlugin):
    """The store's storage options as fsspec defaults, and the malloc thresholds, on each worker; the
    store's filesystem is opened once there too, so the first task does not pay for importing it
    (s3fs and botocore take a second or two)."""

    def __init__(self, storage_options: Mapping[str, Mapping[str, Any]], protocol: str):
        self.storage_options = {protocol: dict(values) for protocol, values in storage_options.items()}
        self.protocol = protocol

    def setup(self, worker: Any) -> None:
        use_storage_options(self.storage_options)
        tune_malloc()
        fsspec.filesystem(self.protocol, **self.storage_options.get(self.protocol, {}))


def prepare_workers(client: Any, store: Store) -> None:
    """Register `WorkerSetup` for `store` on the cluster (again, harmlessly, when already there)."""
    protocol = store.fs.protocol if isinstance(store.fs.protocol, str) else store.fs.protocol[0]
    client.register_plugin(WorkerSetup(store.storage_options(), protocol), name=PLUGIN_NAME)
