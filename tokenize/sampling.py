"""Deterministic choices by a hash of the doc id, so samples and splits never depend on partitioning.

A doc's place in a sample or a split is a function of its id and a salt alone: the same doc
is chosen in every data version that contains it, on any number of workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

UNIT_BINS = 4096
LOG_SPAN = 40  # units below 2**-40 share the first bin: a corpus of 10**12 budgets still resolves


def id_keys(ids: Iterable[str], salt: str) -> np.ndarray:
    """A 64-bit key per id: blake2b of salt and id, so two salts give independent orders."""
    prefix = salt.encode() + b"\0"
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + i.encode(), digest_size=8).digest(), "little") for i in ids),
        dtype=np.uint64,
    )


def id_units(ids: Iterable[str], salt: str) -> np.ndarray:
    """A number in [0, 1) per id, uniform over ids; `u < f` picks a share f of the docs."""
    return (id_keys(ids, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def unit_histogram(units: np.ndarray, weights: np.ndarray, bins: int = UNIT_BINS) -> np.ndarray:
    """Sum of `weights` per bin of [0, 1) with geometric edges (`bin_edge`): each bin holds about
    0.7% of the units below it, so a cutoff at a bin edge meets a budget to within 0.7% whatever
    the corpus size (equal-width bins gave a corpus of 4,096 budgets a sample of its whole first bin)."""
    scaled = np.log2(np.maximum(units, 2.0**-LOG_SPAN)) / LOG_SPAN + 1.0
    index = np.clip((scaled * bins).astype(np.int64), 0, bins - 1)
    return np.bincount(index, weights=weights, minlength=bins)


def bin_edge(k: int, bins: int = UNIT_BINS) -> float:
    """The unit below which the first `k` bins lie: 0 for none, 1 for all."""
    if k <= 0:
        return 0.0
    return 1.0 if k >= bins else 2.0 ** (LOG_SPAN * (k / bins - 1.0))


def bins_within(hist: np.ndarray, budget: float) -> int:
    """How many leading bins fit in `budget`: a cutoff at that bin edge takes at most `budget`."""
    return int(np.searchsorted(np.cumsum(hist), budget, side="right"))
