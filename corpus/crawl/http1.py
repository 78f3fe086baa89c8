"""The crawl's HTTP client: GET over HTTP/1.1 with keep-alive, on an asyncio Protocol.

httpx (with httpcore and h11) cost the crawl's event loop 2.2 ms of CPU per 54 KB page of the
bench site, as much as all the rest of the driver's work per page; this client 0.2 ms (issue 21).
It parses a response in the protocol's callbacks as the bytes arrive and wakes its caller once
for the head and once for the whole body. It does what the crawl needs and no more: GET, the
body framed by Content-Length, chunks or the connection's end, gzip and deflate (the only
encodings it asks for, as both decode in bounded steps: the body is cut at `limit` bytes after
decoding, so a compression bomb stops there), a read timeout per wait for bytes, and idle
connections kept per origin. Every connection is opened by `connect.open_checked`, so it goes
to an address its own lookup checked.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
import zlib
from urllib.parse import quote, urlsplit

from tokenmill.corpus.crawl.connect import open_checked

MAX_HEAD_BYTES = 64 * 1024
# httpx's default: an idle connection older than this is closed rather than reused.
KEEPALIVE_S = 5.0
HEAD_END = re.compile(rb"\r?\n\r?\n")
NO_BODY = {204, 304}
DEFAULT_PORTS = {"http": 80, "https": 443}
# New connections to one origin not yet answered. A connection the server has not accepted waits in
# its listen backlog, and a SYN past a full backlog is dropped and sent again only after a second:
# Python's http.server listens with a backlog of 5 and accepts slowly while it serves, and a crawl
# that opened its 16 connections at once lost a second on a few of its first pages (bench_crawl:
# 300-page crawls ended a second late). A connection that has answered was accepted.
UNANSWERED_PER_ORIGIN = 4
# Characters sent as they are in a request target; others (spaces, non-ASCII) are percent-encoded.
TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"


class ProtocolError(ConnectionError):
    """The server's bytes are not an HTTP/1.x response, or it closed before the response ended."""


def request_head(url: str, user_agent: str) -> tuple[str, int, bytes]:
    """(host, port, the request's bytes) of a GET of `url`; ValueError for a URL it cannot send."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    host = parts.hostname if parts.hostname.isascii() else parts.hostname.encode("idna").decode("ascii")
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    netloc = (f"[{host}]" if ":" in host else host) + ("" if parts.port in (None, DEFAULT_PORTS[parts.scheme])
                                                       else f":{parts.port}")
    target = quote(parts.path or "/", safe=TARGET_SAFE) + (f"?{quote(parts.query, safe=TARGET_SAFE)}"
                                                           if parts.query else "")
    head = (f"GET {target} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\n"
            "Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n")
    return host, port, head.encode("latin-1")


def parse_head(head: bytes) -> tuple[bytes, int, dict[str, str]]:
    """(version, status, headers with lower-case names; repeated ones joined by ', ') of a response head."""
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ProtocolError(f"bad header line: {line[:80]!r}")
        key, text = name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return version, int(code), headers


def content_length(headers: dict[str, str]) -> int | None:
    """The declared body length; a ProtocolError if it is not one number (repeats that agree are one)."""
    if "content-length" not in headers:
        return None
    values = {v.strip() for v in headers["content-length"].split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise ProtocolError(f"bad Content-Length: {headers['content-length']!r}")
    return int(values.pop())


def decoder(headers: dict[str, str]) -> zlib._Decompress | None:
    """A decoder of the body's gzip or deflate encoding; None for the identity (or one not asked for)."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    return None


class Connection(asyncio.Protocol):
    """One connection to an origin, one request at a time; the response is parsed as bytes arrive."""

    def __init__(self, origin: tuple[str, str, int], read_timeout_s: float):
        self.origin, self.read_timeout_s = origin, read_timeout_s
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.active = False
        self.buffer = bytearray()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.parts: list[bytes] = []
        self.size = 0
        self.limit = 0
        self.remaining: int | None = None
        self.chunked = self.reusable = self.complete = self.too_large = self.got_bytes = False
        self.chunk_left = 0
        self.chunk_state = "size"
        self.decode: zlib._Decompress | None = None
        self.error: BaseException | None = None
        self.waiter: asyncio.Future | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.last_bytes = 0.0

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.active or self.complete:  # bytes no request asked for: the connection is not reused
            self.reusable = False
            self.close()
            return
        self.got_bytes = True
        self.last_bytes = self.loop.time()
        try:
            self._feed(data)
        except (ProtocolError, ValueError, zlib.error) as error:
            self._fail(error if isinstance(error, ProtocolError) else ProtocolError(str(error)))

    def eof_received(self) -> bool:
        if self.active and not self.complete:
            if self.status is not None and self.remaining is None and not self.chunked:
                self._finish()
            else:
                self._fail(ProtocolError("the server closed the connection before the response ended"))
        self.closed = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.active and not self.complete:
            self._fail(ProtocolError(f"connection lost: {exc}" if exc else "connection lost"))

    # one request

    def send(self, head: bytes, limit: int) -> None:
        self._reset()
        self.active, self.limit = True, limit
        self.last_bytes = self.loop.time()
        self.timer = self.loop.call_at(self.last_bytes + self.read_timeout_s, self._check_timeout)
        self.transport.write(head)

    async def wait_head(self) -> None:
        while self.status is None and self.error is None:
            await self._wait()
        if self.error is not None:
            raise self.error

    async def wait_body(self) -> bytes | None:
        """The decoded body, or None if it grew past `limit`."""
        while not self.complete and self.error is None:
            await self._wait()
        if self.error is not None:
            raise self.error
        return None if self.too_large else b"".join(self.parts)

    async def _wait(self) -> None:
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _check_timeout(self) -> None:
        """Fail the request once no byte has come for `read_timeout_s`; else look again then."""
        self.timer = None
        if not self.active or self.complete or self.error is not None:
            return
        due = self.last_bytes + self.read_timeout_s
        if self.loop.time() < due:
            self.timer = self.loop.call_at(due, self._check_timeout)
            return
        self._fail(TimeoutError(f"no byte for {self.read_timeout_s}s"))

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._stop_timer()
        self.close()
        self._wake()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # parsing

    def _feed(self, data: bytes) -> None:
        if self.status is None:
            self.buffer += data
            end = HEAD_END.search(self.buffer)
            if end is None:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError(f"response head over {MAX_HEAD_BYTES} bytes")
                return
            head, data = bytes(self.buffer[:end.start()]), bytes(self.buffer[end.end():])
            self.buffer = bytearray()
            version, status, headers = parse_head(head)
            if 100 <= status < 200:  # an interim response: the real one follows
                if data:
                    self._feed(data)
                return
            self._start_body(version, status, headers)
            self._wake()
            if self.complete:
                self.reusable = self.reusable and not data
                return
        if self.chunked:
            self._chunks(data)
        elif self.remaining is not None:
            piece = data[:self.remaining]
            self.remaining -= len(piece)
            self._body(piece)
            if not self.remaining and not self.complete:
                self.reusable = self.reusable and len(data) == len(piece)
                self._finish()
        else:
            self._body(data)

    def _start_body(self, version: bytes, status: int, headers: dict[str, str]) -> None:
        self.status, self.headers = status, headers
        connection = headers.get("connection", "").lower()
        self.reusable = "close" not in connection if version == b"HTTP/1.1" else "keep-alive" in connection
        self.decode = decoder(headers)
        if status in NO_BODY:
            self.remaining = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self.chunked = True
        else:
            self.remaining = content_length(headers)
            self.reusable = self.reusable and self.remaining is not None
        if self.remaining == 0:
            self._finish()

    def _chunks(self, data: bytes) -> None:
        """Chunked framing (RFC 9112 §7.1): size line, data, CRLF; a 0 size, trailers, blank line."""
        buffer = self.buffer
        buffer += data
        at = 0
        while not self.complete:
            if self.chunk_state == "data":
                piece = buffer[at:at + self.chunk_left]
                if not piece:
                    break
                at += len(piece)
                self.chunk_left -= len(piece)
                self._body(bytes(piece))
                if self.chunk_left:
                    break
                self.chunk_state = "end"
                continue
            eol = buffer.find(b"\n", at)
            if eol < 0:
                if len(buffer) - at > MAX_HEAD_BYTES:
                    raise ProtocolError("chunk framing line too long")
                break
            line, at = bytes(buffer[at:eol]).strip(), eol + 1
            if self.chunk_state == "end":
                if line:
                    raise ProtocolError("chunk data longer than its size")
                self.chunk_state = "size"
            elif self.chunk_state == "size":
                self.chunk_left = int(line.split(b";", 1)[0], 16)
                self.chunk_state = "data" if self.chunk_left else "trailers"
            elif not line:  # the blank line after the trailers
                self.reusable = self.reusable and eol + 1 == len(buffer)
                self._finish()
        del buffer[:at]

    def _body(self, raw: bytes) -> None:
        if self.too_large or not raw:
            return
        piece = raw if self.decode is None else self._inflate(raw, self.limit - self.size + 1)
        self.size += len(piece)
        if self.size > self.limit:
            self.too_large, self.parts = True, []
            self._finish()
            self.close()
            return
        self.parts.append(piece)

    def _inflate(self, raw: bytes, most: int) -> bytes:
        """At most `most` decoded bytes of `raw`; a deflate body without its zlib header (as some
        servers send it) is read as raw deflate."""
        try:
            return self.decode.decompress(raw, most)
        except zlib.error:
            if self.size or self.headers.get("content-encoding", "").strip().lower() != "deflate":
                raise
            self.decode = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.decode.decompress(raw, most)

    def _finish(self) -> None:
        if self.decode is not None and not self.too_large:
            tail = self.decode.flush()
            self.size += len(tail)
            if self.size > self.limit:
                self.too_large, self.parts = True, []
            elif tail:
                self.parts.append(tail)
        self.complete = True
        self._stop_timer()
        self._wake()


class Response:
    """A response whose head has arrived; `body()` waits for the rest, `release()` hands the
    connection back (to be reused if the response ended cleanly, else closed)."""

    def __init__(self, pool: HttpClient, connection: Connection):
        self.pool, self.connection = pool, connection
        self.status: int = connection.status
        self.headers = connection.headers

    async def body(self) -> bytes | None:
        """The decoded body, None if it went past the request's `limit`."""
        return await self.connection.wait_body()

    def release(self) -> None:
        self.pool.release(self.connection)


class HttpClient:
    """GET requests over pooled keep-alive connections, at most `max_connections` open (idle ones
    are closed to make room). The caller bounds how many requests are in flight."""

    def __init__(self, user_agent: str, connect_timeout_s: float, read_timeout_s: float, max_connections: int,
                 allow_private: bool):
        self.user_agent, self.connect_timeout_s, self.read_timeout_s = user_agent, connect_timeout_s, read_timeout_s
        self.max_connections, self.allow_private = max_connections, allow_private
        self.idle: dict[tuple[str, str, int], list[Connection]] = {}
        self.open: set[Connection] = set()
        self.unanswered: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self.ssl_context: ssl.SSLContext | None = None

    async def get(self, url: str, limit: int) -> Response:
        """Send a GET of `url` and wait for the response's head; the body is read up to `limit`
        bytes (decoded) as it arrives. Raises Refused, TimeoutError or OSError (ProtocolError)."""
        try:
            host, port, head = request_head(url, self.user_agent)
        except ValueError as error:
            raise ConnectionError(f"cannot request {url}: {error}") from None
        origin = (urlsplit(url).scheme, host, port)
        while True:
            connection = self._idle(origin)
            if connection is not None:
                try:
                    return await self._exchange(connection, head, limit)
                except ProtocolError:
                    if connection.got_bytes:
                        raise
                    # The server closed the idle connection as the request went out: once more, on another.
                    continue
            async with self.unanswered.setdefault(origin, asyncio.Semaphore(UNANSWERED_PER_ORIGIN)):
                if not self.idle.get(origin):
                    return await self._exchange(await self._connect(origin), head, limit)
            # A connection came free while this request waited to open one: it goes on that.

    async def _exchange(self, connection: Connection, head: bytes, limit: int) -> Response:
        connection.send(head, limit)
        try:
            await connection.wait_head()
        except BaseException:
            self.release(connection)
            raise
        return Response(self, connection)

    def release(self, connection: Connection) -> None:
        connection._stop_timer()
        if connection.complete and connection.reusable and not connection.closed and connection.error is None:
            connection.active = False
            connection.idle_since = time.monotonic()
            self.idle.setdefault(connection.origin, []).append(connection)
            return
        connection.close()
        self.open.discard(connection)

    def _idle(self, origin: tuple[str, str, int]) -> Connection | None:
        """The most recently used idle connection to `origin` still open; stale ones are closed."""
        idle = self.idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed and time.monotonic() - connection.idle_since < KEEPALIVE_S:
                return connection
            connection.close()
            self.open.discard(connection)
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> Connection:
        while len(self.open) >= self.max_connections and self._close_one_idle():
            pass
        scheme, host, port = origin
        if scheme == "https" and self.ssl_context is None:
            import httpx

            self.ssl_context = httpx.create_ssl_context(trust_env=False)
        connection = Connection(origin, self.read_timeout_s)
        await open_checked(host, port, connection, self.ssl_context if scheme == "https" else None,
                           self.allow_private, self.connect_timeout_s)
        self.open.add(connection)
        return connection

    def _close_one_idle(self) -> bool:
        """Close the idle connection that waited longest; False if none is idle."""
        oldest = min((c for idle in self.idle.values() for c in idle), key=lambda c: c.idle_since, default=None)
        if oldest is None:
            return False
        self.idle[oldest.origin].remove(oldest)
        oldest.close()
        self.open.discard(oldest)
        return True

    async def aclose(self) -> None:
        for connection in list(self.open):
            connection.close()
        self.open.clear()
        self.idle.clear()
