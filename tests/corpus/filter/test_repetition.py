"""Compiled repetition measures against Gopher's per-doc definitions in plain Python (`oracles.py`), on docs
built to repeat."""

from __future__ import annotations

import importlib.util
import random
import re
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tokenmill.corpus.filter.kernels.repetition import (
    DUP_LINE_CHARS,
    DUP_LINES,
    DUP_PARA_CHARS,
    DUP_PARAS,
    FIRST_GRAM_COLUMN,
    LINES,
    PARAS,
    WORD_CHARS,
    repetition_counts,
)
from tokenmill.corpus.text.utf8 import utf8_bytes

TOP, DUP = (2, 3, 4), (5, 6, 7, 8, 9, 10)
_spec = importlib.util.spec_from_file_location("filter_oracles", Path(__file__).parent / "oracles.py")
oracles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracles)
SPACES = [" ", " ", " ", "\t", "\n", "\n", "\n\n", "\n\n\n", "\u00a0", "\u3000", "\u2029", "\x1c", "\x85"]


def reference_row(doc: str, first_occurrence: bool) -> list[int]:
    words = doc.split()
    lines = [line for line in doc.split("\n") if line]
    paras = [para for para in re.split(r"\n{2,}", doc.strip()) if para]
    return (
        [len(lines), *oracles.repeated(lines), len(paras), *oracles.repeated(paras)]
        + [sum(map(len, words))]
        + [oracles.top_gram_chars(words, n) for n in TOP]
        + [oracles.dup_gram_chars(words, n, first_occurrence) for n in DUP]
    )


def repetitive_doc(rng: random.Random) -> str:
    """Words from a tiny vocabulary (some non-ASCII), with passages copied from earlier in the doc, so repeats
    overlap, runs of repeats meet, and jumps skip first occurrences whose n-grams come back later;
    words are parted by Unicode spaces and newline runs, so lines and paragraphs repeat too."""
    vocab = [rng.choice("abcdéü語") * rng.randint(1, 3) for _ in range(rng.randint(2, 8))]
    words: list[str] = []
    while len(words) < rng.randint(0, 120):
        if words and rng.random() < 0.4:
            start = rng.randrange(len(words))
            words += words[start : start + rng.randint(1, 25)]
        else:
            words.append(rng.choice(vocab))
    text = rng.choice(SPACES) if rng.random() < 0.3 else ""
    for word in words:
        text += word + rng.choice(SPACES)
    return text if rng.random() < 0.5 else text.rstrip(" ")


def counts_of(docs: list[str], first_occurrence: bool = True) -> np.ndarray:
    raw, bounds = utf8_bytes(pa.array(docs, pa.large_string()))
    return repetition_counts(raw, bounds, np.array(TOP), np.array(DUP), first_occurrence)


@pytest.mark.parametrize("first_occurrence", [True, False])
@pytest.mark.parametrize("seed", range(2))
def test_counts_match_the_per_doc_definitions(seed, first_occurrence):
    rng = random.Random(seed)
    docs = [repetitive_doc(rng) for _ in range(400)] + ["", " ", "\n\n", "a", "a a", "x\n\nx"]
    counts = counts_of(docs, first_occurrence)
    assert counts.tolist() == [reference_row(doc, first_occurrence) for doc in docs]
    assert counts[:, FIRST_GRAM_COLUMN + len(TOP)].sum() > 0  # jumped 5-gram repeats were found
    assert counts[:, DUP_PARAS].sum() > 0 and counts[:, DUP_LINES].sum() > 0


def test_a_document_repeating_a_passage_has_the_expected_counts():
    passage = "the cat sat on the mat and then it ran away"
    counts = counts_of([f"{passage}\n\n{passage}\nend"])[0]
    assert counts[[LINES, DUP_LINES, DUP_LINE_CHARS]].tolist() == [3, 1, len(passage)]
    assert counts[[PARAS, DUP_PARAS, DUP_PARA_CHARS]].tolist() == [2, 0, 0]  # the second paragraph has "end"
    assert counts[WORD_CHARS] == 2 * len(passage.replace(" ", "")) + 3
    ten_gram_chars = len("".join(passage.split()[:10]))
    # every word of both copies lies in a repeated 10-gram; read as repeats only, the second copy's first 10-gram
    assert counts[FIRST_GRAM_COLUMN + len(TOP) + DUP.index(10)] == 2 * len(passage.replace(" ", ""))
    assert counts_of([f"{passage}\n\n{passage}\nend"], first_occurrence=False)[0][
        FIRST_GRAM_COLUMN + len(TOP) + DUP.index(10)] == ten_gram_chars


def test_whitespace_is_what_python_strips_and_splits_on():
    """Every code point between two words, and around two equal paragraphs: split and stripped as `str` does."""
    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    is_space = np.array([c.isspace() for c in chars])
    split = counts_of([f"a{c}b" for c in chars])[:, WORD_CHARS]
    assert (split == np.where(is_space, 2, 3)).all()
    stripped = counts_of([f"{c}x\n\nx{c}" for c in chars])[:, DUP_PARA_CHARS]
    expected = is_space.astype(np.float64)  # stripped: "x" twice
    expected[ord("x")] = 2  # "xx" twice
    assert (stripped == expected).all()
