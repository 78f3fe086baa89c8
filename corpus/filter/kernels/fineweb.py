"""FineWeb's line counts in one compiled pass, read as its release code reads lines (datatrove's
FineWebQualityFilter at FineWeb's release): `text.split("\\n")`, every line counted, blank ones
too, none stripped; duplicated lines are sought among the lines that are not blank."""

from __future__ import annotations

import numpy as np
from numba import njit

from tokenmill.corpus.filter.kernels.bytes import chars_in, code_point, last_char_start, repeated_items, strip

LINES, PUNCT_LINES, SHORT_LINES, DUP_LINE_CHARS, NEWLINES = range(5)  # columns of `fineweb_counts`


@njit(cache=True)
def doc_lines(raw: np.ndarray, start: int, end: int, end_chars: np.ndarray, short_chars: int, out: np.ndarray) -> None:
    """One doc's row of `fineweb_counts`."""
    starts = np.empty(end - start + 1, dtype=np.int64)  # the lines that are not blank
    ends = np.empty_like(starts)
    kept = 0
    head = start
    for i in range(start, end + 1):
        if i < end and raw[i] != 10:
            continue
        out[LINES] += 1
        out[NEWLINES] += i < end
        out[SHORT_LINES] += chars_in(raw, head, i) <= short_chars
        if i > head:
            last = code_point(raw, last_char_start(raw, head, i))
            for ch in end_chars:
                if last == ch:
                    out[PUNCT_LINES] += 1
                    break
            stripped_start, stripped_end = strip(raw, head, i)
            if stripped_end > stripped_start:
                starts[kept], ends[kept] = head, i
                kept += 1
        head = i + 1
    out[DUP_LINE_CHARS] = repeated_items(raw, starts[:kept], ends[:kept])[1]


@njit(cache=True)
def fineweb_counts(raw: np.ndarray, bounds: np.ndarray, end_chars: np.ndarray, short_chars: int) -> np.ndarray:
    """Per doc (rows): lines, lines ending in one of `end_chars` (code points), lines of at most
    `short_chars` characters, characters in lines repeating an earlier non-blank line, newlines."""
    out = np.zeros((len(bounds) - 1, 5), dtype=np.int64)
    for doc in range(len(bounds) - 1):
        doc_lines(raw, bounds[doc], bounds[doc + 1], end_chars, short_chars, out[doc])
    return out
