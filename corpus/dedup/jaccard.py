"""Exact Jaccard similarity of shingle sets: what dedup decides by, the signatures only propose.

Each doc's shingle set is kept as its distinct shingle hashes (the same hashes its MinHash
signature is computed from), sorted, in one binary value. Two such sets intersect by one
merge walk, compiled with numba, so a candidate pair costs microseconds and no allocation.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa


def shingle_sets(hashes: np.ndarray, counts: np.ndarray) -> pa.Array:
    """Per doc (doc i owns the next `counts[i]` hashes), its distinct hashes sorted, as bytes."""
    values, sizes = _distinct_sorted(hashes, np.asarray(counts, dtype=np.int64))
    offsets = np.concatenate(([0], np.cumsum(sizes) * values.itemsize)).astype(np.int64)
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(counts), [None, pa.py_buffer(offsets), pa.py_buffer(values.tobytes())]
    )


@numba.njit(cache=True, nogil=True)
def _distinct_sorted(hashes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each doc's hashes sorted and deduplicated on their own: n log(doc size), where one sort of all
    the (doc, hash) pairs costs n log n, and measured 8x faster than that lexsort."""
    out = np.empty_like(hashes)
    sizes = np.empty(len(counts), np.int64)
    start = written = 0
    for doc in range(len(counts)):
        chunk = np.sort(hashes[start : start + counts[doc]])
        size = 0
        for i in range(len(chunk)):
            if i == 0 or chunk[i] != chunk[i - 1]:
                out[written + size] = chunk[i]
                size += 1
        sizes[doc] = size
        written += size
        start += counts[doc]
    return out[:written], sizes


@numba.njit(cache=True, nogil=True)
def _sorted_jaccard(left: np.ndarray, left_ends: np.ndarray, right: np.ndarray, right_ends: np.ndarray) -> np.ndarray:
    out = np.empty(len(left_ends), dtype=np.float64)
    a0 = b0 = 0
    for k in range(len(left_ends)):
        a1, b1 = left_ends[k], right_ends[k]
        i, j, common = a0, b0, 0
        while i < a1 and j < b1:
            if left[i] == right[j]:
                common += 1
                i += 1
                j += 1
            elif left[i] < right[j]:
                i += 1
            else:
                j += 1
        union = (a1 - a0) + (b1 - b0) - common
        out[k] = common / union if union else 1.0
        a0, b0 = a1, b1
    return out


def _flat(sets: list[bytes], dtype: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.frombuffer(b"".join(sets), dtype=dtype)
    ends = np.cumsum([len(s) // values.itemsize for s in sets], dtype=np.int64)
    return values, ends


def exact_jaccard(left: list[bytes], right: list[bytes], dtype: str) -> np.ndarray:
    """Row-wise Jaccard of two lists of `shingle_sets` values (hashes of `dtype`)."""
    if not left:
        return np.empty(0)
    (a, a_ends), (b, b_ends) = _flat(left, dtype), _flat(right, dtype)
    return _sorted_jaccard(a, a_ends, b, b_ends)
