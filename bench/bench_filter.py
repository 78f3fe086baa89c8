"""Filter throughput with every default filter: the first run (signals computed) and a
threshold-only rerun (signals reused), on real text (the installed Python's docstrings)."""

from __future__ import annotations

import pathlib
import sys
import time
from typing import Any

from tokenmill.corpus.filter import FilterParams, run_filter
from tokenmill.corpus.load import LoadParams, run_load
from tokenmill.corpus.store import Store

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from bench_clean import result_row, write_corpus  # noqa: E402  the same real-text corpus as the clean bench


def timed_row(store: Store, client: Any, case: str, params: FilterParams, input_version: str) -> dict:
    start = time.perf_counter()
    version = run_filter(store, params, client, input_version=input_version)
    wall = time.perf_counter() - start
    stats = store.read_json(version.id, "stats.json")
    row = result_row("filter", case, stats, wall, client)
    row["docs_out"] = stats["docs_out"]
    row["signals_computed"] = sum(stats["signals"]["computed_docs"].values())
    return row


def bench(size_mb: float, workdir: pathlib.Path, client: Any) -> list[dict]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "filter-input.jsonl"
    write_corpus(path, size_mb, mojibake_every=0)
    store = Store(str(workdir / "store"))
    loaded = run_load(store, LoadParams(paths=[str(path)], chunk_mb=max(size_mb / 8, 1)), client)
    defaults = FilterParams()
    stricter = FilterParams(gopher_quality={"min_words": 100})
    return [
        timed_row(store, client, "all defaults, signals computed", defaults, loaded.id),
        timed_row(store, client, "threshold change, signals reused", stricter, loaded.id),
    ]
