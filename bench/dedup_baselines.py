"""The peers `bench_dedup.py --compare` runs beside `tokenmill run dedup`, each as one whole command.

    python bench/dedup_baselines.py {datasketch,rensa} INPUT.jsonl OUTPUT.json [--threshold 0.8]

Both read the JSONL, shingle each text as tokenmill does (normalized 5-word shingles), build
128-permutation MinHash signatures, put them in an LSH index at the threshold, and cluster the
candidate pairs (union-find, smallest source kept): datasketch as its README shows
(`MinHash.bulk`, `MinHashLSH`, every candidate a duplicate), rensa as its README shows
(`RMinHash`, `RMinHashLSH`, candidates kept where the estimated Jaccard reaches the threshold).
The output maps every removed doc's source to the source kept in its place. rensa is installed
for the bench only (`pip install rensa`), never a tokenmill dependency.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tokenmill.corpus.dedup.minhash import normalize, shingles

NUM_PERM = 128
NGRAM = 5


def read(path: Path) -> tuple[list[str], list[list[bytes]]]:
    sources, shingled = [], []
    with path.open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            sources.append(record["url"])
            shingled.append(shingles(normalize(record["text"]), NGRAM))
    return sources, shingled


def survivors(sources: list[str], pairs: list[tuple[int, int]]) -> dict[str, str]:
    """{removed source: kept source} from the duplicate pairs: the smallest source of each component."""
    parent = list(range(len(sources)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for i in range(len(sources)):
        members.setdefault(root(i), []).append(i)
    removed = {}
    for group in members.values():
        kept = min(group, key=lambda i: sources[i])
        removed.update({sources[i]: sources[kept] for i in group if i != kept})
    return removed


def datasketch_pairs(shingled: list[list[bytes]], threshold: float) -> list[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    signatures = MinHash.bulk(shingled, num_perm=NUM_PERM)
    for i, signature in enumerate(signatures):
        lsh.insert(i, signature)
    return [(i, j) for i, signature in enumerate(signatures) for j in lsh.query(signature) if j > i]


def rensa_pairs(shingled: list[list[bytes]], threshold: float) -> list[tuple[int, int]]:
    from rensa import RMinHash, RMinHashLSH

    lsh = RMinHashLSH(threshold=threshold, num_perm=NUM_PERM, num_bands=16)
    signatures = []
    for i, items in enumerate(shingled):
        signature = RMinHash(num_perm=NUM_PERM, seed=42)
        signature.update([s.decode("utf-8", "surrogatepass") for s in items])
        lsh.insert(i, signature)
        signatures.append(signature)
    return [(i, j) for i, signature in enumerate(signatures) for j in lsh.query(signature)
            if j > i and signature.jaccard(signatures[j]) >= threshold]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tool", choices=["datasketch", "rensa"])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    sources, shingled = read(args.input)
    find = datasketch_pairs if args.tool == "datasketch" else rensa_pairs
    args.output.write_text(json.dumps(survivors(sources, find(shingled, args.threshold))), encoding="utf-8")


if __name__ == "__main__":
    main()
