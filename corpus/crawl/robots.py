"""robots.txt rules per host (RFC 9309), from the status and body of one fetch."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.robotparser import RobotFileParser


@dataclass
class Robots:
    """What one host's robots.txt allows for our user agent, and its Crawl-delay in seconds."""

    parser: RobotFileParser | None
    allow_all: bool
    user_agent: str

    def allows(self, url: str) -> bool:
        if self.parser is None:
            return self.allow_all
        return self.parser.can_fetch(self.user_agent, url)

    def crawl_delay(self) -> float:
        if self.parser is None:
            return 0.0
        delay = self.parser.crawl_delay(self.user_agent)
        return float(delay) if delay is not None else 0.0


def parse_robots(status: int | None, body: bytes, user_agent: str) -> Robots:
    """RFC 9309 §2.3.1: 4xx means no rules (crawl all); 5xx or unreachable means crawl nothing."""
    if status is None or status >= 500:
        return Robots(None, allow_all=False, user_agent=user_agent)
    if status >= 400:
        return Robots(None, allow_all=True, user_agent=user_agent)
    parser = RobotFileParser()
    parser.parse(body.decode("utf-8", "replace").splitlines())
    return Robots(parser, allow_all=True, user_agent=user_agent)
