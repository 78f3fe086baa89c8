"""Gopher quality counts in one compiled pass over a batch's UTF-8 bytes: '#', ellipses, stop words, letter words.

A stop word is a whole word: a maximal run of word characters (`unicode.classes`: letters, digits,
marks, "_" in any script), so "the" in "theé" or "Ñthe" is no stop word, as Python's Unicode
`\\b` has it (RE2's ASCII-only `\\b` said it was).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from tokenmill.corpus.filter.kernels.bytes import char_width, code_point
from tokenmill.corpus.filter.kernels.unicode import WORD, classes
from tokenmill.corpus.text.utf8 import count_in

HASHES, ELLIPSES, STOP_WORDS, DISTINCT_STOP_WORDS, LETTER_WORDS = range(5)  # columns of `quality_counts`
MAX_TOKEN = 8  # bytes of a stop word: a token packs into a uint64
DOT, HASH = 0x2E, 0x23


@njit(cache=True)
def listed_index(key: np.uint64, listed: np.ndarray) -> int:
    for k in range(len(listed)):
        if listed[k] == key:
            return k
    return -1


@njit(cache=True)
def text_counts(
    raw: np.ndarray, start: int, end: int, listed: np.ndarray, fold_case: bool, table: np.ndarray
) -> tuple[int, int, int, int]:
    """One text's ('#', ellipses, stop word occurrences, distinct stop words). Ellipses are '…' and each
    '...' of a run of dots (as `str.count`); a token of ASCII bytes packs into a uint64 (`pack`),
    lowered first when `fold_case` (Python's `lower()` maps no other character into ASCII letters
    a stop word holds)."""
    key = np.uint64(0)
    length = dots = hashes = ellipses = occurrences = 0
    ascii_token = True
    seen = np.uint64(0)
    i = start
    while i <= end:
        b = raw[i] if i < end else 0x20  # a space after the text ends its last token
        if dots and b != DOT:
            ellipses += dots // 3
            dots = 0
        if b < 0x80:
            width = 1
            if table[b] & WORD:
                if length < MAX_TOKEN + 1:
                    key = (key << np.uint64(8)) | np.uint64(b | 0x20 if fold_case and 0x41 <= b <= 0x5A else b)
                length += 1
                i += 1
                continue
        else:
            width = char_width(b)
            if table[code_point(raw, i)] & WORD:
                ascii_token = False
                length += width
                i += width
                continue
        if length:
            if ascii_token and length <= MAX_TOKEN:
                found = listed_index(key, listed)
                if found >= 0:
                    occurrences += 1
                    seen |= np.uint64(1) << np.uint64(found)
            key, length, ascii_token = np.uint64(0), 0, True
        if b == DOT:
            dots += 1
        elif b == HASH:
            hashes += 1
        elif b == 0xE2 and i + 2 < end and raw[i + 1] == 0x80 and raw[i + 2] == 0xA6:  # '…'
            ellipses += 1
        i += width
    distinct = 0
    while seen:
        distinct += 1
        seen &= seen - np.uint64(1)
    return hashes, ellipses, occurrences, distinct


def pack(word: str) -> int:
    """A word of at most MAX_TOKEN ASCII bytes as `text_counts` packs its tokens."""
    data = word.encode()
    if len(data) > MAX_TOKEN or not data.isascii():
        raise ValueError(f"stop words are ASCII of at most {MAX_TOKEN} bytes: {word!r}")
    return int.from_bytes(data, "big")


@njit(cache=True)
def letter_words(
    raw: np.ndarray, starts: np.ndarray, ends: np.ndarray, space: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per word (from each start to the next space): it holds an ASCII letter; it holds none but some
    non-ASCII byte, so only a Unicode table can tell."""
    has_letter = np.zeros(len(starts), dtype=np.bool_)
    unsure = np.zeros(len(starts), dtype=np.bool_)
    for w in range(len(starts)):
        non_ascii = False
        for i in range(starts[w], ends[w]):
            if space[i]:
                break
            b = raw[i] | 0x20
            if 0x61 <= b <= 0x7A:
                has_letter[w] = True
                break
            non_ascii |= raw[i] >= 0x80
        unsure[w] = non_ascii and not has_letter[w]
    return has_letter, unsure


@njit(cache=True)
def batch_counts(
    raw: np.ndarray, bounds: np.ndarray, listed: np.ndarray, fold_case: bool, table: np.ndarray
) -> np.ndarray:
    out = np.zeros((len(bounds) - 1, 5), dtype=np.int64)
    for doc in range(len(bounds) - 1):
        counts = text_counts(raw, bounds[doc], bounds[doc + 1], listed, fold_case, table)
        out[doc, HASHES], out[doc, ELLIPSES], out[doc, STOP_WORDS], out[doc, DISTINCT_STOP_WORDS] = counts
    return out


def quality_counts(
    raw: np.ndarray,
    bounds: np.ndarray,
    word_starts: np.ndarray,
    space: np.ndarray,
    stop_words: tuple[str, ...],
    fold_case: bool = True,
) -> np.ndarray:
    """Per text: '#', ellipses, stop word occurrences and distinct stop words (`text_counts`) and words
    (from each of `word_starts` to the next `space` byte) holding a letter (Unicode category L); words
    whose only candidates for a letter are non-ASCII go through RE2's `\\pL`."""
    if len(stop_words) > 64:
        raise ValueError("at most 64 stop words: a doc's distinct ones are bits of a uint64")
    listed = np.array([pack(w) for w in stop_words], dtype=np.uint64)
    out = batch_counts(raw, bounds, listed, fold_case, classes())
    ends = np.append(word_starts[1:], bounds[-1]).astype(np.int64)
    has_letter, unsure = letter_words(raw, word_starts, ends, space)
    at = np.flatnonzero(unsure)
    if len(at):
        offsets = np.empty(2 * len(at), dtype=np.int64)
        offsets[0::2], offsets[1::2] = word_starts[at], ends[at]
        buffers = (pa.py_buffer(offsets), pa.py_buffer(raw))
        unsure_words = pa.LargeStringArray.from_buffers(len(offsets) - 1, *buffers)[0::2]
        has_letter[at] = pc.match_substring_regex(unsure_words, r"\pL").to_numpy(zero_copy_only=False)
    out[:, LETTER_WORDS] = count_in(word_starts[has_letter], bounds)
    return out
