"""C4's page-level counts in one compiled pass over a batch's UTF-8 bytes: sentences, "lorem ipsum", "{".

Each keeps the meaning its pyarrow form had (see `c4_counts`), without a regex scan or a lowered
copy of the text.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SENTENCES, LOREM_IPSUM, CURLY_BRACKET = range(3)  # columns of `c4_counts`
LOREM = np.frombuffer(b"lorem ipsum", dtype=np.uint8)


@njit(cache=True)
def lowered_match(raw: np.ndarray, i: int, end: int, pattern: np.ndarray) -> bool:
    """`pattern` (lower-case ASCII) starts at byte i of the text after `utf8_lower`, where ASCII letters and
    İ (U+0130, lowered to "i") are the only characters that lower into ASCII letters it can hold."""
    for k in range(len(pattern)):
        if i >= end:
            return False
        b = raw[i]
        if b == 0xC4 and i + 1 < end and raw[i + 1] == 0xB0:
            if pattern[k] != 0x69:
                return False
            i += 2
            continue
        if (0x41 <= b <= 0x5A and (b | 0x20) != pattern[k]) or (not 0x41 <= b <= 0x5A and b != pattern[k]):
            return False
        i += 1
    return True


@njit(cache=True)
def c4_counts(raw: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    r"""Per text: matches of RE2 `[.!?]+(?:\s|$)` (a run of sentence ends before whitespace or the end),
    whether the lowered text holds "lorem ipsum", and whether it holds "{"."""
    out = np.zeros((len(bounds) - 1, 3), dtype=np.int64)
    for doc in range(len(bounds) - 1):
        start, end = bounds[doc], bounds[doc + 1]
        run = 0
        for i in range(start, end):
            b = raw[i]
            if b == 0x2E or b == 0x21 or b == 0x3F:
                run += 1
                continue
            if run and (b == 0x20 or b == 0x09 or b == 0x0A or b == 0x0C or b == 0x0D):
                out[doc, SENTENCES] += 1
            run = 0
            if b == 0x7B:
                out[doc, CURLY_BRACKET] = 1
            if not out[doc, LOREM_IPSUM] and (b | 0x20) == 0x6C and lowered_match(raw, i, end, LOREM):
                out[doc, LOREM_IPSUM] = 1
        if run:
            out[doc, SENTENCES] += 1
    return out
