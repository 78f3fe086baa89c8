"""Readers of the formats that frame many records themselves: Parquet row groups and WARC records.

Both keep what they can read of a damaged file: a corrupt Parquet row group is one
`load:bad_parquet` row and the other row groups are still read; a WARC file stops at the
first bytes that are no record (`load:bad_warc`), the records before them kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timezone
from typing import Any

import fsspec
import orjson
import pyarrow as pa

from tokenmill.corpus.ingest.readers import (
    BATCH_ROWS,
    REASON_CONTENT_TYPE,
    REASON_EXTRACT_EMPTY,
    REASON_NO_TEXT,
    Chunk,
    IdChooser,
    RowBuffer,
    doc_id,
    head,
    mtime_of,
    reject_stop,
    reject_unless_text,
    where_in,
)
from tokenmill.corpus.ingest.streams import (
    REASON_FILE_TOO_LARGE,
    REASON_RECORD_TOO_LARGE,
    REASON_TRUNCATED,
    Limits,
    StreamStopped,
    open_stream,
)
from tokenmill.corpus.store.parts import Batch

# Parquet batches are cut to about this much decoded data, whatever a row group's doc sizes.
PARQUET_BATCH_BYTES = 64 * 2**20

REASON_BAD_PARQUET = "load:bad_parquet"
REASON_BAD_WARC = "load:bad_warc"


def read_parquet(chunk: Chunk) -> Iterator[Batch]:
    """Rows of a Parquet file: the text column out, every other one (id and source too) into `meta`.

    Row groups are read one by one, so a corrupt one is one `load:bad_parquet` row and the
    others are still read; an unreadable footer makes the whole file that row, and a file
    without the text column one `load:no_text` row (`check_text_column` has checked the first).
    """
    import pyarrow.parquet as pq

    rows = RowBuffer(mtime_of(chunk))
    text_field = chunk.options.get("text_field", "text")
    with fsspec.open(chunk.url, "rb") as f:
        try:
            reader = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as exc:
            rows.reject(REASON_BAD_PARQUET, doc_id(chunk.url, -1), "", chunk.url, where_in(chunk.url, 0, exc))
        else:
            names = reader.schema_arrow.names
            if text_field in names:
                yield from _parquet_row_groups(chunk, reader, rows)
            else:
                error = f"no column '{text_field}' (columns: {', '.join(names)})"
                rows.reject(REASON_NO_TEXT, doc_id(chunk.url, -1), "", chunk.url, where_in(chunk.url, 0, error))
    yield rows.flush()


def check_text_column(url: str, text_field: str) -> None:
    """Fail before any work when a Parquet input has no `load.text_field` column: with one file
    checked, a wrong setting is one line, not a version of rejected files. A footer that can't be
    read is left to the reader, which rejects the file."""
    import pyarrow.parquet as pq

    from tokenmill.corpus.store.errors import InputError

    try:
        with fsspec.open(url, "rb") as f:
            names = pq.read_schema(f).names
    except (pa.ArrowException, OSError):
        return
    if text_field not in names:
        raise InputError(f"{url}: no column '{text_field}' (set load.text_field; columns: {', '.join(names)})")


def _parquet_row_groups(chunk: Chunk, reader: Any, rows: RowBuffer) -> Iterator[Batch]:
    """Each row group in batches of about `PARQUET_BATCH_BYTES`, until the decoded sizes the footer
    declares pass `load.max_file_gb`."""
    limits: Limits = chunk.options["limits"]
    ids = IdChooser(chunk.options.get("id_field", "id"))
    fields = (chunk.options.get("text_field", "text"), chunk.options.get("source_field"))
    metadata, url = reader.metadata, chunk.url
    first_row, decoded = 0, 0
    for group in range(metadata.num_row_groups):
        info = metadata.row_group(group)
        decoded += info.total_byte_size
        where = {"file": url, "row_group": group, "row": first_row}
        if decoded > limits.max_file_bytes:
            error = f"row groups {group}.. (rows {first_row}..{metadata.num_rows - 1}) pass load.max_file_gb"
            rows.reject(REASON_FILE_TOO_LARGE, doc_id(url, first_row), "", url, {**where, "error": error})
            return
        row_bytes = max(1, info.total_byte_size // max(1, info.num_rows))
        batch_rows = max(1, min(BATCH_ROWS, PARQUET_BATCH_BYTES // row_bytes))
        row = first_row
        try:
            for record_batch in reader.iter_batches(batch_size=batch_rows, row_groups=[group]):
                for record in record_batch.to_pylist():
                    _parquet_record(rows, ids, url, row, record, *fields, limits)
                    row += 1
                yield rows.flush()
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            lost = f"rows {row}..{first_row + info.num_rows - 1} unreadable: {exc}"
            rows.reject(REASON_BAD_PARQUET, doc_id(url, row), "", url, {**where, "row": row, "error": lost})
        first_row += info.num_rows


def _parquet_record(
    rows: RowBuffer,
    ids: IdChooser,
    url: str,
    row_number: int,
    record: dict[str, Any],
    text_field: str,
    source_field: str | None,
    limits: Limits,
) -> None:
    rid = doc_id(url, row_number)
    text = record.pop(text_field, None)
    source = record.get(source_field) if source_field else None
    source = source if isinstance(source, str) and source else url
    meta = orjson.dumps(record, default=str).decode() if record else None
    where = {"file": url, "row": row_number, "record": meta}
    if not isinstance(text, str) or not text.strip():
        error = f"no text in column '{text_field}'"
        rows.reject(REASON_NO_TEXT, rid, text if isinstance(text, str) else "", source, {**where, "error": error})
        return
    if reject_unless_text(rows, limits, rid, text.encode("utf-8", "surrogatepass"), source, where):
        return
    rows.keep(ids.choose(record, rid, rows.counters), text, source, meta)


def read_warc(chunk: Chunk) -> Iterator[Batch]:
    """WARC responses (HTML or plain text, main text extracted) and WET conversion records.

    A record the file ends inside is `load:truncated`; bytes that are no WARC record stop the
    file with `load:bad_warc` (fastwarc's OSError), the records before them kept.
    """
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    from tokenmill.corpus.ingest.extract import html_to_text

    limits: Limits = chunk.options["limits"]
    rows = RowBuffer(mtime_of(chunk))
    wanted = WarcRecordType.response | WarcRecordType.conversion | WarcRecordType.resource
    offset = 0
    try:
        with open_stream(chunk.url, chunk.compression, limits) as f:
            for record in ArchiveIterator(f, record_types=wanted, parse_http=True):
                offset = record.stream_pos
                _warc_record(rows, chunk.url, offset, record, html_to_text, limits)
                if rows.full():
                    yield rows.flush()
    except StreamStopped as stop:
        reject_stop(rows, chunk.url, stop)
    except OSError as exc:
        rows.reject(REASON_BAD_WARC, doc_id(chunk.url, -1), "", chunk.url, where_in(chunk.url, offset, exc))
    yield rows.flush()


def _warc_record(rows: RowBuffer, url: str, offset: int, record: Any, html_to_text: Any, limits: Limits) -> None:
    from fastwarc.warc import WarcRecordType

    target = record.headers.get("WARC-Target-URI") or url
    rid = doc_id(target, None) if target != url else doc_id(url, offset)
    where = {"file": url, "offset": offset, "target": target}
    if record.content_length > limits.max_record_bytes:  # left unread: fastwarc skips it
        error = f"{record.content_length} bytes, over load.max_record_mb"
        rows.reject(REASON_RECORD_TOO_LARGE, rid, "", target, {**where, "error": error})
        return
    body = record.reader.read()
    if len(body) < record.content_length:
        error = f"the file ends {len(body)} of {record.content_length} bytes into the record"
        rows.reject(REASON_TRUNCATED, rid, head(body), target, {**where, "error": error})
        return
    date = record.record_date
    fetched = date.astimezone(timezone.utc) if date is not None else None
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
            rows.reject(REASON_CONTENT_TYPE, rid, "", target, {**where, "error": f"content type {content_type}"})
            return
    if not text.strip():
        rows.reject(REASON_EXTRACT_EMPTY, rid, "", target, {**where, "error": "no main text"})
        return
    if reject_unless_text(rows, limits, rid, text.encode("utf-8", "surrogatepass"), target, where):
        return
    rows.keep(rid, text, target, meta, fetched)
