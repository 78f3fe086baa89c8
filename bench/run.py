"""tokenmill benchmarks: per step, wall time, MB/s, docs/s and peak memory, as a table and JSON.

    python bench/run.py [--size-mb 200] [--steps load,clean,...] [--workers 2] [--json out.json]

Inputs are generated from real text (the python-docs demo source), cycled with a counter
so every doc is distinct, up to the requested size. Peak memory is sampled every 100 ms
over all worker processes of the LocalCluster (and the driver, reported apart).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
MB = 2**20
# The `tokenmill` executable as installed: through the daemon when one answers.
TOKENMILL = [sys.executable, "-c", "from tokenmill.flows.entry import main; main()"]


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """A whole command's wall time from start to exit, and its stdout; `env` added to this process's."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - start, done.stdout


@contextmanager
def daemon_running(workers: int, workdir: Path) -> Iterator[dict[str, str]]:
    """A tokenmill daemon (`tokenmill daemon start`) with `workers` workers while the block runs; yields
    the environment variables that point `tokenmill` at it."""
    env = {"TOKENMILL_DAEMON_SOCKET": str(workdir / "daemon.sock")}
    command = [*TOKENMILL, "daemon", "start", "--set", f"dask.n_workers={workers}"]
    subprocess.run(command, env={**os.environ, **env}, check=True, capture_output=True)
    try:
        yield env
    finally:
        subprocess.run([*TOKENMILL, "daemon", "stop"], env={**os.environ, **env}, check=True, capture_output=True)


def real_texts(max_mb: float = 24) -> list[str]:
    """Docs of real English prose: module docstrings of the installed Python, up to `max_mb`."""
    from tokenmill.corpus.ingest import pydocs

    texts, total = [], 0
    for _, text, _ in pydocs.iter_module_docs(pydocs.module_files(), budget=2**62):
        if text and len(text) > 200:
            texts.append(text)
            total += len(text.encode())
        if total >= max_mb * MB:
            break
    return texts


def cycled(texts: list[str], size_mb: float) -> Iterator[tuple[int, str]]:
    """(n, text) until `size_mb` of text: the pool repeated, each copy made distinct by its number."""
    written, n = 0, 0
    while written < size_mb * MB:
        text = f"[{n}] {texts[n % len(texts)]}"
        yield n, text
        written += len(text.encode())
        n += 1


def write_jsonl_corpus(path: Path, texts: list[str], size_mb: float) -> int:
    import orjson

    docs = 0
    with path.open("wb") as f:
        for n, text in cycled(texts, size_mb):
            f.write(orjson.dumps({"text": text, "url": f"https://docs.example.org/{n}"}) + b"\n")
            docs += 1
    return docs


def write_warc_corpus(path: Path, texts: list[str], size_mb: float) -> int:
    """Gzipped WARC of HTML responses, one page per doc, as a crawl would store them."""
    from html import escape

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    docs = 0
    with path.open("wb") as f:
        writer = WARCWriter(f, gzip=True)
        for n, text in cycled(texts, size_mb):
            paragraphs = "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n"))
            html = f"<html><body><nav>Home | Docs</nav><article>{paragraphs}</article></body></html>".encode()
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            record = writer.create_warc_record(
                f"https://docs.example.org/{n}", "response", payload=io.BytesIO(html), http_headers=headers
            )
            writer.write_record(record)
            docs += 1
    return docs


class PeakMemory:
    """Samples the RSS of this process's children (the Dask workers) and of the driver: the peak of
    their sum, of the largest one alone (the per-worker figure) and of the driver."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.workers_peak, self.one_worker_peak, self.driver_peak = interval, 0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            sizes = []
            for child in me.children(recursive=True):
                try:
                    sizes.append(child.memory_info().rss)
                except psutil.Error:
                    continue
            self.workers_peak = max(self.workers_peak, sum(sizes))
            self.one_worker_peak = max(self.one_worker_peak, *sizes, 0)
            self.driver_peak = max(self.driver_peak, me.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def measured(row: dict[str, Any], mb: float, docs: int) -> Iterator[None]:
    """Fill `row` with wall time, throughput and peak memory of the block."""
    start = time.perf_counter()
    with PeakMemory() as memory:
        yield
    wall = time.perf_counter() - start
    row.update(
        mb=round(mb, 1),
        docs=docs,
        wall_s=round(wall, 2),
        mb_per_s=round(mb / wall, 2),
        docs_per_s=round(docs / wall, 1),
        peak_rss_workers_mb=round(memory.workers_peak / MB),
        peak_rss_driver_mb=round(memory.driver_peak / MB),
    )


LOAD_CASES = {"jsonl": (write_jsonl_corpus, "corpus.jsonl"), "warc": (write_warc_corpus, "corpus.warc.gz")}


def bench_load(
    size_mb: float, workdir: Path, client: Any, cases: tuple[str, ...] = tuple(LOAD_CASES)
) -> list[dict[str, Any]]:
    from tokenmill.corpus.ingest.load import LoadParams, run_load
    from tokenmill.corpus.store.versions import Store

    texts = real_texts()
    rows = []
    for case in cases:
        writer, name = LOAD_CASES[case]
        path = workdir / name
        docs = writer(path, texts, size_mb)
        store = Store(str(workdir / f"store-{case}"))
        row: dict[str, Any] = {"step": "load", "case": case, "input_file_mb": round(path.stat().st_size / MB, 1)}
        with measured(row, size_mb, docs):
            version = run_load(store, LoadParams(paths=[str(path)]), client)
        assert version.manifest.stats["docs_out"] == docs, "every generated doc must be loaded"
        rows.append(row)
    return rows


def step_benches() -> dict[str, Any]:
    """`bench(size_mb, workdir, client)` of every `bench/bench_<step>.py`, load first."""
    benches: dict[str, Any] = {"load": bench_load}
    for path in sorted(BENCH_DIR.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module  # so worker processes a bench spawns can import it by name
        spec.loader.exec_module(module)
        benches[path.stem.removeprefix("bench_")] = module.bench
    return benches


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = ["step", "case", "mb", "docs", "wall_s", "mb_per_s", "docs_per_s", "peak_rss_workers_mb"]
    table = Table(*columns, title="tokenmill benchmarks")
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=200, help="input size per case (default 200)")
    parser.add_argument("--steps", default="", help="comma-separated steps (default: all benchmarks)")
    parser.add_argument("--workers", type=int, default=None, help="Dask workers (default: cores)")
    parser.add_argument("--workdir", default=None, help="where inputs and stores go (default: a temp dir)")
    parser.add_argument("--load-cases", default="jsonl,warc", help="load inputs to time: jsonl, warc or both")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()

    from tokenmill.corpus.store.runtime import DaskSettings, dask_client

    benches = step_benches()
    load_cases = tuple(c.strip() for c in args.load_cases.split(",") if c.strip())
    if not set(load_cases) <= set(LOAD_CASES):
        sys.exit(f"error: --load-cases takes {', '.join(LOAD_CASES)}")
    benches["load"] = functools.partial(bench_load, cases=load_cases)
    chosen = [s.strip() for s in args.steps.split(",") if s.strip()] or list(benches)
    unknown = [s for s in chosen if s not in benches]
    if unknown:
        sys.exit(f"error: no benchmark for {unknown[0]}; known: {', '.join(benches)}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp, dask_client(DaskSettings(n_workers=args.workers)) as client:
        workers = len(client.scheduler_info()["workers"])
        for step in chosen:
            workdir = Path(tmp) / step
            workdir.mkdir()
            for row in benches[step](args.size_mb, workdir, client):
                row["workers"] = workers
                rows.append(row)
    print_table(rows)
    print(json.dumps(rows, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
