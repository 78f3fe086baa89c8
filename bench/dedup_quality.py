"""Labelled near-duplicate benchmark: precision, recall and F1 of the dedup step on real text.

Real docs (the installed Python's docstrings) get one variant each, edited until its true
shingle Jaccard with the original is near a target (0.5 to 0.95, most of them close to the
0.8 threshold, or an exact copy) by one of: word substitutions, insertions, deletions,
paragraph reordering, line shuffles, truncation of the end, appended boilerplate. A pair is a
true duplicate when its true Jaccard reaches the threshold and predicted one when dedup puts
both docs in one cluster. Scores: precision, recall and F1 over the pairs and per band of
true Jaccard, and every removed doc checked against the doc that survived it.

    python bench/dedup_quality.py [--docs 300] [--threshold 0.8]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from tokenmill.corpus.dedup.minhash import normalize, shingles
from tokenmill.corpus.dedup.step import DedupParams, run_dedup
from tokenmill.corpus.ingest import pydocs
from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.store.versions import Store

TARGETS = [0.5, 0.7, 0.75, 0.78, 0.82, 0.85, 0.88, 0.9, 0.95, 1.0]
EDITS = ["substitute", "insert", "delete", "reorder", "shuffle", "truncate", "boilerplate"]
JACCARD_BANDS = [(0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 1.01)]
BOILERPLATE = "Copyright the authors. All rights reserved. Licensed under the terms in LICENSE; see the website."
MIN_WORDS = 150
MAX_WORDS = 1500


def real_texts(count: int, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> list[str]:
    """Up to `count` module docs of `min_words` to `max_words` words, in module order."""
    texts = []
    for _, text, _ in pydocs.iter_module_docs(pydocs.module_files(), budget=2**62):
        if text and min_words <= len(text.split()) <= max_words:
            texts.append(text)
        if len(texts) >= count:
            break
    return texts


def jaccard(a: str, b: str, ngram: int = 5) -> float:
    sa, sb = set(shingles(normalize(a), ngram)), set(shingles(normalize(b), ngram))
    return len(sa & sb) / max(len(sa | sb), 1)


def edited(text: str, kind: str, amount: int, rng: random.Random) -> str:
    """`text` with `amount` edits of one kind; paragraphs are kept for reordering."""
    if kind == "reorder":
        paragraphs = text.split("\n\n")
        moved = paragraphs[:]
        for _ in range(amount):
            i, j = rng.randrange(len(moved)), rng.randrange(len(moved))
            moved[i], moved[j] = moved[j], moved[i]
        return "\n\n".join(moved)
    if kind == "boilerplate":
        return text + ("\n" + BOILERPLATE) * amount
    if kind == "shuffle":
        lines = text.split("\n")
        for _ in range(amount):
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    words = text.split(" ")
    if kind == "truncate":
        return " ".join(words[: max(1, len(words) - amount)])
    for _ in range(amount):
        i = rng.randrange(len(words))
        if kind == "substitute":
            words[i] = f"edit{rng.randrange(10**6)}"
        elif kind == "insert":
            words.insert(i, f"added{rng.randrange(10**6)}")
        elif len(words) > 1:
            del words[i]
    return " ".join(words)


def variant(text: str, target: float, kind: str, seed: int) -> tuple[str, float]:
    """A variant whose true Jaccard is the closest found to `target` (an exact copy for 1.0).

    Edits with one seed are cumulative, so Jaccard falls with the amount and a bisection finds
    it. Paragraph reordering and boilerplate change few shingles, so they come with substitutions.
    """
    if target >= 1.0:
        return text, 1.0

    def make(amount: int) -> tuple[str, float]:
        rng = random.Random(seed)
        candidate = edited(text, kind, amount, rng)
        if kind in ("reorder", "shuffle", "boilerplate"):
            candidate = edited(candidate, "substitute", amount, rng)
        return candidate, jaccard(text, candidate)

    lo, hi = 1, max(2, len(text.split()))
    while lo < hi:
        mid = (lo + hi) // 2
        if make(mid)[1] <= target:
            hi = mid
        else:
            lo = mid + 1
    options = [make(lo), make(max(1, lo - 1))]
    return min(options, key=lambda option: abs(option[1] - target))


def labelled_corpus(texts: list[str]) -> tuple[list[dict[str, str]], list[tuple[str, str, float]]]:
    """(JSONL records, pairs of (original url, variant url, true Jaccard))."""
    records, pairs = [], []
    for i, text in enumerate(texts):
        target, kind = TARGETS[i % len(TARGETS)], EDITS[(i // len(TARGETS)) % len(EDITS)]
        copy, j = variant(text, target, kind, seed=i)
        original_url, copy_url = f"https://docs.example.org/{i}", f"https://docs.example.org/{i}/variant"
        records += [{"text": text, "url": original_url}, {"text": copy, "url": copy_url}]
        pairs.append((original_url, copy_url, j))
    return records, pairs


def clusters_by_source(store: Store, vid: str) -> tuple[dict[str, str], set[str]]:
    """(the source of the doc each doc's cluster kept, itself for a kept doc; the sources kept)."""
    kept = store.read_docs(vid, columns=["id", "source"]).compute()
    survivor = dict(zip(kept["source"], kept["source"]))
    if store.files(vid, "rejected"):
        source_of = dict(zip(kept["id"], kept["source"]))
        rejected = store.read_docs(vid, columns=["source", "duplicate_of"], kind="rejected").compute()
        survivor.update((src, source_of[dup]) for src, dup in zip(rejected["source"], rejected["duplicate_of"]))
    return survivor, set(kept["source"])


def unlike_survivors(texts: dict[str, str], survivor: dict[str, str], threshold: float) -> int:
    """Removed docs whose true Jaccard with the doc kept in their place is below the threshold: docs
    removed through a chain of pairs for a doc they do not resemble."""
    return sum(kept != src and jaccard(texts[src], texts[kept]) < threshold for src, kept in survivor.items())


def pairs_lost(pairs: list[tuple[str, str, float]], texts: dict[str, str], survivor: dict[str, str],
               threshold: float) -> int:
    """True pairs with both docs removed, neither for a doc it resembles: content the corpus lost (a
    pair removed for a third doc both resemble, a real near-duplicate among the originals, is not)."""
    def lost(src: str) -> bool:
        return src in survivor and jaccard(texts[src], texts[survivor[src]]) < threshold

    return sum(lost(o) and lost(c) for o, c, j in pairs if j >= threshold)


def band_scores(pairs: list[tuple[str, str, float]], cluster: dict[str, str], threshold: float) -> list[dict[str, Any]]:
    """Per band of true Jaccard: the pairs, how many were merged, and the band's precision (merges
    that are true), recall (true pairs merged) and F1."""
    rows = []
    for low, high in JACCARD_BANDS:
        band = [(cluster[o] == cluster[c], j >= threshold) for o, c, j in pairs if low <= j < high]
        if not band:
            continue
        tp = sum(m and t for m, t in band)
        merged, true = sum(m for m, _ in band), sum(t for _, t in band)
        precision, recall = (tp / merged if merged else 1.0), (tp / true if true else 1.0)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"jaccard": f"[{low:.2f}, {min(high, 1.0):.2f}{']' if high > 1 else ')'}", "pairs": len(band),
                     "merged": merged, "precision": round(precision, 4), "recall": round(recall, 4),
                     "f1": round(f1, 4)})
    return rows


def band_recall(pairs: list[tuple[str, str, float]], cluster: dict[str, str], low: float, high: float) -> float | None:
    """The share of the labelled pairs with low <= true Jaccard < high that landed in one cluster."""
    band = [cluster[o] == cluster[c] for o, c, j in pairs if low <= j < high]
    return round(sum(band) / len(band), 4) if band else None


def score(pairs: list[tuple[str, str, float]], cluster: dict[str, str], threshold: float,
          kept: set[str]) -> dict[str, Any]:
    """Precision, recall and F1 over the labelled pairs, recall in the bands just above the threshold,
    true pairs with both docs removed (a true cluster lost), and the merge rate per true-Jaccard band."""
    tp = fp = fn = 0
    bands: dict[str, list[int]] = {}
    for original, copy, j in pairs:
        merged = cluster[original] == cluster[copy]
        truth = j >= threshold
        tp, fp, fn = tp + (merged and truth), fp + (merged and not truth), fn + (truth and not merged)
        band = f"{min(int(j * 20) / 20, 1.0):.2f}"
        bands.setdefault(band, [0, 0])
        bands[band][0] += merged
        bands[band][1] += 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {
        "pairs": len(pairs),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "merged_below_0.5": sum(cluster[o] == cluster[c] for o, c, j in pairs if j < 0.5),
        "recall_0.80_0.90": band_recall(pairs, cluster, 0.8, 0.9),
        "recall_0.90_1.00": band_recall(pairs, cluster, 0.9, 1.01),
        "true_pairs_fully_removed": sum(o not in kept and c not in kept for o, c, j in pairs if j >= threshold),
        "merge_rate_by_jaccard": {k: f"{v[0]}/{v[1]}" for k, v in sorted(bands.items())},
        "by_band": band_scores(pairs, cluster, threshold),
    }


def run_quality(texts: list[str], workdir: Path, client: Any, params: DedupParams) -> dict[str, Any]:
    """Dedup the labelled corpus of `texts` and score it: at params.threshold, and on pairs at J >= 0.9."""
    records, pairs = labelled_corpus(texts)
    path = workdir / "quality.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    store = Store(str(workdir / "store"))
    loaded = run_load(store, LoadParams(paths=[str(path)], source_field="url"), client)
    version = run_dedup(store, params, client, input_version=loaded.id)
    cluster, kept = clusters_by_source(store, version.id)
    high = [p for p in pairs if p[2] >= 0.9 or p[2] < 0.5]
    texts = {r["url"]: r["text"] for r in records}
    return {"at_threshold": {**score(pairs, cluster, params.threshold, kept),
                             "removed_for_an_unlike_survivor": unlike_survivors(texts, cluster, params.threshold)},
            "pairs_at_0.9": score(high, cluster, 0.9, kept)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from tokenmill.corpus.store.runtime import DaskSettings, dask_client

    with tempfile.TemporaryDirectory() as tmp, dask_client(DaskSettings(n_workers=args.workers)) as client:
        result = run_quality(real_texts(args.docs), Path(tmp), client, DedupParams(threshold=args.threshold))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
