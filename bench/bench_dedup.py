"""Dedup throughput: MinHash signatures beside `datasketch.MinHash.bulk`, and the whole step.

Signatures are timed in this process (one core) from the same texts both ways, normalization
and shingling included, so the ratio is the per-core speedup. The whole step (read, shingle, sign, band, shuffle,
components, write) runs on the cluster over real text with injected exact and near copies.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import random
import time
from typing import Any

import numpy as np
from datasketch import MinHash

from tokenmill.corpus.dedup.step import DedupParams, minhash, run_dedup
from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.store.versions import Store

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


if __name__ == "__main__":
    import argparse
    import tempfile

    from tokenmill.corpus.store.runtime import DaskSettings, dask_client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, dask_client(DaskSettings(n_workers=args.workers)) as dask:
        for row in bench(args.size_mb, pathlib.Path(tmp), dask):
            print(json.dumps(row))
