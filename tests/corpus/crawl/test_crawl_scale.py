"""The crawl's cost per page does not grow with the crawl (issue 21), on bench/bench_crawl.py's site."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from tokenmill.corpus.crawl.page import extract_batch
from tokenmill.corpus.crawl.step import CrawlParams, run_crawl
from tokenmill.corpus.store.progress import progress_listener
from tokenmill.corpus.store.step import STATS_FILE
from tokenmill.corpus.store.versions import Store

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_crawl.py"


def bench_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_crawl", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_per_page_is_flat_from_a_crawl_to_one_four_times_larger(client: Any, tmp_path: Path) -> None:
    """80 and 320 pages of a documentation-like site (smaller pages than the bench's, to be quick):
    the crawl's seconds per fetched page may not grow by half. Each size is crawled twice, in turn,
    and its faster crawl counts, so a burst of other work on the machine does not decide; the workers
    have extracted a page before, so the first crawl does not pay for their imports. The progress
    hook hears the rates while it runs."""
    client.run(extract_batch, [(b"<p>warm</p>", "text/html", "http://h/")], ())
    base, server = bench_module().start_site(site_pages=1_000, text_bytes=3_000)
    heard: list[tuple[str, int, int]] = []
    token = progress_listener.set(lambda description, done, total: heard.append((description, done, total)))
    per_page: dict[int, float] = {}
    try:
        for run, pages in enumerate((80, 320, 80, 320)):
            params = CrawlParams(seeds=[f"{base}/"], allow_private=True, delay_s=0, per_host_concurrency=16,
                                 max_pages=pages, max_depth=10, max_retries=0)
            store = Store(str(tmp_path / f"crawl-{run}"))
            version = run_crawl(store, params, client)
            stats = version.manifest.stats
            # each page's search link is refused by robots.txt but takes a page of the budget
            refused = store.read_json(version.id, STATS_FILE)["rejected"].get("crawl:robots", {}).get("docs", 0)
            assert stats["pages_fetched"] + refused == pages
            per_page[pages] = min(per_page.get(pages, 1e9), stats["crawl_seconds"] / stats["pages_fetched"])
    finally:
        progress_listener.reset(token)
        server.kill()
        server.wait()
    assert per_page[320] / per_page[80] < 1.5, per_page
    description, done, total = heard[-1]
    assert total == 320 and done == stats["pages_fetched"]
    assert "fetched/s" in description and "rejected/s" in description
