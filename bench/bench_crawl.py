"""Crawl throughput against a local server, politeness delay off: pages/s and fetch vs extraction time.

The server runs in its own process (so it does not share the crawler's GIL) and serves a tree
of generated pages, each linking to `FANOUT` children, with real words from the Python docs.
Run standalone: `python bench/bench_crawl.py [size_mb]`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FANOUT = 10
CASES = {"small-5kb": 5_000, "typical-60kb": 60_000}
WORDS = (
    "the crawler fetches pages politely and extracts their main text before the corpus is cleaned "
    "deduplicated filtered tokenized and packed into shards for training a language model on it"
).split()


def page_html(n: int, page_bytes: int) -> bytes:
    """A page of about `page_bytes` with paragraphs of words and links to its children."""
    links = "".join(f'<a href="/p/{n * FANOUT + k}.html">child {k}</a> ' for k in range(1, FANOUT + 1))
    paragraphs, size, i = [], 0, n
    while size < page_bytes:
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(60))
        paragraphs.append(f"<p>{words}.</p>")
        size += len(paragraphs[-1])
        i += 7
    body = f"<html><head><title>Page {n}</title></head><body><nav>{links}</nav><article>{''.join(paragraphs)}</article></body></html>"
    return body.encode()


def serve(page_bytes: int) -> None:
    """The server process: print the port, then serve pages until killed."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/robots.txt":
                body, ctype = b"User-agent: *\nAllow: /\n", "text/plain"
            else:
                body, ctype = page_html(int(self.path.rsplit("/", 1)[-1].split(".")[0]), page_bytes), "text/html"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def crawl_case(case: str, page_bytes: int, pages: int, workdir: Path, client: Any) -> dict[str, Any]:
    from tokenmill.corpus.crawl.step import CrawlParams, run_crawl
    from tokenmill.corpus.store.versions import Store

    server = subprocess.Popen([sys.executable, __file__, "serve", str(page_bytes)], stdout=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        params = CrawlParams(
            seeds=[f"{base}/p/0.html"], allow_private=True, delay_s=0, per_host_concurrency=16, concurrency=16,
            max_pages=pages, max_depth=10, max_retries=0,
        )
        store = Store(str(workdir / f"crawl-{case}"))
        start = time.perf_counter()
        version = run_crawl(store, params, client, force=True)
        wall = time.perf_counter() - start
    finally:
        server.kill()
        server.wait()
    stats = version.manifest.stats
    mb = stats["bytes_fetched"] / 1e6
    return {
        "step": "crawl", "case": case, "mb": round(mb, 2), "docs": stats["docs_out"], "wall_s": round(wall, 2),
        "mb_per_s": round(mb / wall, 2), "docs_per_s": round(stats["docs_out"] / wall, 1),
        "pages_per_s": round(stats["pages_fetched"] / wall, 1),
        "fetch_s_summed": stats["fetch_seconds"], "extract_s_summed": stats["extract_seconds"],
        "extract_ms_per_page": round(1000 * stats["extract_seconds"] / max(1, stats["docs_out"]), 2),
    }


def bench(size_mb: float, workdir: Path, client: Any) -> list[dict[str, Any]]:
    """One row per page size; the page count is `size_mb` of HTML, at least 200 and at most 5000 pages."""
    rows = []
    for case, page_bytes in CASES.items():
        pages = int(min(5000, max(200, size_mb * 1e6 / page_bytes)))
        rows.append(crawl_case(case, page_bytes, pages, workdir, client))
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]))
    else:
        import tempfile

        from tokenmill.corpus.store.runtime import DaskSettings, dask_client

        with dask_client(DaskSettings(n_workers=2)) as dask, tempfile.TemporaryDirectory() as tmp:
            for row in bench(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0, Path(tmp), dask):
                print(row)
