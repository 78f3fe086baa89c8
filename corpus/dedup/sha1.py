"""SHA-1 of many short byte spans at once, as uint32 array ops: no bytes object per span.

MinHash over datasketch's `sha1_hash32` hashes every shingle; hashlib costs a call and a bytes
object each, which was ~75% of signing. Spans that fit one 64-byte block (98% of 5-word
shingles) run the 80 rounds over columns of a (16 x spans) block instead.
"""

from __future__ import annotations

import numpy as np

# SHA-1 (FIPS 180-4) initial state and round constants.
INITIAL_STATE = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)
ROUND_CONSTANTS = (0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6)
# Longest message of one 64-byte SHA-1 block (then 0x80 and the 8-byte bit length): 98% of 5-word shingles.
ONE_BLOCK_BYTES = 55
# Spans hashed at once by the array SHA-1: measured best of 4k to 128k (smaller pay ufunc call overhead,
# larger leave the cache).
CHUNK = 32_768
# The leading 0..3 bytes of a big-endian word, and the 14 message words of a block (2 hold the bit length).
_KEEP_BYTES = np.array([0, 0xFF000000, 0xFFFF0000, 0xFFFFFF00], dtype=np.uint32)
_WORD = np.arange(14)


def one_block_prefixes(buffer: bytes, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h0, h1): the first two big-endian words of the SHA-1 digest of each span of at most
    `ONE_BLOCK_BYTES` bytes, `CHUNK` spans at a time."""
    h0, h1 = np.empty(len(starts), dtype=np.uint32), np.empty(len(starts), dtype=np.uint32)
    words, row = shifted_words(buffer)
    for i in range(0, len(starts), CHUNK):
        part = slice(i, i + CHUNK)
        h0[part], h1[part] = compress(padded_blocks(words, row, starts[part], lengths[part]))
    return h0, h1


def shifted_words(buffer: bytes) -> tuple[np.ndarray, int]:
    """(words, row): big-endian uint32 words of `buffer` from every byte offset, as native uint32.

    The word at byte s + 4j is `words[(s % 4) * row + s // 4 + j]`: one aligned gather per message
    word, where a strided unaligned big-endian view measured 2x slower. Zero padded past the end.
    """
    row = len(buffer) // 4 + 16
    raw = np.zeros(4 * row + 3, dtype=np.uint8)
    raw[: len(buffer)] = np.frombuffer(buffer, dtype=np.uint8)
    words = np.empty((4, row), dtype=np.uint32)
    for r in range(4):
        words[r] = raw[r : r + 4 * row].view(">u4")
    return words.reshape(-1), row


def padded_blocks(words: np.ndarray, row: int, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(16 x k) big-endian words of each span padded to one SHA-1 block: bytes, 0x80, zeros, bit length.

    One gather of all 14 message words, then words past the span zeroed and the last one cut
    and marked: measured 25% faster than masking each word by its byte count.
    """
    block = np.empty((16, len(starts)), dtype=np.uint32)
    np.take(words, (starts & 3) * row + (starts >> 2) + _WORD[:, None], out=block[:14])
    last = lengths >> 2
    block[:14] *= _WORD[:, None] <= last
    cols = np.arange(len(starts))
    tail = lengths & 3
    marker = np.uint32(0x80) << (24 - 8 * tail).astype(np.uint32)
    block[last, cols] = (block[last, cols] & _KEEP_BYTES[tail]) | marker
    block[14] = 0
    block[15] = lengths * 8
    return block


def compress(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h0, h1): the first two SHA-1 state words after compressing one block per column of `block`.

    In place over preallocated arrays (the block becomes the 16-word message schedule ring), so
    each of the ~1400 ufunc calls is one pass over `CHUNK` words. A full 80-row schedule
    built 3 to 6 rows per call makes fewer calls but measured no faster: it leaves the cache.
    """
    k = block.shape[1]
    a, b, c, d, e = (np.full(k, h, dtype=np.uint32) for h in INITIAL_STATE)
    f, tmp = np.empty(k, dtype=np.uint32), np.empty(k, dtype=np.uint32)
    for t in range(80):
        w = block[t % 16]
        if t >= 16:  # w = rotl(w[t-3] ^ w[t-8] ^ w[t-14] ^ w[t-16], 1)
            w ^= block[(t - 3) % 16]
            w ^= block[(t - 8) % 16]
            w ^= block[(t - 14) % 16]
            np.right_shift(w, 31, out=tmp)
            w <<= 1
            w |= tmp
        if t < 20:  # choose: d ^ (b & (c ^ d))
            np.bitwise_xor(c, d, out=f)
            f &= b
            f ^= d
        elif 40 <= t < 60:  # majority: (b & c) | (d & (b | c))
            np.bitwise_or(b, c, out=f)
            f &= d
            np.bitwise_and(b, c, out=tmp)
            f |= tmp
        else:  # parity
            np.bitwise_xor(b, c, out=f)
            f ^= d
        e += f
        e += w
        e += np.uint32(ROUND_CONSTANTS[t // 20])
        np.left_shift(a, 5, out=tmp)  # e += rotl(a, 5): the two halves share no bits
        e += tmp
        np.right_shift(a, 27, out=tmp)
        e += tmp
        np.left_shift(b, 30, out=tmp)  # b = rotl(b, 30)
        b >>= 2
        b |= tmp
        a, b, c, d, e = e, a, b, c, d
    a += np.uint32(INITIAL_STATE[0])
    b += np.uint32(INITIAL_STATE[1])
    return a, b
