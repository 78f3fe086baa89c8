"""Batch-wide repetition measures: repeated items and word n-grams per doc, without a Python loop per word.

Every item gets a code per (doc, value), numbered in order of first appearance, so "repeats an
earlier item" is a running-maximum test and Counter's tie-break (the first n-gram seen wins) is
the smallest code. n-gram codes are built level by level from (n-1)-gram codes, only where the
(n-1)-grams at i and i+1 both repeat: an n-gram can repeat nowhere else, so the work shrinks fast.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

UNIQUE = -1  # the code of an n-gram that occurs once in its doc


CHUNK_ITEMS = 1 << 15  # items per hash table: small enough to stay in cache (2-3x faster than one big table)


def doc_chunks(parents: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) slices of about CHUNK_ITEMS items that never split a doc (`parents` is sorted)."""
    heads = np.flatnonzero(np.diff(parents, prepend=-1))
    cuts = heads[np.unique(np.searchsorted(heads, np.arange(0, len(parents), CHUNK_ITEMS), side="right") - 1)].tolist()
    return list(zip(cuts, cuts[1:] + [len(parents)]))


def coded_by_chunk(parents: np.ndarray, chunk_codes: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """First-appearance codes computed per chunk of docs (`chunk_codes(start, end)`), offset into batch codes:
    a code never spans two docs, so the chunks' codes never meet."""
    out = np.empty(len(parents), dtype=np.int64)
    offset = 0
    for start, end in doc_chunks(parents):
        codes = chunk_codes(start, end)
        out[start:end] = codes + offset
        offset += int(codes.max()) + 1
    return out


def dictionary_codes(values: pa.Array) -> np.ndarray:
    """Codes 0, 1, ... numbered in order of first appearance (pyarrow's hash dictionary)."""
    return pc.dictionary_encode(values).indices.to_numpy()


def first_seen_codes(keys: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """First-appearance codes of keys that already tell docs apart."""
    return coded_by_chunk(parents, lambda start, end: dictionary_codes(pa.array(keys[start:end])))


def is_first(codes: np.ndarray) -> np.ndarray:
    """True where a first-appearance code appears for the first time."""
    seen = np.maximum.accumulate(np.concatenate(([-1], codes[:-1])))
    return codes > seen


def item_codes(items: pa.Array, parents: np.ndarray) -> np.ndarray:
    """Codes of (doc, item value) pairs: equal only for equal items of the same doc."""

    def chunk_codes(start: int, end: int) -> np.ndarray:
        values = dictionary_codes(items[start:end]).astype(np.int64)
        return dictionary_codes(pa.array((parents[start:end] - parents[start]) * (int(values.max()) + 1) + values))

    return coded_by_chunk(parents, chunk_codes)


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
        out[at] = repeated_only(first_seen_codes(keys, parents[at]))
    return out


def repeated_only(codes: np.ndarray) -> np.ndarray:
    """UNIQUE for codes seen once; the others renumbered 0, 1, ... keeping first-appearance order."""
    if not len(codes):
        return codes
    keep = np.bincount(codes) > 1
    return np.where(keep[codes], (np.cumsum(keep) - 1)[codes], UNIQUE)


def top_gram_chars(codes: np.ndarray, word_ends: np.ndarray, parents: np.ndarray, n: int, n_docs: int) -> np.ndarray:
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
    out[docs] = gram_chars(word_ends, first_at[best[docs]], n) * counts[best[docs]]
    return out


MAX_CHAIN = 32  # runs of repeats, each entered where the last one's jump lands, resolved in numpy; longer: walked


def jumped_dup_chars(codes: np.ndarray, word_ends: np.ndarray, parents: np.ndarray, n: int, n_docs: int) -> np.ndarray:
    """Per doc: chars of n-grams that repeat an earlier visited one; a repeat jumps past itself (Gopher).

    A first occurrence that a jump skips is never visited, and its gram counts as new when next
    seen. Until that first happens in a doc, the walk goes by arithmetic (`stride_walk`); from
    there on one Python loop walks those docs' repeats in order (`_walk`).
    """
    known = np.flatnonzero(codes != UNIQUE)
    first_mask = is_first(codes[known])
    first, repeats = known[first_mask], known[~first_mask]
    if not len(repeats):
        return np.zeros(n_docs)
    counted, unresolved = stride_walk(repeats, parents[repeats], n)
    at = repeats[counted]
    jumper, skipped = skipped_firsts(first, at, n)
    skipped_code = np.zeros(int(codes.max()) + 1, dtype=bool)
    skipped_code[codes[skipped]] = True  # a first occurrence precedes its repeats, so the jump came first
    seen_again = at[skipped_code[codes[at]]]
    walk_from = np.full(n_docs, np.iinfo(np.int64).max)
    np.minimum.at(walk_from, parents[seen_again], seen_again)
    walk_from[unresolved] = -1
    before = at < walk_from[parents[at]]
    waiting = codes[skipped[before[jumper]]]
    rest = repeats[repeats >= walk_from[parents[repeats]]]
    rest_first = first[first > walk_from[parents[first]]]
    at = np.concatenate((at[before], walked_repeats(rest_first, codes, rest, n, waiting)))
    return np.bincount(parents[at], weights=gram_chars(word_ends, at, n), minlength=n_docs)


def stride_walk(repeats: np.ndarray, docs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The walk if no skipped first occurrence ever came back: (indices of counted repeats, docs left unresolved).

    Repeats come in runs of consecutive positions (a repeated passage), inside which the walk counts
    every n-th. Where a run is entered depends on where the previous run's last jump landed, so the
    entry points are found by iterating to a fixed point, one more link of each chain per round.
    """
    heads = np.flatnonzero((np.diff(repeats, prepend=-2) != 1) | (np.diff(docs, prepend=-1) != 0))
    ends = np.append(heads[1:], len(repeats))
    starts, stops = repeats[heads], repeats[ends - 1] + 1
    chained = np.append(False, docs[heads[1:]] == docs[heads[:-1]])
    entry = starts
    for _ in range(MAX_CHAIN):
        counts = np.maximum((stops - 1 - entry) // n + 1, 0)
        landing = np.where(counts > 0, entry + counts * n, entry)
        previous = np.append(-1, landing[:-1])
        settled, entry = entry, np.where(chained, np.maximum(starts, previous), starts)
        moved = entry != settled
        if not moved.any():
            break
    unresolved = np.unique(docs[heads[moved]])
    first_counted = heads + (settled - starts)  # where `counts` were counted from
    return expand_ranges(first_counted, counts, n), unresolved


def expand_ranges(starts: np.ndarray, counts: np.ndarray, step: int = 1) -> np.ndarray:
    """starts[i], starts[i] + step, ... (counts[i] values each), concatenated."""
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + step * offsets


def skipped_firsts(first: np.ndarray, counted: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first occurrences the counted repeats jump over: (index of the jumping repeat, position skipped)."""
    jumped_from = np.searchsorted(first, counted, side="right")
    spans = np.searchsorted(first, counted + n) - jumped_from
    return np.repeat(np.arange(len(counted)), spans), first[expand_ranges(jumped_from, spans)]


def walked_repeats(
    first: np.ndarray, codes: np.ndarray, repeats: np.ndarray, n: int, waiting: np.ndarray
) -> np.ndarray:
    """Positions of the repeats the exact walk counts, stepping from repeat to repeat in order."""
    if not len(repeats):
        return repeats
    counted = _walk(
        codes[repeats].tolist(),
        np.searchsorted(repeats, repeats + n).tolist(),
        np.searchsorted(first, repeats, side="right").tolist(),
        np.searchsorted(first, repeats + n).tolist(),
        codes[first].tolist(),
        set(waiting.tolist()),
    )
    return repeats[np.array(counted, dtype=np.int64)]


def _walk(codes: list, after_jump: list, jumped_from: list, jumped_to: list, first_codes: list, waiting: set) -> list:
    """Indices of the repeats the walk counts. Counting repeat k jumps to repeat `after_jump[k]` over the
    first occurrences `first_codes[jumped_from[k]:jumped_to[k]]`, whose codes then wait to be seen once more."""
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


def gram_chars(word_ends: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """Chars in the n words from each position `at` (spaces not counted); `word_ends` is the running total."""
    return word_ends[at + n] - word_ends[at]


def ngram_chars(
    words: pa.Array, lengths: np.ndarray, parents: np.ndarray, n_docs: int, top: tuple, dup: tuple
) -> dict[int, np.ndarray]:
    """Per n: top-n-gram chars (n in `top`) or jumped duplicate n-gram chars (n in `dup`), per doc;
    `lengths` are the words' lengths in characters."""
    word_ends = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
    word_codes = item_codes(words, parents) if len(words) else np.zeros(0, dtype=np.int64)
    codes = repeated_only(word_codes)
    out = {}
    for n in range(2, max(top + dup) + 1):
        codes = next_level(codes, word_codes, parents, n)
        if n in top:
            out[n] = top_gram_chars(codes, word_ends, parents, n, n_docs)
        if n in dup:
            out[n] = jumped_dup_chars(codes, word_ends, parents, n, n_docs)
    return out
