"""The crawl's frontier: a FIFO crawler's order and cut, whatever order the pages finish in."""

from __future__ import annotations

import random
from collections import deque

from tokenmill.corpus.crawl.frontier import Frontier
from tokenmill.corpus.crawl.urls import Scope

SCOPE = Scope.build(["in.org"], include=[], exclude=[])


def random_site(rng: random.Random, pages: int) -> dict[str, list[str]]:
    """Each page's links in page order: pages of the site (some repeated) and a few outside it."""
    urls = [f"http://in.org/{n}" for n in range(pages)]
    return {url: [rng.choice(urls) if rng.random() < 0.9 else f"http://out.org/{rng.randrange(9)}"
                  for _ in range(rng.randint(0, 6))] for url in urls}


def one_at_a_time(site: dict[str, list[str]], seeds: list[str], max_pages: int, max_depth: int):
    """What a crawler fetching one page at a time from a FIFO queue takes and rejects."""
    taken, rejected, seen, queue = [], {}, set(), deque()

    def meet(url: str, depth: int) -> None:
        if url in seen:
            return
        seen.add(url)
        if depth and not SCOPE.allows(url):
            rejected[url] = (depth, "crawl:out_of_scope")
        elif depth > max_depth:
            rejected[url] = (depth, "crawl:depth")
        elif len(taken) >= max_pages:
            rejected[url] = (depth, "crawl:max_pages")
        else:
            taken.append((url, depth))
            queue.append((url, depth))

    for seed in sorted(set(seeds)):
        meet(seed, 0)
    while queue:
        url, depth = queue.popleft()
        for link in site.get(url, []):
            meet(link, depth + 1)
    return taken, rejected


def test_pages_finishing_in_any_order_take_and_cut_as_one_fifo_crawler() -> None:
    rng = random.Random(5)
    for _ in range(300):
        site = random_site(rng, rng.randint(1, 40))
        seeds = rng.sample(sorted(site), rng.randint(1, min(3, len(site))))
        max_pages, max_depth = rng.randint(1, 45), rng.randint(0, 5)
        rejected: dict[str, tuple[int, str]] = {}
        frontier = Frontier(seeds, SCOPE, max_pages, max_depth, lambda u, d, r: rejected.setdefault(u, (d, r)))
        taken, pending = [], []
        while True:
            new = frontier.taken()
            taken += new
            pending += [url for url, _ in new]
            if not pending:
                break
            url = pending.pop(rng.randrange(len(pending)))
            frontier.finish(url, site[url])
        assert frontier.done
        assert (taken, rejected) == one_at_a_time(site, seeds, max_pages, max_depth)


def test_a_slow_page_holds_back_only_the_links_found_after_it() -> None:
    site = {"http://in.org/": ["http://in.org/a", "http://in.org/b"],
            "http://in.org/a": ["http://in.org/a1"], "http://in.org/b": ["http://in.org/b1"]}
    frontier = Frontier(["http://in.org/"], SCOPE, 10, 5, lambda *rejected: None)
    frontier.taken()
    frontier.finish("http://in.org/", site["http://in.org/"])
    assert frontier.taken() == [("http://in.org/a", 1), ("http://in.org/b", 1)]
    frontier.finish("http://in.org/b", site["http://in.org/b"])
    assert frontier.taken() == [] and not frontier.done
    frontier.finish("http://in.org/a", site["http://in.org/a"])
    assert frontier.taken() == [("http://in.org/a1", 2), ("http://in.org/b1", 2)]
