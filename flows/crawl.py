"""Prefect flow `crawl`: a thin wrapper over `tokenmill.corpus.crawl.step.run_crawl`.

Retried on failure: the crawl journal makes a rerun continue where the failed one stopped,
fetching no page twice.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tokenmill.flows.common import run_step


@flow(
    name="crawl",
    description="Crawl the web from seed URLs (robots.txt, politeness, limits) into a docs version.",
    retries=2,
    retry_delay_seconds=30,
)
def crawl(config_path: str | None = None, overrides: dict[str, Any] | None = None, force: bool = False) -> str:
    """Returns the version id (committed now, or found cached)."""
    return run_step("crawl", config_path, overrides, force, {})
