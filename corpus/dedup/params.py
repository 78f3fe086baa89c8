"""The dedup step's settings and the version they name: light to import, so a config resolves and
a cached version is found without the signing and clustering code (`step.py`)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from tokenmill.corpus.dedup.lsh import optimal_bands, s_curve
from tokenmill.corpus.store.settings import Settings
from tokenmill.corpus.store.versions import Store, VersionKey

STEP = "dedup"
CODE_VERSION = "dedup-v4"  # v4: a member split off its cluster never rejoins it
# Versions whose signatures carry the shingle sets that `against` decides by.
WITH_SHINGLE_SETS = ("dedup-v3", CODE_VERSION)
# How far below the threshold the LSH is tuned by default: at 0.8, 18 bands x 7 rows make a pair
# at J = 0.8 a candidate with probability 0.986 (the 9 x 13 tuned at 0.8 itself: 0.40).
CANDIDATE_MARGIN = 0.2
CURVE_POINTS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


class DedupParams(Settings):
    exact: bool = Field(default=True, description="drop exact duplicates (same normalized text) first")
    exact_strip_punctuation: bool = Field(
        default=False, description="exact dedup ignores punctuation as well as case and whitespace"
    )
    minhash: bool = Field(default=True, description="drop MinHash near-duplicates")
    ngram: int = Field(default=5, ge=1, le=64, description="words per shingle")
    normalize_digits: bool = Field(default=False, description="map every digit to 0 before shingling")
    num_perm: int = Field(default=128, ge=2, le=1024, description="MinHash permutations per signature")
    seed: int = Field(default=1, ge=0, description="datasketch MinHash seed: the permutations")
    scheme: Literal["affine32", "affine64", "legacy"] = Field(
        default="affine32", description="datasketch permutation scheme (affine32 is datasketch 2's default)"
    )
    threshold: float = Field(
        default=0.8, gt=0, lt=1, description="exact shingle Jaccard at or above which two docs are near-duplicates"
    )
    candidate_threshold: float | None = Field(
        default=None, gt=0, lt=1, description="Jaccard the LSH bands are tuned for (default: threshold - 0.2): lower "
        "finds more of the pairs just above the threshold, at the cost of more candidate pairs to check exactly"
    )
    bands: int | None = Field(default=None, ge=1, description="LSH bands; derived from candidate_threshold when unset")
    rows: int | None = Field(default=None, ge=1, description="signature rows per band; derived with bands")
    false_positive_weight: float = Field(
        default=0.5, ge=0, le=1, description="weight of false positives in bands x rows"
    )
    false_negative_weight: float = Field(
        default=0.5, ge=0, le=1, description="weight of false negatives in bands x rows"
    )
    verify: bool = Field(
        default=True, description="decide each candidate pair, and each removal against its survivor, by the exact "
        "Jaccard of the two shingle sets (off: every pair sharing a band bucket is a duplicate)"
    )
    keep: Literal["min_id", "longest", "first_seen"] = Field(
        default="min_id", description="which doc of a cluster survives: smallest id, longest text, earliest fetched_at"
    )
    against: list[str] = Field(
        default_factory=list, description="earlier dedup versions to deduplicate against; their docs always win"
    )
    single_task_docs: int = Field(
        default=200_000, ge=0, description="corpora of up to this many docs (and no `against`) are clustered in one "
        "task: about 3 KB of a worker's memory per doc, none of the fixed cost of a dozen Dask shuffles; above, "
        "by shuffles, in bounded memory whatever the size"
    )
    max_union_find_edges: int = Field(
        default=5_000_000, ge=0, description="edges up to which components are found in one task (scipy); "
        "above, by rounds of Dask joins"
    )
    shuffle_partitions: int | None = Field(
        default=None, ge=1, description="partitions of each shuffle (default: one per 100k docs, at most one per part)"
    )

    def expected_recall(self) -> list[tuple[float, float, float]]:
        """(low, high, recall) per Jaccard band of width 0.05 from the threshold up: the mean chance that
        a pair in the band becomes a candidate (the exact check then keeps every one of them)."""
        edges = np.round(np.arange(self.threshold, 1.0 + 1e-9, 0.05), 6)
        bands = []
        for low, high in zip(edges[:-1], edges[1:]):
            grid = np.linspace(low, high, 101)
            bands.append((float(low), float(high), float(np.mean(1 - (1 - grid**self.rows) ** self.bands))))
        return bands

    def settings_notes(self) -> list[str]:
        """What the LSH settings mean at this threshold: the S-curve, the recall to expect per
        Jaccard band, and what a wider LSH costs (printed by `tokenmill settings dedup`)."""
        curve = ", ".join(f"{j}: {s_curve(j, self.bands, self.rows):.3f}" for j in CURVE_POINTS)
        recall = ", ".join(f"[{low:.2f}, {high:.2f}) {r:.3f}" for low, high, r in self.expected_recall())
        return [
            f"LSH: {self.bands} bands x {self.rows} rows, tuned for J = {self.candidate_threshold}; the chance that a",
            f"pair of docs becomes a candidate (S-curve) at J {curve}.",
            f"Expected recall by true Jaccard: {recall}.",
            f"Candidates are decided by exact Jaccard >= {self.threshold}, so a wider LSH costs time, never",
            f"precision: each doc puts {self.bands} bucket rows through the shuffle, and each candidate pair is one",
            "exact check (a merge of two sorted shingle sets).",
        ]

    @model_validator(mode="after")
    def _resolve_bands(self) -> DedupParams:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("dedup.bands and dedup.rows are set together or not at all")
        if self.candidate_threshold is None:
            self.candidate_threshold = round(max(self.threshold - CANDIDATE_MARGIN, 0.05), 6)
        if self.bands is None:
            self.bands, self.rows = optimal_bands(
                self.candidate_threshold, self.num_perm, self.false_positive_weight, self.false_negative_weight
            )
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"dedup.bands x dedup.rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}")
        return self


def version_key(store: Store, params: DedupParams, *, input_version: str) -> VersionKey:
    """What names a dedup version: its settings, its input and the versions it deduplicates against
    (`store` unused: every step's key is asked for the same way, see `flows.steps`)."""
    return VersionKey.of(STEP, CODE_VERSION, params, [input_version, *params.against])
