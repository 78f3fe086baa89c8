"""robots.txt rules per host (RFC 9309), from the status and body of one fetch.

Rules are matched by protego (Scrapy's parser): the stdlib's `RobotFileParser` treats `*` and
`$` as literal characters and applies the first matching rule rather than the longest, so it
allows `/a.pdf` under `Disallow: /*.pdf$` and refuses `/shop/public` under `Disallow: /shop`
followed by `Allow: /shop/public`.
"""

from __future__ import annotations

from dataclasses import dataclass

from protego import Protego


@dataclass
class Robots:
    """What one host's robots.txt allows for our user agent, and its Crawl-delay in seconds."""

    rules: Protego | None
    allow_all: bool
    user_agent: str

    def allows(self, url: str) -> bool:
        if self.rules is None:
            return self.allow_all
        return self.rules.can_fetch(url, self.user_agent)

    def crawl_delay(self) -> float:
        if self.rules is None:
            return 0.0
        return self.rules.crawl_delay(self.user_agent) or 0.0


def parse_robots(status: int | None, body: bytes, user_agent: str) -> Robots:
    """RFC 9309 §2.3.1: 5xx or unreachable means crawl nothing; 4xx, or a redirect chain too long
    to follow (§2.3.1.2: the file is then unavailable), means no rules (crawl all)."""
    if status is None or status >= 500:
        return Robots(None, allow_all=False, user_agent=user_agent)
    if not 200 <= status < 300:
        return Robots(None, allow_all=True, user_agent=user_agent)
    return Robots(Protego.parse(body.decode("utf-8", "replace")), allow_all=True, user_agent=user_agent)
