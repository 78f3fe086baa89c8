"""Shared accounting for every step: write kept rows, rejected rows and counts, per partition.

A step describes its work as a list of tasks (a file chunk, an input part) and one picklable
function `task -> Iterable[Batch]`. Each Dask task streams its batches into
`part-NNNNN.parquet` and `rejected/part-NNNNN.parquet` inside the attempt's staging folder
and returns only file entries and `DocStats`, so memory is bounded by one batch and the
driver never sees a row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from tokenmill.corpus.store.schema import conform
from tokenmill.corpus.store.stats import DocStats
from tokenmill.corpus.store.versions import FileEntry

PARQUET_COMPRESSION = "zstd"
ROW_GROUP_ROWS = 20_000


@dataclass
class Batch:
    """What a step's partition function yields: rows kept, rows dropped (with `reason`), counts."""

    kept: pa.Table
    rejected: pa.Table | None = None
    counters: dict[str, int] = field(default_factory=dict)


def rejected_rows(table: pa.Table, mask: Any, reason: str) -> pa.Table:
    """The rows of `table` under `mask`, each with `reason`: the one way a step drops rows for a
    single rule."""
    dropped = table.filter(pa.array(mask, pa.bool_()))
    return dropped.append_column("reason", pa.array([reason] * dropped.num_rows, pa.string()))


@dataclass
class PartResult:
    files: list[FileEntry]
    stats: DocStats


class HashingFile:
    """A write-only file that hashes and counts the bytes passing through, so no file is read back
    (file object enough for pyarrow's Parquet and IPC writers)."""

    def __init__(self, raw: Any):
        self.raw, self.sha, self.size, self.closed = raw, hashlib.sha256(), 0, False

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.size += view.nbytes
        return self.raw.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
            self.closed = True


class PartWriter:
    """One Parquet file, streamed and checksummed while written; opened on the first batch that
    has rows, or at close. Steps that write side files (signals, signatures, pack rejects) use it too."""

    def __init__(self, url: str, relpath: str, schema: pa.Schema):
        self.url, self.relpath, self.schema = url, relpath, schema
        self.file: HashingFile | None = None
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def _open(self) -> None:
        self.file = HashingFile(fsspec.open(self.url, "wb", auto_mkdir=True).open())
        self.writer = pq.ParquetWriter(self.file, self.schema, compression=PARQUET_COMPRESSION)

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self.writer is None:
            self._open()
        self.writer.write_table(conform(table, self.schema), row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows

    def close(self, keep_empty: bool) -> FileEntry | None:
        if self.writer is None:
            if not keep_empty:
                return None
            self._open()
        self.writer.close()
        self.file.close()
        return FileEntry(path=self.relpath, rows=self.rows, bytes=self.file.size, sha256=self.file.sha.hexdigest())


def write_part(
    out_url: str, index: int, batches: Iterable[Batch], kept_schema: pa.Schema, rejected_schema: pa.Schema
) -> PartResult:
    """Stream one partition's batches to its kept and rejected files and count them.

    The kept file is written even when empty, so every part of a version reads with one schema.
    """
    name = f"part-{index:05d}.parquet"
    kept = PartWriter(f"{out_url}/{name}", name, kept_schema)
    rejected = PartWriter(f"{out_url}/rejected/{name}", f"rejected/{name}", rejected_schema)
    stats = DocStats()
    for batch in batches:
        kept.write(batch.kept)
        stats.add_kept(batch.kept)
        if batch.rejected is not None:
            rejected.write(batch.rejected)
            stats.add_rejected(batch.rejected)
        stats.counters.update(batch.counters)
    files = [entry for entry in (kept.close(keep_empty=True), rejected.close(keep_empty=False)) if entry]
    return PartResult(files=files, stats=stats)


def _run_task(
    index: int,
    task: Any,
    process: Callable[[Any], Iterable[Batch]],
    out_url: str,
    kept_schema: pa.Schema,
    rejected_schema: pa.Schema,
) -> PartResult:
    return write_part(out_url, index, process(task), kept_schema, rejected_schema)


def run_parts(
    client: Any,
    tasks: Sequence[Any],
    process: Callable[[Any], Iterable[Batch]],
    out_url: str,
    kept_schema: pa.Schema,
    rejected_schema: pa.Schema,
    description: str,
) -> tuple[list[FileEntry], DocStats]:
    """Run `process` on every task on the Dask cluster, one part file each; merge what they return."""
    from tokenmill.corpus.store.progress import track

    futures = [
        client.submit(_run_task, i, task, process, out_url, kept_schema, rejected_schema, pure=False)
        for i, task in enumerate(tasks)
    ]
    files: list[FileEntry] = []
    stats = DocStats()
    for result in track(futures, description):
        files.extend(result.files)
        stats = stats.merge(result.stats)
    return files, stats
