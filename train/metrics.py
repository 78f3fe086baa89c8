"""A run's per-step metrics as a Parquet file, and checksums of the files a run writes."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tokenmill.corpus.store.versions import FileEntry, Store

METRICS = "metrics.parquet"
METRIC_SCHEMA = pa.schema([("step", pa.int64()), ("tokens", pa.int64()), ("loss", pa.float64()),
                           ("lr", pa.float64()), ("grad_norm", pa.float64()), ("tokens_per_s", pa.float64()),
                           ("mfu", pa.float64()), ("val_loss", pa.float64())])


def write_metrics(store: Store, path: str, rows: list[dict[str, Any]]) -> FileEntry:
    table = pa.Table.from_pylist(rows, schema=METRIC_SCHEMA)
    with store.fs.open(f"{path}/{METRICS}", "wb") as f:
        pq.write_table(table, f)
    target = f"{path}/{METRICS}"
    return FileEntry(path=METRICS, rows=table.num_rows, bytes=store.fs.info(target)["size"],
                     sha256=file_sha256(store, target))


def file_sha256(store: Store, path: str) -> str:
    sha = hashlib.sha256()
    with store.fs.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()
