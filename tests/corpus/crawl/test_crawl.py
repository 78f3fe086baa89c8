"""The crawl step against a real HTTP server on 127.0.0.1 serving a generated site."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tokenmill.corpus.crawl import connect
from tokenmill.corpus.crawl.http1 import HttpClient
from tokenmill.corpus.crawl.step import CrawlParams, check_crawl, run_crawl
from tokenmill.corpus.store.errors import ConfigError

DELAY_S = 0.2
# The server sees a request some milliseconds after the crawler sent it, more on a loaded 2-core
# machine; gaps are checked against the delay less this slack.
ARRIVAL_JITTER_S = 0.08
PARAGRAPH = "This page has a paragraph of real words about crawling the web politely and within limits. " * 3


def page(title: str, links: list[str], body: str = PARAGRAPH) -> str:
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (f"<html><head><title>{title}</title></head>"
            f"<body><h1>{title}</h1><p>{body}</p><ul>{anchors}</ul></body></html>")


INDEX_LINKS = [
    "/a.html", "/a.html?utm_source=feed", "/private/secret.html", "/redirect-ok", "/redirect-private",
    "/loop1", "/missing", "/error", "/busy", "/slow", "/big", "/doc.pdf", "/latin1.html", "/cp1251.html",
    "/empty.html", "/text.txt", "/farm/0.html", "http://example.com/elsewhere", "mailto:someone@example.com",
]


class Site:
    """The generated site; the server process appends each request (monotonic time, path) to `log_path`.
    With `robots_at`, its /robots.txt is five redirects away from that URL (RFC 9309's minimum)."""

    def __init__(self, log_path: Path, hang_path: str | None = None, robots_at: str | None = None):
        self.log_path, self.hang_path, self.robots_at = log_path, hang_path, robots_at
        self.release_path = log_path.with_suffix(".release")
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    @property
    def log(self) -> list[tuple[float, str]]:
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text().splitlines()
        return [(float(t), path) for t, path in (line.split(" ", 1) for line in lines)]

    def route(self, path: str, host: str) -> tuple[int, dict[str, str], bytes]:
        html = {"Content-Type": "text/html; charset=utf-8"}
        hits = self.hits.get(path, 0)
        if self.robots_at and (path == "/robots.txt" or path.startswith("/moved/")):
            hop = 0 if path == "/robots.txt" else int(path.rsplit("/", 1)[1])
            return 302, {"Location": f"/moved/{hop + 1}" if hop < 4 else self.robots_at}, b""
        if path == "/echo-host":
            return 200, {"Content-Type": "text/plain"}, host.encode()
        if path == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n"
        if path == "/":
            return 200, html, page("Index", INDEX_LINKS).encode()
        if path == "/a.html":
            return 200, html, page("Page A", ["/", "/a.html#section"]).encode()
        if path == "/a2.html":
            return 200, html, page("Page A2", []).encode()
        if path == "/redirect-ok":
            return 302, {"Location": "/a2.html"}, b""
        if path == "/redirect-private":
            return 301, {"Location": "/private/inner.html"}, b""
        if path == "/loop1":
            return 302, {"Location": "/loop2"}, b""
        if path == "/loop2":
            return 302, {"Location": "/loop1"}, b""
        if path == "/error":
            return 500, html, b"boom"
        if path == "/busy":
            if hits <= 1:
                return 429, {"Retry-After": "1"}, b""
            return 200, html, page("Busy", []).encode()
        if path == "/doc.pdf":
            return 200, {"Content-Type": "application/pdf"}, b"%PDF-1.4 " + b"x" * 1000
        if path == "/latin1.html":
            text = '<html><head><meta charset="iso-8859-1"></head><body><p>Café crème brûlée, a dessert. ' + PARAGRAPH
            return 200, {"Content-Type": "text/html"}, (text + "</p></body></html>").encode("latin-1")
        if path == "/cp1251.html":
            body = page("Страница", [], "Привет, мир. Это страница в кодировке windows-1251. " * 3)
            meta = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
            body = body.replace("<head>", "<head>" + meta)
            return 200, {"Content-Type": "text/html"}, body.encode("cp1251")
        if path == "/empty.html":
            return 200, html, b"<html><body><script>var x = 1;</script></body></html>"
        if path == "/text.txt":
            return 200, {"Content-Type": "text/plain; charset=utf-8"}, b"Plain text document.\n"
        if path.startswith("/farm/"):
            n = int(path.split("/")[-1].split(".")[0])
            return 200, html, page(f"Farm {n}", [f"/farm/{n + 1}.html"]).encode()
        return 404, html, b"not found"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path
                with site.lock:
                    with open(site.log_path, "a") as log:
                        log.write(f"{time.monotonic()} {path}\n")
                    hits = site.hits.get(path, 0)
                    site.hits[path] = hits + 1
                if path == site.hang_path and hits == 0:
                    deadline = time.monotonic() + 60
                    while not site.release_path.exists() and time.monotonic() < deadline:
                        time.sleep(0.02)
                    return
                if path == "/slow":
                    time.sleep(1.0)
                if path == "/big":
                    self._big()
                    return
                status, headers, body = site.route(path, self.headers.get("Host", ""))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _big(self) -> None:
                """20 MB with no Content-Length, so only reading can find it too large."""
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                try:
                    for _ in range(20):
                        self.wfile.write(b"<p>" + b"x" * (2**20 - 7) + b"</p>")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


class Servers:
    """Test servers on 127.0.0.1, each in its own process, so the crawler's work in the test
    process cannot delay when a request is logged."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: list[subprocess.Popen] = []
        self.started = 0

    def start(self, hang_path: str | None = None, port: int = 0, robots_at: str | None = None) -> tuple[str, Site]:
        self.started += 1
        site = Site(self.folder / f"requests-{self.started}.log", hang_path, robots_at)
        args = [sys.executable, __file__, str(port), str(site.log_path), hang_path or "", robots_at or ""]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.running.append(proc)
        return f"http://127.0.0.1:{proc.stdout.readline().strip()}", site

    def stop_all(self) -> None:
        for proc in self.running:
            proc.kill()
            proc.wait()
        self.running.clear()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    running = Servers(tmp_path)
    yield running
    running.stop_all()


def serve_forever(port: int, log_path: Path, hang_path: str | None, robots_at: str | None) -> None:
    """The server process: print the bound port, then serve until killed."""
    site = Site(log_path, hang_path, robots_at)
    server = ThreadingHTTPServer(("127.0.0.1", port), site.handler())
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def crawl_params(base: str, **overrides: Any) -> CrawlParams:
    settings = dict(
        seeds=[base + "/"], allow_private=True, delay_s=DELAY_S, max_depth=3, max_page_bytes=1_000_000,
        read_timeout_s=0.5, connect_timeout_s=1.0, max_retries=1, backoff_base_s=0.05, extract_timeout_s=20,
    )
    return CrawlParams(**{**settings, **overrides})


def rows(store: Any, vid: str, kind: str) -> dict[str, dict[str, Any]]:
    table = store.read_docs(vid, kind=kind).compute()
    return {r["source"]: r for r in table.to_dict("records")}


def test_crawl_site(store: Any, client: Any, servers: Servers) -> None:
    base, site = servers.start()
    version = run_crawl(store, crawl_params(base, warc=True), client)

    kept = rows(store, version.id, "kept")
    expected_docs = ["/", "/a.html", "/redirect-ok", "/busy", "/latin1.html", "/cp1251.html", "/text.txt",
                     "/farm/0.html", "/farm/1.html", "/farm/2.html"]
    assert sorted(kept) == sorted(base + p for p in expected_docs)
    assert "Café crème brûlée" in kept[base + "/latin1.html"]["text"]
    assert "Привет, мир." in kept[base + "/cp1251.html"]["text"]
    assert "Page A2" in kept[base + "/redirect-ok"]["text"]
    assert json.loads(kept[base + "/redirect-ok"]["meta"])["final_url"] == base + "/a2.html"

    rejected = {url: r["reason"] for url, r in rows(store, version.id, "rejected").items()}
    assert rejected == {
        base + "/private/secret.html": "crawl:robots",
        base + "/redirect-private": "crawl:robots",
        base + "/loop1": "crawl:redirect_loop",
        base + "/missing": "crawl:status_404",
        base + "/error": "crawl:status_500",
        base + "/slow": "crawl:timeout",
        base + "/big": "crawl:too_large",
        base + "/doc.pdf": "crawl:content_type",
        base + "/empty.html": "crawl:extract_empty",
        base + "/farm/3.html": "crawl:depth",
        "http://example.com/elsewhere": "crawl:out_of_scope",
    }

    paths = [path for _, path in site.log]
    assert not [p for p in paths if p.startswith("/private/")]
    assert "/farm/3.html" not in paths
    assert paths.count("/robots.txt") == 1 and paths.count("/a.html") == 1
    assert paths.count("/error") == 2 and paths.count("/busy") == 2
    starts = sorted(site.log)
    close = [(a, b) for a, b in zip(starts, starts[1:]) if b[0] - a[0] < DELAY_S - ARRIVAL_JITTER_S]
    assert not close
    busy = [t for t, p in site.log if p == "/busy"]
    assert busy[1] - busy[0] >= 1.0, "Retry-After: 1 was not honoured"

    manifest = store.manifest(version.id)
    assert manifest.stats["docs_out"] == len(expected_docs)
    assert manifest.stats["status_codes"]["404"] == 1
    host = base.removeprefix("http://")
    assert manifest.stats["hosts"][host]["docs"] == len(expected_docs)
    assert manifest.fingerprint and {"started_at", "ended_at", "bytes_fetched"} <= set(manifest.stats)
    assert "warc/crawl-00000.warc.gz" in [f.path for f in manifest.files]

    again = run_crawl(store, crawl_params(base, warc=True), client)
    assert again.cached and again.id == version.id


def test_pages_past_the_extraction_timeout_are_rejected_one_by_one(store: Any, client: Any, servers: Servers) -> None:
    """A batch that runs past its time is retried a page at a time; a page that still does is
    rejected as crawl:extract_timeout (here every page: one microsecond is shorter than any task)."""
    base, _ = servers.start()
    pages = ["/a.html", "/latin1.html", "/text.txt", "/farm/0.html"]
    version = run_crawl(store, crawl_params(base, seeds=[base + p for p in pages], delay_s=0, max_depth=0,
                                            extract_timeout_s=1e-6), client)
    assert {u: r["reason"] for u, r in rows(store, version.id, "rejected").items()} == {
        base + p: "crawl:extract_timeout" for p in pages}
    assert version.manifest.stats["docs_out"] == 0


def test_max_pages_takes_the_first_urls_in_discovery_order(store: Any, client: Any, servers: Servers) -> None:
    """The seed plus its first two links in page order are fetched; the rest are cut."""
    base, _ = servers.start()
    version = run_crawl(store, crawl_params(base, max_pages=3, max_depth=1, delay_s=0), client)
    level_one = list(dict.fromkeys(base + p.split("?")[0] for p in INDEX_LINKS if p.startswith("/")))
    assert level_one[:2] != sorted(level_one)[:2]
    reasons = {u: r["reason"] for u, r in rows(store, version.id, "rejected").items()}
    assert sorted(u for u, r in reasons.items() if r == "crawl:max_pages") == sorted(level_one[2:])
    fetched = set(rows(store, version.id, "kept")) | {
        u for u, r in reasons.items() if r not in ("crawl:max_pages", "crawl:out_of_scope")
    }
    assert sorted(fetched) == sorted([base + "/", *level_one[:2]])


def test_a_host_runs_on_while_another_hangs_in_discovery_order(store: Any, client: Any, servers: Servers) -> None:
    """Two hosts, each a chain of pages; the seed of the one whose URL sorts second hangs. The first
    host's depth-1 page is fetched meanwhile (no level waits for the hanging seed), but not its
    depth-2 page: that one's link comes after the hanging page in discovery order, so taking it
    before the hanging page is decided could change which pages `max_pages` keeps."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    ports = sorted((str(s.getsockname()[1]) for s in sockets), key=lambda port: f"http://127.0.0.1:{port}/")
    for s in sockets:
        s.close()
    first, first_site = servers.start(port=int(ports[0]))
    second, second_site = servers.start(hang_path="/farm/0.html", port=int(ports[1]))
    assert first < second
    params = crawl_params(first, seeds=[first + "/farm/0.html", second + "/farm/0.html"], delay_s=0,
                          max_depth=2, read_timeout_s=60, max_retries=0)
    versions = []
    crawl = threading.Thread(target=lambda: versions.append(run_crawl(store, params, client)))
    crawl.start()
    try:
        deadline = time.monotonic() + 60
        while "/farm/1.html" not in [p for _, p in first_site.log] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        held = [p for _, p in first_site.log]
        hung = [p for _, p in second_site.log]
    finally:
        second_site.release_path.touch()
        crawl.join(timeout=120)
    assert held == ["/robots.txt", "/farm/0.html", "/farm/1.html"], held
    assert hung == ["/robots.txt", "/farm/0.html"], hung
    # released, the hanging request ends without an answer: its host has no more pages, the other goes on
    assert [p for _, p in first_site.log][3:] == ["/farm/2.html"]
    assert [p for _, p in second_site.log] == hung
    assert sorted(rows(store, versions[0].id, "kept")) == [first + f"/farm/{n}.html" for n in range(3)]


@pytest.mark.timeout(120)
def test_an_extraction_batch_that_fails_stops_the_crawl_with_its_error(store: Any, client: Any, servers: Servers,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a timeout: the error itself, raised from the crawl, even when no fetch is left to see it."""
    from tokenmill.corpus.crawl import extraction

    base, _ = servers.start()
    monkeypatch.setattr(extraction, "extract_batch", lambda pages, strip, bodies: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run_crawl(store, crawl_params(base, seeds=[base + "/a2.html"], delay_s=0), client)


def test_small_spool_segments_and_parts_write_the_same_rows(store: Any, client: Any, servers: Servers,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver spills every 3 decided URLs and merges 2 segments at a time; the rows, cut into
    parts of 4, are those (in the same URL order) of a crawl that holds them all in one segment."""
    from tokenmill.corpus.crawl import spool, step
    from tokenmill.corpus.store.versions import Store

    base, _ = servers.start()
    params = crawl_params(base, delay_s=0)
    whole = run_crawl(store, params, client)
    monkeypatch.setattr(spool, "SEGMENT_ROWS", 3)
    monkeypatch.setattr(spool, "FAN_IN", 2)
    monkeypatch.setattr(step, "PART_ROWS", 4)
    small = Store(str(tmp_path / "small"))
    cut = run_crawl(small, params, client)

    assert cut.id == whole.id
    parts = [f.path for f in small.manifest(cut.id).files if f.path.startswith("part-")]
    assert len(parts) > 3
    for kind in ("kept", "rejected"):
        one = store.read_docs(whole.id, kind=kind).compute().reset_index(drop=True)
        many = small.read_docs(cut.id, kind=kind).compute().reset_index(drop=True)
        assert list(many["source"]) == sorted(many["source"]) == list(one["source"])
        assert many.drop(columns="fetched_at").equals(one.drop(columns="fetched_at"))
    assert small.manifest(cut.id).stats["docs_out"] == store.manifest(whole.id).stats["docs_out"]


@pytest.mark.parametrize("seed", ["http://127.0.0.1:9/", "http://10.1.2.3/", "http://169.254.169.254/x", "http://localhost:9/"])
def test_private_seeds_refused_before_any_work(store: Any, client: Any, seed: str) -> None:
    params = CrawlParams(seeds=[seed])
    with pytest.raises(ConfigError, match="private address .*crawl.allow_private"):
        check_crawl(params)
    with pytest.raises(ConfigError, match="private address"):
        run_crawl(store, params, client)
    assert not (Path(store.root) / "crawl").exists()


def rebinding_resolver(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """Resolve `rebind.test` to each of `answers` in turn (the last one from then on), as a DNS
    server with a zero TTL can; returns the answers given so far, kept up to date."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host: str | bytes, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("rebind.test", b"rebind.test"):
            return real(host, port, *args, **kwargs)
        lookups.append(answers[min(len(lookups), len(answers) - 1)])
        if lookups[-1] == "no answer":
            raise socket.gaierror(socket.EAI_NONAME, "no answer")
        return real(lookups[-1], port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_dns_rebinding_is_refused_at_connect(store: Any, client: Any, servers: Servers,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that answers a public address to the seed check and the next lookup, then
    127.0.0.1: each connection goes only to the address its own lookup checked, so the server
    on 127.0.0.1 sees no request (a check followed by an HTTP client's own lookup let it through).
    The public address is not really dialled: it fails as if down, and the retry's lookup is refused."""
    base, site = servers.start()
    seed = base.replace("127.0.0.1", "rebind.test") + "/"
    lookups = rebinding_resolver(monkeypatch, ["93.184.216.34", "93.184.216.34", "127.0.0.1"])
    dialled: list[str] = []
    dial = connect.dial

    async def dial_offline(address: str, port: int, *args: Any) -> None:
        dialled.append(address)
        if address == "93.184.216.34":
            raise ConnectionRefusedError("no network in tests")
        await dial(address, port, *args)

    monkeypatch.setattr(connect, "dial", dial_offline)
    version = run_crawl(store, crawl_params(base, seeds=[seed], allow_private=False, delay_s=0), client)

    assert {u: r["reason"] for u, r in rows(store, version.id, "rejected").items()} == {seed: "crawl:private_address"}
    assert lookups[-1] == "127.0.0.1" and set(dialled) == {"93.184.216.34"}
    assert site.log == []


def test_connections_go_to_the_checked_address(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """One lookup per connection, and the request goes to its answer: a second lookup would fail
    here. The Host header still names the host, not the address."""
    base, site = servers.start()
    url = base.replace("127.0.0.1", "rebind.test") + "/echo-host"
    lookups = rebinding_resolver(monkeypatch, ["127.0.0.1", "no answer"])

    async def get() -> tuple[int, bytes | None]:
        http = HttpClient("test", 1.0, 1.0, max_connections=1, allow_private=True)
        try:
            response = await http.get(url, limit=1000)
            body = await response.body()
            response.release()
            return response.status, body
        finally:
            await http.aclose()

    status, body = asyncio.run(get())
    assert status == 200 and body == url.split("/")[2].encode()
    assert lookups == ["127.0.0.1"] and [p for _, p in site.log] == ["/echo-host"]


def test_robots_txt_behind_five_redirects_to_another_host(store: Any, client: Any, servers: Servers) -> None:
    """RFC 9309 §2.3.1.2: robots.txt reached within five redirects, even on another host, is the
    first host's robots.txt (here its Disallow: /private/)."""
    rules_base, rules_site = servers.start()
    base, site = servers.start(robots_at=rules_base + "/robots.txt")
    version = run_crawl(store, crawl_params(base, max_depth=1, delay_s=0), client)

    rejected = {u: r["reason"] for u, r in rows(store, version.id, "rejected").items()}
    assert rejected[base + "/private/secret.html"] == "crawl:robots"
    paths = [p for _, p in site.log]
    assert paths[:6] == ["/robots.txt", "/moved/1", "/moved/2", "/moved/3", "/moved/4", "/"]
    assert not [p for p in paths if p.startswith("/private/")]
    assert [p for _, p in rules_site.log] == ["/robots.txt"]


CRAWL_SCRIPT = """
import json, sys
from tokenmill.corpus.crawl.step import CrawlParams, run_crawl
from tokenmill.corpus.store.runtime import DaskSettings, dask_client
from tokenmill.corpus.store.versions import Store

if __name__ == "__main__":
    with dask_client(DaskSettings(address=sys.argv[3])) as client:
        run_crawl(Store(sys.argv[1]), CrawlParams(**json.loads(sys.argv[2])), client)
"""


@pytest.mark.parametrize("where", ["local", "s3"])
def test_killed_crawl_resumes_without_refetching(where: str, request: pytest.FixtureRequest, client: Any,
                                                 servers: Servers, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL while /farm/1.html is in flight; the rerun fetches only what had no journal record
    (the one cut request), and commits the version an uninterrupted crawl commits. On S3 the rerun
    runs as on another host, with its own cache: it resumes from the journal's copy in the store."""
    from tokenmill.corpus.store.versions import Store

    store = request.getfixturevalue("store")
    if where == "s3":
        store = Store(f"{request.getfixturevalue('s3_bucket')}/store")
    base, site = servers.start(hang_path="/farm/1.html")
    params = crawl_params(base, delay_s=0, concurrency=1, per_host_concurrency=1, max_depth=2, journal_sync_s=0)
    script = tmp_path / "crawl_script.py"
    script.write_text(CRAWL_SCRIPT)
    args = [sys.executable, str(script), store.url, params.model_dump_json(), client.scheduler.address]
    killed_host = {"PYTHONUNBUFFERED": "1", "TOKENMILL_CACHE": str(tmp_path / "killed-host")}
    proc = subprocess.Popen(args, env={**os.environ, **killed_host})
    deadline = time.monotonic() + 60
    while "/farm/1.html" not in [p for _, p in site.log] and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    site.release_path.touch()
    assert proc.returncode == -signal.SIGKILL

    monkeypatch.setenv("TOKENMILL_CACHE", str(tmp_path / "resuming-host"))
    resumed = run_crawl(store, params, client)
    monkeypatch.setenv("TOKENMILL_CACHE", str(tmp_path / "third-host"))
    assert run_crawl(store, params, client).cached  # the commit marker is in the store, not on a host
    assert not store.fs.glob(f"{store.root}/crawl/.state/*/segments/*")

    servers.stop_all()
    _, fresh_site = servers.start(port=int(base.rsplit(":", 1)[1]))
    fresh_store = Store(str(tmp_path / "fresh"))
    uninterrupted = run_crawl(fresh_store, params, client)
    assert uninterrupted.id == resumed.id
    requests = Counter(path for _, path in site.log)
    requests["/farm/1.html"] -= 1
    assert requests == Counter(path for _, path in fresh_site.log), "a page was fetched again after the kill"
    for kind in ("kept", "rejected"):
        resumed_rows = rows(store, resumed.id, kind)
        fresh_rows = rows(fresh_store, uninterrupted.id, kind)
        assert {u: (r["id"], r["text"]) for u, r in resumed_rows.items()} == {
            u: (r["id"], r["text"]) for u, r in fresh_rows.items()
        }


if __name__ == "__main__":
    serve_forever(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] or None, sys.argv[4] or None)
