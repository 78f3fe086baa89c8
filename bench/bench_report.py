"""Report generation time for a large lineage: manifests and `stats.json` only, never the data.

    python bench/bench_report.py [--docs 1000000] [--runs 20]

The store is fabricated through the real commit path (`Store.begin` / `Attempt.commit`) with
stats in the shapes the steps write (DocStats, filter signal histograms, dedup clusters, pack
shards, runs and evals), so the report reads exactly what a real lineage of that size holds.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tokenmill.corpus.store.stats import LENGTH_BINS, DocStats
from tokenmill.corpus.store.step import VersionKey, Written, commit_version
from tokenmill.corpus.store.versions import Store

MEAN_DOC_BYTES = 2_000
SIGNALS = {
    "length": ["chars", "words"],
    "gopher_quality": ["words", "mean_word_length", "symbol_word_ratio", "alpha_words_frac", "stop_words"],
    "gopher_repetition": [f"dup_{n}gram_char_frac" for n in range(5, 11)],
}
FILTER_PARAMS = {
    "filters": list(SIGNALS),
    "length": {"min_chars": 1, "max_chars": 5_000_000, "min_words": 1, "max_words": 1_000_000},
    "gopher_quality": {"min_words": 50, "max_words": 100_000, "min_mean_word_length": 3.0,
                       "max_mean_word_length": 10.0, "max_symbol_word_ratio": 0.1, "min_alpha_words_frac": 0.8,
                       "min_stop_words": 2},
    "gopher_repetition": {f"max_dup_{n}gram_char_frac": round(0.15 - 0.01 * (n - 5), 2) for n in range(5, 11)},
}


def doc_stats(rng: random.Random, docs_in: int, drops: dict[str, float]) -> DocStats:
    """A docs step's stats with `docs_in` docs, dropping the given share per reason."""
    stats = DocStats(docs_in=docs_in, bytes_in=docs_in * MEAN_DOC_BYTES)
    for reason, share in drops.items():
        docs = int(docs_in * share)
        stats.rejected[reason] = {"docs": docs, "bytes": docs * MEAN_DOC_BYTES // 2}
    stats.docs_out = docs_in - stats.docs_rejected
    stats.bytes_out = stats.bytes_in - sum(e["bytes"] for e in stats.rejected.values())
    stats.chars_out, stats.words_out = stats.bytes_out, stats.bytes_out // 6
    peak = 11
    stats.chars_hist = [int(stats.docs_out * 0.5 ** abs(k - peak)) // 2 for k in range(LENGTH_BINS)]
    stats.words_hist = [int(stats.docs_out * 0.5 ** abs(k - peak + 3)) // 2 for k in range(LENGTH_BINS)]
    stats.langs = Counter({"en": stats.docs_out * 9 // 10, "de": stats.docs_out // 20, "fr": stats.docs_out // 20})
    stats.domains = Counter({f"site{i}.example.org": rng.randint(1, 10_000) for i in range(200)})
    stats.counters = Counter({"chars_removed": rng.randint(0, 10**6)})
    return stats


def commit(store: Store, step: str, params: dict[str, Any], inputs: list[str], stats: dict[str, Any],
           headline: dict[str, Any] | None = None) -> str:
    key = VersionKey(step, f"{step}-bench", params, tuple(inputs))
    return commit_version(store, key, lambda attempt: Written([], stats, headline)).id


def docs_step(store: Store, rng: random.Random, step: str, inputs: list[str], docs_in: int,
              drops: dict[str, float], extra: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> tuple[str, int]:
    stats = doc_stats(rng, docs_in, drops)
    vid = commit(store, step, params or {"seed": rng.random()}, inputs, {**stats.to_json(), **(extra or {})},
                 stats.headline())
    return vid, stats.docs_out


def dedup_extra(rng: random.Random) -> dict[str, Any]:
    return {
        "cluster_size_histogram": {str(size): max(1, 50_000 // size**2) for size in range(2, 200)},
        "largest_clusters": [{"cluster": f"{i:016x}", "size": 5_000 - i * 100,
                              "first_lines": [f"Cookie policy of site {i}, variant {j}" for j in range(3)]}
                             for i in range(20)],
        "threshold": 0.8,
        "bands": 9,
        "rows": 13,
    }


def signal_histograms(rng: random.Random, docs: int) -> dict[str, Any]:
    edges = [round(i / 20, 2) for i in range(21)]
    out = {}
    for name, signals in SIGNALS.items():
        for signal in signals:
            counts = [rng.randint(0, docs // 10) for _ in range(len(edges) + 1)]
            out[f"{name}__{signal}"] = {"edges": edges, "counts": counts}
    return out


def fabricate_lineage(store: Store, docs: int, runs: int = 1, seed: int = 0) -> dict[str, str]:
    """Commit load → clean → dedup → signals → filter → tokenizer → pack → runs → evals; {step: id}."""
    rng = random.Random(seed)
    ids: dict[str, str] = {}
    ids["load"], n = docs_step(store, rng, "load", [], docs, {"load:empty": 0.01})
    ids["clean"], n = docs_step(store, rng, "clean", [ids["load"]], n, {"clean:empty": 0.001})
    ids["dedup"], n = docs_step(store, rng, "dedup", [ids["clean"]], n,
                                {"dedup:exact": 0.05, "dedup:minhash": 0.1}, dedup_extra(rng))
    signal_ids = [commit(store, "signals", {"key": name}, [ids["dedup"]], {"docs": n}) for name in SIGNALS]
    reasons = {f"filter:{name}.{rule}": 0.01 for name, rules in FILTER_PARAMS.items()
               if isinstance(rules, dict) for rule in rules}
    ids["filter"], n = docs_step(store, rng, "filter", [ids["dedup"], *signal_ids], n, reasons,
                                 {"signals": {"histograms": signal_histograms(rng, n)}}, FILTER_PARAMS)
    ids["tokenizer"] = commit(store, "tokenizer", {"vocab_size": 32_000}, [ids["filter"]],
                              {"vocab_size": 32_000, "chars_per_token": 4.1, "byte_fallback_share": 0.002})
    shard_tokens = {"train": [100_000_000] * 40, "val": [5_000_000]}
    ids["pack"], _ = docs_step(store, rng, "pack", [ids["filter"], ids["tokenizer"]], n, {}, {
        "tokens": sum(shard_tokens["train"]) + 5_000_000,
        "shard_tokens": shard_tokens,
        "tokens_per_doc": {"bin_edges": DocStats().to_json()["histograms"]["bin_edges"],
                           "counts": [n // 41] * LENGTH_BINS},
    })
    for r in range(runs):
        scores = {"bpb": 1.2 - r / 100, "val_loss": 3.0, "final_loss": 2.9, "tokens": 10**9, "steps": 1000}
        ids["train"] = commit(store, "train", {"seed": r}, [ids["pack"], ids["tokenizer"]], scores)
        ids["eval"] = commit(store, "eval", {"seed": r}, [ids["train"]], {"bpb": 1.21, "cloze_acc": 0.3})
    return ids


def bench(size_mb: float, workdir: Path, client: Any = None, runs: int = 20) -> list[dict[str, Any]]:
    """Time `build_report` on the pack of a lineage whose load step read `size_mb` MB (docs of 2 kB).
    The client is unused: a report runs in this process, reading a few JSON files."""
    from tokenmill.flows.report.html import build_report

    store = Store(str(workdir / "report-store"))
    docs = max(1, int(size_mb * 2**20 / MEAN_DOC_BYTES))
    ids = fabricate_lineage(store, docs, runs)
    rows = []
    for case, version in (("pack", ids["pack"]), ("eval", ids["eval"])):
        started = time.perf_counter()
        html = build_report(store, version)
        wall = time.perf_counter() - started
        rows.append({"step": "report", "case": case, "mb": round(size_mb, 1), "docs": docs,
                     "wall_s": round(wall, 3), "mb_per_s": round(size_mb / wall, 1),
                     "docs_per_s": round(docs / wall), "html_kb": round(len(html) / 1024, 1), "runs": runs})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for row in bench(args.docs * MEAN_DOC_BYTES / 2**20, Path(tmp), runs=args.runs):
            print(row)


if __name__ == "__main__":
    main()
