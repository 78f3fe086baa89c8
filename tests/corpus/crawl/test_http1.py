"""The crawl's HTTP/1.1 client against a scripted server on 127.0.0.1: framing, encodings, limits,
timeouts and connection reuse, each as a server really sends it."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tokenmill.corpus.crawl import http1
from tokenmill.corpus.crawl.http1 import UNANSWERED_PER_ORIGIN, HttpClient, ProtocolError, parse_head, request_head

TEXT = b"<p>" + b"tokenmill crawls the web politely. " * 200 + b"</p>"
# Each path: the raw bytes the server writes, in pieces (a float is a pause in seconds), then
# whether it closes the connection.
Script = list[bytes | float]


def head(status: str = "200 OK", version: str = "HTTP/1.1", **headers: str) -> bytes:
    lines = [f"{version} {status}", *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(body: bytes, size: int) -> bytes:
    pieces = [b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(pieces) + b"0\r\nTrailer: yes\r\n\r\n"


SCRIPTS: dict[str, tuple[Script, bool]] = {
    "/length": ([head(Content_Length=str(len(TEXT))), TEXT[:1000], 0.01, TEXT[1000:]], False),
    "/chunked": ([head(Transfer_Encoding="chunked"), chunked(TEXT, 777)[:500], 0.01, chunked(TEXT, 777)[500:]], False),
    "/gzip": ([head(Content_Encoding="gzip", Content_Length=str(len(gzip.compress(TEXT)))), gzip.compress(TEXT)],
              False),
    "/raw-deflate": ([head(Content_Encoding="deflate", Connection="close"),
                      zlib.compress(TEXT)[2:-4]], True),
    "/bomb": ([head(Content_Encoding="gzip", Connection="close"), gzip.compress(b"\0" * 20_000_000)], True),
    "/until-close": ([head(version="HTTP/1.0"), TEXT], True),
    "/interim": ([head("100 Continue"), head(Content_Length="2"), b"ok"], False),
    "/slow": ([head(Content_Length="2"), 1.0, b"ok"], False),
    "/slow-head": ([0.3, head(Content_Length="2"), 0.3, b"ok"], False),
    "/short": ([head(Content_Length="100"), b"only this"], True),
    "/garbage": ([b"SSH-2.0-OpenSSH_9.6\r\n\r\n"], True),
    "/empty": ([head("204 No Content")], False),
}


async def serve(script_of: dict[str, tuple[Script, bool]], log: list[tuple[int, str]]) -> asyncio.Server:
    """A server that answers each request with its path's script; `log` gets (connection, path)."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        number = connections
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                path = request.split(b" ", 2)[1].decode()
                log.append((number, path))
                script, close = script_of[path]
                for piece in script:
                    if isinstance(piece, float):
                        await asyncio.sleep(piece)
                    else:
                        writer.write(piece)
                        await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def run(test: Callable[[HttpClient, str, list[tuple[int, str]]], Awaitable[Any]], **client: Any) -> Any:
    async def main() -> Any:
        log: list[tuple[int, str]] = []
        server = await serve(SCRIPTS, log)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        http = HttpClient("test", 1.0, client.pop("read_timeout_s", 1.0), 4, allow_private=True)
        try:
            return await test(http, base, log)
        finally:
            await http.aclose()
            server.close()

    return asyncio.run(main())


async def fetch(http: HttpClient, url: str, limit: int = 1_000_000) -> tuple[int, dict[str, str], bytes | None]:
    response = await http.get(url, limit)
    try:
        return response.status, response.headers, await response.body()
    finally:
        response.release()


@pytest.mark.parametrize("path", ["/length", "/chunked", "/gzip", "/raw-deflate", "/until-close"])
def test_each_framing_and_encoding_gives_the_body(path: str) -> None:
    async def test(http: HttpClient, base: str, log: list) -> None:
        status, _, body = await fetch(http, base + path)
        assert status == 200 and body == TEXT

    run(test)


def test_keep_alive_reuses_one_connection_and_not_a_closed_one() -> None:
    async def test(http: HttpClient, base: str, log: list) -> None:
        for path in ("/length", "/chunked", "/gzip", "/empty", "/interim", "/until-close", "/length"):
            await fetch(http, base + path)
        assert [c for c, _ in log] == [1, 1, 1, 1, 1, 1, 2]

    run(test)


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def test(http: HttpClient, base: str, log: list) -> None:
        await fetch(http, base + "/length")
        (connection,) = [c for idle in http.idle.values() for c in idle]
        connection.transport.pause_reading()  # its EOF is not seen before the next request is sent
        connection.transport.get_extra_info("socket").shutdown(2)
        status, _, body = await fetch(http, base + "/length")
        assert status == 200 and body == TEXT

    run(test)


def test_bodies_past_the_limit_are_cut_after_decoding() -> None:
    async def test(http: HttpClient, base: str, log: list) -> None:
        assert (await fetch(http, base + "/bomb", limit=1_000_000))[2] is None
        assert (await fetch(http, base + "/length", limit=len(TEXT) - 1))[2] is None
        assert (await fetch(http, base + "/length", limit=len(TEXT)))[2] == TEXT
        assert not [c for idle in http.idle.values() for c in idle if c.closed]

    run(test)


def test_interim_and_bodiless_responses() -> None:
    async def test(http: HttpClient, base: str, log: list) -> None:
        assert (await fetch(http, base + "/interim"))[::2] == (200, b"ok")
        assert (await fetch(http, base + "/empty"))[::2] == (204, b"")

    run(test)


def test_a_server_silent_past_the_read_timeout_times_out() -> None:
    async def test(http: HttpClient, base: str, log: list) -> None:
        with pytest.raises(TimeoutError):
            await fetch(http, base + "/slow")
        assert (await fetch(http, base + "/length"))[2] == TEXT

    run(test, read_timeout_s=0.3)


@pytest.mark.parametrize("path", ["/short", "/garbage"])
def test_a_cut_or_foreign_response_is_a_protocol_error(path: str) -> None:
    async def test(http: HttpClient, base: str, log: list) -> None:
        with pytest.raises(ProtocolError):
            await fetch(http, base + path)

    run(test)


def test_a_burst_opens_a_few_unanswered_connections_to_an_origin_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server's listen backlog holds the connections it has not accepted, and a SYN past it is
    dropped and sent again a second later: no more than UNANSWERED_PER_ORIGIN wait there at once."""
    connects: list[tuple[str, float]] = []
    open_checked = http1.open_checked

    async def watched(host: str, *args: Any) -> None:
        connects.append((host, asyncio.get_running_loop().time()))
        await open_checked(host, *args)

    monkeypatch.setattr(http1, "open_checked", watched)

    async def test(http: HttpClient, base: str, log: list) -> None:
        other = base.replace("127.0.0.1", "localhost")
        start = asyncio.get_running_loop().time()
        urls = [f"{base}/slow-head"] * 8 + [f"{other}/slow-head"] * 8
        bodies = await asyncio.gather(*(fetch(http, url) for url in urls))
        assert [body for _, _, body in bodies] == [b"ok"] * 16
        for host in ("127.0.0.1", "localhost"):
            times = [t - start for h, t in connects if h == host]
            # No head comes before 0.3 s: until then no more than UNANSWERED_PER_ORIGIN open; the rest
            # open once heads have come, as the first connections still send their bodies.
            assert sum(t < 0.3 for t in times) <= UNANSWERED_PER_ORIGIN < len(times) == 8

    run(test)


def test_request_and_response_heads() -> None:
    host, port, raw = request_head("http://Bücher.example:8080/a b/ü?q=1 2", "ua")
    assert (host, port) == ("xn--bcher-kva.example", 8080)
    assert raw.startswith(b"GET /a%20b/%C3%BC?q=1%202 HTTP/1.1\r\nHost: xn--bcher-kva.example:8080\r\n")
    version, status, headers = parse_head(b"HTTP/1.1 301 Moved\r\nLocation: /x\r\nSet-Cookie: a\r\nset-cookie: b")
    assert (version, status, headers) == (b"HTTP/1.1", 301, {"location": "/x", "set-cookie": "a, b"})
