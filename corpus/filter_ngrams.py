"""Batch-wide repetition measures: repeated items and word n-grams per doc, without a Python loop per word.

Every item gets a code per (doc, value), numbered in order of first appearance, so "repeats an
earlier item" is a running-maximum test and Counter's tie-break (the first n-gram seen wins) is
the smallest code. n-gram codes are built level by level from (n-1)-gram codes, only where the
(n-1)-grams at i and i+1 both repeat: an n-gram can repeat nowhere else, so the work shrinks fast.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

UNIQUE = -1  # the code of an n-gram that occurs once in its doc


def first_seen_codes(keys: np.ndarray) -> np.ndarray:
    """Codes 0, 1, ... numbered in order of first appearance (pyarrow's hash dictionary)."""
    return pc.dictionary_encode(pa.array(keys)).indices.to_numpy().astype(np.int64)


def is_first(codes: np.ndarray) -> np.ndarray:
    """True where a first-appearance code appears for the first time."""
    seen = np.maximum.accumulate(np.concatenate(([-1], codes[:-1])))
    return codes > seen


def item_codes(items: pa.Array, parents: np.ndarray) -> np.ndarray:
    """Codes of (doc, item value) pairs: equal only for equal items of the same doc."""
    values = pc.dictionary_encode(items).indices.to_numpy().astype(np.int64)
    return first_seen_codes(parents.astype(np.int64) * (int(values.max(initial=0)) + 1) + values)


def dup_items(items: pa.Array, parents: np.ndarray, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per doc: (items that repeat an earlier item, chars in them) (Gopher, Rae et al. 2021)."""
    repeat = ~is_first(item_codes(items, parents)) if len(items) else np.zeros(0, dtype=bool)
    chars = pc.utf8_length(items).to_numpy(zero_copy_only=False)
    return (
        np.bincount(parents, weights=repeat, minlength=n_docs),
        np.bincount(parents, weights=repeat * chars, minlength=n_docs),
    )


def next_level(codes: np.ndarray, words: np.ndarray, parents: np.ndarray, n: int) -> np.ndarray:
    """n-gram codes from (n-1)-gram codes and word codes; UNIQUE where the n-gram cannot repeat."""
    out = np.full(len(words), UNIQUE, dtype=np.int64)
    last = len(words) - n + 1
    if last <= 0:
        return out
    may = (codes[:last] != UNIQUE) & (codes[1 : last + 1] != UNIQUE) & (parents[:last] == parents[n - 1 :])
    at = np.flatnonzero(may)
    if len(at):
        keys = codes[at] * (int(words.max()) + 1) + words[at + n - 1]
        out[at] = repeated_only(first_seen_codes(keys))
    return out


def repeated_only(codes: np.ndarray) -> np.ndarray:
    """UNIQUE for codes seen once; the others renumbered 0, 1, ... keeping first-appearance order."""
    if not len(codes):
        return codes
    keep = np.bincount(codes) > 1
    return np.where(keep[codes], (np.cumsum(keep) - 1)[codes], UNIQUE)


def top_gram_chars(codes: np.ndarray, gram_chars: np.ndarray, parents: np.ndarray, n_docs: int) -> np.ndarray:
    """Per doc: chars (all occurrences) of its most frequent repeated n-gram, the first seen on ties."""
    out = np.zeros(n_docs)
    at = np.flatnonzero(codes != UNIQUE)
    if not len(at):
        return out
    counts = np.bincount(codes[at])
    first_at = at[is_first(codes[at])]  # codes are numbered by first appearance, so this is code order
    gram_doc = parents[first_at]
    best_count = np.zeros(n_docs, dtype=np.int64)
    np.maximum.at(best_count, gram_doc, counts)
    ties = np.flatnonzero(counts == best_count[gram_doc])
    best = np.full(n_docs, len(counts), dtype=np.int64)
    np.minimum.at(best, gram_doc[ties], ties)
    docs = np.flatnonzero(best < len(counts))
    out[docs] = gram_chars[first_at[best[docs]]] * counts[best[docs]]
    return out


def jumped_dup_chars(codes: np.ndarray, gram_chars: np.ndarray, parents: np.ndarray, n: int, n_docs: int) -> np.ndarray:
    """Per doc: chars of n-grams that repeat an earlier visited one; a repeat jumps past itself (Gopher).

    Only repeats can change the walk, so it steps from repeat to repeat, and from a counted one
    straight to the first repeat past its jump; a first occurrence jumped over is never visited,
    and its gram counts as new when next seen. The walk is sequential, so it is one Python loop
    over the batch: codes are per doc and a jump never leaves its doc, so no state is reset.
    """
    known = np.flatnonzero(codes != UNIQUE)
    first_mask = is_first(codes[known])
    first, repeats = known[first_mask], known[~first_mask]
    if not len(repeats):
        return np.zeros(n_docs)
    after_jump = np.searchsorted(repeats, repeats + n)
    jumped_from = np.searchsorted(first, repeats, side="right")
    jumped_to = np.searchsorted(first, repeats + n)
    counted = _walk(
        codes[repeats].tolist(), after_jump.tolist(), jumped_from.tolist(), jumped_to.tolist(), codes[first].tolist()
    )
    at = repeats[counted]
    return np.bincount(parents[at], weights=gram_chars[at], minlength=n_docs)


def _walk(codes: list, after_jump: list, jumped_from: list, jumped_to: list, first_codes: list) -> list:
    """Indices of the repeats the walk counts. Counting repeat k jumps to repeat `after_jump[k]` over the
    first occurrences `first_codes[jumped_from[k]:jumped_to[k]]`, whose codes then wait to be seen once more."""
    waiting: set[int] = set()
    counted = []
    k, end = 0, len(codes)
    while k < end:
        code = codes[k]
        if code in waiting:
            waiting.discard(code)
            k += 1
            continue
        counted.append(k)
        if jumped_from[k] < jumped_to[k]:
            waiting.update(first_codes[jumped_from[k] : jumped_to[k]])
        k = after_jump[k]
    return counted


def ngram_chars(words: pa.Array, parents: np.ndarray, n_docs: int, top: tuple, dup: tuple) -> dict[int, np.ndarray]:
    """Per n: top-n-gram chars (n in `top`) or jumped duplicate n-gram chars (n in `dup`), per doc."""
    lengths = pc.utf8_length(words).to_numpy(zero_copy_only=False).astype(np.int64)
    cum = np.concatenate(([0], np.cumsum(lengths)))
    word_codes = item_codes(words, parents) if len(words) else np.zeros(0, dtype=np.int64)
    codes = repeated_only(word_codes)
    out = {}
    for n in range(2, max(top + dup) + 1):
        codes = next_level(codes, word_codes, parents, n)
        gram_chars = np.zeros(len(codes), dtype=np.int64)
        last = max(len(codes) - n + 1, 0)
        gram_chars[:last] = cum[n : n + last] - cum[:last]
        if n in top:
            out[n] = top_gram_chars(codes, gram_chars, parents, n_docs)
        if n in dup:
            out[n] = jumped_dup_chars(codes, gram_chars, parents, n, n_docs)
    return out
