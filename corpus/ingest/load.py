"""The load step: local or fsspec files (text, JSONL, HTML, WARC/WET, Parquet; gz, zst) to a docs version.

Inputs are expanded and checked before any work starts, then cut into chunks (byte ranges
of splittable files, whole files otherwise) that Dask workers read in parallel, so a 10 GB
input never sits in one process. Every file is read as a bounded stream: a decompression
bomb, a cut or corrupt file and binary content are rejected rows with a reason, never a
killed worker (`streams.py`). The version id hashes the settings and a fingerprint of
the inputs (path, size, mtime), so an unchanged input is found cached.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, Literal

import fsspec
import orjson
from pydantic import Field

from tokenmill.corpus.ingest import containers, pydocs, readers
from tokenmill.corpus.ingest.readers import Chunk, RowBuffer, doc_id
from tokenmill.corpus.ingest.streams import Limits
from tokenmill.corpus.store.errors import InputError
from tokenmill.corpus.store.parts import Batch
from tokenmill.corpus.store.settings import Settings
from tokenmill.corpus.store.step import Version, VersionKey, run_docs_step
from tokenmill.corpus.store.versions import Store

STEP = "load"
# v2: limits (record and file size, binary content), cut zstd files detected, Parquet row groups
# read one by one: rows that v1 kept, lost or failed on are rejected rows with a reason now.
CODE_VERSION = "load-v2"

FORMAT_BY_EXTENSION = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".html": "html",
    ".htm": "html",
    ".warc": "warc",
    ".wet": "warc",
    ".parquet": "parquet",
}
COMPRESSION_BY_EXTENSION = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
SPLITTABLE = {"jsonl", "text"}


class LoadParams(Settings):
    paths: list[str] = Field(
        default_factory=lambda: [pydocs.PYTHON_DOCS_URL],
        min_length=1,
        description="files, folders (walked), globs or fsspec URLs; 'python-docs://' is the demo: "
        "the docs of the installed Python and its packages",
    )
    format: Literal["auto", "jsonl", "text", "html", "warc", "parquet"] = Field(
        default="auto", description="input format; 'auto' goes by file extension"
    )
    text_field: str = Field(default="text", description="JSONL field or Parquet column holding the text")
    source_field: str | None = Field(
        default=None, description="JSONL field or Parquet column holding the URL (default: the file path)"
    )
    id_field: str | None = Field(
        default="id",
        description="JSONL field or Parquet column holding the record's own doc id (a non-empty string or "
        "an int); generated when absent, invalid or repeated within a file chunk; null or '' always generates",
    )
    text_per_line: bool = Field(default=False, description="plain text: one doc per non-blank line, not per file")
    chunk_mb: float = Field(
        default=32, gt=0, le=4096, description="byte range per task for uncompressed JSONL and text lines"
    )
    python_docs_max_mb: float = Field(default=20, gt=0, description="size cap of the python-docs:// demo text")
    max_record_mb: float = Field(
        default=64,
        gt=0,
        description="longest record (a JSONL or text line, a whole text or HTML file, a Parquet text, a WARC "
        "record) in MB; a longer one is load:record_too_large, kept as its first KB, and a worker holds a "
        "few copies of a record while decoding it",
    )
    max_file_gb: float = Field(
        default=64,
        gt=0,
        description="most decoded data read from one file in GB (decompressed; for Parquet as its footer "
        "declares): a decompression bomb stops there with a load:file_too_large row, and the records "
        "wholly before the limit are kept, as those before a cut are",
    )
    max_control_frac: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="largest fraction of a record's UTF-8 bytes that may be control characters (NUL and "
        "other C0 controls but tab, newlines, form feed and ESC; DEL); above it the record is load:binary. "
        "A few stray ones are the clean step's to strip",
    )

    def limits(self) -> Limits:
        """The limits in bytes, as the readers take them."""
        return Limits(
            max_record_bytes=int(self.max_record_mb * 2**20),
            max_file_bytes=int(self.max_file_gb * 2**30),
            max_control_frac=self.max_control_frac,
        )


def _format_of(path: str, forced: str) -> tuple[str | None, str | None]:
    name = path.rsplit("/", 1)[-1].lower()
    stem, ext = os.path.splitext(name)
    compression = COMPRESSION_BY_EXTENSION.get(ext)
    if compression:
        ext = os.path.splitext(stem)[1]
    fmt = forced if forced != "auto" else FORMAT_BY_EXTENSION.get(ext)
    return fmt, compression


def expand_paths(paths: list[str], forced_format: str) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """(url, info) of every input file, and files in walked folders that no reader handles.

    A missing path, an empty glob or an explicit file of unknown format is an `InputError`.
    """
    found: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for path in paths:
        fs, root = fsspec.core.url_to_fs(path)
        if fs.isdir(root):
            candidates = fs.find(root, detail=True)
        elif any(ch in root for ch in "*?["):
            candidates = fs.glob(root, detail=True)
            if not candidates:
                raise InputError(f"load.paths: '{path}' matches no file")
        elif fs.exists(root):
            candidates = {root: fs.info(root)}
            fmt, _ = _format_of(root, forced_format)
            if fmt is None:
                raise InputError(f"load.paths: cannot tell the format of '{path}'; set load.format")
        else:
            raise InputError(f"load.paths: '{path}' does not exist")
        for name, info in sorted(candidates.items()):
            if info.get("type") == "directory":
                continue
            if _format_of(name, forced_format)[0] is None:
                skipped.append(fs.unstrip_protocol(name))
                continue
            found[_url(fs, name)] = info
    if not found:
        raise InputError(f"load.paths: no readable file in {paths}")
    return sorted(found.items()), skipped


def _url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    from fsspec.implementations.local import LocalFileSystem

    return os.path.abspath(path) if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)


def _mtime(info: dict[str, Any]) -> float:
    value = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or 0
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if isinstance(value, (int, float)) else 0.0


def plan_chunks(files: list[tuple[str, dict[str, Any]]], params: LoadParams) -> list[Chunk]:
    """Byte-range chunks of uncompressed JSONL/line-text files, whole files for everything else.

    Ranges stop at `load.max_file_gb`: the chunk that reaches it reports the file as too large.
    """
    options = {
        "text_field": params.text_field,
        "source_field": params.source_field,
        "id_field": params.id_field,
        "per_line": params.text_per_line,
        "limits": params.limits(),
    }
    chunk_bytes = max(1, int(params.chunk_mb * 2**20))
    chunks = []
    for url, info in files:
        fmt, compression = _format_of(url, params.format)
        size = int(info.get("size") or 0)
        splittable = compression is None and (fmt == "jsonl" or (fmt == "text" and params.text_per_line))
        if splittable and size > chunk_bytes:
            for start in range(0, min(size, options["limits"].max_file_bytes), chunk_bytes):
                chunks.append(Chunk(url, fmt, None, start, min(start + chunk_bytes, size), _mtime(info), options))
        else:
            chunks.append(Chunk(url, fmt, compression, 0, None, _mtime(info), options))
    return chunks


def files_fingerprint(files: list[tuple[str, dict[str, Any]]]) -> str:
    digest = hashlib.sha256()
    for url, info in files:
        digest.update(f"{url}\0{info.get('size')}\0{_mtime(info)}\n".encode())
    return digest.hexdigest()


def plan_python_docs(params: LoadParams) -> tuple[list[Chunk], str]:
    shares, fingerprint = pydocs.plan(int(params.python_docs_max_mb * 2**20))
    chunks = [
        Chunk(pydocs.PYTHON_DOCS_URL, "python-docs", None, i, None, 0.0, {"files": group, "budget": budget})
        for i, (group, budget) in enumerate(shares)
    ]
    chunks.append(Chunk(pydocs.PYTHON_DOCS_URL, "python-docs-topics", None, len(shares), None, 0.0, {}))
    return chunks, fingerprint


def read_python_docs(chunk: Chunk) -> Iterator[Batch]:
    first = chunk.options["files"][0]
    rows = RowBuffer(datetime.fromtimestamp(first.mtime, tz=timezone.utc))
    for module, text, error in pydocs.iter_module_docs(chunk.options["files"], chunk.options["budget"]):
        source = f"{pydocs.PYTHON_DOCS_URL}{module.module}"
        fetched = datetime.fromtimestamp(module.mtime, tz=timezone.utc)
        meta = {"module": module.module, "file": module.path}
        if text is None:
            rows.reject(readers.REASON_UNDECODABLE, doc_id(source), "", source, {**meta, "error": error})
        elif not text:
            rows.reject(readers.REASON_EMPTY, doc_id(source), "", source, {**meta, "error": "no docstrings"})
        else:
            rows.keep(doc_id(source), text, source, orjson.dumps(meta).decode(), fetched)
        if rows.full():
            yield rows.flush()
    yield rows.flush()


def read_python_topics(chunk: Chunk) -> Iterator[Batch]:
    import sys
    from pydoc_data import topics as topics_module

    rows = RowBuffer(datetime.fromtimestamp(os.stat(topics_module.__file__).st_mtime, tz=timezone.utc))
    for name, text in pydocs.topics().items():
        source = f"{pydocs.PYTHON_DOCS_URL}topics/{name}"
        meta = orjson.dumps({"topic": name, "python": sys.version.split()[0]}).decode()
        rows.keep(doc_id(source), text, source, meta)
    yield rows.flush()


READERS = {
    "jsonl": readers.read_jsonl,
    "text": readers.read_text,
    "html": readers.read_html,
    "parquet": containers.read_parquet,
    "warc": containers.read_warc,
    "python-docs": read_python_docs,
    "python-docs-topics": read_python_topics,
}


def read(chunk: Chunk) -> Iterator[Batch]:
    """The partition function: one chunk of one input into batches."""
    return READERS[chunk.fmt](chunk)


def plan(params: LoadParams) -> tuple[list[Chunk], str, list[str]]:
    """All chunks, the inputs' fingerprint, and skipped files; raises before any work on a bad path."""
    chunks: list[Chunk] = []
    digests: list[str] = []
    file_paths = [p for p in params.paths if p != pydocs.PYTHON_DOCS_URL]
    skipped: list[str] = []
    if file_paths:
        files, skipped = expand_paths(file_paths, params.format)
        check_text_column(files, params)
        chunks.extend(plan_chunks(files, params))
        digests.append(files_fingerprint(files))
    if pydocs.PYTHON_DOCS_URL in params.paths:
        doc_chunks, digest = plan_python_docs(params)
        chunks.extend(doc_chunks)
        digests.append(digest)
    return chunks, hashlib.sha256("\n".join(digests).encode()).hexdigest(), skipped


def check_text_column(files: list[tuple[str, dict[str, Any]]], params: LoadParams) -> None:
    """Fail on a `load.text_field` that the first Parquet input lacks: the other files are checked as
    they are read, a file without the column being a rejected row then."""
    parquet = next((url for url, _ in files if _format_of(url, params.format)[0] == "parquet"), None)
    if parquet is not None:
        containers.check_text_column(parquet, params.text_field)


def check_paths(params: LoadParams) -> None:
    """Fail on a missing path, an empty glob or a missing Parquet text column before any work starts."""
    file_paths = [p for p in params.paths if p != pydocs.PYTHON_DOCS_URL]
    if file_paths:
        files, _ = expand_paths(file_paths, params.format)
        check_text_column(files, params)


def key_of(params: LoadParams, fingerprint: str) -> VersionKey:
    """A load version is named by its settings and the fingerprint of what they point at."""
    return VersionKey.of(STEP, CODE_VERSION, params, fingerprint=fingerprint)


def version_key(store: Store, params: LoadParams) -> VersionKey:
    """The key of a load of these inputs as they are now (`store` unused, see `flows.steps`)."""
    return key_of(params, plan(params)[1])


def run_load(store: Store, params: LoadParams, client: Any, *, force: bool = False) -> Version:
    """Commit a docs version of the configured inputs (or find it cached)."""
    chunks, fingerprint, skipped = plan(params)
    extra = {"input_chunks": len(chunks), "skipped_files": len(skipped), "skipped_examples": skipped[:20]}
    key = key_of(params, fingerprint)
    return run_docs_step(store, client, key, chunks, read, force=force, extra_stats=extra)
