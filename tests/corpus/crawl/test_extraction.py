"""Bodies reach the workers as their place in the journal where the workers can read it, else as bytes."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from tokenmill.corpus.crawl.extraction import Extraction, Extractor, crawl_client
from tokenmill.corpus.crawl.page import BodiesUnreadable, extract_batch, journal_bodies

PAGES = [f"<html><body><p>Page {n} has text enough to keep.</p><a href='/p/{n + 1}.html'>next</a></body></html>"
         .encode() for n in range(5)]


def write_bodies(path: Path) -> list[dict[str, Any]]:
    """The bodies file as the journal writes it, and each page's fetch record."""
    records, offset = [], 0
    with open(path, "wb") as bodies:
        for body in PAGES:
            bodies.write(body)
            records.append({"body": [offset, len(body)], "sha256": hashlib.sha256(body).hexdigest()})
            offset += len(body)
    return records


def test_a_body_that_is_not_where_the_journal_says_is_unreadable(tmp_path: Path) -> None:
    records = write_bodies(tmp_path / "bodies.bin")
    place = (*records[1]["body"], records[1]["sha256"])
    assert journal_bodies(str(tmp_path / "bodies.bin"), [(place, "text/html", "u")]) == [(PAGES[1], "text/html", "u")]
    with pytest.raises(BodiesUnreadable):
        journal_bodies(str(tmp_path / "missing.bin"), [(place, "text/html", "u")])
    (tmp_path / "other.bin").write_bytes(b"x" * 1000)  # another host's file at the same path
    with pytest.raises(BodiesUnreadable):
        journal_bodies(str(tmp_path / "other.bin"), [(place, "text/html", "u")])


@pytest.mark.parametrize("readable", [True, False])
def test_workers_read_the_bodies_from_the_journal_or_get_them(client: Any, tmp_path: Path, readable: bool) -> None:
    records = write_bodies(tmp_path / "bodies.bin")
    done: list[Extraction] = []

    async def extract() -> Extractor:
        bodies = tmp_path / ("bodies.bin" if readable else "not-on-the-workers-host.bin")
        async with crawl_client(client) as (dask, slots):
            extractor = Extractor(dask, slots, (), 30, done.extend, bodies)
            for n, (body, record) in enumerate(zip(PAGES, records)):
                extractor.put(Extraction(f"http://h/p/{n}.html", body, "text/html", f"http://h/p/{n}.html", 1, record))
            await extractor.drain()
        return extractor

    extractor = asyncio.run(extract())
    assert extractor.by_reference is readable
    expected = extract_batch([(body, "text/html", f"http://h/p/{n}.html") for n, body in enumerate(PAGES)], ())
    assert sorted((p.url, p.text, list(p.links)) for p in done) == [
        (f"http://h/p/{n}.html", text, links) for n, (text, links, _) in enumerate(expected)]


def test_idle_workers_get_small_batches_and_a_levels_rest_is_spread_over_them(client: Any, tmp_path: Path) -> None:
    """Ten pages: the first eight go at once to idle workers (a level's start), the last two at the
    level's end, one per worker thread, rather than waiting to fill a batch of 32."""
    records = write_bodies(tmp_path / "bodies.bin") * 2
    batches: list[int] = []

    async def extract() -> None:
        async with crawl_client(client) as (dask, slots):
            extractor = Extractor(dask, slots, (), 30, lambda batch: batches.append(len(batch)), tmp_path / "bodies.bin")
            for n, record in enumerate(records):
                extractor.put(Extraction(f"http://h/p/{n}.html", PAGES[n % 5], "text/html", "http://h/", 1, record))
            assert extractor.in_flight == 1
            await extractor.drain()

    asyncio.run(extract())
    assert sorted(batches) == [1, 1, 8]
