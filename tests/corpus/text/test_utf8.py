"""Byte-level text views: word counts as a split on ASCII whitespace counts non-empty words."""

from __future__ import annotations

import re

import pyarrow as pa

from tokenmill.corpus.text.utf8 import word_counts


def test_word_counts_match_a_split_on_ascii_whitespace():
    texts = ["", " ", " a  b ", "a\x0bb\x0cc", "x\xa0y", "naïve café 中文", None, "end\n", "a\x08b\x00c\x0ed\x1f!\r"]
    expected = [len(re.findall(r"[^ \t\n\x0b\x0c\r]+", t or "")) for t in texts]
    assert word_counts(pa.array(texts, pa.large_string())).tolist() == expected == [0, 0, 2, 3, 1, 3, 0, 1, 1]
    sliced = pa.array(["skip me", "one two", "three"], pa.string()).slice(1)
    assert word_counts(sliced).tolist() == [2, 1]
