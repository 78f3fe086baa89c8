"""fastText's subword sums (`computeSubwords` + `pushHash` + `addSubwords`), compiled: one loop per distinct word.

The numpy form hashed every n-gram position of every word as whole-array steps and summed rows
with a bincount per dimension; a compiled loop does both in one pass with the hash in a register.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FNV_OFFSET, FNV_PRIME = np.uint32(2166136261), np.uint32(16777619)  # products are taken back to 32 bits:
# numba widens uint32 arithmetic to 64 bits


def bucket_bits(bucket_rows: np.ndarray) -> np.ndarray:
    """Bit b of word b // 64 set where bucket b has an input row (`bucket_rows[b] >= 0`)."""
    bits = np.zeros((len(bucket_rows) + 63) // 64, dtype=np.uint64)
    kept = np.flatnonzero(bucket_rows >= 0).astype(np.uint64)
    np.bitwise_or.at(bits, (kept >> np.uint64(6)).astype(np.int64), np.uint64(1) << (kept & np.uint64(63)))
    return bits


@njit(cache=True)
def signed(byte: np.uint8) -> np.uint32:
    """fastText hashes its (signed) chars sign-extended to uint32; released models depend on it."""
    return np.uint32(np.int32(np.int8(byte)))


@njit(cache=True)
def add_row(sums: np.ndarray, w: int, rows: np.ndarray, row: int) -> None:
    """sums[w] += rows[row], element by element (a slice expression would allocate a temporary)."""
    for k in range(rows.shape[1]):
        sums[w, k] += rows[row, k]


@njit(cache=True)
def subword_sums(
    raw: np.ndarray,
    bounds: np.ndarray,
    word_rows: np.ndarray,
    minn: int,
    maxn: int,
    bucket_rows: np.ndarray,
    bucket_bits: np.ndarray,
    rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per word `raw[bounds[i]:bounds[i + 1]]`: the sum ([word, dim], float64) and number of its input rows:
    its own (`word_rows`, -1 if none) and those of the char n-grams of "<" + word + ">" that pruning kept
    (`bucket_rows`, -1 where pruned). n-grams start on UTF-8 character boundaries and hold minn..maxn chars.
    `bucket_bits` has bit b set where bucket b was kept (`bucket_bits`): lid.176.ftz keeps 2 % of its 2M
    buckets, and this 250 KB test stays in cache where `bucket_rows` (8 MB) missed it on most n-grams."""
    n_words, dim = len(bounds) - 1, rows.shape[1]
    sums = np.zeros((n_words, dim), dtype=np.float64)
    counts = np.zeros(n_words, dtype=np.int64)
    n_buckets = np.uint32(len(bucket_rows))
    framed = np.empty(bounds[-1] - bounds[0] + 2, dtype=np.uint8)
    for w in range(n_words):
        if word_rows[w] >= 0:
            add_row(sums, w, rows, word_rows[w])
            counts[w] += 1
        size = bounds[w + 1] - bounds[w] + 2
        framed[0], framed[size - 1] = 0x3C, 0x3E  # "<", ">"
        framed[1 : size - 1] = raw[bounds[w] : bounds[w + 1]]
        for i in range(size):
            if (framed[i] & 0xC0) == 0x80:
                continue
            h = FNV_OFFSET
            j, n = i, 1
            while j < size and n <= maxn:
                h = np.uint32((h ^ signed(framed[j])) * FNV_PRIME)
                j += 1
                while j < size and (framed[j] & 0xC0) == 0x80:
                    h = np.uint32((h ^ signed(framed[j])) * FNV_PRIME)
                    j += 1
                if n >= minn and not (n == 1 and (i == 0 or j == size)):
                    bucket = h % n_buckets
                    if (bucket_bits[bucket >> np.uint32(6)] >> np.uint64(bucket & np.uint32(63))) & np.uint64(1):
                        add_row(sums, w, rows, bucket_rows[bucket])
                        counts[w] += 1
                n += 1
    return sums, counts

