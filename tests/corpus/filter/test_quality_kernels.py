"""Gopher quality counts from the bytes against Python's own string methods, and the word-character table."""

from __future__ import annotations

import random
import re
import sys
import unicodedata

import numpy as np
import pyarrow as pa
import pytest

from tokenmill.corpus.filter.kernels.quality import (
    DISTINCT_STOP_WORDS,
    ELLIPSES,
    HASHES,
    LETTER_WORDS,
    STOP_WORDS,
    pack,
    quality_counts,
)
from tokenmill.corpus.filter.kernels.unicode import DIGIT, WORD, classes, is_word_char
from tokenmill.corpus.filter.spec import TextBatch

STOP = ("the", "be", "to", "of", "and", "that", "have", "with")
PIECES = [
    "the", "The", "THE", "be", "to", "of", "and", "that", "have", "with", "wİth", "the\u212a", "the_", "the1", "thee",
    "é", "Ñ", "\u0301", "語", "ü", "١٢", "42", "_", "-", "’", "“", "...", "..", ".", "…", "#",
    " ", "\t", "\n", "\v", "\u00a0", "\u3000", "\u2028",
]


def random_docs(seed: int, n: int = 400) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def counts_of(docs: list[str], fold_case: bool = True) -> np.ndarray:
    batch = TextBatch(pa.table({"text": pa.array(docs, pa.large_string())}))
    raw, bounds = batch.utf8
    return quality_counts(raw, bounds, batch.word_starts, batch.space, STOP, fold_case)


def reference(doc: str, fold_case: bool) -> list[int]:
    """['#', ellipses, stop word occurrences, distinct stop words, words holding a letter]: tokens are runs of
    word characters, so "the" next to a non-ASCII letter or a combining accent is no stop word."""
    tokens = "".join(ch if is_word_char(ch) else " " for ch in doc).split()
    listed = [t for t in (t.lower() if fold_case else t for t in tokens) if t in STOP]
    letter_words = sum(any(c.isalpha() for c in word) for word in doc.split())
    return [doc.count("#"), doc.count("...") + doc.count("…"), len(listed), len(set(listed)), letter_words]


@pytest.mark.parametrize("fold_case", [True, False])
@pytest.mark.parametrize("seed", range(2))
def test_counts_match_python(seed, fold_case):
    docs = random_docs(seed) + ["", "....", "a...b....", "İ", "\u212a", "the\u0301 the"]
    counts = counts_of(docs, fold_case)
    assert counts.tolist() == [reference(doc, fold_case) for doc in docs]
    assert counts[:, STOP_WORDS].sum() > counts[:, DISTINCT_STOP_WORDS].sum() > 0


def test_a_known_text():
    counts = counts_of(["The cat... and THE dog # wİth 語 42 .... théthe Ñthe the’s"])[0]
    assert counts[[HASHES, ELLIPSES]].tolist() == [1, 2]
    assert counts[[STOP_WORDS, DISTINCT_STOP_WORDS]].tolist() == [4, 2]  # The, and, THE, the(’s)
    assert counts[LETTER_WORDS] == 10  # all but "#", "42" and "...."


def test_stop_words_must_pack_into_a_token():
    with pytest.raises(ValueError, match="at most 8 bytes"):
        pack("extraordinarily")


def test_word_characters_are_pythons_w_and_combining_marks():
    chars = [chr(cp) for cp in range(sys.maxunicode + 1)]
    word = np.array([re.match(r"\w", ch) is not None or unicodedata.category(ch)[0] == "M" for ch in chars])
    digit = np.array([ch.isdecimal() for ch in chars])
    table = classes()
    assert (((table & WORD) != 0) == word).all()
    assert (((table & DIGIT) != 0) == digit).all()
