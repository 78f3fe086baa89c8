"""Compiled (numba) loops over UTF-8 bytes that the filters share: whitespace, stripping, exact string codes.

numba compiles each function on first use and caches the machine code beside this file, so a
process after the first only loads it (~0.4 s). Every function here works on `raw`, the bytes of
a whole batch, and [start, end) byte ranges into it (`utf8.utf8_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
ASCII_SPACE = np.isin(np.arange(128), [9, 10, 11, 12, 13, 28, 29, 30, 31, 32])  # `str.split()`'s, as `space_bytes`


@njit(cache=True, inline="always")
def space_bytes(raw: np.ndarray, i: int, end: int) -> int:
    """Length in bytes of the whitespace character (as Python's `str.split()` sees it) at byte i, else 0."""
    b = raw[i]
    if b < 0x80:
        return 1 if (9 <= b <= 13) or (28 <= b <= 32) else 0
    if i + 1 >= end:
        return 0
    c = raw[i + 1]
    if b == 0xC2:
        return 2 if c == 0x85 or c == 0xA0 else 0
    if i + 2 >= end or b < 0xE1 or b > 0xE3:
        return 0
    d = raw[i + 2]
    if b == 0xE1:
        return 3 if c == 0x9A and d == 0x80 else 0
    if b == 0xE3:
        return 3 if c == 0x80 and d == 0x80 else 0
    if c == 0x80:
        return 3 if d <= 0x8A or d == 0xA8 or d == 0xA9 or d == 0xAF else 0
    return 3 if c == 0x81 and d == 0x9F else 0


@njit(cache=True)
def space_mask(raw: np.ndarray) -> np.ndarray:
    """Per byte: it belongs to a whitespace character (`space_bytes`). ASCII bytes go through a table and
    are written one by one: half the time of a `space_bytes` call and a slice store per byte."""
    mask = np.empty(len(raw), dtype=np.bool_)
    i = 0
    while i < len(raw):
        if raw[i] < 0x80:
            mask[i] = ASCII_SPACE[raw[i]]
            i += 1
            continue
        width = max(space_bytes(raw, i, len(raw)), 1)
        for k in range(width):
            mask[i + k] = width > 1
        i += width
    return mask


@njit(cache=True)
def strip(raw: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """[start, end) without leading and trailing whitespace (Python's `str.strip()`)."""
    while start < end and space_bytes(raw, start, end):
        start += space_bytes(raw, start, end)
    while start < end:
        if raw[end - 1] < 0x80:
            width = space_bytes(raw, end - 1, end)
        elif end - 2 >= start and space_bytes(raw, end - 2, end) == 2:
            width = 2
        elif end - 3 >= start and space_bytes(raw, end - 3, end) == 3:
            width = 3
        else:
            width = 0
        if not width:
            break
        end -= width
    return start, end


@njit(cache=True)
def mix(h: np.uint64) -> np.uint64:
    """splitmix64's finalizer: spreads every input bit over the low bits that pick a hash slot."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@njit(cache=True)
def table_size(items: int) -> int:
    size = 16
    while size < 2 * items:
        size <<= 1
    return size


@njit(cache=True)
def item_stats(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per item: FNV-1a hash of its bytes and its length in characters (bytes that start a character)."""
    hashes = np.empty(len(starts), dtype=np.uint64)
    chars = np.empty(len(starts), dtype=np.int64)
    for k in range(len(starts)):
        h = FNV_OFFSET
        count = 0
        for i in range(starts[k], ends[k]):
            h = (h ^ np.uint64(raw[i])) * FNV_PRIME
            count += (raw[i] & 0xC0) != 0x80
        hashes[k] = mix(h)
        chars[k] = count
    return hashes, chars


@njit(cache=True)
def same_bytes(raw: np.ndarray, a: int, a_end: int, b: int, b_end: int) -> bool:
    if a_end - a != b_end - b:
        return False
    for i in range(a_end - a):
        if raw[a + i] != raw[b + i]:
            return False
    return True


@njit(cache=True)
def string_codes(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, int]:
    """First-appearance codes of byte strings (equal only for equal bytes) and how many there are."""
    mask = table_size(len(starts)) - 1
    slots = np.full(mask + 1, -1, dtype=np.int64)  # the first item holding each code
    codes = np.empty(len(starts), dtype=np.int64)
    n_codes = 0
    for k in range(len(starts)):
        slot = hashes[k] & mask
        while True:
            first = slots[slot]
            if first < 0:
                slots[slot] = k
                codes[k] = n_codes
                n_codes += 1
                break
            if hashes[first] == hashes[k] and same_bytes(raw, starts[first], ends[first], starts[k], ends[k]):
                codes[k] = codes[first]
                break
            slot = (slot + 1) & mask
    return codes, n_codes


@njit(cache=True)
def count_dups(codes: np.ndarray, chars: np.ndarray) -> tuple[int, int]:
    """(items that repeat an earlier item, chars in them)."""
    seen = 0
    dups = 0
    dup_chars = 0
    for k in range(len(codes)):
        if codes[k] < seen:
            dups += 1
            dup_chars += chars[k]
        else:
            seen = codes[k] + 1
    return dups, dup_chars


@njit(cache=True)
def repeated_items(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[int, int]:
    """(items repeating an earlier item, chars in them) among the byte strings [starts, ends). Only items
    whose byte length another item shares can repeat, so only they are hashed: most paragraphs and long
    lines are not read a second time."""
    lengths = ends - starts
    order = np.argsort(lengths)
    candidate = np.zeros(len(starts), dtype=np.bool_)
    for k in range(1, len(order)):
        if lengths[order[k]] == lengths[order[k - 1]]:
            candidate[order[k]] = candidate[order[k - 1]] = True
    at = np.flatnonzero(candidate)
    hashes, chars = item_stats(raw, starts[at], ends[at])
    return count_dups(string_codes(raw, starts[at], ends[at], hashes)[0], chars)


@njit(cache=True)
def stripped_lines(raw: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every text's lines split at newlines and stripped (`str.strip()`), blank ones left out: per line its
    byte [start, end), its text's index, its length in characters and its first and last code points."""
    capacity = len(bounds) - 1
    for i in range(bounds[0], bounds[-1]):
        capacity += raw[i] == 10
    starts = np.empty(capacity, dtype=np.int64)
    ends = np.empty(capacity, dtype=np.int64)
    docs = np.empty(capacity, dtype=np.int64)
    chars = np.empty(capacity, dtype=np.int64)
    first = np.empty(capacity, dtype=np.int64)
    last = np.empty(capacity, dtype=np.int64)
    count = 0
    for doc in range(len(bounds) - 1):
        head = bounds[doc]
        for i in range(bounds[doc], bounds[doc + 1] + 1):
            if i < bounds[doc + 1] and raw[i] != 10:
                continue
            start, end = strip(raw, head, i)
            head = i + 1
            if end > start:
                starts[count], ends[count], docs[count] = start, end, doc
                chars[count] = chars_in(raw, start, end)
                first[count] = code_point(raw, start)
                last[count] = code_point(raw, last_char_start(raw, start, end))
                count += 1
    return starts[:count], ends[:count], docs[:count], chars[:count], first[:count], last[:count]


@njit(cache=True, inline="always")
def code_point(raw: np.ndarray, i: int) -> int:
    """The code point whose UTF-8 encoding starts at byte i (the text is valid UTF-8)."""
    b = np.int64(raw[i])
    if b < 0x80:
        return b
    if b < 0xE0:
        return ((b & 0x1F) << 6) | (raw[i + 1] & 0x3F)
    if b < 0xF0:
        return ((b & 0x0F) << 12) | ((raw[i + 1] & 0x3F) << 6) | (raw[i + 2] & 0x3F)
    return ((b & 0x07) << 18) | ((raw[i + 1] & 0x3F) << 12) | ((raw[i + 2] & 0x3F) << 6) | (raw[i + 3] & 0x3F)


@njit(cache=True, inline="always")
def char_width(lead: int) -> int:
    """Bytes of the UTF-8 character whose first byte is `lead`."""
    if lead < 0x80:
        return 1
    if lead < 0xE0:
        return 2
    return 3 if lead < 0xF0 else 4


@njit(cache=True, inline="always")
def last_char_start(raw: np.ndarray, start: int, end: int) -> int:
    """Byte where the last character of [start, end) begins (the range is not empty)."""
    i = end - 1
    while i > start and (raw[i] & 0xC0) == 0x80:
        i -= 1
    return i


@njit(cache=True)
def chars_in(raw: np.ndarray, start: int, end: int) -> int:
    """Characters in [start, end): the bytes that start one."""
    count = 0
    for i in range(start, end):
        count += (raw[i] & 0xC0) != 0x80
    return count


@njit(cache=True)
def grouped_dups(
    raw: np.ndarray, starts: np.ndarray, ends: np.ndarray, docs: np.ndarray, out: np.ndarray
) -> None:
    """Per doc (rows of `out`): items repeating an earlier item of the doc and chars in them; `docs` sorted."""
    head = 0
    while head < len(docs):
        tail = head + 1
        while tail < len(docs) and docs[tail] == docs[head]:
            tail += 1
        out[docs[head], 0], out[docs[head], 1] = repeated_items(raw, starts[head:tail], ends[head:tail])
        head = tail


@dataclass(frozen=True)
class Lines:
    """Stripped non-blank lines as byte ranges into a batch's bytes (`stripped_lines`)."""

    starts: np.ndarray
    ends: np.ndarray
    docs: np.ndarray
    chars: np.ndarray
    first: np.ndarray  # code points
    last: np.ndarray

    def repeated(self, raw: np.ndarray, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
        """Per doc: (lines that repeat an earlier line of the doc, chars in them)."""
        out = np.zeros((n_docs, 2))
        grouped_dups(raw, self.starts, self.ends, self.docs, out)
        return out[:, 0], out[:, 1]

    def starting_with(self, chars: str) -> np.ndarray:
        """Per line: its first character is one of `chars`."""
        return np.isin(self.first, [ord(ch) for ch in chars])

    def ending_with(self, raw: np.ndarray, suffixes: list[str]) -> np.ndarray:
        """Per line: it ends with one of `suffixes`."""
        ends = np.isin(self.last, [ord(s) for s in suffixes if len(s) == 1])
        for suffix in (s.encode() for s in suffixes if len(s) > 1):
            ends |= bytes_before(raw, self.starts, self.ends, suffix)
        return ends


def bytes_before(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray, suffix: bytes) -> np.ndarray:
    """Per range [start, end): it ends with `suffix`."""
    fits = ends - starts >= len(suffix)
    at = np.where(fits, ends - len(suffix), 0)
    for k, byte in enumerate(suffix):
        fits &= raw[np.minimum(at + k, len(raw) - 1)] == byte
    return fits
