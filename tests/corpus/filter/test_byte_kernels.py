"""Compiled byte-range views of a batch against Python's own string methods."""

from __future__ import annotations

import random
import sys

import numpy as np
import pyarrow as pa

from tokenmill.corpus.filter.kernels.bytes import Lines, space_mask, stripped_lines
from tokenmill.corpus.text.utf8 import utf8_bytes

PIECES = ["a", "é", "語", "😀", "…", "...", ".", "•", "-", " ", "\t", "\u3000", "\u00a0", "\r", "\n", "\n\n", "x" * 40]


def lines_of(docs: list[str]) -> tuple[np.ndarray, Lines]:
    raw, bounds = utf8_bytes(pa.array(docs, pa.large_string()))
    return raw, Lines(*stripped_lines(raw, bounds))


def reference_lines(docs: list[str]) -> list[tuple[int, str]]:
    return [(doc, line.strip()) for doc, text in enumerate(docs) for line in text.split("\n") if line.strip()]


def random_docs(seed: int, n: int = 500) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 30))) for _ in range(n)]


def test_lines_are_pythons_stripped_non_blank_lines():
    docs = random_docs(0) + ["", "\n", " \n \n", "a\nb", "  x  "]
    raw, lines = lines_of(docs)
    got = [(doc, bytes(raw[s:e]).decode()) for doc, s, e in zip(lines.docs, lines.starts, lines.ends)]
    expected = reference_lines(docs)
    assert got == expected
    assert lines.chars.tolist() == [len(line) for _, line in expected]
    assert lines.first.tolist() == [ord(line[0]) for _, line in expected]
    assert lines.last.tolist() == [ord(line[-1]) for _, line in expected]


def test_lines_starting_and_ending_with_a_pattern():
    docs = random_docs(1)
    raw, lines = lines_of(docs)
    texts = [line for _, line in reference_lines(docs)]
    bullets, ellipses = ["•", "-"], ["...", "…"]
    assert lines.starting_with("".join(bullets)).tolist() == [t.startswith(tuple(bullets)) for t in texts]
    assert lines.ending_with(raw, ellipses).tolist() == [t.endswith(tuple(ellipses)) for t in texts]
    assert lines.ending_with(raw, ["..."]).sum() > 0
    assert lines.ending_with(raw, ["語", "é"]).tolist() == [t.endswith(("語", "é")) for t in texts]


def test_repeated_lines_per_doc_with_their_chars():
    docs = ["a\nb\na\n a", "", "é\né\né\nb", "b"]
    raw, lines = lines_of(docs)
    dups, chars = lines.repeated(raw, len(docs))
    assert dups.tolist() == [2, 0, 2, 0]  # stripped lines: " a" is "a" again
    assert chars.tolist() == [2, 0, 2, 0]


def test_space_mask_marks_every_byte_of_pythons_whitespace():
    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    text = "".join(chars)
    raw, _ = utf8_bytes(pa.array([text], pa.large_string()))
    mask = space_mask(raw)
    widths = [len(ch.encode()) for ch in chars]
    starts = np.cumsum([0] + widths[:-1])
    assert mask[starts].tolist() == [ch.isspace() for ch in chars]
    assert mask.sum() == sum(w for ch, w in zip(chars, widths) if ch.isspace())
