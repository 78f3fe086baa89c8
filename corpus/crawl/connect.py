"""The crawl's network boundary: connections go only to addresses that were checked.

A check that resolves a host and then lets an HTTP client resolve it again to connect can be passed by
DNS rebinding (public when checked, 127.0.0.1 when connected). Here each new connection
resolves the host once, checks every address and connects to a checked one, so every request
(for robots.txt and each redirect hop too) goes where its own lookup was checked. TLS SNI and
the Host header still carry the hostname (`http1` sends it; `open_checked` gives it to TLS).
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from tokenmill.corpus.crawl.urls import ip_literal, private_addresses

REASON_PRIVATE = "crawl:private_address"
REASON_DNS = "crawl:dns_error"


class Refused(Exception):
    """A connection the crawl will not open; `reason` is the drop reason of the URL that needed it."""

    def __init__(self, reason: str, host: str):
        super().__init__(f"{reason}: {host}")
        self.reason = reason


async def lookup(host: str, port: int) -> list[str]:
    """Every address of `host`, in the resolver's order of preference, without repeats; an IP
    literal is itself, with no trip through the resolver's thread."""
    literal = ip_literal(host)
    if literal:
        return [literal]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


async def checked_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    """`host`'s addresses, or Refused if it does not resolve or any address is private (unless
    allowed): a host with one private address among public ones is refused as a whole."""
    try:
        addresses = await lookup(host, port)
    except OSError:
        raise Refused(REASON_DNS, host) from None
    if not allow_private and private_addresses(addresses):
        raise Refused(REASON_PRIVATE, host)
    return addresses


async def dial(address: str, port: int, protocol: asyncio.Protocol, ssl_context: ssl.SSLContext | None,
               server_hostname: str | None) -> None:
    """Open one TCP (and TLS) connection to `address` for `protocol`; the one place a socket is opened."""
    await asyncio.get_running_loop().create_connection(
        lambda: protocol, address, port, ssl=ssl_context, server_hostname=server_hostname)


async def open_checked(host: str, port: int, protocol: asyncio.Protocol, ssl_context: ssl.SSLContext | None,
                       allow_private: bool, timeout: float) -> None:
    """Connect `protocol` to `host` at an address its own lookup just checked, trying each in the
    resolver's order; the lookup and the connect share `timeout` (TimeoutError past it)."""
    async with asyncio.timeout(timeout):
        addresses = await checked_addresses(host, port, allow_private)
        for address in addresses[:-1]:
            try:
                return await dial(address, port, protocol, ssl_context, host if ssl_context else None)
            except OSError:
                continue
        await dial(addresses[-1], port, protocol, ssl_context, host if ssl_context else None)
