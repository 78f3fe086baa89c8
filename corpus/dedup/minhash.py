"""Pure MinHash helpers for dedup: normalization, shingles, signatures and band keys.

Signatures equal `datasketch.MinHash(num_perm, seed, scheme=...).update_batch(shingles).hashvalues`
bit for bit: the same SHA-1 input hash (compiled, over many shingles at once), datasketch's own
permutation parameters and its arithmetic, but applied to all the shingles of many docs in one
compiled pass instead of one numpy call per doc.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numba
import numpy as np

from tokenmill.corpus.dedup import sha1

SCHEMES = ("affine32", "affine64", "legacy")
_PUNCTUATION = re.compile(r"[^\w\s]+")
_DIGITS = re.compile(r"\d")
_SPACE = 32
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_BAND_SALT = np.uint64(0x9E3779B97F4A7C15)
# datasketch 2's constants (datasketch/minhash.py), written out: importing datasketch imports scipy
# (about 1 s on the driver and on every worker, before a step's first task).
_MERSENNE_PRIME = np.uint64((1 << 61) - 1)
_MAX_HASH = np.uint64((1 << 32) - 1)
_SCHEME_DTYPES = {"legacy": np.uint64, "affine32": np.uint32, "affine64": np.uint64}
_SCHEME_MAX_HASHES = {"legacy": _MAX_HASH, "affine32": np.uint32((1 << 32) - 1), "affine64": np.uint64((1 << 64) - 1)}
# MurmurHash3's finalizer per width: (shift, multiplier, shift, multiplier, shift)
_FMIX_CONSTANTS = {
    32: (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16)),
    64: (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(33), np.uint64(0xC4CEB9FE1A85EC53), np.uint64(33)),
}


def normalize(text: str, strip_punctuation: bool = True, normalize_digits: bool = False) -> str:
    """Lowercase, optionally blank punctuation and map digits to 0, collapse whitespace."""
    text = text.lower()
    if strip_punctuation:
        text = _PUNCTUATION.sub(" ", text)
    if normalize_digits:
        text = _DIGITS.sub("0", text)
    return " ".join(text.split())


def text_key(normalized: str | bytes) -> int:
    """A signed 64-bit hash of normalized text (or its UTF-8): the exact-dedup key (blake2b, stdlib)."""
    data = normalized if isinstance(normalized, bytes) else normalized.encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def shingles(normalized: str, n: int) -> list[bytes]:
    """Word n-grams of normalized text; a doc shorter than n words is one shingle of what it has."""
    words = normalized.split()
    if len(words) <= n:
        return [" ".join(words).encode()] if words else []
    return [" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)]


@lru_cache(maxsize=8)
def _ascii_table(strip_punctuation: bool, normalize_digits: bool) -> bytes:
    """A `bytes.translate` table doing `normalize` on ASCII text, whitespace mapped to space (collapsed apart).

    Built from the same regexes, so the two paths agree; bytes above 127 never reach it.
    """
    table = bytearray(range(256))
    for c in range(128):
        ch = chr(c)
        if ch.isspace() or (strip_punctuation and _PUNCTUATION.match(ch)):
            table[c] = _SPACE
        elif normalize_digits and _DIGITS.match(ch):
            table[c] = ord("0")
        else:
            table[c] = ord(ch.lower())
    return bytes(table)


def normalized_batch(texts: list[str], strip_punctuation: bool, normalize_digits: bool) -> tuple[bytes, np.ndarray]:
    """(buffer, doc ends): the UTF-8 `normalize` of each text, each followed by one space, in one buffer.

    ASCII texts (most of a web crawl) take a byte table and one compiled whitespace collapse for
    the whole batch instead of a regex and a split per doc: measured about 4x faster.
    """
    table = _ascii_table(strip_punctuation, normalize_digits)
    pieces = [
        t.encode().translate(table) if t.isascii() else normalize(t, strip_punctuation, normalize_digits).encode()
        for t in texts
    ]
    raw = np.frombuffer(b" ".join(pieces) + b" ", dtype=np.uint8)
    sizes = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)) + 1
    collapsed, ends = _collapse_spaces(raw, sizes)
    return collapsed.tobytes(), ends


@numba.njit(cache=True, nogil=True)
def _collapse_spaces(raw: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`raw` without leading spaces and with each run of spaces cut to one, and where each doc (the
    next `sizes[i]` bytes) ends in the result: one pass, where masks, a gather and a segmented sum
    over every byte took 3x longer."""
    out = np.empty_like(raw)
    ends = np.empty(len(sizes), dtype=np.int64)
    written, read, after_space = 0, 0, True
    for doc in range(len(sizes)):
        for byte in raw[read : read + sizes[doc]]:
            if byte != _SPACE or not after_space:
                out[written] = byte
                written += 1
            after_space = byte == _SPACE
        read += sizes[doc]
        ends[doc] = written
    return out[:written], ends


def doc_bytes(buffer: bytes, ends: np.ndarray) -> list[bytes]:
    """Each doc's normalized text out of a `normalized_batch` buffer, without its trailing space."""
    starts = np.concatenate(([0], ends[:-1]))
    return [buffer[a : max(a, b - 1)] for a, b in zip(starts.tolist(), ends.tolist())]


def shingle_spans(buffer: bytes, ends: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, stops, counts): the `shingles` of every doc of a `normalized_batch` buffer, as byte spans."""
    word_stops = np.flatnonzero(np.frombuffer(buffer, dtype=np.uint8) == _SPACE)
    return _spans_of_words(word_stops, np.asarray(ends, dtype=np.int64), n)


@numba.njit(cache=True, nogil=True)
def _spans_of_words(word_stops: np.ndarray, ends: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each doc's runs of n words (or all its words, if fewer), from the space after every word."""
    counts = np.empty(len(ends), dtype=np.int64)
    first_word = np.empty(len(ends), dtype=np.int64)
    word = 0
    for doc in range(len(ends)):
        first_word[doc] = word
        while word < len(word_stops) and word_stops[word] < ends[doc]:
            word += 1
        words = word - first_word[doc]
        counts[doc] = max(words - n + 1, 1) if words > 0 else 0
    starts = np.empty(counts.sum(), dtype=np.int64)
    stops = np.empty_like(starts)
    out = 0
    for doc in range(len(ends)):
        last_word = first_word[doc + 1] - 1 if doc + 1 < len(ends) else word - 1
        for k in range(counts[doc]):
            head = first_word[doc] + k
            starts[out] = word_stops[head - 1] + 1 if head > 0 else 0
            stops[out] = word_stops[min(head + n - 1, last_word)]
            out += 1
    return starts, stops, counts


def width_of(scheme: str) -> int:
    return 64 if scheme == "affine64" else 32


def hash_shingles(items: list[bytes], width: int) -> np.ndarray:
    """datasketch's `sha1_hash32` / `sha1_hash64` of each item (little-endian SHA-1 prefix)."""
    if not items:
        return np.empty(0, dtype=np.uint32 if width == 32 else np.uint64)
    words = np.frombuffer(b"".join([hashlib.sha1(s).digest() for s in items]), dtype="<u4").reshape(-1, 5)
    if width == 32:
        return words[:, 0].astype(np.uint32)
    return words[:, 0].astype(np.uint64) | (words[:, 1].astype(np.uint64) << np.uint64(32))


def hash_spans(buffer: bytes, starts: np.ndarray, stops: np.ndarray, width: int) -> np.ndarray:
    """`hash_shingles` of the byte spans of a buffer, with no bytes object per shingle (`sha1.py`)."""
    h0, h1 = sha1.prefixes(buffer, starts, stops - starts)
    # datasketch reads the digest's first 4 (8) bytes little-endian; SHA-1 writes h0, h1 big-endian.
    if width == 32:
        return h0.byteswap()
    return h0.byteswap().astype(np.uint64) | (h1.byteswap().astype(np.uint64) << np.uint64(32))


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's permutation parameters (a, b) for these settings (`MinHash._init_permutations`):
    drawn from numpy's RandomState(seed); an odd `a` for the affine schemes."""
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        pairs = [(gen.randint(1, _MERSENNE_PRIME, dtype=np.uint64), gen.randint(0, _MERSENNE_PRIME, dtype=np.uint64))
                 for _ in range(num_perm)]
        a, b = np.array(pairs, dtype=np.uint64).T
        return a, b
    width, dtype = width_of(scheme), _SCHEME_DTYPES[scheme]
    a = gen.randint(0, 1 << (width - 1), num_perm, dtype=dtype) * dtype(2) + dtype(1)
    return a, gen.randint(0, 1 << width, num_perm, dtype=dtype)


def signatures(hashes: np.ndarray, counts: np.ndarray, num_perm: int, seed: int, scheme: str) -> np.ndarray:
    """One signature row per doc; doc i owns the next `counts[i]` entries of `hashes` (repeats cost
    time, not correctness: pass each doc's distinct hashes where they are at hand).

    A doc without shingles keeps the empty value (the scheme's max hash), as datasketch does.
    """
    a, b = permutations(num_perm, seed, scheme)
    dtype = _SCHEME_DTYPES[scheme]
    out = np.full((len(counts), num_perm), _SCHEME_MAX_HASHES[scheme], dtype=dtype)
    if scheme == "legacy":
        values, modulus = hashes.astype(np.uint64), _MERSENNE_PRIME
    else:
        values, modulus = fmix(hashes.astype(dtype), width_of(scheme)), np.uint64(0)
    _minimum_permuted(values, np.asarray(counts, dtype=np.int64), a.astype(dtype), b.astype(dtype), modulus,
                      _MAX_HASH, out)
    return out


@numba.njit(cache=True, nogil=True)
def _minimum_permuted(values: np.ndarray, counts: np.ndarray, a: np.ndarray, b: np.ndarray, modulus: np.uint64,
                      mask: np.uint64, out: np.ndarray) -> None:
    """datasketch's arithmetic per permutation, `a * x + b` wrapping in the signature's dtype (then
    `% modulus & mask` for the legacy scheme), and each doc's minimum, in one pass: the loop over
    permutations vectorizes, where numpy built a (perms x shingles) block and reduced it (5x slower)."""
    permuted = np.empty_like(a)
    start = 0
    for doc in range(len(counts)):
        row = out[doc]
        for i in range(start, start + counts[doc]):
            x = values[i]
            for p in range(len(a)):
                permuted[p] = a[p] * x + b[p]
            if modulus:
                for p in range(len(a)):
                    permuted[p] = (permuted[p] % modulus) & mask
            for p in range(len(a)):
                row[p] = min(row[p], permuted[p])
        start += counts[doc]


def fmix(values: np.ndarray, width: int) -> np.ndarray:
    """MurmurHash3's finalizer, a bijection on [0, 2^width) that spreads the bits (datasketch's `_fmix`)."""
    s1, m1, s2, m2, s3 = _FMIX_CONSTANTS[width]
    values = values ^ (values >> s1)
    values = values * m1
    values = values ^ (values >> s2)
    values = values * m2
    return values ^ (values >> s3)


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(docs x bands) 64-bit bucket keys; the band index is mixed in, so a key names (band, bucket).

    FNV-1a over the band's hash values, then the 64-bit MurmurHash3 finalizer to spread the bits.
    """
    n = sigs.shape[0]
    values = sigs[:, : bands * rows].astype(np.uint64).reshape(n, bands, rows)
    keys = np.broadcast_to(_FNV_OFFSET ^ (np.arange(bands, dtype=np.uint64) * _BAND_SALT), (n, bands)).copy()
    for j in range(rows):
        keys = (keys ^ values[:, :, j]) * _FNV_PRIME
    return fmix(keys, 64)


def estimated_jaccard(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise share of equal signature values: the MinHash estimate of Jaccard similarity."""
    if left.size == 0:
        return np.empty(left.shape[0])
    return (left == right).mean(axis=1)
