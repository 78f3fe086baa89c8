"""Format readers of the load step: bytes in, rows out, every bad record kept with its reason.

Each reader takes one `Chunk` and yields `Batch`es of at most `BATCH_ROWS` rows. Records
that can't become docs are rejected rows whose `meta` names the file and byte offset.
JSONL and Parquet records keep their own id (`load.id_field`), as RedPajama, FineWeb and
Dolma dumps carry one, so a doc can be traced back to its release.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO

import fsspec
import orjson
import pyarrow as pa

from tokenmill.corpus.store.parts import Batch
from tokenmill.corpus.store.schema import DOC_SCHEMA, REJECTED_SCHEMA

BATCH_ROWS = 2_000
BLOCK_BYTES = 8 * 2**20

REASON_BAD_JSON = "load:bad_json"
REASON_NO_TEXT = "load:no_text"
REASON_UNDECODABLE = "load:undecodable"
REASON_EMPTY = "load:empty"
REASON_TRUNCATED = "load:truncated"
REASON_EXTRACT_EMPTY = "load:extract_empty"
REASON_CONTENT_TYPE = "load:content_type"

# Counters, not drop reasons: the doc is kept under the generated id.
ID_MISSING = "id_generated.missing"
ID_INVALID = "id_generated.invalid"
ID_DUPLICATE = "id_generated.duplicate"

TRUNCATION_ERRORS: tuple[type[BaseException], ...] = (EOFError, zlib.error, OSError)


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

    def keep(self, id: str, text: str, source: str, meta: str | None, fetched_at: datetime | None = None) -> None:
        kept = self.kept
        kept["id"].append(id)
        kept["text"].append(text)
        kept["source"].append(source)
        kept["meta"].append(meta)
        kept["fetched_at"].append(fetched_at or self.fetched_at)

    def reject(self, reason: str, id: str, text: str, source: str, meta: dict[str, Any]) -> None:
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
        return len(self.kept["id"]) + len(self.rejected) >= BATCH_ROWS

    def flush(self) -> Batch:
        batch = Batch(
            kept=pa.Table.from_pydict(self.kept, schema=_kept_input_schema),
            rejected=pa.Table.from_pylist(self.rejected, schema=_rejected_input_schema),
            counters=dict(self.counters),
        )
        self.kept = {name: [] for name in _kept_input_schema.names}
        self.rejected = []
        self.counters = Counter()
        return batch


_kept_input_schema = pa.schema([DOC_SCHEMA.field(n) for n in ("id", "text", "source", "meta", "fetched_at")])
_rejected_input_schema = pa.schema(
    [REJECTED_SCHEMA.field(n) for n in ("id", "text", "source", "meta", "fetched_at", "reason")]
)


def mtime_of(chunk: Chunk) -> datetime:
    return datetime.fromtimestamp(chunk.mtime, tz=timezone.utc)


def open_chunk(chunk: Chunk) -> BinaryIO:
    return fsspec.open(chunk.url, "rb", compression=chunk.compression).open()


def _blocks(f: BinaryIO, block_bytes: int) -> Iterator[bytes]:
    """Blocks of about `block_bytes`, built from `read1` pieces so that a truncated stream
    still yields everything decompressed before the break, then raises."""
    read = getattr(f, "read1", f.read)
    pieces: list[bytes] = []
    size = 0
    try:
        while True:
            piece = read(block_bytes)
            if not piece:
                break
            pieces.append(piece)
            size += len(piece)
            if size >= block_bytes:
                yield b"".join(pieces)
                pieces, size = [], 0
    except TRUNCATION_ERRORS:
        if pieces:
            yield b"".join(pieces)
        raise
    if pieces:
        yield b"".join(pieces)


def iter_lines(f: BinaryIO, start: int, end: int | None) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for every line that starts in [start, end), read in large blocks.

    A line that starts before `start` belongs to the previous chunk, which reads past its
    own end to finish it: the usual rule for splitting text files by byte range. If the
    stream breaks, the partial last line is yielded before the error propagates, so it is
    kept as a (rejected) record instead of vanishing.
    """
    if start > 0:
        f.seek(start - 1)
        f.readline()
    offset = f.tell() if start > 0 else 0
    carry = b""
    try:
        for block in _blocks(f, BLOCK_BYTES):
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            for line in lines:
                if end is not None and offset >= end:
                    return
                yield offset, line
                offset += len(line) + 1
            if end is not None and offset >= end:
                return
    except TRUNCATION_ERRORS:
        if carry:
            yield offset, carry
        raise
    if carry:
        yield offset, carry


def read_jsonl(chunk: Chunk) -> Iterator[Batch]:
    text_field = chunk.options.get("text_field", "text")
    source_field = chunk.options.get("source_field")
    ids = IdChooser(chunk.options.get("id_field", "id"))
    rows = RowBuffer(mtime_of(chunk))
    f = open_chunk(chunk)
    offset = chunk.start
    try:
        for offset, line in iter_lines(f, chunk.start, chunk.end):
            if line.strip():
                _jsonl_record(rows, ids, chunk.url, offset, line, text_field, source_field)
            if rows.full():
                yield rows.flush()
    except TRUNCATION_ERRORS as exc:
        rows.reject(REASON_TRUNCATED, doc_id(chunk.url, -1), "", chunk.url, _where(chunk.url, offset, exc))
    finally:
        f.close()
    yield rows.flush()


def _jsonl_record(
    rows: RowBuffer, ids: IdChooser, url: str, offset: int, line: bytes, text_field: str, source_field: str | None
) -> None:
    rid = doc_id(url, offset)
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raw = line.decode("utf-8", "backslashreplace")
        rows.reject(REASON_BAD_JSON, rid, raw, url, _where(url, offset, exc))
        return
    if not isinstance(record, dict):
        raw = line.decode("utf-8", "backslashreplace")
        rows.reject(REASON_BAD_JSON, rid, raw, url, _where(url, offset, "not a JSON object"))
        return
    text = record.pop(text_field, None)
    source = record.get(source_field) if source_field else None
    source = source if isinstance(source, str) and source else url
    meta = orjson.dumps(record).decode() if record else None
    if not isinstance(text, str) or not text.strip():
        where = _where(url, offset, f"no text in field '{text_field}'")
        rows.reject(REASON_NO_TEXT, rid, text if isinstance(text, str) else "", source, {**where, "record": meta})
        return
    rows.keep(ids.choose(record, rid, rows.counters), text, source, meta)


def _where(url: str, offset: int, error: object) -> dict[str, Any]:
    return {"file": url, "offset": offset, "error": str(error)}


def read_text(chunk: Chunk) -> Iterator[Batch]:
    """A text file as one doc, or one doc per non-blank line with `per_line`."""
    rows = RowBuffer(mtime_of(chunk))
    if chunk.options.get("per_line"):
        f = open_chunk(chunk)
        offset = chunk.start
        try:
            for offset, line in iter_lines(f, chunk.start, chunk.end):
                if line.strip():
                    _text_record(rows, chunk.url, offset, line)
                if rows.full():
                    yield rows.flush()
        except TRUNCATION_ERRORS as exc:
            rows.reject(REASON_TRUNCATED, doc_id(chunk.url, -1), "", chunk.url, _where(chunk.url, offset, exc))
        finally:
            f.close()
    else:
        data = _read_whole(chunk, rows)
        if data is not None:
            _text_record(rows, chunk.url, None, data)
    yield rows.flush()


def _read_whole(chunk: Chunk, rows: RowBuffer) -> bytes | None:
    try:
        with open_chunk(chunk) as f:
            return f.read()
    except TRUNCATION_ERRORS as exc:
        rows.reject(REASON_TRUNCATED, doc_id(chunk.url), "", chunk.url, _where(chunk.url, 0, exc))
        return None


def _text_record(rows: RowBuffer, url: str, offset: int | None, data: bytes) -> None:
    rid = doc_id(url, offset)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raw = data.decode("utf-8", "backslashreplace")
        rows.reject(REASON_UNDECODABLE, rid, raw, url, _where(url, (offset or 0) + exc.start, exc.reason))
        return
    if not text.strip():
        rows.reject(REASON_EMPTY, rid, text, url, _where(url, offset or 0, "no text"))
        return
    rows.keep(rid, text, url, None)


def read_html(chunk: Chunk) -> Iterator[Batch]:
    """An HTML file as one doc of its main text."""
    from tokenmill.corpus.ingest.extract import html_to_text

    rows = RowBuffer(mtime_of(chunk))
    data = _read_whole(chunk, rows)
    if data is not None:
        rid = doc_id(chunk.url)
        text = html_to_text(data)
        if text.strip():
            rows.keep(rid, text, chunk.url, None)
        else:
            raw = data.decode("utf-8", "backslashreplace")
            rows.reject(REASON_EXTRACT_EMPTY, rid, raw, chunk.url, _where(chunk.url, 0, "no main text"))
    yield rows.flush()


def read_parquet(chunk: Chunk) -> Iterator[Batch]:
    """Rows of a Parquet file: the text column out, every other one (id and source too) into `meta`."""
    import pyarrow.parquet as pq

    text_field = chunk.options.get("text_field", "text")
    source_field = chunk.options.get("source_field")
    ids = IdChooser(chunk.options.get("id_field", "id"))
    rows = RowBuffer(mtime_of(chunk))
    with fsspec.open(chunk.url, "rb") as f:
        reader = pq.ParquetFile(f)
        if text_field not in reader.schema_arrow.names:
            raise_missing_column(chunk.url, text_field, reader.schema_arrow.names)
        row_number = 0
        for record_batch in reader.iter_batches(batch_size=BATCH_ROWS):
            for record in record_batch.to_pylist():
                _parquet_record(rows, ids, chunk.url, row_number, record, text_field, source_field)
                row_number += 1
            yield rows.flush()


def raise_missing_column(url: str, column: str, names: list[str]) -> None:
    from tokenmill.corpus.store.errors import InputError

    raise InputError(f"{url}: no column '{column}' (set load.text_field; columns: {', '.join(names)})")


def _parquet_record(
    rows: RowBuffer,
    ids: IdChooser,
    url: str,
    row_number: int,
    record: dict[str, Any],
    text_field: str,
    source_field: str | None,
) -> None:
    rid = doc_id(url, row_number)
    text = record.pop(text_field, None)
    source = record.get(source_field) if source_field else None
    source = source if isinstance(source, str) and source else url
    meta = orjson.dumps(record, default=str).decode() if record else None
    if not isinstance(text, str) or not text.strip():
        where = {"file": url, "row": row_number, "error": f"no text in column '{text_field}'"}
        rows.reject(REASON_NO_TEXT, rid, text if isinstance(text, str) else "", source, {**where, "record": meta})
        return
    rows.keep(ids.choose(record, rid, rows.counters), text, source, meta)


def read_warc(chunk: Chunk) -> Iterator[Batch]:
    """WARC responses (HTML or plain text, main text extracted) and WET conversion records."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    from tokenmill.corpus.ingest.extract import html_to_text

    rows = RowBuffer(mtime_of(chunk))
    wanted = WarcRecordType.response | WarcRecordType.conversion | WarcRecordType.resource
    f = open_chunk(chunk)
    offset = 0
    try:
        for record in ArchiveIterator(f, record_types=wanted, parse_http=True):
            offset = record.stream_pos
            _warc_record(rows, chunk.url, offset, record, html_to_text)
            if rows.full():
                yield rows.flush()
    except TRUNCATION_ERRORS as exc:
        rows.reject(REASON_TRUNCATED, doc_id(chunk.url, -1), "", chunk.url, _where(chunk.url, offset, exc))
    finally:
        f.close()
    yield rows.flush()


def _warc_record(rows: RowBuffer, url: str, offset: int, record: Any, html_to_text: Any) -> None:
    from fastwarc.warc import WarcRecordType

    target = record.headers.get("WARC-Target-URI") or url
    rid = doc_id(target, None) if target != url else doc_id(url, offset)
    date = record.record_date
    fetched = date.astimezone(timezone.utc) if date is not None else None
    body = record.reader.read()
    meta = orjson.dumps({"warc_record_id": record.record_id, "warc_file": url, "offset": offset}).decode()
    if record.record_type == WarcRecordType.conversion:
        text = body.decode("utf-8", "replace")
    else:
        content_type = (record.http_content_type or "text/html").lower() if record.http_headers else "text/html"
        if "html" in content_type:
            text = html_to_text(body)
        elif content_type.startswith("text/plain"):
            text = body.decode(record.http_charset or "utf-8", "replace")
        else:
            where = _where(url, offset, f"content type {content_type}")
            rows.reject(REASON_CONTENT_TYPE, rid, "", target, {**where, "target": target})
            return
    if not text.strip():
        rows.reject(REASON_EXTRACT_EMPTY, rid, "", target, {**_where(url, offset, "no main text"), "target": target})
        return
    rows.keep(rid, text, target, meta, fetched)


READERS = {
    "jsonl": read_jsonl,
    "text": read_text,
    "html": read_html,
    "parquet": read_parquet,
    "warc": read_warc,
}


def read_chunk(chunk: Chunk) -> Iterator[Batch]:
    return READERS[chunk.fmt](chunk)
