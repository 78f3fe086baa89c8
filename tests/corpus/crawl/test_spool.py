"""The crawl's spool: rows leave memory in bounded segments and come back merged in URL order."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tokenmill.corpus.crawl import spool
from tokenmill.corpus.crawl.spool import Spool, merged


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
    assert [r["source"] for r in back] == sorted(urls)
    assert back[0] == row(sorted(urls)[0])
    assert [t.column_names for t in merged(segments, ["source", "text"])][0] == ["source", "text"]


def test_a_new_spool_starts_empty(tmp_path: Path):
    first = Spool(tmp_path)
    first.add(row("http://a/1"))
    first.close()
    assert Spool(tmp_path).close() == []
