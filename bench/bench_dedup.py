"""Dedup throughput: MinHash signatures beside `datasketch.MinHash.bulk`, the whole step, and
(`--compare`) the whole `tokenmill run dedup` command beside datasketch and rensa.

Signatures are timed in this process (one core) from the same texts both ways, normalization
and shingling included, so the ratio is the per-core speedup. The whole step (read, shingle, sign, band, shuffle,
components, write) runs on the cluster over real text with injected exact and near copies.

`--compare` builds the labelled corpus of `dedup_quality.py` from every module doc of the
installed Python and packages (each doc and one edited variant; cached under the temp folder),
loads it, then times as whole commands in one run: `tokenmill run dedup` (fresh, then cached,
then again with a Prefect server already running), and datasketch's and rensa's MinHash LSH
(`dedup_baselines.py`), each scored on the same labels.

    python bench/bench_dedup.py [--size-mb 20]
    python bench/bench_dedup.py --compare [--docs 8000]
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import random
import sys
import tempfile
import time
from typing import Any

import numpy as np
from datasketch import MinHash

from tokenmill.corpus.dedup.step import DedupParams, minhash, run_dedup
from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.store.versions import Store
from tokenmill.flows.api import EarlyAPI

COPY_EVERY = 10  # one doc in 10 is followed by an exact copy, one in 10 by a 2%-edited copy
SIGNATURE_SAMPLE_MB = 4
# Fixed input partition size, so peak memory per worker compares across corpus sizes (it scales
# with the partition, not the corpus: 416 vs 426 MB per worker at 25 vs 100 MB, measured).
PART_MB = 4


def _sibling(name: str) -> Any:
    """Another bench module by file name (bench/ is a folder of scripts, not a package)."""
    path = pathlib.Path(__file__).resolve().parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_corpus(path: pathlib.Path, texts: list[str], size_mb: float) -> tuple[int, list[str]]:
    """JSONL of real docs cycled to `size_mb` (each copy numbered), with injected duplicates."""
    rng = random.Random(0)
    written, n, docs = 0, 0, []
    with path.open("w", encoding="utf-8") as f:
        while written < size_mb * 2**20:
            text = f"[{n}] {texts[n % len(texts)]}"
            extra = []
            if n % COPY_EVERY == 0:
                extra.append(text)
            elif n % COPY_EVERY == 1:
                words = text.split(" ")
                extra.append(" ".join(w if rng.random() > 0.02 else "edited" for w in words))
            for i, doc in enumerate([text, *extra]):
                f.write(json.dumps({"text": doc, "url": f"https://docs.example.org/{n}/{i}"}) + "\n")
                written += len(doc.encode())
                docs.append(doc)
            n += 1
    return len(docs), docs


def signature_rows(docs: list[str], params: DedupParams, label: str = "") -> list[dict]:
    """Vectorized signatures and MinHash.bulk on the same shingles, one core each; `label` tags the case."""
    sample, total = [], 0
    for doc in docs:
        sample.append(doc)
        total += len(doc.encode())
        if total >= SIGNATURE_SAMPLE_MB * 2**20:
            break
    mb = total / 2**20
    start = time.perf_counter()
    buffer, ends = minhash.normalized_batch(sample, True, params.normalize_digits)
    starts, stops, counts = minhash.shingle_spans(buffer, ends, params.ngram)
    hashes = minhash.hash_spans(buffer, starts, stops, minhash.width_of(params.scheme))
    sigs = minhash.signatures(hashes, counts, params.num_perm, params.seed, params.scheme)
    vectorized = time.perf_counter() - start
    start = time.perf_counter()
    shingled = [minhash.shingles(minhash.normalize(d, True, params.normalize_digits), params.ngram) for d in sample]
    bulk = MinHash.bulk(shingled, num_perm=params.num_perm, seed=params.seed, scheme=params.scheme)
    reference = time.perf_counter() - start
    if not all(np.array_equal(m.hashvalues, row) for m, row in zip(bulk, sigs)):
        raise RuntimeError("vectorized signatures differ from MinHash.bulk")
    rows = []
    for case, wall in (("signatures vectorized", vectorized), ("signatures MinHash.bulk", reference)):
        rows.append(
            {
                "step": "dedup",
                "case": f"{case}{label}",
                "mb": round(mb, 2),
                "docs": len(sample),
                "wall_s": round(wall, 3),
                "mb_per_s": round(mb / wall, 2),
                "docs_per_s": round(len(sample) / wall, 1),
                "workers": 1,
                "mb_per_s_per_worker": round(mb / wall, 2),
                "speedup_vs_bulk": round(reference / wall, 2),
            }
        )
    return rows


def bench(size_mb: float, workdir: pathlib.Path, client: Any) -> list[dict]:
    workdir.mkdir(parents=True, exist_ok=True)
    texts = _sibling("dedup_quality").real_texts(2000, min_words=20, max_words=20_000)
    path = workdir / "dedup-input.jsonl"
    _, docs = write_corpus(path, texts, size_mb)
    params = DedupParams()
    # The corpus sample repeats some docs (the injected copies); the distinct texts show the rate without them.
    rows = [*signature_rows(docs, params), *signature_rows(texts, params, " (distinct texts)")]
    store = Store(str(workdir / "store"))
    loaded = run_load(store, LoadParams(paths=[str(path)], source_field="url", chunk_mb=PART_MB), client)
    start = time.perf_counter()
    with _sibling("run").PeakMemory() as memory:
        version = run_dedup(store, params, client, input_version=loaded.id, force=True)
    wall = time.perf_counter() - start
    stats = store.read_json(version.id, "stats.json")
    row = _sibling("bench_clean").result_row("dedup", "whole step (exact + minhash)", stats, wall, client)
    row.update(
        exact_removed=stats["exact_removed"],
        near_removed=stats["near_removed"],
        bands_x_rows=f"{stats['bands']}x{stats['rows']}",
        components_method=stats["components_method"],
        peak_rss_per_worker_mb=round(memory.one_worker_peak / 2**20),
    )
    rows.append(row)
    return rows


def labelled_input(docs: int) -> tuple[pathlib.Path, list[tuple[str, str, float]], dict[str, str]]:
    """(JSONL, labelled pairs, text by source) of `docs` real docs and their variants, made once per size."""
    quality = _sibling("dedup_quality")
    cache = pathlib.Path(tempfile.gettempdir()) / "tokenmill-bench" / f"dedup-compare-{docs}"
    path, labels = cache / "input.jsonl", cache / "pairs.json"
    if not labels.exists():
        cache.mkdir(parents=True, exist_ok=True)
        records, pairs = quality.labelled_corpus(quality.real_texts(docs, min_words=50, max_words=20_000))
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        labels.write_text(json.dumps(pairs), encoding="utf-8")
    texts = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            texts[record["url"]] = record["text"]
    return path, [tuple(p) for p in json.loads(labels.read_text())], texts


def compare(docs: int, threshold: float, workers: int, workdir: pathlib.Path) -> list[dict]:
    """The whole commands on one labelled input, each with its wall and its scores."""
    quality, run = _sibling("dedup_quality"), _sibling("run")
    timed = run.timed
    path, pairs, texts = labelled_input(docs)
    mb = path.stat().st_size / 2**20
    tokenmill = [sys.executable, "-c", "from tokenmill.flows.cli import main; main()"]
    store = ["--store", str(workdir / "store"), "--set", f"dask.n_workers={workers}", "--json"]
    _, out = timed([*tokenmill, "run", "load", *store, "--set", f"load.paths=['{path}']",
                    "--set", "load.source_field=url"])
    loaded = json.loads(out)["load"]
    rows = []

    def row(tool: str, wall: float, survivor: dict[str, str]) -> dict:
        cluster = {source: survivor.get(source, source) for source in texts}
        kept = {source for source in texts if source not in survivor}
        scores = quality.score(pairs, cluster, threshold, kept)
        return {"tool": tool, "docs": len(texts), "mb": round(mb, 1), "wall_s": round(wall, 2),
                **{k: scores[k] for k in ("precision", "recall", "f1", "recall_0.80_0.90", "recall_0.90_1.00",
                                          "true_pairs_fully_removed")},
                "removed": len(survivor),
                "true_pairs_lost": quality.pairs_lost(pairs, texts, survivor, threshold),
                "removed_for_an_unlike_survivor": quality.unlike_survivors(texts, cluster, threshold),
                "by_band": scores["by_band"]}

    dedup = [*tokenmill, "run", "dedup", "--from", loaded, *store, "--set", f"dedup.threshold={threshold}"]
    wall, out = timed(dedup)
    vid = json.loads(out)["dedup"]
    survivor, _ = quality.clusters_by_source(Store(str(workdir / "store")), vid)
    rows.append(row("tokenmill run dedup", wall, {s: k for s, k in survivor.items() if s != k}))
    cached_wall, _ = timed(dedup)
    rows.append({"tool": "tokenmill run dedup (cached)", "wall_s": round(cached_wall, 2)})
    with EarlyAPI() as api:  # a Prefect server already running, as for deployments: PREFECT_API_URL set
        api.wait_until_answering()
        wall, _ = timed([*dedup, "--force"], env={"PREFECT_API_URL": api.url})
    rows.append({"tool": "tokenmill run dedup (Prefect server running)", "wall_s": round(wall, 2)})
    with run.daemon_running(workers, workdir) as env:  # `tokenmill daemon start` before: the command, then a rerun
        daemon = [*run.TOKENMILL, *dedup[len(tokenmill):], "--force"]
        walls = [timed(daemon, env)[0] for _ in range(2)]
    rows.append({"tool": "tokenmill run dedup (daemon running)", "wall_s": round(walls[0], 2),
                 "rerun_wall_s": round(walls[1], 2)})
    for tool in ("datasketch", "rensa"):
        output = workdir / f"{tool}.json"
        wall, _ = timed([sys.executable, str(pathlib.Path(__file__).parent / "dedup_baselines.py"), tool, str(path),
                         str(output), "--threshold", str(threshold)])
        rows.append(row(tool, wall, json.loads(output.read_text())))
    return rows


if __name__ == "__main__":
    import argparse

    from tokenmill.corpus.store.runtime import DaskSettings, dask_client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compare", action="store_true", help="whole commands beside datasketch and rensa")
    parser.add_argument("--docs", type=int, default=8000, help="--compare: real docs (each with one variant)")
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.compare:
            results = compare(args.docs, args.threshold, args.workers, pathlib.Path(tmp))
        else:
            with dask_client(DaskSettings(n_workers=args.workers)) as dask:
                results = bench(args.size_mb, pathlib.Path(tmp), dask)
        for result in results:
            print(json.dumps(result))
