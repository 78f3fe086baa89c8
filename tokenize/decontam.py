"""Decontamination: find training docs that share a word n-gram with the evaluation texts.

Words are lowercased runs of letters, digits and underscores (punctuation and spacing ignored),
and an n-gram is hashed to 64 bits from stable per-word hashes, as GPT-3 did with 13-grams
(Brown et al. 2020, appendix C). The eval side is a sorted array of hashes: compact enough
to broadcast to every worker. A whole batch of docs is checked at once, in numpy over its code
points: words found by a table of word characters (Python's `\\w`), hashed without making a
string per word, n-grams hashed over the batch's words: 44 MB/s against 8 MB/s for a regex, a
dict of word hashes and a lookup per doc (same decisions, same process, `bench_tokenize`'s text).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio) for the polynomial hashes
MIX_INVERSE = np.uint64(pow(int(MIX), -1, 2**64))
UNICODE_SIZE = 0x110000


@functools.cache
def word_chars() -> np.ndarray:
    """Per code point, whether it is a word character in the sense of Python's `\\w`: found by the
    regex itself over a string of every code point (0.04 s, against 0.2 s asking each character)."""
    every = np.arange(UNICODE_SIZE, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
    found = "".join(re.findall(r"\w+", every)).encode("utf-32-le", "surrogatepass")
    flags = np.zeros(UNICODE_SIZE, dtype=bool)
    flags[np.frombuffer(found, dtype=np.uint32)] = True
    return flags


_POWERS: dict[int, np.ndarray] = {}


def powers(base: np.uint64, count: int) -> np.ndarray:
    """base**0 … base**(count-1) modulo 2**64; kept per process and grown by doubling, as every batch needs them."""
    table = _POWERS.get(int(base))
    if table is None or len(table) < count:
        series = np.full(max(2 ** max(count - 1, 1).bit_length(), 1024), base, dtype=np.uint64)
        series[0] = 1
        table = _POWERS[int(base)] = np.cumprod(series, dtype=np.uint64)
    return table[:count]


def finalize(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads every input bit over the whole hash."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def batch_words(texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(hash of each word, index of its doc) for all words of a batch of docs, in order.

    The batch is one array of code points; a word's hash is its span of a polynomial prefix
    hash, shifted to position 0 with the base's inverse, so equal words hash equal wherever
    they stand and no string is made per word."""
    lowered = [(t or "").lower() for t in texts]
    lengths = np.fromiter(map(len, lowered), np.int64, len(lowered))
    points = np.frombuffer("".join(lowered).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    starts_of_docs = np.cumsum(lengths) - lengths
    inside = word_chars()[points]
    before, after = np.zeros_like(inside), np.zeros_like(inside)
    before[1:], after[:-1] = inside[:-1], inside[1:]
    before[starts_of_docs[lengths > 0]] = False
    after[(starts_of_docs + lengths - 1)[lengths > 0]] = False
    starts, ends = np.flatnonzero(inside & ~before), np.flatnonzero(inside & ~after) + 1
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(points) + 1, dtype=np.uint64)
        np.cumsum(points * powers(MIX, len(points)), dtype=np.uint64, out=prefix[1:])
        hashes = finalize((prefix[ends] - prefix[starts]) * powers(MIX_INVERSE, len(points))[starts])
    return hashes, np.searchsorted(starts_of_docs, starts, side="right") - 1


def batch_ngrams(texts: Sequence[str | None], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, doc index) of every run of n consecutive words inside one doc; docs with fewer have none."""
    hashes, doc_of = batch_words(texts)
    count = len(hashes) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    combined = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            combined = combined * MIX + hashes[k:k + count]
    inside = doc_of[:count] == doc_of[n - 1:]
    return combined[inside], doc_of[:count][inside]


@dataclass
class EvalNgrams:
    """The sorted, unique n-gram hashes of the evaluation texts, and a check of training docs against them."""

    hashes: np.ndarray
    n: int

    @functools.cached_property
    def flags(self) -> np.ndarray:
        """Flags by the low bits of the hashes (about 1 in 64 set): most n-grams are ruled out by one
        lookup, and only the few left pay for a binary search (which, over random n-grams, measured a
        third of the whole check). Built on first use, so once per worker, never shipped."""
        size = 1 << min(max((64 * len(self.hashes)).bit_length(), 16), 27)
        flags = np.zeros(size, dtype=bool)
        flags[self.hashes & np.uint64(size - 1)] = True
        return flags

    def overlapping_docs(self, texts: Sequence[str | None]) -> np.ndarray:
        """Per doc of the batch, whether it shares any n-gram with the evaluation set."""
        dirty = np.zeros(len(texts), dtype=bool)
        if len(self.hashes) == 0:
            return dirty
        grams, doc_of = batch_ngrams(texts, self.n)
        maybe = self.flags[grams & np.uint64(len(self.flags) - 1)]
        grams, doc_of = grams[maybe], doc_of[maybe]
        at = np.minimum(np.searchsorted(self.hashes, grams), len(self.hashes) - 1)
        dirty[doc_of[self.hashes[at] == grams]] = True
        return dirty

    def __getstate__(self) -> dict:
        return {"hashes": self.hashes, "n": self.n}


def eval_ngrams(texts: Iterable[str], n: int, batch_docs: int = 1024) -> EvalNgrams:
    """The n-grams of all evaluation texts."""
    texts, parts = list(texts), [np.zeros(0, dtype=np.uint64)]
    for start in range(0, len(texts), batch_docs):
        parts.append(batch_ngrams(texts[start:start + batch_docs], n)[0])
    return EvalNgrams(np.unique(np.concatenate(parts)), n)
