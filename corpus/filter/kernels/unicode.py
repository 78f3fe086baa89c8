r"""Which code points are word characters and decimal digits, as a table the compiled loops read.

RE2's `\b`, `\w` and `\d` are ASCII-only: a word that starts or ends with a non-ASCII letter never
matched `\bword\b`, so a Russian or Japanese word list was silently a no-op. Python's `re` knows
Unicode but is far too slow over a corpus, so the loops look each code point up here. A word
character is what Python's `\w` matches (`str.isalnum()` or "_") plus the combining marks (M*),
which `\w` leaves out: an accent written as its own code point, or an Indic vowel sign, stays
inside its word. A digit is Python's `\d` (`str.isdecimal()`).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

import numpy as np
from numba import njit

from tokenmill.corpus.filter.kernels.bytes import code_point, last_char_start

WORD, DIGIT = 1, 2  # bits of `classes()`
# Every combining mark lies in these ranges (Unicode 14: U+0300..U+1E94A and U+E0100..U+E01EF), so the
# slow category lookup runs over 130k code points, not 1.1M (tests check the whole range).
MARK_RANGES = ((0x300, 0x20000), (0xE0000, 0xE1000))


@functools.cache
def classes() -> np.ndarray:
    """Per code point, its WORD and DIGIT bits (built once per process, ~0.15 s: every worker pays it)."""
    table = np.zeros(sys.maxunicode + 1, dtype=np.uint8)
    every = np.arange(sys.maxunicode + 1, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")  # 10x join
    table[matching(every, r"\w")] |= WORD
    table[matching(every, r"\d")] |= DIGIT
    for low, high in MARK_RANGES:
        marks = [cp for cp in range(low, high) if unicodedata.category(chr(cp))[0] == "M"]
        table[marks] |= WORD
    return table


def matching(every: str, pattern: str) -> np.ndarray:
    """Per code point of `every` (one character each, in order), whether it matches `pattern`: the matches
    replaced by NUL in one `re.sub`, 3x faster than a match object per hit."""
    marked = np.frombuffer(re.sub(pattern, "\0", every).encode("utf-32-le", "surrogatepass"), dtype="<u4") == 0
    marked[0] = re.fullmatch(pattern, "\0") is not None  # NUL itself
    return marked


def is_word_char(ch: str) -> bool:
    """The same test in Python, for code that works on `str`."""
    return bool(classes()[ord(ch)] & WORD)


@njit(cache=True, inline="always")
def word_at(raw: np.ndarray, i: int, table: np.ndarray) -> bool:
    """The character starting at byte i is a word character."""
    return (table[code_point(raw, i)] & WORD) != 0


@njit(cache=True)
def word_before(raw: np.ndarray, start: int, i: int, table: np.ndarray) -> bool:
    """The character ending just before byte i (within [start, ...)) is a word character."""
    return i > start and word_at(raw, last_char_start(raw, start, i), table)
