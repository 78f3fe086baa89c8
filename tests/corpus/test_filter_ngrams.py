"""Batch-wide repetition measures against Gopher's per-doc reference walk, on docs built to repeat."""

from __future__ import annotations

import random
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tokenmill.corpus import filter_ngrams
from tokenmill.corpus.filter_ngrams import ngram_chars
from tokenmill.corpus.filter_spec import nonempty_items

TOP, DUP = (2, 3, 4), (5, 6, 7, 8, 9, 10)


def reference_dup_chars(words: list[str], n: int) -> int:
    """Gopher's walk (as datatrove's find_all_duplicate, over word tuples): a repeat counts and jumps past itself."""
    seen: set[tuple[str, ...]] = set()
    chars, at = 0, 0
    while at < len(words) - n + 1:
        gram = tuple(words[at : at + n])
        if gram in seen:
            chars += sum(map(len, gram))
            at += n
        else:
            seen.add(gram)
            at += 1
    return chars


def reference_top_chars(words: list[str], n: int) -> int:
    """Chars in all occurrences of the most frequent repeated n-gram, the first seen on ties."""
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not counts or max(counts.values()) < 2:
        return 0
    gram, count = counts.most_common(1)[0]
    return sum(map(len, gram)) * count


def repetitive_doc(rng: random.Random) -> str:
    """Words from a tiny vocabulary, with passages copied from earlier in the doc, so repeats overlap,
    runs of repeats meet, and jumps skip first occurrences whose codes come back later."""
    vocab = [rng.choice("abcdefgh") * rng.randint(1, 3) for _ in range(rng.randint(2, 8))]
    words: list[str] = []
    while len(words) < rng.randint(0, 120):
        if words and rng.random() < 0.4:
            start = rng.randrange(len(words))
            words += words[start : start + rng.randint(1, 25)]
        else:
            words.append(rng.choice(vocab))
    return " ".join(words)


@pytest.mark.parametrize("seed,chunk_items,max_chain", [(0, 1 << 15, 32), (1, 1 << 15, 1), (2, 64, 32), (3, 1, 2)])
def test_batch_measures_match_the_per_doc_reference(seed, chunk_items, max_chain, monkeypatch):
    monkeypatch.setattr(filter_ngrams, "CHUNK_ITEMS", chunk_items)  # codes made chunk by chunk, docs never split
    monkeypatch.setattr(filter_ngrams, "MAX_CHAIN", max_chain)  # chains of runs left to the exact walk
    rng = random.Random(seed)
    docs = [repetitive_doc(rng) for _ in range(300)]
    words, parents = nonempty_items(pc.utf8_split_whitespace(pa.array(docs, pa.large_string())))
    got = ngram_chars(words, pc.utf8_length(words).to_numpy(), parents, len(docs), TOP, DUP)
    for n in TOP:
        assert got[n].tolist() == [reference_top_chars(doc.split(), n) for doc in docs], n
    for n in DUP:
        assert got[n].tolist() == [reference_dup_chars(doc.split(), n) for doc in docs], n
    assert sum(got[5]) > 0
