"""The crawl's raw responses as one WARC file beside the version, for audit and re-extraction by `load`.

Bodies are stored decoded (the client undoes Content-Encoding), so the encoding and length headers
are dropped from the stored HTTP headers to keep each record self-consistent.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import orjson
import pyarrow as pa

from tokenmill.corpus.crawl.journal import read_body
from tokenmill.corpus.store.errors import MissingDependencyError
from tokenmill.corpus.store.versions import Attempt, FileEntry

WARC_PATH = "warc/crawl-00000.warc.gz"
DROPPED_HEADERS = {"content-encoding", "transfer-encoding", "content-length"}


def write_warc(attempt: Attempt, rows: Iterator[pa.Table], folder: Path) -> FileEntry:
    """One gzipped WARC `response` record per fetched body of `rows` (tables with a `fetch` column
    holding each URL's journal record as JSON), in their order."""
    try:
        from warcio.statusandheaders import StatusAndHeaders
        from warcio.warcwriter import WARCWriter
    except ImportError:
        raise MissingDependencyError("crawl.warc needs warcio: pip install 'warcio>=1.7'") from None
    fs = attempt.store.fs
    path = f"{attempt.path}/{WARC_PATH}"
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        fetches = (orjson.loads(f) for table in rows for f in table["fetch"].to_pylist() if f)
        for fetch in fetches:
            if not fetch.get("body"):
                continue
            status = fetch["status"]
            headers = [(k, v) for k, v in fetch["headers"].items() if k not in DROPPED_HEADERS]
            http = StatusAndHeaders(f"{status} {HTTPStatus(status).phrase}", headers, protocol="HTTP/1.1")
            record = writer.create_warc_record(
                fetch["final_url"], "response", payload=io.BytesIO(read_body(folder, fetch)),
                http_headers=http, warc_headers_dict={"WARC-Date": fetch["fetched_at"][:19] + "Z"},
            )
            writer.write_record(record)
    digest, size = hashlib.sha256(), 0
    with fs.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return FileEntry(path=WARC_PATH, bytes=size, sha256=digest.hexdigest())
