"""The crawl step's settings: one validated model, read by the step, the fetcher and the loop."""

from __future__ import annotations

from pydantic import Field

from tokenmill.corpus.store.settings import Settings


class CrawlParams(Settings):
    seeds: list[str] = Field(default_factory=list, description="start URLs (http or https)")
    seeds_file: str | None = Field(default=None, description="a file with one start URL per line, added to seeds")
    allowed_domains: list[str] = Field(
        default_factory=list, description="domains (and their subdomains) the crawl may visit; empty: the seeds' hosts"
    )
    include_patterns: list[str] = Field(default_factory=list, description="regexes; if any, a URL must match one")
    exclude_patterns: list[str] = Field(default_factory=list, description="regexes; a URL matching one is skipped")
    strip_query_params: list[str] = Field(
        default_factory=lambda: ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "fbclid"],
        description="query parameters removed when normalizing URLs, so tracking variants are one page",
    )
    user_agent: str = Field(default="tokenmill-crawler/1.0", description="User-Agent header and robots.txt agent")
    max_pages: int = Field(
        default=1000, ge=1, description="URLs fetched at most: the first in discovery order; the rest are rejected"
    )
    max_depth: int = Field(default=3, ge=0, description="links followed from a seed at most")
    max_page_bytes: int = Field(default=2_000_000, ge=1024, description="body bytes read at most (decompressed)")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="seconds to open a connection")
    read_timeout_s: float = Field(default=20.0, gt=0, description="seconds to wait for each read of a response")
    max_retries: int = Field(default=3, ge=0, le=10, description="retries on 429, 5xx and timeouts")
    backoff_base_s: float = Field(default=1.0, ge=0, description="first retry waits about this (doubling, jittered)")
    backoff_max_s: float = Field(default=30.0, ge=0, description="longest backoff between retries")
    max_retry_after_s: float = Field(
        default=120.0, ge=0, description="a Retry-After longer than this gives up instead of waiting"
    )
    max_redirects: int = Field(default=5, ge=0, le=20, description="redirect hops followed per URL")
    concurrency: int = Field(default=16, ge=1, le=512, description="requests in flight at once, all hosts")
    per_host_concurrency: int = Field(default=2, ge=1, le=64, description="requests in flight at once per host")
    delay_s: float = Field(
        default=1.0, ge=0, description="least seconds between request starts to one host (robots Crawl-delay wins if larger)"
    )
    content_types: list[str] = Field(
        default_factory=lambda: ["text/html", "text/plain"], description="media types whose bodies are read"
    )
    allow_private: bool = Field(
        default=False, description="allow private, loopback and link-local addresses (tests, intranets)"
    )
    extract_timeout_s: float = Field(default=30.0, gt=0, description="seconds allowed to extract one page")
    warc: bool = Field(default=False, description="also keep the raw responses as WARC beside the version")
    journal_sync_s: float = Field(
        default=10.0, ge=0, description="object stores: seconds between copies of the crawl's journal to the store, "
        "from which a crawl killed on one host resumes on another (at most this much is fetched again)")


# How the crawl runs, not what it fetches: recorded, but left out of the version id and the journal's key.
RUN_CONTROL = ("journal_sync_s",)
