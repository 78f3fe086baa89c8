"""The crawl itself: every discovered URL ending in one `Outcome`, no host waiting on a level.

Which URLs are fetched is decided in discovery order (`frontier`): the same on every run, so a
resumed crawl and an uninterrupted one decide identically. Each host's URLs are fetched by up to
`per_host_concurrency` tasks of its own as the frontier takes them (so a slow host holds only its
own), bodies go to the Dask workers in batches (`extraction`), and each finished batch is
journaled and decided at once. Per page the event loop does only constant work.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenmill.corpus.crawl.extraction import Extraction, Extractor, crawl_client
from tokenmill.corpus.crawl.fetch import Fetcher
from tokenmill.corpus.crawl.frontier import Frontier
from tokenmill.corpus.crawl.journal import Journal, JournalMirror, JournalState, read_body, read_record
from tokenmill.corpus.crawl.params import CrawlParams
from tokenmill.corpus.crawl.progress import CrawlProgress, Stopwatch
from tokenmill.corpus.crawl.urls import Scope, host_of, normalize_url

log = logging.getLogger(__name__)

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
        self.progress = CrawlProgress(params.max_pages)
        self.frontier = Frontier(seeds, scope, params.max_pages, params.max_depth, self._reject)
        self.queues: dict[str, deque[tuple[str, int]]] = {}
        self.host_tasks: Counter = Counter()
        self.tasks: set[asyncio.Task] = set()
        self.settled = asyncio.Event()
        self.error: BaseException | None = None
        self.depth = -1

    def _decide(self, outcome: Outcome) -> None:
        self.sink(outcome)
        fetched = outcome.fetch is not None and outcome.fetch["status"] is not None
        self.progress.decided(fetched, outcome.reason is None)

    def _reject(self, url: str, depth: int, reason: str) -> None:
        self._decide(Outcome(url, depth, reason))

    async def run(self) -> CrawlTimes:
        start = time.perf_counter()
        strip = tuple(self.params.strip_query_params)
        async with crawl_client(self.client) as (dask, slots):
            extractor = Extractor(dask, slots, strip, self.params.extract_timeout_s, self._extracted,
                                  self.journal.bodies_path, self._failed)
            fetcher = Fetcher(self.params, self.scope, self.state.robots, self.journal.robots, random.Random(0),
                              extractor.ready)
            try:
                async with fetcher:
                    await self._crawl(fetcher, extractor)
            finally:
                self.progress.close()
        stages = {"fetch": fetcher.activity.seconds, "extract": extractor.activity.seconds, **self.clock.seconds}
        return CrawlTimes(time.perf_counter() - start, fetcher.busy_s, {k: round(v, 3) for k, v in stages.items()})

    async def _crawl(self, fetcher: Fetcher, extractor: Extractor) -> None:
        """Fetch what the frontier takes until every page taken is decided (or a task fails)."""
        self.fetcher, self.extractor = fetcher, extractor
        self._dispatch()
        try:
            await self.settled.wait()
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.error is not None:
            raise self.error
        await extractor.drain()

    def _dispatch(self) -> None:
        """Queue the URLs the frontier took by host, and start a host's tasks up to its concurrency.
        With nothing left to fetch, the pages waiting for extraction go at once; with nothing left
        at all, the crawl is settled."""
        for url, depth in self.frontier.taken():
            if depth > self.depth:
                self.depth = depth
                log.info("crawl: depth %d reached after %d pages taken", depth, self.frontier.pages)
            host = host_of(url)
            self.queues.setdefault(host, deque()).append((url, depth))
            if self.host_tasks[host] < self.params.per_host_concurrency:
                self.host_tasks[host] += 1
                task = asyncio.get_running_loop().create_task(self._host(host))
                self.tasks.add(task)
                task.add_done_callback(self._host_done)
        if not self.tasks:
            if self.frontier.done:
                self.settled.set()
            else:
                self.extractor.hurry()

    async def _host(self, host: str) -> None:
        queue = self.queues[host]
        try:
            while queue:
                await self._visit(*queue.popleft())
        finally:
            self.host_tasks[host] -= 1
            if not self.host_tasks[host]:
                del self.host_tasks[host], self.queues[host]

    def _host_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failed(task.exception())
        elif not self.tasks:
            self._dispatch()

    def _failed(self, error: BaseException) -> None:
        """A host's task or an extraction batch failed: the crawl stops and raises it."""
        self.error = self.error or error
        self.settled.set()

    def _finished(self, url: str, links: list[str]) -> None:
        """Page `url` is decided: the frontier meets its links (in turn) and what it takes is queued."""
        self.frontier.finish(url, links)
        self._dispatch()

    async def _visit(self, url: str, depth: int) -> None:
        """Fetch (unless the journal has it), then decide at once or queue the body for extraction
        (unless the journal has that too)."""
        record = self.state.fetched.get(url)
        body = None
        if record is None:
            fetched = await self.fetcher.fetch(url)
            with self.clock("journal"):
                record, body = self.journal.fetched(fetched, depth), fetched.body
        if record["reason"]:
            with self.clock("bookkeeping"):
                self._decide(Outcome(url, depth, record["reason"], fetch=record))
                self._finished(url, [])
            return
        offset = self.state.extracted.get(url)
        if offset is None:
            body = read_body(self.journal.folder, record) if body is None else body
            content_type = record["headers"].get("content-type")
            self.extractor.put(Extraction(url, body, content_type, record["final_url"], depth, record))
            return
        page = read_record(self.journal.folder, offset)
        strip = self.params.strip_query_params
        with self.clock("bookkeeping"):
            self._decide(Outcome(url, depth, page["reason"], page["text"], record, page["seconds"]))
            # Journals of earlier versions hold the links as written in the page: normalize again.
            links = (normalize_url(link, strip) for link in page["links"])
            self._finished(url, list(dict.fromkeys(link for link in links if link)))

    def _extracted(self, pages: list[Extraction]) -> None:
        """A finished batch: journal its pages in one write, then decide them and meet their links."""
        reasons = [REASON_EXTRACT_TIMEOUT if p.timed_out else None if p.text else REASON_EMPTY for p in pages]
        with self.clock("journal"), self.journal.batch():
            for page, reason in zip(pages, reasons):
                self.journal.extracted(page.url, page.text, page.links, reason, page.seconds)
        with self.clock("bookkeeping"):
            for page, reason in zip(pages, reasons):
                self._decide(Outcome(page.url, page.depth, reason, page.text, page.fetch, page.seconds))
                self.frontier.finish(page.url, list(page.links))
            self._dispatch()


def crawl(params: CrawlParams, seeds: list[str], scope: Scope, client: Any, folder: Path,
          state: JournalState, sink: Sink, mirror: JournalMirror | None = None) -> CrawlTimes:
    """Run the crawl to the end, journaling into `folder` (and `mirror`) and handing each outcome
    to `sink`; where its time went."""
    journal = Journal(folder, mirror)
    try:
        return asyncio.run(Crawler(params, seeds, scope, client, journal, state, sink).run())
    finally:
        journal.close()
