"""Byte-level views of a column of texts: its UTF-8 bytes, whitespace and word starts, counted per text.

ASCII bytes never occur inside a multi-byte UTF-8 character, so tests on ASCII bytes (spaces,
letters, punctuation) run over the whole column at numpy speed, with no string built per text.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

# Byte kernels run over runs of texts of about this many bytes: their temporaries stay in cache and
# on the heap. One pass over a 50 MB column allocates 50 MB arrays, and on this machine faulting
# their pages in cost 10x the arithmetic.
RUN_BYTES = 256 << 10


def utf8_bytes(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of all texts and each text's [start, end) offsets into them, without copying."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    texts = texts.cast(pa.large_string())
    _, offsets, data = texts.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[texts.offset : texts.offset + len(texts) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return raw, bounds


def per_text(flags: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Per text, the number of true byte flags inside its bounds."""
    return count_in(np.flatnonzero(flags), bounds)


def count_in(positions: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Per text, the number of (sorted) byte positions inside its bounds; a search, not a cumsum over every byte."""
    return np.diff(np.searchsorted(positions, bounds)).astype(np.int64)


def word_starts(raw: np.ndarray, bounds: np.ndarray, space: np.ndarray) -> np.ndarray:
    r"""Byte positions where an RE2 `\S+` match starts: not space, after a space or at the head of a text."""
    starts = ~space
    starts[1:] &= space[:-1]
    heads = bounds[:-1][bounds[:-1] < bounds[1:]]
    starts[heads] = ~space[heads]
    return np.flatnonzero(starts)


def ascii_space(raw: np.ndarray) -> np.ndarray:
    """Arrow's `ascii_split_whitespace` separators (tab, newline, vertical tab, form feed, carriage return, space)."""
    return (raw == 32) | ((raw >= 9) & (raw <= 13))


def text_runs(bounds: np.ndarray, run_bytes: int = RUN_BYTES) -> list[tuple[int, int]]:
    """Consecutive texts [first, last) of about `run_bytes` bytes each (a longer text is a run alone)."""
    n = len(bounds) - 1
    marks = np.searchsorted(bounds, np.arange(bounds[0] + run_bytes, bounds[-1], run_bytes))
    edges = np.unique(np.concatenate(([0], np.minimum(marks, n), [n])))
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def word_counts(texts: pa.Array) -> np.ndarray:
    """Words separated by ASCII whitespace per text, from the bytes: no list of words is built (5x faster
    than counting `ascii_split_whitespace` lists, which also count the empty items leading or trailing
    whitespace leaves), a run of texts at a time (`RUN_BYTES`) and a chunk at a time (no copy joins them)."""
    if isinstance(texts, pa.ChunkedArray):
        return np.concatenate([word_counts(chunk) for chunk in texts.chunks] or [np.zeros(0, dtype=np.int64)])
    raw, bounds = utf8_bytes(texts)
    counts = np.zeros(len(bounds) - 1, dtype=np.int64)
    for first, last in text_runs(bounds):
        run, local = raw[bounds[first]:bounds[last]], bounds[first:last + 1] - bounds[first]
        counts[first:last] = count_in(word_starts(run, local, ascii_space(run)), local)
    return counts
