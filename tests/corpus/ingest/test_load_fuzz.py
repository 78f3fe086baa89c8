"""Property tests of the load readers: random, cut, damaged and bomb-like files of every format.

Readers are called directly (as a Dask task calls them, through `load.read`) so that each
example costs milliseconds; one end-to-end run through `run_load` checks the same files commit.
"""

import gzip
import io
import itertools
import json
import uuid
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenmill.corpus.ingest import containers, readers, streams
from tokenmill.corpus.ingest.load import LoadParams, plan_chunks, read, run_load

FORMATS = {"jsonl": ".jsonl", "text": ".txt", "text_lines": ".txt", "html": ".html", "parquet": ".parquet",
           "warc": ".warc"}
COMPRESSIONS = {None: "", "gzip": ".gz", "zstd": ".zst"}
REASONS = {
    value for module in (readers, containers, streams) for name, value in vars(module).items()
    if name.startswith("REASON_")
}
LIMITS = {"max_record_mb": 4096 / 2**20, "max_file_gb": 64 * 1024 / 2**30}
MAX_RECORD_BYTES = 4096


def records_of(fmt, texts):
    """The file's bytes, and the records in it: what the readers must account for, each once."""
    if fmt == "jsonl":
        return "".join(json.dumps({"text": t}) + "\n" for t in texts).encode(), len(texts)
    if fmt == "text_lines":
        data = "\n".join(texts).encode()
        return data, sum(1 for line in data.split(b"\n") if line.strip())
    if fmt == "text":
        return "".join(texts).encode(), 1
    if fmt == "html":
        return ("<html><body>" + "".join(f"<p>{t}</p>" for t in texts) + "</body></html>").encode(), 1
    if fmt == "parquet":
        out = io.BytesIO()
        pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), out, row_group_size=3)
        return out.getvalue(), len(texts)
    return b"".join(warc_record(i, t.encode()) for i, t in enumerate(texts)), len(texts)


def warc_record(i, body):
    head = (f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: https://example.com/{i}\r\n"
            f"WARC-Record-ID: <urn:uuid:{uuid.UUID(int=i)}>\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body + b"\r\n\r\n"


def compress(data, compression, frames):
    """The compressed bytes and the offsets where a frame (a gzip member) ends."""
    if compression == "gzip":
        data = gzip.compress(data)
        return data, {len(data)}
    if compression == "zstd":
        step = max(1, len(data) // frames)
        pieces = [data[i:i + step] for i in range(0, len(data), step)] or [b""]
        compressed = [zstandard.ZstdCompressor(write_checksum=True).compress(piece) for piece in pieces]
        return b"".join(compressed), set(itertools.accumulate(map(len, compressed)))
    return data, set()


class Case(NamedTuple):
    fmt: str
    compression: str | None
    damage: str
    data: bytes
    count: int | None  # records in the intact file
    originals: list[str]  # their texts
    frame_ends: set[int]


texts = st.lists(st.text(st.characters(codec="utf-8"), max_size=60), max_size=12)
line_texts = st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=60), max_size=12)


@st.composite
def input_files(draw):
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    compression = None if fmt == "parquet" else draw(st.sampled_from([None, "gzip", "zstd"]))
    damage = draw(st.sampled_from(["none", "cut", "flip", "noise", "bomb"]))
    originals = draw(line_texts if fmt == "text_lines" else texts)
    if damage == "bomb":
        filler = draw(st.sampled_from([b"\0", b"a", b"\n", b'{"text": "x"}\n']))
        raw, count = filler * (200_000 // len(filler)), None
    else:
        raw, count = records_of(fmt, originals)
    data, frame_ends = compress(raw, compression, draw(st.integers(1, 3)))
    if damage == "cut" and len(data) > 1:
        data = data[:draw(st.integers(1, len(data) - 1))]
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    elif damage == "noise":
        data = draw(st.binary(max_size=400))
    return Case(fmt, compression, damage, data, count, originals, frame_ends)


def read_file(path, fmt):
    params = LoadParams(paths=[str(path)], text_per_line=fmt == "text_lines", **LIMITS)
    chunks = plan_chunks([(str(path), {"size": path.stat().st_size, "mtime": 0})], params)
    batches = [batch for chunk in chunks for batch in read(chunk)]
    kept = pa.concat_tables([b.kept for b in batches])
    rejected = pa.concat_tables([b.rejected for b in batches])
    return kept.to_pydict(), rejected.to_pydict()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=input_files())
def test_readers_account_for_every_record_of_any_file(tmp_path_factory, case):
    path = tmp_path_factory.mktemp("fuzz") / f"input{FORMATS[case.fmt]}{COMPRESSIONS[case.compression]}"
    path.write_bytes(case.data)
    kept, rejected = read_file(path, case.fmt)  # nothing escapes: a reader error would fail the example here
    assert set(rejected["reason"]) <= REASONS
    assert all(len(text.encode("utf-8", "surrogatepass")) <= MAX_RECORD_BYTES for text in kept["text"])
    assert all(len(text) <= 4 * MAX_RECORD_BYTES for text in rejected["text"]), "a rejected row is bounded too"
    rows = len(kept["id"]) + len(rejected["id"])
    if case.damage == "none":
        assert rows == case.count, "each record of an intact file is one row, kept or rejected"
    if case.damage in ("none", "cut") and case.fmt in ("jsonl", "parquet", "warc"):
        assert set(kept["text"]) <= set(case.originals), "only whole records are kept, never a cut one"
    if case.damage == "cut" and case.compression:
        assert rows <= case.count + 1
        stops = [r for r in rejected["reason"] if r in (streams.REASON_TRUNCATED, streams.REASON_BAD_COMPRESSION)]
        at_frame_end = len(case.data) in case.frame_ends
        assert len(stops) == (0 if at_frame_end else 1), "a cut compressed file says so, once"


def hostile_files(folder):
    """One damaged file of each format; the first three are the issue's."""
    lines = [json.dumps({"text": f"line {i} " + "z" * (i % 97)}).encode() + b"\n" for i in range(500)]
    (folder / "bomb.jsonl.zst").write_bytes(zstandard.ZstdCompressor(level=19).compress(b"\0" * 2**22))
    cut = b"".join(zstandard.ZstdCompressor().compress(b"".join(lines[i:i + 50])) for i in range(0, 500, 50))
    (folder / "cut.jsonl.zst").write_bytes(cut[: len(cut) * 3 // 10])
    (folder / "bad.parquet").write_bytes(b"PAR1" + b"\xff" * 300 + b"PAR1")
    (folder / "nul.txt").write_bytes(b"\0" * 1000)
    cut_gz = gzip.compress(b"".join(warc_record(i, b"page %d" % i * 50) for i in range(100)))
    (folder / "cut.warc.gz").write_bytes(cut_gz[: len(cut_gz) // 2])
    (folder / "page.html.gz").write_bytes(gzip.compress(b"<html><body><p>" + b"\x01" * 500 + b"</p></body></html>"))
    (folder / "good.jsonl").write_bytes(b"".join(lines[:50]))


def test_hostile_files_end_to_end_commit_with_every_row_accounted_for(store, client, tmp_path):
    hostile_files(tmp_path)
    expected = {name: read_file(tmp_path / name, "jsonl" if "jsonl" in name else "text")
                for name in ("bomb.jsonl.zst", "cut.jsonl.zst", "good.jsonl")}
    before = set(client.scheduler_info()["workers"])
    version = run_load(store, LoadParams(paths=[str(tmp_path)], **LIMITS), client)
    assert not version.cached and set(client.scheduler_info()["workers"]) == before
    stats = store.read_json(version.id, "stats.json")
    assert stats["docs_in"] == stats["docs_out"] + stats["docs_rejected"]
    assert set(stats["rejected"]) == {"load:file_too_large", "load:truncated", "load:bad_parquet", "load:binary"}
    kept = store.read_docs(version.id).compute()
    for name, (kept_direct, _) in expected.items():
        assert (kept.source == str(tmp_path / name)).sum() == len(kept_direct["id"]), name
