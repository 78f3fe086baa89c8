"""Gopher's repetition measures (Rae et al. 2021, App. A), compiled: one pass per doc over its UTF-8 bytes.

Lines, paragraphs and words are found and hashed in the bytes, each item gets a code numbered by
first appearance in its doc (`byte_kernels.string_codes`), and n-gram codes are built level by level
from (n-1)-gram codes where an n-gram can still repeat. Per-doc loops over hash tables have no vector
form in numpy or pyarrow fast enough to matter (they were 55% of the filter step's time there).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tokenmill.corpus.filter.kernels.bytes import (
    item_stats,
    mix,
    repeated_items,
    space_bytes,
    string_codes,
    strip,
    table_size,
)

UNIQUE = -1  # the code of an n-gram that occurs once in its doc

# Columns of `repetition_counts`' output, per doc.
LINES, DUP_LINES, DUP_LINE_CHARS, PARAS, DUP_PARAS, DUP_PARA_CHARS, WORD_CHARS = range(7)
FIRST_GRAM_COLUMN = 7


@njit(cache=True)
def repeated_only(at: np.ndarray, codes: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The positions and codes of the codes seen more than once, renumbered 0, 1, ... by first appearance."""
    counts = np.zeros(n_codes, dtype=np.int64)
    for code in codes:
        counts[code] += 1
    renumbered = np.empty(n_codes, dtype=np.int64)
    kept = 0
    for code in range(n_codes):
        renumbered[code] = kept
        kept += counts[code] > 1
    keep = 0
    for k in range(len(codes)):
        keep += counts[codes[k]] > 1
    kept_at = np.empty(keep, dtype=np.int64)
    kept_codes = np.empty(keep, dtype=np.int64)
    keep = 0
    for k in range(len(codes)):
        if counts[codes[k]] > 1:
            kept_at[keep] = at[k]
            kept_codes[keep] = renumbered[codes[k]]
            keep += 1
    return kept_at, kept_codes, kept


@njit(cache=True)
def next_level(
    at: np.ndarray, codes: np.ndarray, words: np.ndarray, n_words: int, n: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Repeated n-grams (positions, codes) from repeated (n-1)-grams and word codes: an n-gram at i can
    repeat only where the (n-1)-grams at i and i + 1 both do, and it adds word i + n - 1."""
    candidates = 0
    for k in range(len(at) - 1):
        candidates += at[k + 1] == at[k] + 1
    mask = table_size(candidates) - 1
    keys = np.full(mask + 1, -1, dtype=np.int64)
    values = np.empty(mask + 1, dtype=np.int64)
    grams_at = np.empty(candidates, dtype=np.int64)
    gram_codes = np.empty(candidates, dtype=np.int64)
    n_codes = 0
    candidates = 0
    for k in range(len(at) - 1):
        if at[k + 1] != at[k] + 1:
            continue
        key = codes[k] * n_words + words[at[k] + n - 1]
        slot = mix(np.uint64(key)) & mask
        while keys[slot] != -1 and keys[slot] != key:
            slot = (slot + 1) & mask
        if keys[slot] == -1:
            keys[slot] = key
            values[slot] = n_codes
            n_codes += 1
        grams_at[candidates] = at[k]
        gram_codes[candidates] = values[slot]
        candidates += 1
    return repeated_only(grams_at, gram_codes, n_codes)


@njit(cache=True)
def top_gram_chars(at: np.ndarray, codes: np.ndarray, n_codes: int, word_ends: np.ndarray, n: int) -> int:
    """Chars (all occurrences) of the most frequent repeated n-gram, the first seen on ties."""
    if n_codes == 0:
        return 0
    counts = np.zeros(n_codes, dtype=np.int64)
    first_at = np.full(n_codes, -1, dtype=np.int64)
    for k in range(len(codes)):
        counts[codes[k]] += 1
        if first_at[codes[k]] < 0:
            first_at[codes[k]] = at[k]
    best = 0
    for code in range(1, n_codes):  # codes run in order of first appearance
        if counts[code] > counts[best]:
            best = code
    return (word_ends[first_at[best] + n] - word_ends[first_at[best]]) * counts[best]


@njit(cache=True)
def jumped_dup_chars(at: np.ndarray, codes: np.ndarray, n_codes: int, word_ends: np.ndarray, n: int) -> int:
    """Chars of n-grams that repeat an earlier visited one; a repeat jumps past itself, so a first
    occurrence it skips is never visited (Gopher; datatrove's `find_all_duplicate` over words).
    Only repeated n-grams are listed: an n-gram seen once changes nothing but the walk's step."""
    seen = np.zeros(n_codes, dtype=np.bool_)
    chars = 0
    visit_from = 0
    for k in range(len(codes)):
        i = at[k]
        if i < visit_from:
            continue
        if seen[codes[k]]:
            chars += word_ends[i + n] - word_ends[i]
            visit_from = i + n
        else:
            seen[codes[k]] = True
    return chars


@njit(cache=True)
def covered_chars(at: np.ndarray, word_ends: np.ndarray, n: int) -> int:
    """Chars of the words inside any occurrence of a repeated n-gram, first ones included, each word once
    however many occurrences overlap it (Gopher's "characters within all duplicate n-grams", as
    RedPajama-v2's `rps_doc_frac_chars_dupe_ngrams` marks them); `at` holds the positions, sorted."""
    chars = 0
    counted_to = 0  # words before this one are counted
    for i in at:
        first = max(i, counted_to)
        if i + n > first:
            chars += word_ends[i + n] - word_ends[first]
            counted_to = i + n
    return chars


@njit(cache=True)
def split_words(raw: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte [start, end) of each word, split as Python's `str.split()` does."""
    starts = np.empty((end - start + 1) // 2, dtype=np.int64)
    ends = np.empty_like(starts)
    count = 0
    i = start
    in_word = False
    while i < end:
        width = space_bytes(raw, i, end)
        if width:
            if in_word:
                ends[count] = i
                count += 1
                in_word = False
            i += width
        else:
            if not in_word:
                starts[count] = i
                in_word = True
            i += 1
    if in_word:
        ends[count] = end
        count += 1
    return starts[:count], ends[:count]


@njit(cache=True)
def split_lines(raw: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte [start, end) of each non-empty line between newlines."""
    starts = np.empty((end - start + 1) // 2 + 1, dtype=np.int64)
    ends = np.empty_like(starts)
    count = 0
    head = start
    for i in range(start, end + 1):
        if i == end or raw[i] == 10:
            if i > head:
                starts[count] = head
                ends[count] = i
                count += 1
            head = i + 1
    return starts[:count], ends[:count]


@njit(cache=True)
def split_paragraphs(raw: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte [start, end) of each non-empty paragraph: the stripped text split at runs of two or more newlines."""
    start, end = strip(raw, start, end)
    starts = np.empty((end - start + 1) // 2 + 1, dtype=np.int64)
    ends = np.empty_like(starts)
    count = 0
    head = start
    i = start
    while i < end:
        run = 0
        while i + run < end and raw[i + run] == 10:
            run += 1
        if run >= 2:
            if i > head:
                starts[count] = head
                ends[count] = i
                count += 1
            head = i + run
        i += max(run, 1)
    if end > head:
        starts[count] = head
        ends[count] = end
        count += 1
    return starts[:count], ends[:count]


@njit(cache=True)
def item_dups(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray, out: np.ndarray, column: int) -> None:
    """Items, repeated items and chars in them into out[column:column + 3]."""
    out[column] = len(starts)
    out[column + 1], out[column + 2] = repeated_items(raw, starts, ends)


@njit(cache=True)
def doc_counts(
    raw: np.ndarray, start: int, end: int, top: np.ndarray, dup: np.ndarray, first_occurrence: bool, out: np.ndarray
) -> None:
    """One doc's row of `repetition_counts`."""
    item_dups(raw, *split_lines(raw, start, end), out, LINES)
    item_dups(raw, *split_paragraphs(raw, start, end), out, PARAS)
    starts, ends = split_words(raw, start, end)
    hashes, chars = item_stats(raw, starts, ends)
    word_ends = np.zeros(len(starts) + 1, dtype=np.int64)
    word_ends[1:] = np.cumsum(chars)
    out[WORD_CHARS] = word_ends[-1]
    words, n_words = string_codes(raw, starts, ends, hashes)
    at, codes, n_codes = repeated_only(np.arange(len(words)), words, n_words)
    for n in range(2, max(top.max(), dup.max()) + 1):
        if n_codes == 0:
            break
        at, codes, n_codes = next_level(at, codes, words, n_words, n)
        for k in range(len(top)):
            if top[k] == n:
                out[FIRST_GRAM_COLUMN + k] = top_gram_chars(at, codes, n_codes, word_ends, n)
        for k in range(len(dup)):
            if dup[k] == n and first_occurrence:
                out[FIRST_GRAM_COLUMN + len(top) + k] = covered_chars(at, word_ends, n)
            elif dup[k] == n:
                out[FIRST_GRAM_COLUMN + len(top) + k] = jumped_dup_chars(at, codes, n_codes, word_ends, n)


@njit(cache=True)
def repetition_counts(
    raw: np.ndarray, bounds: np.ndarray, top: np.ndarray, dup: np.ndarray, first_occurrence: bool = True
) -> np.ndarray:
    """Per doc (rows; texts' bytes at `bounds`): lines, repeated lines and their chars, the same for paragraphs,
    chars in words, then chars of the top n-gram for each n in `top` and, for each n in `dup`, chars of
    repeated n-grams: every occurrence (`covered_chars`) when `first_occurrence`, else the jumped repeats."""
    out = np.zeros((len(bounds) - 1, FIRST_GRAM_COLUMN + len(top) + len(dup)), dtype=np.float64)
    for doc in range(len(bounds) - 1):
        doc_counts(raw, bounds[doc], bounds[doc + 1], top, dup, first_occurrence, out[doc])
    return out
