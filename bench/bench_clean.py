"""Clean throughput on real text (the installed Python's docstrings), with a share of mojibake.

Reports MB/s and docs/s of the whole step, and the share of docs that took ftfy's slow path.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import time
from typing import Any

from tokenmill.corpus.clean.step import CleanParams, run_clean
from tokenmill.corpus.ingest import pydocs
from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.store.versions import Store

MOJIBAKE_EVERY = 20  # one doc in 20 is UTF-8 read as cp1252, as on messy web crawls


def write_corpus(path: pathlib.Path, size_mb: float, mojibake_every: int = MOJIBAKE_EVERY) -> int:
    """JSONL of module docs up to `size_mb`, one doc in `mojibake_every` garbled (0: none); returns docs."""
    budget, docs = int(size_mb * 2**20), 0
    # cycle() keeps the docs of its first pass, so the modules are parsed once however large the corpus.
    texts = itertools.cycle(text for _, text, _ in pydocs.iter_module_docs(pydocs.module_files(), 2**62) if text)
    with path.open("w", encoding="utf-8") as f:
        while budget > 0:
            text = next(texts)
            if mojibake_every and docs % mojibake_every == 0:
                text = text.encode("utf-8").decode("latin-1")
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
            docs += 1
            budget -= len(text.encode())
    return docs


def bench(size_mb: float, workdir: pathlib.Path, client: Any) -> list[dict]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "clean-input.jsonl"
    write_corpus(path, size_mb)
    store = Store(str(workdir / "store"))
    loaded = run_load(store, LoadParams(paths=[str(path)], chunk_mb=max(size_mb / 8, 1)), client)
    start = time.perf_counter()
    version = run_clean(store, CleanParams(), client, input_version=loaded.id, force=True)
    wall = time.perf_counter() - start
    stats = store.read_json(version.id, "stats.json")
    row = result_row("clean", "pydocs+5%mojibake", stats, wall, client)
    row["ftfy_called_frac"] = round(stats["counters"].get("docs_ftfy_called", 0) / max(stats["docs_in"], 1), 3)
    return [row]


def result_row(step: str, case: str, stats: dict, wall: float, client: Any) -> dict:
    """The bench row of a docs step from its stats.json; per-worker MB/s is the per-core figure."""
    mb = stats["bytes_in"] / 2**20
    workers = len(client.scheduler_info()["workers"])
    return {
        "step": step,
        "case": case,
        "mb": round(mb, 2),
        "docs": stats["docs_in"],
        "wall_s": round(wall, 3),
        "mb_per_s": round(mb / wall, 2),
        "docs_per_s": round(stats["docs_in"] / wall, 1),
        "workers": workers,
        "mb_per_s_per_worker": round(mb / wall / workers, 2),
    }
