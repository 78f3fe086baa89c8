"""URL rules of the crawl step: normalization, scope, and refusing private addresses.

Pure helpers, no IO except `resolve`, so the rules are tested on known values and applied the
same way to seeds, links and redirect targets.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

SCHEMES = {"http", "https"}
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(url: str, strip_params: Iterable[str] = (), base: str | None = None) -> str | None:
    """One spelling per page: scheme and host lower-cased, default port and fragment dropped,
    tracking parameters removed, empty path as '/'. None for non-http(s) or malformed URLs."""
    try:
        parts = urlsplit(urljoin(base, url.strip()) if base else url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in SCHEMES or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    stripped = set(strip_params)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in stripped])
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


# The netloc of a URL as `normalize_url` writes it, up to its path's `/`: urlsplit's answer for such
# a URL, found without urlsplit (2 against 8 us: a crawl asks for each URL it discovers).
NORMALIZED_NETLOC = re.compile(r"https?://([^/?#\s]+)/")


def host_of(url: str) -> str:
    """The host:port key that politeness and robots.txt are per."""
    match = NORMALIZED_NETLOC.match(url)
    return match.group(1) if match else urlsplit(url).netloc


@lru_cache(maxsize=1 << 12)
def host_within(netloc: str, domains: tuple[str, ...]) -> bool:
    """Whether the host of `netloc` is one of `domains` or a subdomain of one (hosts are few: cached)."""
    host = (urlsplit(f"//{netloc}").hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in domains)


@dataclass(frozen=True)
class Scope:
    """Which URLs the crawl may visit: allowed domains (with their subdomains) and regex patterns."""

    domains: tuple[str, ...]
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def build(cls, domains: Sequence[str], include: Sequence[str], exclude: Sequence[str]) -> Scope:
        return cls(
            tuple(d.lower().strip(".") for d in domains),
            tuple(re.compile(p) for p in include),
            tuple(re.compile(p) for p in exclude),
        )

    def allows(self, url: str) -> bool:
        if not host_within(host_of(url), self.domains):
            return False
        if self.include and not any(p.search(url) for p in self.include):
            return False
        return not any(p.search(url) for p in self.exclude)


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (6to4, Teredo server and client, NAT64), which
    a relay or translator may deliver to: `2002:7f00:1::` reaches 127.0.0.1."""
    embedded = [ip.sixtofour] if ip.sixtofour else []
    embedded += ip.teredo or ()
    if ip in NAT64:
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return embedded


def is_public_address(address: str) -> bool:
    """True only if the address and every IPv4 address embedded in it are globally reachable
    unicast addresses.

    Asks `is_global` (IANA's special-purpose registries) rather than listing bad kinds, which
    missed shared space 100.64.0.0/10 (cloud metadata at 100.100.100.200) and 6to4 loopback;
    multicast is excluded on its own, as `is_global` counts it. An IPv4-mapped address is judged
    by its IPv4 address alone, which is where a socket to it goes.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    embedded = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else []
    return all(a.is_global and not a.is_multicast for a in (ip, *embedded))


def ip_literal(host: str) -> str | None:
    """The address `host` spells, if it is an IP literal (with or without brackets), which needs no lookup."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def resolve(host: str) -> list[str]:
    """Every address `host` resolves to; an IP literal resolves to itself without a lookup."""
    literal = ip_literal(host)
    if literal:
        return [literal]
    infos = socket.getaddrinfo(host.strip("[]"), None, proto=socket.IPPROTO_TCP)
    return sorted({info[4][0] for info in infos})


def private_addresses(addresses: Iterable[str]) -> list[str]:
    """The addresses a crawl must refuse (a host is refused if any of its addresses is private)."""
    return [a for a in addresses if not is_public_address(a)]
