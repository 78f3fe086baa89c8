"""The crawl itself: breadth-first, level by level, every discovered URL ending in one `Outcome`.

Which URLs are fetched is decided level by level in sorted order, so the depth of a URL is its
shortest distance from a seed and the URLs cut by `max_pages` are the first ones past the budget
in (depth, URL) order, the same on every run: a resumed crawl and an uninterrupted one decide
identically. Within a level nothing waits on order: each host's URLs are fetched by up to
`per_host_concurrency` tasks of its own (so a slow host holds only its own), bodies go to the
Dask workers in batches (`extraction`), and each finished batch is journaled and decided at once.
Per page the event loop does only constant work; the level's links are merged once at its end.

Hosts wait for each other only there, at a level's end: which URLs of the next level fit in
`max_pages` is known only once all of its links are. A host let run ahead would either make the
cut depend on which pages came back first (a resumed crawl would then keep other pages than an
uninterrupted one) or fetch pages that the cut then drops, past `max_pages`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenmill.corpus.crawl.extraction import Extraction, Extractor, crawl_client
from tokenmill.corpus.crawl.fetch import REASON_SCOPE, Fetcher
from tokenmill.corpus.crawl.journal import Journal, JournalMirror, JournalState, read_body, read_record
from tokenmill.corpus.crawl.params import CrawlParams
from tokenmill.corpus.crawl.progress import CrawlProgress, Stopwatch
from tokenmill.corpus.crawl.urls import Scope, host_of, normalize_url

log = logging.getLogger(__name__)

REASON_DEPTH = "crawl:depth"
REASON_MAX_PAGES = "crawl:max_pages"
REASON_EMPTY = "crawl:extract_empty"
REASON_EXTRACT_TIMEOUT = "crawl:extract_timeout"


@dataclass
class Outcome:
    """How one discovered URL ended: kept text (reason None) or why not; `fetch` is its journal record."""

    url: str
    depth: int
    reason: str | None
    text: str = ""
    fetch: dict[str, Any] | None = None
    extract_seconds: float = 0.0


Sink = Callable[[Outcome], None]


@dataclass
class CrawlTimes:
    """Where the crawl's wall time went: `stages` as in `progress`, `fetch_seconds` summed per request."""

    wall_seconds: float
    fetch_seconds: float
    stages: dict[str, float]


class Crawler:
    """One crawl over seeds; `run()` hands every discovered URL's outcome to `sink`, once."""

    def __init__(self, params: CrawlParams, seeds: list[str], scope: Scope, client: Any, journal: Journal,
                 state: JournalState, sink: Sink):
        self.params, self.seeds, self.scope, self.client = params, seeds, scope, client
        self.journal, self.state, self.sink = journal, state, sink
        self.clock = Stopwatch()
        self.links: set[str] = set()
        self.progress = CrawlProgress(params.max_pages)

    def _decide(self, outcome: Outcome) -> None:
        self.sink(outcome)
        fetched = outcome.fetch is not None and outcome.fetch["status"] is not None
        self.progress.decided(fetched, outcome.reason is None)

    async def run(self) -> CrawlTimes:
        start = time.perf_counter()
        strip = tuple(self.params.strip_query_params)
        async with crawl_client(self.client) as (dask, slots):
            extractor = Extractor(dask, slots, strip, self.params.extract_timeout_s, self._extracted,
                                  self.journal.bodies_path)
            fetcher = Fetcher(self.params, self.scope, self.state.robots, self.journal.robots, random.Random(0),
                              extractor.ready)
            try:
                async with fetcher:
                    await self._levels(fetcher, extractor)
            finally:
                self.progress.close()
        stages = {"fetch": fetcher.activity.seconds, "extract": extractor.activity.seconds, **self.clock.seconds}
        return CrawlTimes(time.perf_counter() - start, fetcher.busy_s, {k: round(v, 3) for k, v in stages.items()})

    async def _levels(self, fetcher: Fetcher, extractor: Extractor) -> None:
        level, depth, budget = sorted(set(self.seeds)), 0, self.params.max_pages
        seen = set(level)
        while level:
            taken, over = level[:budget], level[budget:]
            budget -= len(taken)
            for url in over:
                self._decide(Outcome(url, depth, REASON_MAX_PAGES))
            log.info("crawl depth %d: %d to fetch, %d over max_pages", depth, len(taken), len(over))
            self.links = set()
            await self._fetch_level(fetcher, extractor, taken, depth)
            with self.clock("bookkeeping"):
                level = self._next_level(sorted(self.links), depth + 1, seen)
            depth += 1

    async def _fetch_level(self, fetcher: Fetcher, extractor: Extractor, urls: list[str], depth: int) -> None:
        """Visit every URL of a level, each host at its own pace, and wait until all are decided."""
        queues: dict[str, deque[str]] = {}
        for url in urls:
            queues.setdefault(host_of(url), deque()).append(url)

        async def host(queue: deque[str]) -> None:
            while queue:
                await self._visit(fetcher, extractor, queue.popleft(), depth)

        per_host = self.params.per_host_concurrency
        await asyncio.gather(*(host(q) for q in queues.values() for _ in range(min(per_host, len(q)))))
        await extractor.drain()

    def _next_level(self, links: list[str], depth: int, seen: set[str]) -> list[str]:
        """New in-scope links within max_depth; the others end here as rejected outcomes."""
        level = []
        for link in links:
            if link in seen:
                continue
            seen.add(link)
            if not self.scope.allows(link):
                self._decide(Outcome(link, depth, REASON_SCOPE))
            elif depth > self.params.max_depth:
                self._decide(Outcome(link, depth, REASON_DEPTH))
            else:
                level.append(link)
        return level

    async def _visit(self, fetcher: Fetcher, extractor: Extractor, url: str, depth: int) -> None:
        """Fetch (unless the journal has it), then decide at once or queue the body for extraction
        (unless the journal has that too)."""
        record = self.state.fetched.get(url)
        body = None
        if record is None:
            fetched = await fetcher.fetch(url)
            with self.clock("journal"):
                record, body = self.journal.fetched(fetched, depth), fetched.body
        if record["reason"]:
            with self.clock("bookkeeping"):
                self._decide(Outcome(url, depth, record["reason"], fetch=record))
            return
        offset = self.state.extracted.get(url)
        if offset is None:
            body = read_body(self.journal.folder, record) if body is None else body
            content_type = record["headers"].get("content-type")
            extractor.put(Extraction(url, body, content_type, record["final_url"], depth, record))
            return
        page = read_record(self.journal.folder, offset)
        strip = self.params.strip_query_params
        with self.clock("bookkeeping"):
            self._decide(Outcome(url, depth, page["reason"], page["text"], record, page["seconds"]))
            # Journals of earlier versions hold the links as written in the page: normalize again.
            self.links.update(n for n in (normalize_url(link, strip) for link in page["links"]) if n)

    def _extracted(self, pages: list[Extraction]) -> None:
        """A finished batch: journal its pages in one write, then decide them and keep their links."""
        reasons = [REASON_EXTRACT_TIMEOUT if p.timed_out else None if p.text else REASON_EMPTY for p in pages]
        with self.clock("journal"), self.journal.batch():
            for page, reason in zip(pages, reasons):
                self.journal.extracted(page.url, page.text, page.links, reason, page.seconds)
        with self.clock("bookkeeping"):
            for page, reason in zip(pages, reasons):
                self._decide(Outcome(page.url, page.depth, reason, page.text, page.fetch, page.seconds))
                self.links.update(page.links)


def crawl(params: CrawlParams, seeds: list[str], scope: Scope, client: Any, folder: Path,
          state: JournalState, sink: Sink, mirror: JournalMirror | None = None) -> CrawlTimes:
    """Run the crawl to the end, journaling into `folder` (and `mirror`) and handing each outcome
    to `sink`; where its time went."""
    journal = Journal(folder, mirror)
    try:
        return asyncio.run(Crawler(params, seeds, scope, client, journal, state, sink).run())
    finally:
        journal.close()
