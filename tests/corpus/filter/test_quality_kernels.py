"""Gopher quality counts from the bytes against the RE2 forms they replace, run by pyarrow."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tokenmill.corpus.filter.kernels.quality import (
    LETTER_WORD_COUNT,
    STOP_WORD_COUNT,
    SYMBOL_COUNT,
    pack,
    quality_counts,
)
from tokenmill.corpus.filter.spec import TextBatch

STOP = ("the", "be", "to", "of", "and", "that", "have", "with")
PIECES = [
    "the", "The", "THE", "be", "to", "of", "and", "that", "have", "with", "wİth", "the\u212a", "the_", "the1", "thee",
    "...", "..", ".", "…", "#", "é", "語", "ü", "١٢", "42", "_", "-", " ", "\t", "\n", "\v", "\u00a0", "\u3000",
]


def random_docs(seed: int, n: int = 400) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def counts_of(docs: list[str]) -> np.ndarray:
    batch = TextBatch(pa.table({"text": pa.array(docs, pa.large_string())}))
    raw, bounds = batch.utf8
    return quality_counts(raw, bounds, batch.word_starts, batch.space, STOP)


@pytest.mark.parametrize("seed", range(2))
def test_counts_match_their_re2_forms(seed):
    docs = random_docs(seed) + ["", "....", "a...b....", "İ", "\u212a"]
    texts = pa.array(docs, pa.large_string())
    counts = counts_of(docs)
    symbols = sum(pc.count_substring(texts, s).to_numpy() for s in ("#", "...", "…"))
    stop_words = pc.count_substring_regex(pc.utf8_lower(texts), r"\b(?:%s)\b" % "|".join(STOP)).to_numpy()
    letter_words = pc.count_substring_regex(texts, r"\S*\pL\S*").to_numpy()
    assert counts[:, SYMBOL_COUNT].tolist() == symbols.tolist()
    assert counts[:, STOP_WORD_COUNT].tolist() == stop_words.tolist()
    assert counts[:, LETTER_WORD_COUNT].tolist() == letter_words.tolist()
    assert counts[:, STOP_WORD_COUNT].sum() > 0 and counts[:, SYMBOL_COUNT].sum() > 0


def test_a_known_text():
    counts = counts_of(["The cat... and THE dog # wİth 語 42 ...."])[0]
    assert counts.tolist() == [3, 4, 7]  # symbols: "...", "#", "...."; stop words: The, and, THE, wİth (lowered: with)


def test_stop_words_must_pack_into_a_token():
    with pytest.raises(ValueError, match="at most 8 bytes"):
        pack("extraordinarily")
