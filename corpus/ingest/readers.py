"""Format readers of the load step: bytes in, rows out, every bad record kept with its reason.

Each reader takes one `Chunk` and yields `Batch`es of at most `BATCH_ROWS` rows. Records
that can't become docs are rejected rows whose `meta` names the file and byte offset (or
Parquet row). Every file is read as a bounded stream (`streams.py`), so a decompression bomb,
a cut or corrupt file, or binary content is a rejected row, never a killed worker.
JSONL and Parquet records keep their own id (`load.id_field`), as RedPajama, FineWeb and
Dolma dumps carry one, so a doc can be traced back to its release.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
import pyarrow as pa

from tokenmill.corpus.ingest.streams import (
    HEAD_BYTES,
    REASON_BINARY,
    REASON_RECORD_TOO_LARGE,
    Limits,
    StreamStopped,
    control_frac,
    iter_lines,
    open_stream,
    read_record,
)
from tokenmill.corpus.store.parts import Batch
from tokenmill.corpus.store.schema import DOC_SCHEMA, REJECTED_SCHEMA

BATCH_ROWS = 2_000
# A batch is flushed at this much text too, so that 2,000 records near `load.max_record_mb` never meet.
BATCH_TEXT_CHARS = 64 * 2**20

REASON_BAD_JSON = "load:bad_json"
REASON_NO_TEXT = "load:no_text"
REASON_UNDECODABLE = "load:undecodable"
REASON_EMPTY = "load:empty"
REASON_EXTRACT_EMPTY = "load:extract_empty"
REASON_CONTENT_TYPE = "load:content_type"

# Counters, not drop reasons: the doc is kept under the generated id.
ID_MISSING = "id_generated.missing"
ID_INVALID = "id_generated.invalid"
ID_DUPLICATE = "id_generated.duplicate"


@dataclass(frozen=True)
class Chunk:
    """A byte range of one file (the whole file for unsplittable formats)."""

    url: str
    fmt: str
    compression: str | None
    start: int
    end: int | None
    mtime: float
    options: dict[str, Any] = field(default_factory=dict, hash=False)


def doc_id(source: str, position: int | None = None) -> str:
    """Stable id: a hash of the source URI and, inside multi-record files, the record's offset."""
    key = source if position is None else f"{source}#{position}"
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def own_id(value: object) -> str | None:
    """A record's id value as a doc id: a non-empty string, or an int in decimal; None for
    anything else (null, bool, float, list), which has no single faithful spelling as a string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


class IdChooser:
    """A kept record's own id, or the generated one when it is missing, invalid or seen before.

    Only kept docs claim their id, so a rejected copy (say, with empty text) never pushes the
    good one onto a generated id; rejected rows keep the position id and the record in `meta`.

    Duplicates are checked within one chunk only, so memory stays bounded by one task's ids:
    an uncompressed JSONL file split into byte ranges (`load.chunk_mb`) is checked per range,
    and an id repeated across ranges or across files keeps its value.
    """

    def __init__(self, id_field: str | None):
        self.id_field = id_field or None
        self.seen: set[str] = set()

    def choose(self, record: dict[str, Any], generated: str, counters: Counter) -> str:
        if self.id_field is None:
            return generated
        if self.id_field not in record:
            fallback = ID_MISSING
        else:
            own = own_id(record[self.id_field])
            if own is None:
                fallback = ID_INVALID
            elif own in self.seen:
                fallback = ID_DUPLICATE
            else:
                self.seen.add(own)
                return own
        counters[fallback] += 1
        return generated


class RowBuffer:
    """Collects kept rows column by column (cheaper to hand to Arrow than dicts) and rejected
    rows, and flushes them as Arrow batches."""

    def __init__(self, fetched_at: datetime):
        self.fetched_at = fetched_at
        self.kept: dict[str, list[Any]] = {name: [] for name in _kept_input_schema.names}
        self.rejected: list[dict[str, Any]] = []
        self.counters: Counter = Counter()
        self.text_chars = 0

    def keep(self, id: str, text: str, source: str, meta: str | None, fetched_at: datetime | None = None) -> None:
        kept = self.kept
        kept["id"].append(id)
        kept["text"].append(text)
        self.text_chars += len(text)
        kept["source"].append(source)
        kept["meta"].append(meta)
        kept["fetched_at"].append(fetched_at or self.fetched_at)

    def reject(self, reason: str, id: str, text: str, source: str, meta: dict[str, Any]) -> None:
        self.text_chars += len(text)
        self.rejected.append(
            {
                "id": id,
                "text": text,
                "source": source,
                "meta": orjson.dumps(meta).decode(),
                "fetched_at": self.fetched_at,
                "reason": reason,
            }
        )

    def full(self) -> bool:
        return len(self.kept["id"]) + len(self.rejected) >= BATCH_ROWS or self.text_chars >= BATCH_TEXT_CHARS

    def flush(self) -> Batch:
        batch = Batch(
            kept=pa.Table.from_pydict(self.kept, schema=_kept_input_schema),
            rejected=pa.Table.from_pylist(self.rejected, schema=_rejected_input_schema),
            counters=dict(self.counters),
        )
        self.kept = {name: [] for name in _kept_input_schema.names}
        self.rejected = []
        self.counters = Counter()
        self.text_chars = 0
        return batch


_kept_input_schema = pa.schema([DOC_SCHEMA.field(n) for n in ("id", "text", "source", "meta", "fetched_at")])
_rejected_input_schema = pa.schema(
    [REJECTED_SCHEMA.field(n) for n in ("id", "text", "source", "meta", "fetched_at", "reason")]
)


def mtime_of(chunk: Chunk) -> datetime:
    return datetime.fromtimestamp(chunk.mtime, tz=timezone.utc)


def screen(data: bytes, limits: Limits) -> tuple[str, str] | None:
    """Why a record's bytes can't be a doc, if they are over `load.max_record_mb` or binary
    (over `load.max_control_frac`); None when they may be."""
    if len(data) > limits.max_record_bytes:
        return REASON_RECORD_TOO_LARGE, f"{len(data)} bytes, over load.max_record_mb"
    frac = control_frac(data)
    if frac > limits.max_control_frac:
        return REASON_BINARY, f"{frac:.1%} control bytes, over load.max_control_frac"
    return None


def reject_unless_text(
    rows: RowBuffer, limits: Limits, rid: str, data: bytes, source: str, where: dict[str, Any]
) -> bool:
    """Reject a record's bytes that `screen` finds too large or binary; True when it did."""
    problem = screen(data, limits)
    if problem:
        rows.reject(problem[0], rid, head(data), source, {**where, "error": problem[1], "size": len(data)})
    return problem is not None


def head(data: bytes) -> str:
    """What a rejected row keeps of a record too large or not text: enough to recognise it."""
    return data[:HEAD_BYTES].decode("utf-8", "backslashreplace")


def where_in(url: str, offset: int, error: object) -> dict[str, Any]:
    return {"file": url, "offset": offset, "error": str(error)}


def reject_stop(rows: RowBuffer, url: str, stop: StreamStopped, whole_file: bool = False) -> None:
    """One row for a stream that stopped early: the unfinished record it cut, or else the file."""
    if whole_file:
        rid = doc_id(url)
    else:
        rid = doc_id(url, -1 if stop.record_offset is None else stop.record_offset)
    rows.reject(stop.reason, rid, stop.record.decode("utf-8", "backslashreplace"), url, stop.where(url))


def reject_too_large(rows: RowBuffer, url: str, offset: int | None, first: bytes, size: int) -> None:
    """A record over `load.max_record_mb`, kept as its first bytes; `size` is what was seen of it
    (a lower bound where reading stopped at the limit)."""
    where = {**where_in(url, offset or 0, "longer than load.max_record_mb"), "size": size}
    rows.reject(REASON_RECORD_TOO_LARGE, doc_id(url, offset), head(first), url, where)


def read_jsonl(chunk: Chunk) -> Iterator[Batch]:
    limits: Limits = chunk.options["limits"]
    text_field = chunk.options.get("text_field", "text")
    source_field = chunk.options.get("source_field")
    ids = IdChooser(chunk.options.get("id_field", "id"))
    rows = RowBuffer(mtime_of(chunk))
    try:
        with open_stream(chunk.url, chunk.compression, limits) as f:
            for line in iter_lines(f, chunk.start, chunk.end, limits.max_record_bytes):
                if not line.whole:
                    reject_too_large(rows, chunk.url, line.offset, line.data, line.size)
                elif line.data.strip():
                    _jsonl_record(rows, ids, chunk.url, line.offset, line.data, text_field, source_field, limits)
                if rows.full():
                    yield rows.flush()
    except StreamStopped as stop:
        reject_stop(rows, chunk.url, stop)
    yield rows.flush()


def _jsonl_record(
    rows: RowBuffer,
    ids: IdChooser,
    url: str,
    offset: int,
    line: bytes,
    text_field: str,
    source_field: str | None,
    limits: Limits,
) -> None:
    rid = doc_id(url, offset)
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raw = line.decode("utf-8", "backslashreplace")
        rows.reject(REASON_BAD_JSON, rid, raw, url, where_in(url, offset, exc))
        return
    if not isinstance(record, dict):
        raw = line.decode("utf-8", "backslashreplace")
        rows.reject(REASON_BAD_JSON, rid, raw, url, where_in(url, offset, "not a JSON object"))
        return
    text = record.pop(text_field, None)
    source = record.get(source_field) if source_field else None
    source = source if isinstance(source, str) and source else url
    meta = orjson.dumps(record).decode() if record else None
    if not isinstance(text, str) or not text.strip():
        where = where_in(url, offset, f"no text in field '{text_field}'")
        rows.reject(REASON_NO_TEXT, rid, text if isinstance(text, str) else "", source, {**where, "record": meta})
        return
    where = {"file": url, "offset": offset, "record": meta}
    if reject_unless_text(rows, limits, rid, text.encode("utf-8", "surrogatepass"), source, where):
        return
    rows.keep(ids.choose(record, rid, rows.counters), text, source, meta)


def read_text(chunk: Chunk) -> Iterator[Batch]:
    """A text file as one doc, or one doc per non-blank line with `per_line`."""
    limits: Limits = chunk.options["limits"]
    per_line = bool(chunk.options.get("per_line"))
    rows = RowBuffer(mtime_of(chunk))
    try:
        with open_stream(chunk.url, chunk.compression, limits) as f:
            if per_line:
                for line in iter_lines(f, chunk.start, chunk.end, limits.max_record_bytes):
                    if not line.whole:
                        reject_too_large(rows, chunk.url, line.offset, line.data, line.size)
                    elif line.data.strip():
                        _text_record(rows, chunk.url, line.offset, line.data, limits)
                    if rows.full():
                        yield rows.flush()
            else:
                data, size = read_record(f, limits.max_record_bytes)
                if size > len(data):
                    reject_too_large(rows, chunk.url, None, data, size)
                else:
                    _text_record(rows, chunk.url, None, data, limits)
    except StreamStopped as stop:
        reject_stop(rows, chunk.url, stop, whole_file=not per_line)
    yield rows.flush()


def _text_record(rows: RowBuffer, url: str, offset: int | None, data: bytes, limits: Limits) -> None:
    """Binary content is told by its bytes before decoding: a NUL-filled file is valid UTF-8."""
    rid = doc_id(url, offset)
    if reject_unless_text(rows, limits, rid, data, url, {"file": url, "offset": offset or 0}):
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raw = data.decode("utf-8", "backslashreplace")
        rows.reject(REASON_UNDECODABLE, rid, raw, url, where_in(url, (offset or 0) + exc.start, exc.reason))
        return
    if not text.strip():
        rows.reject(REASON_EMPTY, rid, text, url, where_in(url, offset or 0, "no text"))
        return
    rows.keep(rid, text, url, None)


def read_html(chunk: Chunk) -> Iterator[Batch]:
    """An HTML file as one doc of its main text."""
    from tokenmill.corpus.ingest.extract import html_to_text

    limits: Limits = chunk.options["limits"]
    rows = RowBuffer(mtime_of(chunk))
    try:
        with open_stream(chunk.url, chunk.compression, limits) as f:
            data, size = read_record(f, limits.max_record_bytes)
    except StreamStopped as stop:
        reject_stop(rows, chunk.url, stop, whole_file=True)
    else:
        if size > len(data):
            reject_too_large(rows, chunk.url, None, data, size)
        else:
            _html_record(rows, chunk.url, data, html_to_text(data), limits)
    yield rows.flush()


def _html_record(rows: RowBuffer, url: str, data: bytes, text: str, limits: Limits) -> None:
    """Binary content is told by the extracted text: the page's bytes may be UTF-16."""
    rid = doc_id(url)
    if not text.strip():
        raw = data.decode("utf-8", "backslashreplace")
        rows.reject(REASON_EXTRACT_EMPTY, rid, raw, url, where_in(url, 0, "no main text"))
        return
    if reject_unless_text(rows, limits, rid, text.encode("utf-8", "surrogatepass"), url, {"file": url, "offset": 0}):
        return
    rows.keep(rid, text, url, None)
