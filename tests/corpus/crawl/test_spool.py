"""The crawl's spool: rows leave memory in bounded segments and come back merged in URL order."""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tokenmill.corpus.crawl import spool
from tokenmill.corpus.crawl.spool import Spool, merged
from tokenmill.corpus.crawl.step import coalesced, fingerprint
from tokenmill.corpus.store.versions import canonical_json


def row(url: str) -> dict:
    return {"source": url, "id": url[-4:], "text": f"text of {url}",
            "fetched_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
            "meta": "{}", "reason": None, "status": 200, "sha256": None, "fetch": None}


def test_rows_come_back_sorted_and_whole_from_bounded_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(spool, "SEGMENT_ROWS", 7)
    monkeypatch.setattr(spool, "FAN_IN", 3)
    monkeypatch.setattr(spool, "READ_ROWS", 5)
    urls = [f"http://h{n % 13}/{n:04d}" for n in range(200)]
    random.Random(1).shuffle(urls)
    sink = Spool(tmp_path)
    for url in urls:
        sink.add(row(url))
    segments = sink.close()

    assert sink.peak_rows == 7
    assert len(segments) <= 3
    tables = list(merged(segments))
    assert {t.num_rows for t in tables[:-1]} == {5}
    back = [r for t in tables for r in t.to_pylist()]
    assert back == [row(url) for url in sorted(urls)]
    assert [t.column_names for t in merged(segments, ["source", "text"])][0] == ["source", "text"]


def test_a_new_spool_starts_empty(tmp_path: Path):
    first = Spool(tmp_path)
    first.add(row("http://a/1"))
    first.close()
    assert Spool(tmp_path).close() == []


def test_the_fingerprint_hashes_one_canonical_json_line_per_url(tmp_path: Path):
    """The version id of a crawl hashes this fingerprint: its bytes must stay those of `canonical_json`
    whatever the URLs and reasons hold (non-ASCII, quotes, control characters, nulls)."""
    urls = ["http://h/é", 'http://h/"q"', "http://h/\\", "http://h/\t\x01", "http://h/✓/\u2028"]
    decided = [(url, None if n % 2 else "crawl:max_pages", None if n == 3 else 200, None if n % 2 else "ab" * 32)
               for n, url in enumerate(urls)]
    sink = Spool(tmp_path)
    for url, reason, status, sha256 in decided:
        sink.add({**row(url), "reason": reason, "status": status, "sha256": sha256})
    sink.close()
    expected = hashlib.sha256(b"".join(canonical_json(list(r)) + b"\n" for r in sorted(decided))).hexdigest()
    assert fingerprint(sink.segments) == expected


def test_parts_are_written_in_row_groups_of_many_merge_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(spool, "READ_ROWS", 5)
    sink = Spool(tmp_path)
    for n in range(103):
        sink.add(row(f"http://h/{n:04d}"))
    tables = list(coalesced(merged(sink.close()), max_rows=40, max_bytes=1 << 30))
    assert [t.num_rows for t in tables] == [40, 40, 23]
    assert [r["source"] for t in tables for r in t.to_pylist()] == [f"http://h/{n:04d}" for n in range(103)]
    assert [t.num_rows for t in coalesced(merged(sink.segments), max_rows=10**6, max_bytes=1)] == [5] * 20 + [3]
