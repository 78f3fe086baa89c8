"""Byte-level text views: word counts as a split on ASCII whitespace counts non-empty words."""

from __future__ import annotations

import random
import re

import numpy as np
import pyarrow as pa

from tokenmill.corpus.text.utf8 import RUN_BYTES, text_runs, utf8_bytes, word_counts


def test_word_counts_match_a_split_on_ascii_whitespace():
    texts = ["", " ", " a  b ", "a\x0bb\x0cc", "x\xa0y", "naïve café 中文", None, "end\n", "a\x08b\x00c\x0ed\x1f!\r"]
    expected = [len(re.findall(r"[^ \t\n\x0b\x0c\r]+", t or "")) for t in texts]
    assert word_counts(pa.array(texts, pa.large_string())).tolist() == expected == [0, 0, 2, 3, 1, 3, 0, 1, 1]
    sliced = pa.array(["skip me", "one two", "three"], pa.string()).slice(1)
    assert word_counts(sliced).tolist() == [2, 1]


def test_word_counts_over_many_runs_match_the_split():
    rng = random.Random(7)
    pieces = ["word", " ", "\n\t", "é", "中文", "  ", "x"]
    texts = ["".join(rng.choices(pieces, k=rng.randrange(0, 3_000))) for _ in range(1_500)]
    texts[10] = "long " * (RUN_BYTES // 2)
    texts[11:14] = ["", None, " tail"]
    expected = [len(re.findall(r"[^ \t\n\x0b\x0c\r]+", t or "")) for t in texts]
    assert word_counts(pa.array(texts, pa.large_string())).tolist() == expected
    chunked = pa.chunked_array([pa.array(texts[:700]), pa.array([], pa.string()), pa.array(texts[700:])])
    assert word_counts(chunked).tolist() == expected
    assert word_counts(pa.chunked_array([], pa.string())).tolist() == []


def test_text_runs_cover_every_text_once_in_runs_of_bounded_bytes():
    texts = ["a" * n for n in [0, 5, 70, 3, 0, 200, 1, 1, 1, 40]]
    _, bounds = utf8_bytes(pa.array(texts))
    runs = text_runs(bounds, run_bytes=64)
    assert [first for first, _ in runs] == [0] + [last for _, last in runs[:-1]] and runs[-1][1] == len(texts)
    assert all(bounds[last - 1] - bounds[first] < 64 for first, last in runs), "only a run's last text crosses"
    assert len(runs) == 3
    assert text_runs(np.zeros(1, dtype=np.int64)) == []
