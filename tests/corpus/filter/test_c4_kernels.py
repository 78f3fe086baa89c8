"""C4's page-level counts from the bytes against the pyarrow forms they replace."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tokenmill.corpus.filter.kernels.c4 import (
    CURLY_BRACKET,
    LOREM_IPSUM,
    SENTENCES,
    c4_counts,
)
from tokenmill.corpus.text.utf8 import utf8_bytes

PIECES = [
    ".", "!", "?", "...", "?!", " ", "\t", "\n", "\v", "\u00a0", "{", "}", "a", "é", "lorem ipsum", "LOREM IPSUM",
    "Lorem İpsum", "lorem  ipsum", "lorem", " ipsum", "lorem ip", "sum", "l",
]


@pytest.mark.parametrize("seed", range(2))
def test_counts_match_their_pyarrow_forms(seed):
    rng = random.Random(seed)
    docs = ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 25))) for _ in range(600)] + ["", ".", "a."]
    texts = pa.array(docs, pa.large_string())
    counts = c4_counts(*utf8_bytes(texts))
    assert counts[:, SENTENCES].tolist() == pc.count_substring_regex(texts, r"[.!?]+(?:\s|$)").to_pylist()
    lorem = pc.match_substring(pc.utf8_lower(texts), "lorem ipsum").to_pylist()
    assert counts[:, LOREM_IPSUM].tolist() == [int(hit) for hit in lorem]
    assert counts[:, CURLY_BRACKET].tolist() == [int("{" in doc) for doc in docs]
    assert counts[:, LOREM_IPSUM].sum() > 0 and counts[:, SENTENCES].sum() > 0
