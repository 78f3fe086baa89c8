"""The crawl itself: breadth-first, level by level, every discovered URL ending in one `Outcome`.

Levels are processed in sorted order and a level is finished before the next starts, so the
depth of a URL is its shortest distance from a seed and the URLs cut by `max_pages` are the
same on every run: a resumed crawl and an uninterrupted one decide identically. Within a
level, fetches run concurrently (bounded per host and globally by the fetcher) and each
page's extraction is a Dask task, awaited from a thread so the event loop only does IO.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tokenmill.corpus.crawl.fetch import REASON_SCOPE, Fetcher
from tokenmill.corpus.crawl.journal import Journal, JournalMirror, JournalState, read_body, read_record
from tokenmill.corpus.crawl.page import extract_page
from tokenmill.corpus.crawl.params import CrawlParams
from tokenmill.corpus.crawl.urls import Scope, normalize_url

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


def timed_extract(body: bytes, content_type: str | None, url: str) -> tuple[str, list[str], float]:
    """`extract_page` plus the seconds it took on the worker (the bench's extraction share)."""
    start = time.perf_counter()
    text, links = extract_page(body, content_type, url)
    return text, links, time.perf_counter() - start


Sink = Callable[[Outcome], None]


class Crawler:
    """One crawl over seeds; `run()` hands every discovered URL's outcome to `sink`, once."""

    def __init__(self, params: CrawlParams, seeds: list[str], scope: Scope, client: Any, journal: Journal,
                 state: JournalState, sink: Sink):
        self.params, self.seeds, self.scope, self.client = params, seeds, scope, client
        self.journal, self.state, self.sink = journal, state, sink
        self.decided = self.rejected = 0
        self.fetch_seconds = 0.0
        self.threads = ThreadPoolExecutor(max_workers=params.concurrency, thread_name_prefix="crawl-extract")

    def _decide(self, outcome: Outcome) -> None:
        self.decided += 1
        self.rejected += outcome.reason is not None
        self.sink(outcome)

    async def run(self) -> None:
        fetcher = Fetcher(self.params, self.scope, self.state.robots, self.journal.robots, random.Random(0))
        try:
            async with fetcher:
                await self._levels(fetcher)
        finally:
            self.fetch_seconds = fetcher.busy_s
            self.threads.shutdown(wait=False, cancel_futures=True)

    async def _levels(self, fetcher: Fetcher) -> None:
        level, depth, budget = sorted(set(self.seeds)), 0, self.params.max_pages
        seen = set(level)
        while level:
            taken, over = level[:budget], level[budget:]
            budget -= len(taken)
            for url in over:
                self._decide(Outcome(url, depth, REASON_MAX_PAGES))
            log.info("crawl depth %d: %d to fetch, %d over max_pages", depth, len(taken), len(over))
            found = await asyncio.gather(*(self._visit(fetcher, url, depth) for url in taken))
            level = self._next_level(sorted({link for links in found for link in links}), depth + 1, seen)
            depth += 1
            log.info("crawl: %d URLs decided, %d rejected, next level %d", self.decided, self.rejected, len(level))

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

    async def _visit(self, fetcher: Fetcher, url: str, depth: int) -> list[str]:
        """Fetch (unless the journal has it), extract (likewise), record the outcome; return links."""
        record = self.state.fetched.get(url)
        body = None
        if record is None:
            fetched = await fetcher.fetch(url)
            record, body = self.journal.fetched(fetched, depth), fetched.body
        if record["reason"]:
            self._decide(Outcome(url, depth, record["reason"], fetch=record))
            return []
        offset = self.state.extracted.get(url)
        if offset is not None:
            page = read_record(self.journal.folder, offset)
        else:
            if body is None:
                body = read_body(self.journal.folder, record)
            page = await self._extract(url, body, record)
        self._decide(Outcome(url, depth, page["reason"], page["text"], record, page["seconds"]))
        strip = self.params.strip_query_params
        return [n for n in (normalize_url(link, strip) for link in page["links"]) if n]

    async def _extract(self, url: str, body: bytes, record: dict[str, Any]) -> dict[str, Any]:
        future = self.client.submit(
            timed_extract, body, record["headers"].get("content-type"), record["final_url"], pure=False
        )
        wait = partial(future.result, timeout=self.params.extract_timeout_s)
        try:
            text, links, seconds = await asyncio.get_running_loop().run_in_executor(self.threads, wait)
        except TimeoutError:
            future.cancel()
            return self.journal.extracted(url, "", [], REASON_EXTRACT_TIMEOUT, self.params.extract_timeout_s)
        return self.journal.extracted(url, text, links, None if text else REASON_EMPTY, seconds)


def crawl(params: CrawlParams, seeds: list[str], scope: Scope, client: Any, folder: Path,
          state: JournalState, sink: Sink, mirror: JournalMirror | None = None) -> float:
    """Run the crawl to the end, journaling into `folder` (and `mirror`) and handing each outcome
    to `sink`; the seconds requests were in flight."""
    journal = Journal(folder, mirror)
    try:
        crawler = Crawler(params, seeds, scope, client, journal, state, sink)
        asyncio.run(crawler.run())
        return crawler.fetch_seconds
    finally:
        journal.close()
