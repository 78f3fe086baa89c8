"""C4's line cleaning in one compiled pass over a batch's UTF-8 bytes, in the order of the TFDS code
that made C4 (`c4_utils.clean_page`), writing the retained text and what the page rules need.

Per line of `text.splitlines()`, stripped: a word longer than `max_word_chars` removes it; citation
markers are cut out; it must end in an end mark and not in "..."; it needs `min_words` words; then
"lorem ipsum" (lowered) flags the page, "javascript" removes the line, "{" flags the page, a policy
phrase removes it; the rest is retained and its sentences counted. The retained lines joined by
newlines and stripped are the page's new text. Lowering is Python's `str.lower()`, under which only
A-Z and the Kelvin sign become ASCII letters the phrases hold.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tokenmill.corpus.filter.kernels.bytes import (
    char_width,
    chars_in,
    code_point,
    last_char_start,
    space_bytes,
    strip,
)
from tokenmill.corpus.filter.kernels.unicode import DIGIT

# Columns of `c4_clean`'s per-doc counts; per line rule, lines removed then characters removed.
SENTENCES, LOREM_IPSUM, CURLY_BRACKET, CITATIONS, CITATION_CHARS = range(5)
LINE_RULES = ("long_word", "no_end_mark", "few_words", "javascript", "policy")
LONG_WORD, NO_END_MARK, FEW_WORDS, JAVASCRIPT, POLICY = range(len(LINE_RULES))
FIRST_RULE_COLUMN = 5
N_COLUMNS = FIRST_RULE_COLUMN + 2 * len(LINE_RULES)
CITATION_WORDS = (b"edit]", b"citation needed]")  # after "[": TFDS's `\[edit\]|\[citation needed\]`
KELVIN = (0xE2, 0x84, 0xAA)  # U+212A, lowered to "k"


def phrase_table(phrases: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower-case ASCII phrases as one byte array, the [start, end) offsets of each, and per byte value
    the bits of the phrases starting with it."""
    data = b"".join(p.encode("ascii") for p in phrases)
    offsets = np.cumsum([0] + [len(p) for p in phrases]).astype(np.int64)
    firsts = np.zeros(256, dtype=np.int64)
    for k, phrase in enumerate(phrases):
        firsts[ord(phrase[0])] |= 1 << k
    return np.frombuffer(data, dtype=np.uint8).copy(), offsets, firsts


@njit(cache=True, inline="always")
def line_break(raw: np.ndarray, i: int, end: int) -> int:
    """Bytes of the line boundary `str.splitlines()` sees at byte i ("\\r\\n" is one), else 0."""
    b = raw[i]
    if 0x1E < b < 0xC2 or 0x0D < b < 0x1C or b < 0x0A or b > 0xE2:  # most bytes, at once
        return 0
    if b <= 0x0C or 0x1C <= b <= 0x1E:
        return 1
    if b == 0x0D:
        return 2 if i + 1 < end and raw[i + 1] == 0x0A else 1
    if b == 0xC2 and i + 1 < end and raw[i + 1] == 0x85:
        return 2
    if b == 0xE2 and i + 2 < end and raw[i + 1] == 0x80 and (raw[i + 2] == 0xA8 or raw[i + 2] == 0xA9):
        return 3
    return 0


@njit(cache=True)
def lowered_at(raw: np.ndarray, i: int, end: int, phrases: np.ndarray, p_start: int, p_end: int) -> bool:
    """`phrases[p_start:p_end]` (lower-case ASCII) starts at byte i of the text after `str.lower()`."""
    for k in range(p_start, p_end):
        if i >= end:
            return False
        b = raw[i]
        if b == KELVIN[0] and i + 2 < end and raw[i + 1] == KELVIN[1] and raw[i + 2] == KELVIN[2]:
            if phrases[k] != 0x6B:
                return False
            i += 3
            continue
        if (b | 0x20 if 0x41 <= b <= 0x5A else b) != phrases[k]:
            return False
        i += 1
    return True


@njit(cache=True)
def phrases_found(
    raw: np.ndarray, start: int, end: int, phrases: np.ndarray, offsets: np.ndarray, firsts: np.ndarray
) -> int:
    """Bit p set when the lowered range holds phrase p (`phrase_table`)."""
    found = 0
    for i in range(start, end):
        b = raw[i]
        starting = firsts[b | 0x20 if 0x41 <= b <= 0x5A else (0x6B if b == KELVIN[0] else b)] & ~found
        while starting:
            p = 0
            while not starting & (1 << p):
                p += 1
            starting &= ~(1 << p)
            if lowered_at(raw, i, end, phrases, offsets[p], offsets[p + 1]):
                found |= 1 << p
    return found


@njit(cache=True)
def word_stats(raw: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """(words as `str.split()` finds them, characters in the longest)."""
    words = longest = run = 0
    i = start
    while i < end:
        width = space_bytes(raw, i, end)
        if width:
            run = 0
            i += width
            continue
        if run == 0:
            words += 1
        run += (raw[i] & 0xC0) != 0x80
        longest = max(longest, run)
        i += 1
    return words, longest


@njit(cache=True)
def has_words(raw: np.ndarray, start: int, end: int, n: int) -> bool:
    """At least n words as `str.split()` finds them: stops at the n-th, so a long line costs no more."""
    words = 0
    in_word = False
    i = start
    while words < n and i < end:
        width = space_bytes(raw, i, end)
        if width:
            in_word = False
            i += width
            continue
        words += not in_word
        in_word = True
        i += 1
    return words >= n


@njit(cache=True)
def citation_end(raw: np.ndarray, i: int, end: int, table: np.ndarray) -> int:
    """Byte after the citation marker at i (TFDS: `\\[\\d*\\]|\\[edit\\]|\\[citation needed\\]`, `\\d` being
    Python's Unicode digits), or -1."""
    j = i + 1
    while j < end and table[code_point(raw, j)] & DIGIT:
        j += char_width(raw[j])
    if j < end and raw[j] == 0x5D:
        return j + 1
    for word in CITATION_WORDS:
        if i + 1 + len(word) <= end:
            same = True
            for k in range(len(word)):
                if raw[i + 1 + k] != word[k]:
                    same = False
                    break
            if same:
                return i + 1 + len(word)
    return -1


@njit(cache=True)
def sentences_in(raw: np.ndarray, start: int, end: int) -> int:
    """Sentences of a retained line: one, plus one per run of '.', '!' or '?' (closing quotes or
    brackets after it) followed by whitespace. A count of end marks, as TFDS's docstring describes its
    count; its code asks NLTK's punkt model, which also knows abbreviations ("Mr. Smith" is one)."""
    count = 1
    i = start
    while i < end:
        b = raw[i]
        if b != 0x2E and b != 0x21 and b != 0x3F:
            i += 1
            continue
        while i < end and (raw[i] == 0x2E or raw[i] == 0x21 or raw[i] == 0x3F):
            i += 1
        while i < end:
            if raw[i] == 0x22 or raw[i] == 0x27 or raw[i] == 0x29 or raw[i] == 0x5D:
                i += 1
            elif i + 2 < end and raw[i] == 0xE2 and raw[i + 1] == 0x80 and (raw[i + 2] == 0x9D or raw[i + 2] == 0x99):
                i += 3  # ” ’
            else:
                break
        if i < end and space_bytes(raw, i, end):
            count += 1
    return count


@njit(cache=True)
def ends_with_mark(raw: np.ndarray, start: int, end: int, end_chars: np.ndarray) -> bool:
    """The line ends in one of `end_chars` (code points) and not in "..." (TFDS `_ELLIPSIS`)."""
    if end <= start:
        return False
    if end - start >= 3 and raw[end - 1] == 0x2E and raw[end - 2] == 0x2E and raw[end - 3] == 0x2E:
        return False
    last = code_point(raw, last_char_start(raw, start, end))
    for ch in end_chars:
        if last == ch:
            return True
    return False


@njit(cache=True)
def clean_line(
    raw: np.ndarray, s: int, e: int, out: np.ndarray, w: int, counts: np.ndarray, rules: np.ndarray,
    end_chars: np.ndarray, phrases: np.ndarray, offsets: np.ndarray, firsts: np.ndarray, table: np.ndarray,
) -> int:
    """One stripped, non-blank line through the rules; returns where the output continues (past the line
    and its newline when retained). A removed line's characters count for its rule, citations and all;
    citations count apart only on retained lines. `rules`: max word chars (-1: off), remove citations, min words,
    drop javascript lines, drop policy lines. `phrases`: lorem ipsum, javascript, then the policy ones
    (at most 62)."""
    if rules[0] >= 0 and e - s > rules[0] and word_stats(raw, s, e)[1] > rules[0]:  # a char is >= 1 byte
        counts[FIRST_RULE_COLUMN + LONG_WORD] += 1
        counts[FIRST_RULE_COLUMN + len(LINE_RULES) + LONG_WORD] += chars_in(raw, s, e)
        return w
    if raw[e - 1] != 0x5D and not ends_with_mark(raw, s, e, end_chars):
        # Cutting citations (each ends in "]") cannot change how a line that does not end in "]" ends: it
        # has no end mark either way, and is removed without being copied (most lines of most pages).
        counts[FIRST_RULE_COLUMN + NO_END_MARK] += 1
        counts[FIRST_RULE_COLUMN + len(LINE_RULES) + NO_END_MARK] += chars_in(raw, s, e)
        return w
    start = w
    citations = citation_chars = 0
    i = s
    while i < e:
        if raw[i] == 0x5B and rules[1]:
            after = citation_end(raw, i, e, table)
            if after > 0:
                citations += 1
                citation_chars += chars_in(raw, i, after)
                i = after
                continue
        out[w] = raw[i]
        w += 1
        i += 1
    rule = -1
    if not ends_with_mark(out, start, w, end_chars):
        rule = NO_END_MARK
    elif not has_words(out, start, w, rules[2]):
        rule = FEW_WORDS
    else:
        found = phrases_found(out, start, w, phrases, offsets, firsts)
        if found & 1:
            counts[LOREM_IPSUM] = 1
        if rules[3] and found & 2:
            rule = JAVASCRIPT
        else:
            for k in range(start, w):
                if out[k] == 0x7B:
                    counts[CURLY_BRACKET] = 1
                    break
            if rules[4] and found >> 2:
                rule = POLICY
    if rule >= 0:
        counts[FIRST_RULE_COLUMN + rule] += 1
        counts[FIRST_RULE_COLUMN + len(LINE_RULES) + rule] += chars_in(raw, s, e)
        return start
    counts[SENTENCES] += sentences_in(out, start, w)
    counts[CITATIONS] += citations
    counts[CITATION_CHARS] += citation_chars
    out[w] = 0x0A
    return w + 1


@njit(cache=True)
def c4_clean(
    raw: np.ndarray, bounds: np.ndarray, rules: np.ndarray, end_chars: np.ndarray,
    phrases: np.ndarray, offsets: np.ndarray, firsts: np.ndarray, table: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every text's retained text (bytes and [start, end) offsets) and per-doc counts (the columns above)."""
    out = np.empty(len(raw) + len(bounds), dtype=np.uint8)
    out_bounds = np.zeros(len(bounds), dtype=np.int64)
    counts = np.zeros((len(bounds) - 1, N_COLUMNS), dtype=np.int64)
    w = 0
    for doc in range(len(bounds) - 1):
        doc_start, end = w, bounds[doc + 1]
        head = i = bounds[doc]
        while i <= end:
            width = line_break(raw, i, end) if i < end else 1
            if not width:
                i += 1
                continue
            if i < end or head < end:
                s, e = strip(raw, head, i)
                if e > s:
                    w = clean_line(raw, s, e, out, w, counts[doc], rules, end_chars, phrases, offsets, firsts, table)
            head = i = i + width
        s, e = strip(out, doc_start, w)  # "\n".join(lines).strip()
        if s > doc_start:  # a cut citation left a line starting with a space; else nothing moves
            out[doc_start : doc_start + e - s] = out[s:e]
        w = doc_start + e - s
        out_bounds[doc + 1] = w
    return out[:w], out_bounds, counts
