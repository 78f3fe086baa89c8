"""Which discovered URLs the crawl fetches, decided in discovery order without waiting for a level.

The order is a single FIFO crawler's: the seeds sorted, then each fetched page's new links in
the order the page holds them, page after page in the order they were taken. A URL's depth is
its shortest distance from a seed (FIFO order is breadth-first), and `max_pages` takes the first
pages of that order. Pages finish in any order (hosts, requests and extraction batches run at
their own pace); a finished page's links are held until every page taken before it has finished,
then taken in turn. So the order, and the cut, are the same on every run, a resumed one too,
while a host that is slow holds back only the links found after its pages, not a whole level.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tokenmill.corpus.crawl.fetch import REASON_SCOPE
from tokenmill.corpus.crawl.urls import Scope

REASON_DEPTH = "crawl:depth"
REASON_MAX_PAGES = "crawl:max_pages"

Reject = Callable[[str, int, str], None]


class Frontier:
    """Takes URLs to fetch as pages finish; every URL it meets is taken or handed to `reject`
    (url, depth, reason) once. `taken()` gives the URLs taken since it was last asked."""

    def __init__(self, seeds: Iterable[str], scope: Scope, max_pages: int, max_depth: int, reject: Reject):
        self.scope, self.max_pages, self.max_depth, self.reject = scope, max_pages, max_depth, reject
        self.seen: set[str] = set()
        self.pages = 0
        self.ranks: dict[str, tuple[int, int]] = {}
        self.finished: dict[int, tuple[int, list[str]]] = {}
        self.expanded = 0
        self.new: list[tuple[str, int]] = []
        for seed in sorted(set(seeds)):
            self._meet(seed, 0)

    @property
    def done(self) -> bool:
        """Whether every page taken has finished and its links were met."""
        return self.expanded == self.pages

    def taken(self) -> list[tuple[str, int]]:
        """(url, depth) of the pages taken since the last call, in order."""
        new, self.new = self.new, []
        return new

    def finish(self, url: str, links: list[str]) -> None:
        """Page `url` (taken) is done, with these normalized links in page order (none if it was not fetched)."""
        rank, depth = self.ranks.pop(url)
        self.finished[rank] = depth, links
        while self.expanded in self.finished:
            depth, links = self.finished.pop(self.expanded)
            for link in links:
                self._meet(link, depth + 1)
            self.expanded += 1

    def _meet(self, url: str, depth: int) -> None:
        if url in self.seen:
            return
        self.seen.add(url)
        if depth and not self.scope.allows(url):
            self.reject(url, depth, REASON_SCOPE)
        elif depth > self.max_depth:
            self.reject(url, depth, REASON_DEPTH)
        elif self.pages >= self.max_pages:
            self.reject(url, depth, REASON_MAX_PAGES)
        else:
            self.ranks[url] = self.pages, depth
            self.pages += 1
            self.new.append((url, depth))
