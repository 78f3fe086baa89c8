"""The crawl's network boundary: connections go only to addresses that were checked.

A check that resolves a host and then lets httpx resolve it again to connect can be passed by
DNS rebinding (public when checked, 127.0.0.1 when connected). Here each new connection
resolves the host once, checks every address and connects to a checked one, so every request
(for robots.txt and each redirect hop too) goes where its own lookup was checked. TLS SNI and
the Host header still carry the hostname: httpcore takes both from the URL, not the socket.

The pool's bookkeeping is made linear here too (`CheckedPool`, `CheckedStream`): httpcore's own
took 40% of the crawl's client CPU at 16 connections, more than sending the requests (issue 21).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx
from httpcore._utils import is_socket_readable

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


class CheckedStream(httpcore.AsyncNetworkStream):
    """A connection's stream, whose "is_readable" (asked of every idle connection each time the pool
    assigns requests, to spot a server's disconnect) is one poll(2) on the socket kept at connect,
    where httpcore's anyio stream looked the socket up through anyio's typed attributes each time."""

    def __init__(self, inner: httpcore.AsyncNetworkStream):
        self.inner = inner
        self.socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return CheckedStream(await self.inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return is_socket_readable(self.socket)
        return self.inner.get_extra_info(info)


class CheckedPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with `_assign_requests_to_connections` linear in the connections. Upstream
    asks every connection whether it expired (for an idle one, a poll(2) to see if the server
    closed it) each time a request starts or ends, builds a list of every connection for each
    connection, and lists all connections twice per queued request: 35 polls per request at 16
    connections. Here a connection is asked only when a request would use it; one found expired
    is closed then, instead of on the next pass, and the next connection is tried."""

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing = []
        for connection in list(self._connections):
            if connection.is_closed():
                self._connections.remove(connection)
            elif connection.is_idle() and len(self._connections) > self._max_keepalive_connections:
                self._connections.remove(connection)
                closing.append(connection)
        for pool_request in [request for request in self._requests if request.is_queued()]:
            connection = self._reusable(pool_request.request.url.origin, closing)
            if connection is None and len(self._connections) >= self._max_connections:
                idle = next((c for c in self._connections if c.is_idle()), None)
                if idle is None:
                    continue
                self._connections.remove(idle)
                closing.append(idle)
            if connection is None:
                connection = self.create_connection(pool_request.request.url.origin)
                self._connections.append(connection)
            pool_request.assign_to_connection(connection)
        return closing

    def _reusable(self, origin: httpcore.Origin, closing: list[httpcore.AsyncConnectionInterface]
                  ) -> httpcore.AsyncConnectionInterface | None:
        """The first open connection to `origin` free for a request; expired ones met on the way are closed."""
        for connection in list(self._connections):
            if not (connection.can_handle_request(origin) and connection.is_available()):
                continue
            if not connection.has_expired():
                return connection
            self._connections.remove(connection)
            closing.append(connection)
        return None


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address check between lookup and connect."""

    def __init__(self, allow_private: bool, inner: httpcore.AsyncNetworkBackend | None = None):
        self.allow_private = allow_private
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """The lookup and the connect share `timeout`, as in httpcore's own backend."""
        try:
            with anyio.fail_after(timeout):
                addresses = await checked_addresses(host, port, self.allow_private)
                for address in addresses[:-1]:
                    try:
                        return CheckedStream(
                            await self.inner.connect_tcp(address, port, None, local_address, socket_options))
                    except httpcore.ConnectError:
                        continue
                return CheckedStream(
                    await self.inner.connect_tcp(addresses[-1], port, None, local_address, socket_options))
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} took over {timeout}s") from None

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def checked_transport(limits: httpx.Limits, allow_private: bool) -> httpx.AsyncHTTPTransport:
    """httpx's transport with its connection pool rebuilt on `CheckedBackend`.

    httpx takes no network backend (encode/httpx#3749 is open), so the pool it built is swapped
    for the same pool on ours; if httpx stops keeping it in `_pool`, this fails rather than
    silently leaving httpx's own unchecked connections in place.
    """
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError("httpx.AsyncHTTPTransport has no _pool to replace; the crawl cannot check addresses")
    transport._pool = CheckedPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=CheckedBackend(allow_private),
    )
    return transport
