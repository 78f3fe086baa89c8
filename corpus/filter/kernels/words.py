"""Hits of a word list in texts, compiled: whole words in any script, or plain substrings.

A listed word matches where the characters on both sides of it are not word characters
(`unicode.classes`), the Unicode form of TFDS's `(?:\\W|^)(word|...)(?:\\W|$)`: "ass" is no hit in
"class", nor "бля" in "рубля", nor "バカ" in "バカンス". Where two listed words start at the same
place the longest one counts; the search goes on after each hit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tokenmill.corpus.filter.kernels.bytes import char_width, last_char_start
from tokenmill.corpus.filter.kernels.unicode import WORD, word_at


def word_table(words: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The words' UTF-8 bytes in one array, ordered by their first two bytes: (bytes, [start, end)
    offsets, first word index per two-byte key (`pair_key`), 256 * 257 + 1 entries)."""
    encoded = sorted({w.encode() for w in words if w}, key=lambda b: (pair_key(b[0], b[1] if len(b) > 1 else -1), b))
    offsets = np.cumsum([0] + [len(b) for b in encoded]).astype(np.int64)
    keys = np.array([pair_key(b[0], b[1] if len(b) > 1 else -1) for b in encoded], dtype=np.int64)
    buckets = np.searchsorted(keys, np.arange(256 * 257 + 1), side="left").astype(np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets, buckets


@njit(cache=True, inline="always")
def pair_key(first: int, second: int) -> int:
    """A word's bucket: its first byte and its second (-1: a one-byte word)."""
    return first * 257 + second + 1


@njit(cache=True)
def longest_at(
    raw: np.ndarray, i: int, end: int, data: np.ndarray, offsets: np.ndarray, buckets: np.ndarray,
    whole_words: bool, table: np.ndarray,
) -> int:
    """Bytes of the longest listed word starting at byte i (and, for whole words, followed by no word
    character), 0 if none."""
    best = 0
    for second in (-1, raw[i + 1] if i + 1 < end else -2):
        if second == -2:
            continue
        key = pair_key(raw[i], second)
        for k in range(buckets[key], buckets[key + 1]):
            size = offsets[k + 1] - offsets[k]
            if size <= best or i + size > end:
                continue
            same = True
            for j in range(2, size):
                if raw[i + j] != data[offsets[k] + j]:
                    same = False
                    break
            if same and not (whole_words and i + size < end and word_at(raw, i + size, table)):
                best = size
    return best


@njit(cache=True)
def word_hits(
    raw: np.ndarray, bounds: np.ndarray, data: np.ndarray, offsets: np.ndarray, buckets: np.ndarray,
    whole_words: bool, table: np.ndarray,
) -> np.ndarray:
    """Per text, hits of the listed words (`word_table`): whole words only when `whole_words`."""
    hits = np.zeros(len(bounds) - 1, dtype=np.int64)
    for doc in range(len(bounds) - 1):
        end = bounds[doc + 1]
        i = bounds[doc]
        after_word = False  # the character before i is a word character
        while i < end:
            b = raw[i]
            size = 0
            if buckets[pair_key(b, -1)] < buckets[pair_key(b + 1, -1)] and not (whole_words and after_word):
                size = longest_at(raw, i, end, data, offsets, buckets, whole_words, table)
            if size:
                hits[doc] += 1
                after_word = word_at(raw, last_char_start(raw, i, i + size), table)
                i += size
            elif b < 0x80:
                after_word = (table[b] & WORD) != 0
                i += 1
            else:
                after_word = word_at(raw, i, table)
                i += char_width(b)
    return hits
