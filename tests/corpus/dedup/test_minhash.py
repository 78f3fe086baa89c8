"""MinHash helpers against datasketch: signatures bit for bit, bands x rows, the S-curve."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash
from datasketch.lsh import _optimal_param

from tokenmill.corpus.dedup import lsh as lsh_math
from tokenmill.corpus.dedup import minhash as mh

TEXTS = [
    "The quick brown fox jumps over the lazy dog, again and again; and again.",
    "Short doc",
    "",
    " ".join(f"word{i % 37}" for i in range(3000)),
    "Ünïcödé Straße — naïve café 123 456",
]


def sign(texts: list[str], num_perm: int, seed: int, scheme: str) -> tuple[list[list[bytes]], np.ndarray]:
    docs = [mh.shingles(mh.normalize(t), 5) for t in texts]
    hashes = mh.hash_shingles([s for d in docs for s in d], mh.width_of(scheme))
    return docs, mh.signatures(hashes, np.array([len(d) for d in docs]), num_perm, seed, scheme)


@pytest.mark.parametrize("scheme", mh.SCHEMES)
@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 42)])
def test_signatures_equal_datasketch_bit_for_bit(scheme, num_perm, seed):
    docs, sigs = sign(TEXTS, num_perm, seed, scheme)
    for shingles, row in zip(docs, sigs):
        reference = MinHash(num_perm=num_perm, seed=seed, scheme=scheme)
        reference.update_batch(shingles)
        assert row.dtype == reference.hashvalues.dtype
        assert np.array_equal(row, reference.hashvalues)
        lean = LeanMinHash(seed=seed, hashvalues=row, scheme=scheme)
        assert lean.jaccard(LeanMinHash(reference)) == 1.0


def test_shingles_and_normalization():
    assert mh.normalize("Hello,  World!\n42", normalize_digits=True) == "hello world 00"
    assert mh.normalize("Hello,  World!", strip_punctuation=False) == "hello, world!"
    assert mh.shingles("a b c", 5) == [b"a b c"]
    assert mh.shingles("a b c d", 3) == [b"a b c", b"b c d"]
    assert mh.shingles("", 5) == []
    assert mh.text_key(mh.normalize("Same  TEXT")) == mh.text_key(mh.normalize("same text"))
    assert mh.text_key("a") != mh.text_key("b")


@pytest.mark.parametrize("strip,digits", [(True, False), (False, False), (True, True)])
def test_batch_normalization_and_spans_equal_the_per_doc_helpers(strip, digits):
    texts = [*TEXTS, " ", "\x1c tab\there \x00 NUL", "İstanbul\u00a0ΣΑΣ x", "a\u3000b  ", "one two three four"]
    buffer, ends = mh.normalized_batch(texts, strip, digits)
    assert mh.doc_bytes(buffer, ends) == [mh.normalize(t, strip, digits).encode() for t in texts]
    for n in (1, 3, 5):
        starts, stops, counts = mh.shingle_spans(buffer, ends, n)
        expected = [mh.shingles(mh.normalize(t, strip, digits), n) for t in texts]
        assert counts.tolist() == [len(d) for d in expected]
        assert [buffer[a:b] for a, b in zip(starts.tolist(), stops.tolist())] == [s for d in expected for s in d]


@pytest.mark.parametrize("num_perm", [16, 128])
def test_bands_rows_match_datasketch_lsh(num_perm):
    for threshold in np.round(np.arange(0.1, 0.95, 0.1), 2):
        for false_positive_weight in (0.5, 0.3):
            weights = (false_positive_weight, 1 - false_positive_weight)
            expected = _optimal_param(threshold, num_perm, *weights)  # what MinHashLSH(threshold, ...) uses
            assert lsh_math.optimal_bands(threshold, num_perm, *weights) == expected, (threshold, weights)


def test_s_curve_rises_through_the_threshold():
    bands, rows = lsh_math.optimal_bands(0.8, 128)
    assert lsh_math.s_curve(0.5, bands, rows) < 0.05
    assert 0.2 < lsh_math.s_curve(0.8, bands, rows) < 0.8
    assert lsh_math.s_curve(0.95, bands, rows) > 0.99


def test_band_keys_collide_only_on_equal_bands():
    _, sigs = sign(["alpha beta gamma delta epsilon zeta eta theta", "alpha beta gamma delta epsilon zeta eta iota"], 64, 1, "affine32")
    same = np.vstack([sigs[0], sigs[0]])
    keys = mh.band_keys(same, 8, 8)
    assert keys.shape == (2, 8) and np.array_equal(keys[0], keys[1])
    assert len(set(keys[0].tolist())) == 8  # the band index is part of the key
    other = mh.band_keys(sigs, 8, 8)
    equal_bands = (sigs[0].reshape(8, 8) == sigs[1].reshape(8, 8)).all(axis=1)
    assert np.array_equal(other[0] == other[1], equal_bands)


def test_estimated_jaccard_tracks_true_jaccard():
    words = [f"w{i}" for i in range(400)]
    edited = words[:360] + [f"x{i}" for i in range(40)]
    docs, sigs = sign([" ".join(words), " ".join(edited)], 256, 1, "affine32")
    a, b = set(docs[0]), set(docs[1])
    estimate = mh.estimated_jaccard(sigs[:1], sigs[1:])[0]
    assert abs(estimate - len(a & b) / len(a | b)) < 0.08


@pytest.mark.parametrize("width", [32, 64])
def test_hash_spans_equal_hashlib_across_block_limits(width):
    buffer = bytes(range(256)) * 4
    starts = np.repeat(np.arange(8), 200)  # every start mod 4
    stops = starts + np.tile(np.arange(200), 8)  # 0..199 bytes: one block up to 55, two up to 119, then three
    expected = mh.hash_shingles([buffer[a:b] for a, b in zip(starts.tolist(), stops.tolist())], width)
    got = mh.hash_spans(buffer, starts, stops, width)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_shingle_sets_are_each_docs_distinct_hashes_sorted():
    """Docs of 5, 0 and 4 hashes (repeats inside a doc, shared values across docs): per doc, its set."""
    from tokenmill.corpus.dedup.jaccard import shingle_sets

    hashes = np.array([9, 3, 9, 7, 3, 5, 5, 1, 2**40], dtype=np.uint64)
    sets = shingle_sets(hashes, np.array([5, 0, 4]))
    assert [np.frombuffer(s.as_py(), dtype=np.uint64).tolist() for s in sets] == [[3, 7, 9], [], [1, 5, 2**40]]
