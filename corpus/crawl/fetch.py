"""The crawl step's fetcher: polite, bounded HTTP on asyncio (`http1`).

Per host: robots.txt read once, a concurrency cap and a minimum gap between request starts
(the larger of `delay_s` and robots' Crawl-delay). Every hop of a redirect is checked against
the same scope and robots rules as a link, and every connection's address where it is opened
(`connect`). Bodies are streamed and cut at `max_page_bytes` (after decompression, so a gzip
bomb is bounded too). The content type is checked from the headers before any body byte is read.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from tokenmill.corpus.crawl.connect import REASON_DNS, REASON_PRIVATE, Refused
from tokenmill.corpus.crawl.http1 import HttpClient
from tokenmill.corpus.crawl.page import media_type
from tokenmill.corpus.crawl.params import CrawlParams
from tokenmill.corpus.crawl.progress import Activity
from tokenmill.corpus.crawl.robots import Robots, parse_robots
from tokenmill.corpus.crawl.urls import Scope, host_of, normalize_url

REDIRECTS = {301, 302, 303, 307, 308}
# RFC 9309 §2.3.1.2: follow at least five consecutive redirects for robots.txt, even to other hosts.
ROBOTS_REDIRECTS = 5
REASON_ROBOTS = "crawl:robots"
REASON_SCOPE = "crawl:out_of_scope"
REASON_TIMEOUT = "crawl:timeout"
REASON_CONNECT = "crawl:connect_error"
REASON_TYPE = "crawl:content_type"
REASON_TOO_LARGE = "crawl:too_large"
REASON_LOOP = "crawl:redirect_loop"
REASON_REDIRECTS = "crawl:redirect_limit"


def status_reason(status: int) -> str:
    return f"crawl:status_{status}"


def retryable(status: int | None, reason: str | None) -> bool:
    """429, 5xx and timeouts may pass on a later try; anything else will not."""
    if reason in (REASON_TIMEOUT, REASON_CONNECT):
        return True
    return status is not None and (status == 429 or status >= 500)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header (delay-seconds or HTTP-date) as seconds from `now`."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def retry_delay(attempt: int, retry_after: float | None, base_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds before retry `attempt` (0-based): the server's Retry-After if it gave one, else
    exponential backoff with equal jitter, so retries of many pages do not arrive together."""
    if retry_after is not None:
        return retry_after
    ceiling = min(max_s, base_s * 2**attempt)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class Fetched:
    """The outcome of one URL: a body to extract (reason None) or why it was refused."""

    url: str
    final_url: str
    status: int | None
    reason: str | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    requests: int = 0
    fetched_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass
class _Response:
    status: int | None
    headers: dict[str, str]
    body: bytes
    reason: str | None


def redirect_location(response: _Response) -> str | None:
    """Where a redirect points; None for any other response."""
    return response.headers.get("location") if response.status in REDIRECTS else None


Ready = Callable[[], Awaitable[None]]


class HostGate:
    """Per-host politeness: at most `concurrency` requests at once, starts `delay_s` apart."""

    def __init__(self, concurrency: int, delay_s: float):
        self.slots = asyncio.Semaphore(concurrency)
        self.order = asyncio.Lock()
        self.delay_s = delay_s
        self.next_start = 0.0

    @asynccontextmanager
    async def slot(self, shared: asyncio.Semaphore, ready: Ready) -> AsyncIterator[None]:
        """A turn to send one request: this host's, then `ready` (room for its body), then one of `shared`."""
        async with self.slots:
            async with self.order:
                wait = self.next_start - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await ready()
                await shared.acquire()
                self.next_start = time.monotonic() + self.delay_s
            try:
                yield
            finally:
                shared.release()


RobotsRecorder = Callable[[str, int | None, bytes], None]


class Fetcher:
    """Fetches URLs under the crawl's rules; one instance per crawl, used inside `async with`."""

    def __init__(self, params: CrawlParams, scope: Scope, robots_seen: dict[str, tuple[int | None, bytes]],
                 on_robots: RobotsRecorder, rng: random.Random, ready: Ready):
        self.params, self.scope, self.rng, self.on_robots, self.ready = params, scope, rng, on_robots, ready
        self.robots_seen = robots_seen
        self.robots: dict[str, Robots] = {}
        self.refused: dict[str, str] = {}
        self.gates: dict[str, HostGate] = {}
        self.host_locks: dict[str, asyncio.Lock] = {}
        self.shared = asyncio.Semaphore(params.concurrency)
        self.requests: dict[str, int] = {}
        self.retries = 0
        self.busy_s = 0.0
        self.activity = Activity()
        # No proxy from the environment: requests go only where the rules allow.
        self.http = HttpClient(params.user_agent, params.connect_timeout_s, params.read_timeout_s,
                               params.concurrency, params.allow_private)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def fetch(self, url: str) -> Fetched:
        """Follow `url` through at most `max_redirects` redirects, each hop checked like a link."""
        chain, current, requests = [url], url, 0
        for _ in range(self.params.max_redirects + 1):
            refusal = await self.refusal(current)
            if refusal:
                return Fetched(url, current, None, refusal, requests=requests)
            response, tries = await self._request(current)
            requests += tries
            location = redirect_location(response)
            if location:
                target = normalize_url(location, self.params.strip_query_params, base=current)
                if target is None:
                    return Fetched(url, current, response.status, REASON_SCOPE, response.headers, requests=requests)
                if target in chain:
                    return Fetched(url, target, response.status, REASON_LOOP, response.headers, requests=requests)
                chain.append(target)
                current = target
                continue
            return Fetched(url, current, response.status, response.reason, response.headers, response.body, requests)
        return Fetched(url, current, None, REASON_REDIRECTS, requests=requests)

    async def _timed(self, url: str, robots: bool) -> _Response:
        """One request; its seconds in flight (not queueing for politeness) add to `busy_s`."""
        start = time.perf_counter()
        self.activity.start()
        try:
            return await self._once(url, robots)
        finally:
            self.activity.stop()
            self.busy_s += time.perf_counter() - start

    async def refusal(self, url: str) -> str | None:
        """Why `url` may not be fetched: out of scope, robots.txt, or its host's address refused
        when robots.txt was fetched (a private address, or no address)."""
        if not self.scope.allows(url):
            return REASON_SCOPE
        host = host_of(url)
        async with self.host_locks.setdefault(host, asyncio.Lock()):
            if host not in self.robots and host not in self.refused:
                await self._load_robots(url)
            if host in self.refused:
                return self.refused[host]
        return None if self.robots[host].allows(url) else REASON_ROBOTS

    def gate(self, host: str) -> HostGate:
        if host not in self.gates:
            self.gates[host] = HostGate(self.params.per_host_concurrency, self.params.delay_s)
        return self.gates[host]

    async def _load_robots(self, url: str) -> None:
        """The host's robots.txt (from the journal if it has it) and its Crawl-delay; a host whose
        own address is refused gets no robots record, only the reason for all its URLs."""
        host = host_of(url)
        if host not in self.robots_seen:
            response, hops = await self._fetch_robots(f"{urlsplit(url).scheme}://{host}/robots.txt")
            if hops == 0 and response.reason in (REASON_PRIVATE, REASON_DNS):
                self.refused[host] = response.reason
                return
            self.robots_seen[host] = (response.status, response.body)
            self.on_robots(host, response.status, response.body)
        status, body = self.robots_seen[host]
        self.robots[host] = parse_robots(status, body, self.params.user_agent)
        gate = self.gate(host)
        gate.delay_s = max(gate.delay_s, self.robots[host].crawl_delay())

    async def _fetch_robots(self, url: str) -> tuple[_Response, int]:
        """robots.txt through up to ROBOTS_REDIRECTS redirects, to any host (each hop's address is
        checked as every connection's is); the last response and the redirects followed. A chain
        longer than that ends on its redirect, which `parse_robots` reads as no robots.txt."""
        response, _ = await self._request(url, robots=True)
        for hop in range(ROBOTS_REDIRECTS):
            location = redirect_location(response)
            target = normalize_url(location, base=url) if location else None
            if target is None:
                return response, hop
            url = target
            response, _ = await self._request(url, robots=True)
        return response, ROBOTS_REDIRECTS

    async def _request(self, url: str, robots: bool = False) -> tuple[_Response, int]:
        """One URL with retries on 429, 5xx and timeouts; (last response, requests made)."""
        host = host_of(url)
        tries = 0
        while True:
            async with self.gate(host).slot(self.shared, self.ready):
                self.requests[host] = self.requests.get(host, 0) + 1
                response = await self._timed(url, robots)
            tries += 1
            if tries > self.params.max_retries or not retryable(response.status, response.reason):
                return response, tries
            wait = retry_delay(
                tries - 1, retry_after_seconds(response.headers.get("retry-after"), time.time()),
                self.params.backoff_base_s, self.params.backoff_max_s, self.rng,
            )
            if wait > self.params.max_retry_after_s:
                return response, tries
            self.retries += 1
            await asyncio.sleep(wait)

    async def _once(self, url: str, robots: bool) -> _Response:
        """One GET; the body is read only when the head allows it, and only up to `max_page_bytes`
        (decoded): a declared length over it is not read at all."""
        limit = self.params.max_page_bytes
        try:
            response = await self.http.get(url, limit)
            try:
                status, headers = response.status, response.headers
                if status in REDIRECTS or not 200 <= status < 300:
                    reason = None if status in REDIRECTS else status_reason(status)
                    return _Response(status, headers, b"", reason)
                if not robots and media_type(headers.get("content-type")) not in self.params.content_types:
                    return _Response(status, headers, b"", REASON_TYPE)
                declared = headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    return _Response(status, headers, b"", REASON_TOO_LARGE)
                body = await response.body()
                return _Response(status, headers, body or b"", None if body is not None else REASON_TOO_LARGE)
            finally:
                response.release()
        except Refused as refused:
            return _Response(None, {}, b"", refused.reason)
        except TimeoutError:
            return _Response(None, {}, b"", REASON_TIMEOUT)
        except OSError:
            return _Response(None, {}, b"", REASON_CONNECT)
