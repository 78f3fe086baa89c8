"""How the crawl is going while it runs, and where its time went once it ends.

Progress (pages fetched, kept and rejected per second) goes to a bar on a terminal and to
`progress_listener`, the hook through which the Prefect flow shows it as a progress artifact.
Stage times are wall seconds: for the event loop's own work (journal, bookkeeping) the time spent
in it; for the work it waits on (requests, extraction batches) the time with any in flight.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tokenmill.corpus.store.progress import progress_listener

log = logging.getLogger(__name__)

REPORT_EVERY_S = 1.0


class Stopwatch:
    """Seconds per stage of synchronous work: `with clock("journal"): ...`."""

    def __init__(self) -> None:
        self.seconds: Counter = Counter()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


class Activity:
    """Wall seconds with at least one piece of some work in flight (`start()` ... `stop()` each)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.seconds = 0.0
        self.since = 0.0

    def start(self) -> None:
        if not self.in_flight:
            self.since = time.perf_counter()
        self.in_flight += 1

    def stop(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self.seconds += time.perf_counter() - self.since


class CrawlProgress:
    """Counts decided URLs and reports the rates of the last second or so, at most once a second."""

    def __init__(self, max_pages: int):
        self.max_pages = max_pages
        self.counts: Counter = Counter()
        self.reported: Counter = Counter()
        self.started = self.last = time.perf_counter()
        self.listener = progress_listener.get()
        self.bar = Progress(
            TextColumn("[bold]crawl"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rates]}"),
            TimeElapsedColumn(), console=Console(stderr=True), disable=not sys.stderr.isatty(),
        )
        self.task = self.bar.add_task("crawl", total=max_pages, rates="")
        self.bar.start()

    def decided(self, fetched: bool, kept: bool) -> None:
        self.counts["fetched"] += fetched
        self.counts["kept"] += kept
        self.counts["rejected"] += not kept
        now = time.perf_counter()
        if now - self.last >= REPORT_EVERY_S:
            self.report(now - self.last, self.counts - self.reported)
            self.last, self.reported = now, self.counts.copy()

    def report(self, seconds: float, counts: Counter) -> None:
        rates = ", ".join(f"{counts[k] / seconds:.0f} {k}/s" for k in ("fetched", "kept", "rejected"))
        self.bar.update(self.task, completed=self.counts["fetched"], rates=rates)
        log.info("crawl: %d pages fetched; %s", self.counts["fetched"], rates)
        if self.listener is not None:
            self.listener(f"crawl: {rates}", self.counts["fetched"], self.max_pages)

    def close(self) -> None:
        """The whole crawl's rates, as the last report."""
        self.report(max(time.perf_counter() - self.started, 1e-9), self.counts)
        self.bar.stop()
