"""Decontamination: find training docs that share a word n-gram with the evaluation texts.

Words are lowercased runs of letters and digits (punctuation and spacing ignored), and an
n-gram is hashed to 64 bits from stable per-word hashes, as GPT-3 did with 13-grams
(Brown et al. 2020, appendix C). The eval side is a sorted array of hashes: compact enough
to broadcast to every worker, and searched with one vectorized lookup per doc.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import numpy as np

WORD = re.compile(r"\w+")
MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio) for the polynomial hash
# Word hashes kept across docs in a worker process: words repeat from doc to doc, so most
# lookups skip blake2b (measured 2x on real text). Cleared when full, which bounds memory.
_WORD_HASHES: dict[str, int] = {}
MAX_CACHED_WORDS = 1_000_000


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def word_hashes(tokens: list[str]) -> np.ndarray:
    """A stable 64-bit hash per word (Python's own hash differs between worker processes)."""
    cache = _WORD_HASHES
    if len(cache) > MAX_CACHED_WORDS:
        cache.clear()
    for w in tokens:
        if w not in cache:
            cache[w] = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
    return np.fromiter((cache[w] for w in tokens), dtype=np.uint64, count=len(tokens))


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """One 64-bit hash per run of n consecutive words; empty when the text has fewer than n words."""
    hashes = word_hashes(words(text))
    count = len(hashes) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    combined = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            combined = combined * MIX + hashes[k:k + count]
    return combined


def eval_ngrams(texts: Iterable[str], n: int) -> np.ndarray:
    """The sorted, unique n-gram hashes of all evaluation texts."""
    parts = [ngram_hashes(text, n) for text in texts]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)


def overlaps(text: str, eval_hashes: np.ndarray, n: int) -> bool:
    """Whether the text shares any n-gram with the evaluation set."""
    if len(eval_hashes) == 0:
        return False
    grams = ngram_hashes(text, n)
    if len(grams) == 0:
        return False
    at = np.minimum(np.searchsorted(eval_hashes, grams), len(eval_hashes) - 1)
    return bool(np.any(eval_hashes[at] == grams))
