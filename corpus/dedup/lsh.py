"""LSH banding arithmetic: the (bands, rows) datasketch would choose, and the S-curve they give.

Kept apart from the signatures and free of scipy, so settings resolve (and version ids are
named) without importing the signing code.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def _legendre(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes exact for polynomials up to degree num_perm (the highest in an S-curve)."""
    return np.polynomial.legendre.leggauss(num_perm // 2 + 1)


def _integral(f: Callable[[np.ndarray], np.ndarray], low: float, high: float, num_perm: int) -> float:
    nodes, weights = _legendre(num_perm)
    half = (high - low) / 2
    return float(half * (f(half * nodes + (high + low) / 2) @ weights))


@lru_cache(maxsize=64)
def optimal_bands(
    threshold: float, num_perm: int, false_positive_weight: float = 0.5, false_negative_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted areas of false positives below the threshold and false
    negatives above it: datasketch's `MinHashLSH` routine, whose integrals (of polynomials of
    degree bands x rows) a Gauss-Legendre rule computes exactly instead of `scipy.integrate.quad`."""
    best, chosen = float("inf"), (0, 0)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            def candidate(s: np.ndarray, b: int = bands, r: int = rows) -> np.ndarray:
                return 1.0 - (1.0 - s ** float(r)) ** float(b)

            false_positive = _integral(candidate, 0.0, threshold, num_perm)
            false_negative = _integral(lambda s: 1.0 - candidate(s), threshold, 1.0, num_perm)
            error = false_positive * false_positive_weight + false_negative * false_negative_weight
            if error < best:
                best, chosen = error, (bands, rows)
    return chosen


def s_curve(similarity: float, bands: int, rows: int) -> float:
    """Probability that two docs of this Jaccard similarity share at least one band bucket."""
    return 1.0 - (1.0 - similarity**rows) ** bands
