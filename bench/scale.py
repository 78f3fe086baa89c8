"""Does the driver stay flat as the corpus grows? Driver memory and time per doc at two sizes.

    python bench/scale.py [--docs 250000,1000000] [--workers 2] [--merge-parts 10000] [--json out.json]

A synthetic corpus of short real-looking docs (3-12 sentences drawn from the pydoc topics that
ship with Python, on 5,000 domains; 4% exact and 4% near copies), in JSONL files of 20,000
docs, goes through load → clean → dedup → filter → tokenizer → pack, each size in a fresh
driver process with a LocalCluster of `--workers` worker processes. Per step: wall time,
microseconds per doc, and the peak RSS of the driver process alone (its workers are not
counted), sampled every 50 ms. Targets (issue 16): the driver's peak grows < 10% from the
small to the large size, time per doc within 1.2x. Also times the merge of `--merge-parts` parts' stats (target < 5 s).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import psutil
from run import MB, PeakMemory

DOCS_PER_FILE = 20_000
DOMAINS = 5_000
STEPS = ["load", "clean", "dedup", "filter", "tokenizer", "pack"]


def sentences() -> list[str]:
    """Real English sentences: the pydoc topics cut at full stops."""
    from pydoc_data.topics import topics

    found = []
    for text in topics.values():
        for piece in " ".join(text.split()).split(". "):
            if 40 <= len(piece) <= 300 and piece[0].isalpha():
                found.append(piece.rstrip(".") + ".")
    return found


def write_corpus(folder: Path, n_docs: int, seed: int = 0) -> list[str]:
    """JSONL files of `n_docs` docs; returns their paths."""
    rng = random.Random(seed)
    pool = sentences()
    folder.mkdir(parents=True, exist_ok=True)
    paths, recent = [], []
    for start in range(0, n_docs, DOCS_PER_FILE):
        path = folder / f"docs-{start // DOCS_PER_FILE:05d}.jsonl"
        with path.open("wb") as f:
            for n in range(start, min(start + DOCS_PER_FILE, n_docs)):
                roll = rng.random()
                if recent and roll < 0.04:
                    text = rng.choice(recent)
                elif recent and roll < 0.08:
                    words = rng.choice(recent).split()
                    words[rng.randrange(len(words))] = rng.choice(["river", "engine", "window", "garden"])
                    text = " ".join(words)
                else:
                    text = " ".join(rng.choices(pool, k=rng.randint(3, 12)))
                    recent = (recent + [text])[-1000:]
                url = f"https://site{rng.randrange(DOMAINS)}.example.org/page/{n}"
                f.write(orjson.dumps({"id": f"doc-{n}", "text": text, "url": url}) + b"\n")
        paths.append(str(path))
    return paths


def run_steps(store: Any, client: Any, paths: list[str], label: Any) -> list[dict[str, Any]]:
    """Every step once, in order, on `store` with `client`; a row per step (printed as it ends)."""
    from tokenmill.corpus.clean.step import CleanParams, run_clean
    from tokenmill.corpus.dedup.step import DedupParams, run_dedup
    from tokenmill.corpus.filter.params import FilterParams
    from tokenmill.corpus.filter.step import run_filter
    from tokenmill.corpus.ingest.load import LoadParams, run_load
    from tokenmill.tokenize.pack import PackParams, run_pack
    from tokenmill.tokenize.trainer import TokenizerParams, run_tokenizer

    docs, tokenizer = None, None
    calls = {
        "load": lambda: run_load(store, LoadParams(paths=paths, source_field="url"), client),
        "clean": lambda: run_clean(store, CleanParams(), client, input_version=docs),
        "dedup": lambda: run_dedup(store, DedupParams(), client, input_version=docs),
        "filter": lambda: run_filter(store, FilterParams(), client, input_version=docs),
        "tokenizer": lambda: run_tokenizer(store, TokenizerParams(vocab_size=4000), client, input_version=docs),
        "pack": lambda: run_pack(store, PackParams(decontaminate=[]), client, input_version=docs,
                                 tokenizer_version=tokenizer),
    }
    rows, docs_out = [], 0
    for step in STEPS:
        baseline = psutil.Process().memory_info().rss
        started = time.perf_counter()
        with PeakMemory(interval=0.05) as peak:
            version = calls[step]()
        wall = time.perf_counter() - started
        if step == "tokenizer":
            tokenizer = version.id
        else:
            docs = version.id
        docs_in = version.manifest.stats.get("docs_in", docs_out)  # the tokenizer reads its input's docs
        docs_out = version.manifest.stats.get("docs_out", docs_out)
        rows.append({"run": label, "step": step, "docs_in": docs_in, "wall_s": round(wall, 2),
                     "us_per_doc": round(1e6 * wall / max(docs_in, 1), 1),
                     "driver_peak_mb": round(peak.driver_peak / MB), "driver_before_mb": round(baseline / MB)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def merge_seconds(parts: int, seed: int = 0) -> float:
    """Seconds to merge `parts` parts' stats the way `run_parts` does, each with as many of 100,000
    hosts as a part keeps (`top_domains`)."""
    from tokenmill.corpus.store.stats import TOP_DOMAINS, DocStats

    rng = random.Random(seed)
    hosts = [f"host{k}.example.org" for k in range(100_000)]
    pieces = []
    for _ in range(parts):
        part = DocStats(docs_in=1000, docs_out=900)
        part.domains = Counter({h: rng.randint(1, 50) for h in rng.sample(hosts, 4 * TOP_DOMAINS)})
        part.langs = Counter({"en": 880, "de": 20})
        part.rejected = {"filter:gopher.too_short": {"docs": 100, "bytes": 5000}}
        pieces.append(part)
    started = time.perf_counter()
    merged = DocStats()
    for part in pieces:
        merged = merged.merge(part)
    elapsed = time.perf_counter() - started
    assert merged.docs_in == 1000 * parts
    return elapsed


def one_size(n_docs: int, workers: int) -> list[dict[str, Any]]:
    """All steps on a corpus of `n_docs` in this process: the driver whose memory is measured."""
    from tokenmill.corpus.store.runtime import DaskSettings, dask_client
    from tokenmill.corpus.store.versions import Store

    with tempfile.TemporaryDirectory() as tmp, dask_client(DaskSettings(n_workers=workers)) as client:
        paths = write_corpus(Path(tmp) / "input", n_docs)
        return run_steps(Store(f"{tmp}/store"), client, paths, n_docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", default="250000,1000000", help="corpus sizes in docs, comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument("--merge-parts", type=int, default=10_000, help="parts whose stats are merged")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the rows as JSON here")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child: one size, in a fresh driver process
        print("ROWS " + json.dumps(one_size(args.one, args.workers)), flush=True)
        return

    merge_s = merge_seconds(args.merge_parts)
    print(f"stats merge of {args.merge_parts} parts: {merge_s:.2f} s", flush=True)
    rows = []
    for n_docs in (int(n) for n in args.docs.split(",")):
        child = subprocess.run([sys.executable, __file__, "--one", str(n_docs), "--workers", str(args.workers)],
                               capture_output=True, text=True)
        if child.returncode != 0:
            raise SystemExit(f"the {n_docs:,}-doc run failed:\n{child.stderr[-3000:]}")
        rows += json.loads(next(line for line in child.stdout.splitlines() if line.startswith("ROWS "))[5:])
    sizes = sorted({row["run"] for row in rows})
    header = "".join(f"{f'{n:,} docs':>28}" for n in sizes)
    print(f"\n{'step':<10}{header}{'peak ratio':>12}{'us/doc ratio':>14}")
    for step in STEPS:
        cells = {row["run"]: row for row in rows if row["step"] == step}
        small, large = cells[sizes[0]], cells[sizes[-1]]
        line = "".join(f"{c['wall_s']:>9.1f} s {c['us_per_doc']:>6.0f} us {c['driver_peak_mb']:>5} MB"
                       for c in (cells[n] for n in sizes))
        print(f"{step:<10}{line}{large['driver_peak_mb'] / small['driver_peak_mb']:>12.2f}"
              f"{large['us_per_doc'] / small['us_per_doc']:>14.2f}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"merge_parts": args.merge_parts, "merge_s": merge_s,
                                                    "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
