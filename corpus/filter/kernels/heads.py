"""What the language model reads of each text, compiled: its first characters with whitespace runs as one space.

The Python form (slice, `str.split()`, `" ".join`) built two strings per doc and was a third of the
language filter's time; this is one pass over the bytes of the slice it keeps.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tokenmill.corpus.filter.kernels.bytes import char_width, space_bytes


@njit(cache=True)
def collapsed_heads(raw: np.ndarray, bounds: np.ndarray, max_chars: int) -> tuple[np.ndarray, np.ndarray]:
    """Per text, `" ".join(text[:max_chars].split())` as UTF-8 bytes and [start, end) offsets into them."""
    out = np.empty(bounds[-1] - bounds[0], dtype=np.uint8)
    out_bounds = np.zeros(len(bounds), dtype=np.int64)
    w = 0
    for doc in range(len(bounds) - 1):
        i, end, taken = bounds[doc], bounds[doc + 1], 0
        doc_start, pending_space = w, False
        while i < end and taken < max_chars:
            taken += 1
            width = space_bytes(raw, i, end)
            if width:
                pending_space = w > doc_start
                i += width
                continue
            if pending_space:
                out[w] = 0x20
                w += 1
                pending_space = False
            for _ in range(min(char_width(raw[i]), end - i)):
                out[w] = raw[i]
                w += 1
                i += 1
        out_bounds[doc + 1] = w
    return out[:w], out_bounds
