"""Each decided URL leaves the driver's memory when it is decided.

Rows are buffered up to `SEGMENT_ROWS` (or `SEGMENT_BYTES` of text), sorted by URL and spilled as
an Arrow IPC segment in the crawl's local state folder. The commit merges the segments (k-way,
streaming, `FAN_IN` files at a time) into parts in URL order, so the parts hold the same rows in
the same order whatever order the pages arrived in, and a resumed crawl writes what an
uninterrupted one writes. The driver holds one buffer and one batch per merged segment.
"""

from __future__ import annotations

import heapq
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from tokenmill.corpus.store.schema import DOC_SCHEMA

SPOOL = "spool"
SEGMENT_ROWS = 2_000
SEGMENT_BYTES = 64 << 20
READ_ROWS = 256
FAN_IN = 128

SPOOL_SCHEMA = pa.schema([
    *(DOC_SCHEMA.field(name) for name in ("source", "id", "text", "fetched_at", "meta")),
    pa.field("reason", pa.string()),
    pa.field("status", pa.int32()),
    pa.field("sha256", pa.string()),
    pa.field("fetch", pa.string()),
])


class Spool:
    """Sorted segments of rows (dicts with SPOOL_SCHEMA's keys; `fetch` is the journal's fetch record
    as JSON, for the WARC) under `folder/spool`, started empty."""

    def __init__(self, folder: Path):
        self.folder = folder / SPOOL
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.rows: list[dict[str, Any]] = []
        self.text_bytes = 0
        self.segments: list[Path] = []
        self.peak_rows = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.text_bytes += len(row["text"])
        self.peak_rows = max(self.peak_rows, len(self.rows))
        if len(self.rows) >= SEGMENT_ROWS or self.text_bytes >= SEGMENT_BYTES:
            self._spill()

    def _spill(self) -> None:
        if not self.rows:
            return
        self.rows.sort(key=lambda row: row["source"])
        # By columns: `Table.from_pylist` took 0.4 s for 2,000 rows, blocking the crawl's event loop.
        table = pa.Table.from_pydict({name: [row[name] for row in self.rows] for name in SPOOL_SCHEMA.names},
                                     schema=SPOOL_SCHEMA)
        self.segments.append(write_segment(self.folder / f"{len(self.segments):06d}.arrow", [table]))
        self.rows, self.text_bytes = [], 0

    def close(self) -> list[Path]:
        """Spill the last rows; merge segments until at most FAN_IN remain; the segments, in order."""
        self._spill()
        merges = 0
        while len(self.segments) > FAN_IN:
            group, self.segments = self.segments[:FAN_IN], self.segments[FAN_IN:]
            self.segments.append(write_segment(self.folder / f"merged-{merges:06d}.arrow", merged(group)))
            merges += 1
            for path in group:
                path.unlink()
        return self.segments


def write_segment(path: Path, tables: Iterator[pa.Table] | list[pa.Table]) -> Path:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, SPOOL_SCHEMA) as writer:
        for table in tables:
            writer.write_table(table, max_chunksize=READ_ROWS)
    return path


def merged(paths: list[Path], columns: list[str] | None = None) -> Iterator[pa.Table]:
    """The rows of sorted segments in URL order, as tables of up to READ_ROWS rows."""
    readers = [pa.ipc.open_file(pa.memory_map(str(path))) for path in paths]

    def keyed(n: int) -> Iterator[tuple[str, int, int, int]]:
        reader = readers[n]
        for b in range(reader.num_record_batches):
            for row, url in enumerate(reader.get_batch(b).column("source").to_pylist()):
                yield url, n, b, row

    picked: list[tuple[str, int, int, int]] = []
    for item in heapq.merge(*(keyed(n) for n in range(len(readers)))):
        picked.append(item)
        if len(picked) == READ_ROWS:
            yield _take(readers, picked, columns)
            picked = []
    if picked:
        yield _take(readers, picked, columns)


def _take(readers: list[Any], picked: list[tuple[str, int, int, int]], columns: list[str] | None) -> pa.Table:
    """The picked rows, in the order picked, copied once: each run of consecutive rows of one source
    batch is a slice of it, and the slices are joined into one table (a take per source batch and a
    permutation copied the text twice, and cost 5x as much)."""
    runs: list[list[int]] = []
    for _, n, b, row in picked:
        if runs and runs[-1][:2] == [n, b] and runs[-1][2] + runs[-1][3] == row:
            runs[-1][3] += 1
        else:
            runs.append([n, b, row, 1])
    batches: dict[tuple[int, int], pa.RecordBatch] = {}
    slices = []
    for n, b, row, length in runs:
        if (n, b) not in batches:
            batch = readers[n].get_batch(b)
            batches[n, b] = batch if columns is None else batch.select(columns)
        slices.append(batches[n, b].slice(row, length))
    return pa.Table.from_batches(slices).combine_chunks()
