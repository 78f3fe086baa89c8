"""Fetched pages to text and links on the Dask workers, in batches sized by the load.

One Dask task per page cost the crawl's driver more than the extraction itself: each task and
its body pass through the scheduler (in the driver's process on a LocalCluster) and each result
was awaited by a thread of its own; measured on 2 cores, a task cost the driver 3.7 ms against
1 ms per page in batches of 32. Here pages queue until MAX_BATCH_PAGES are waiting, the oldest
has waited LINGER_S, or nothing is being fetched (`hurry`), and go as one task while fewer batches
than worker threads plus one are out. Pages queued and in flight are bounded: while MAX_QUEUED_PAGES
are, no request starts (`ready`), so a fast site cannot fill the driver's memory with bodies while
the workers catch up.
A body goes to the worker as its place in the journal's bodies file, which workers on the crawler's
host (a LocalCluster) read from the disk, checked against its SHA-256: that saved the crawler and
the scheduler copying 54 KB a page. The first worker that cannot read it (another host) turns the
crawl to sending the bodies themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tokenmill.corpus.crawl.page import BodiesUnreadable, JournalBody, extract_batch
from tokenmill.corpus.crawl.progress import Activity

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_BATCH_PAGES = 32
MIN_BATCH_PAGES = 8
MAX_QUEUED_PAGES = 256
LINGER_S = 0.05


@dataclass
class Extraction:
    """A page to extract (`body` of `url` as `final_url` sent it) and, once done, what came out:
    text, normalized links and the worker's seconds; `timed_out` if the page ran past its time."""

    url: str
    body: bytes
    content_type: str | None
    final_url: str
    depth: int
    fetch: dict[str, Any]
    text: str = ""
    links: tuple[str, ...] | list[str] = ()
    seconds: float = 0.0
    timed_out: bool = False


Done = Callable[[list[Extraction]], None]


class Extractor:
    """Queues pages and hands each finished batch to `done` on the event loop, in one call; a batch
    that fails (not by timing out) goes to `failed`, so a crawl waiting on no page of its own stops."""

    def __init__(self, dask: Any, slots: int, strip_params: tuple[str, ...], timeout_s: float, done: Done,
                 bodies: Path | None = None, failed: Callable[[BaseException], None] | None = None):
        self.dask, self.slots, self.strip_params, self.timeout_s, self.done = dask, slots, strip_params, timeout_s, done
        self.failed = failed
        self.bodies = str(bodies) if bodies else None
        self.by_reference = bodies is not None
        self.queued: deque[Extraction] = deque()
        self.alone: deque[Extraction] = deque()
        self.in_flight = 0
        self.pages = 0
        self.room = asyncio.Event()
        self.room.set()
        self.idle = asyncio.Event()
        self.idle.set()
        self.activity = Activity()
        self.running: set[asyncio.Task] = set()
        self.error: BaseException | None = None
        self.queued_since = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.draining = False

    async def ready(self) -> None:
        """Return when fewer than MAX_QUEUED_PAGES are queued or in flight: the fetcher asks before
        each request, so at most that many plus the requests in flight hold a body."""
        await self.room.wait()
        self._raise()

    def put(self, page: Extraction) -> None:
        """Queue a page."""
        self._count(1)
        self.idle.clear()
        self.draining = False
        if not self.queued:
            self.queued_since = asyncio.get_running_loop().time()
        self.queued.append(page)
        if len(self.queued) >= MAX_BATCH_PAGES or self._workers_idle():
            self._launch()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_at(self.queued_since + LINGER_S, self._launch)

    def hurry(self) -> None:
        """Nothing is being fetched: send what is queued now, spread over the worker threads, rather
        than linger for pages that are not coming (until the next page is queued)."""
        self.draining = True
        self._launch()

    async def drain(self) -> None:
        """Send what is queued without lingering and wait until every page is handed to `done`."""
        self.draining = True
        try:
            self._launch()
            await self.idle.wait()
        finally:
            self.draining = False
        self._raise()

    def _count(self, pages: int) -> None:
        self.pages += pages
        if self.pages >= MAX_QUEUED_PAGES:
            self.room.clear()
        else:
            self.room.set()

    def _raise(self) -> None:
        """A batch that failed (not timed out) fails the crawl, from the task that waits on it."""
        if self.error is not None:
            raise self.error

    def _workers_idle(self) -> bool:
        """Whether a worker thread has no batch while MIN_BATCH_PAGES wait (the crawl's start): a small
        batch then, rather than the worker idle until a full one is fetched."""
        return self.in_flight < self.slots - 1 and len(self.queued) >= MIN_BATCH_PAGES

    def _ripe(self) -> bool:
        """Whether the queued pages should go now rather than wait for more."""
        waited = asyncio.get_running_loop().time() - self.queued_since
        return len(self.queued) >= MAX_BATCH_PAGES or self.draining or waited >= LINGER_S or self._workers_idle()

    def _batch_pages(self) -> int:
        """Pages a batch takes: MAX_BATCH_PAGES, or with nothing being fetched the rest spread over the
        worker threads, so that the crawl does not wait on one worker extracting a full batch alone."""
        if not self.draining:
            return MAX_BATCH_PAGES
        return min(MAX_BATCH_PAGES, -(-len(self.queued) // max(1, self.slots - 1)))

    def _launch(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        pages = self._batch_pages()
        while self.in_flight < self.slots and (self.alone or (self.queued and self._ripe())):
            if self.alone:
                batch = [self.alone.popleft()]
            else:
                batch = [self.queued.popleft() for _ in range(min(pages, len(self.queued)))]
                self.queued_since = asyncio.get_running_loop().time()
            self.in_flight += 1
            self.activity.start()
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        if self.queued and self.in_flight < self.slots:
            self.timer = asyncio.get_running_loop().call_at(self.queued_since + LINGER_S, self._launch)

    async def _run(self, batch: list[Extraction]) -> None:
        try:
            await self._extract(batch)
        except Exception as error:  # re-raised by `put` and `drain`, in the crawl's own tasks
            self.error = error
            self.idle.set()
            self.room.set()
            if self.failed is not None:
                self.failed(error)

    async def _extract(self, batch: list[Extraction]) -> None:
        """One batch on a worker; a batch that runs past its time is retried a page at a time, so
        only the page that hangs is lost to the timeout."""
        try:
            results = await self._results(batch)
        finally:
            self.in_flight -= 1
            self.activity.stop()
        if results is None and len(batch) > 1:
            self.alone.extend(batch)
        else:
            for page, result in zip(batch, results or [("", [], self.timeout_s)]):
                page.text, page.links, page.seconds = result
                page.timed_out = results is None
                page.body = b""
            self.done(batch)
            self._count(-len(batch))
        self._launch()
        if not (self.in_flight or self.queued or self.alone):
            self.idle.set()

    async def _results(self, batch: list[Extraction]) -> list[tuple[str, list[str], float]] | None:
        """The batch's (text, links, seconds), or None if it ran past its time. Bodies go as their
        place in the journal's bodies file until a worker cannot read it; then as bytes."""
        bodies = self.bodies if self.by_reference else None
        pages = [(journal_body(p) if bodies else p.body, p.content_type, p.final_url) for p in batch]
        future = self.dask.submit(extract_batch, pages, self.strip_params, bodies, pure=False)
        try:
            return await future.result(timeout=self.timeout_s * len(batch))
        except TimeoutError:
            await future.cancel()
            return None
        except BodiesUnreadable as error:
            if not bodies:
                raise
            if self.by_reference:
                log.info("crawl: a Dask worker cannot read the journal (%s); bodies go to the workers", error)
            self.by_reference = False
            return await self._results(batch)


@asynccontextmanager
async def crawl_client(client: Any) -> AsyncIterator[tuple[Any, int]]:
    """A client of `client`'s scheduler on the crawl's own event loop, and how many batches to keep
    out. Waiting on the shared client's futures took a thread per batch, and each result crossed
    from the client's event loop thread to the crawl's (bench_crawl, 3,000 pages: 244 pages/s that
    way against 263 this way). One batch more than the workers have threads: a worker that finishes
    finds the next one waiting at the scheduler rather than idling while its result goes to the crawler."""
    from distributed import Client

    async with Client(client.scheduler.address, asynchronous=True, security=client.security,
                      set_as_default=False, name="tokenmill-crawl") as dask:
        threads = await dask.nthreads()
        # Results from workers on this host come straight to the crawler rather than through the scheduler.
        dask.direct_to_workers = bool(threads) and all(urlsplit(a).hostname in LOOPBACK for a in threads)
        yield dask, max(1, sum(threads.values())) + 1


def journal_body(page: Extraction) -> bytes | JournalBody:
    """Where the page's body lies in the journal's bodies file (an empty body goes as itself)."""
    if not page.fetch.get("body"):
        return page.body
    offset, length = page.fetch["body"]
    return offset, length, page.fetch["sha256"]
