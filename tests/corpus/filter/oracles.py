"""Reference oracles: each paper's rules as small, readable Python after its source, for the tests to hold
the compiled filters against (`test_oracles.py`).

- Gopher quality and repetition after the paper's text (Rae et al. 2021, App. A);
- C4 after the TFDS code that made it (`c4_utils.clean_page`, then the bad-word list);
- FineWeb after its release code (datatrove's FineWebQualityFilter when FineWeb was released).

Each returns the rules a doc fails and the text it leaves (C4 rewrites; the others keep it).
"""

from __future__ import annotations

import itertools
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable
from typing import Any

from tokenmill.corpus.filter.c4 import bad_words
from tokenmill.corpus.filter.gopher import BULLETS
from tokenmill.corpus.filter.params import (
    STOP_WORDS,
    C4Params,
    FineWebParams,
    GopherQualityParams,
    GopherRepetitionParams,
)


def ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def mark_ranges() -> str:
    """The combining marks (Unicode category M), which Python's `\\w` leaves out, as regex class ranges."""
    marks = [cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp))[0] == "M"]
    runs = [list(run) for _, run in itertools.groupby(marks, key=lambda cp, n=itertools.count(): cp - next(n))]
    return "".join(f"\\U{run[0]:08x}-\\U{run[-1]:08x}" for run in runs)


# A word character: Python's `\w` or a combining mark, so an accent or a vowel sign stays in its word.
MARKS = mark_ranges()
WORD = re.compile(rf"[\w{MARKS}]+")


# --- Gopher quality: the paper's text -------------------------------------------------------------

def gopher_quality(text: str, p: GopherQualityParams) -> tuple[set[str], str]:
    words = text.split()
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    tokens = WORD.findall(text)
    tokens = tokens if p.stop_words_case_sensitive else [t.lower() for t in tokens]
    stop = [t for t in tokens if t in STOP_WORDS]
    n = len(words)
    hashes, ellipses = ratio(text.count("#"), n), ratio(text.count("...") + text.count("…"), n)
    fails = {
        "min_words": n < p.min_words,
        "max_words": n > p.max_words,
        "min_mean_word_length": ratio(sum(map(len, words)), n) < p.min_mean_word_length,
        "max_mean_word_length": ratio(sum(map(len, words)), n) > p.max_mean_word_length,
        "max_hash_word_ratio": hashes > p.max_hash_word_ratio,
        "max_ellipsis_word_ratio": ellipses > p.max_ellipsis_word_ratio,
        "max_symbol_word_ratio": p.max_symbol_word_ratio is not None and hashes + ellipses > p.max_symbol_word_ratio,
        "max_bullet_lines_frac": ratio(sum(line.startswith(tuple(BULLETS)) for line in lines), len(lines))
        > p.max_bullet_lines_frac,
        "max_ellipsis_lines_frac": ratio(sum(line.endswith(("...", "…")) for line in lines), len(lines))
        > p.max_ellipsis_lines_frac,
        "min_alpha_words_frac": ratio(sum(any(c.isalpha() for c in w) for w in words), n) < p.min_alpha_words_frac,
        "min_stop_words": (len(set(stop)) if p.distinct_stop_words else len(stop)) < p.min_stop_words,
    }
    return {rule for rule, fail in fails.items() if fail}, text


# --- Gopher repetition: the paper's text ----------------------------------------------------------

def repeated(items: list[Any]) -> tuple[int, int]:
    """(items equal to an earlier one, characters in them)."""
    seen: set[Any] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count, chars = count + 1, chars + len(item)
        seen.add(item)
    return count, chars


def top_gram_chars(words: list[str], n: int) -> int:
    """Characters in every occurrence of the most frequent n-gram (the first seen on ties), if it repeats."""
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not counts or max(counts.values()) < 2:
        return 0
    gram, count = counts.most_common(1)[0]
    return sum(map(len, gram)) * count


def dup_gram_chars(words: list[str], n: int, first_occurrence: bool) -> int:
    """'Characters within all duplicate n-grams': every word inside an n-gram that occurs twice or more,
    once; or (not `first_occurrence`) the repeats only, each skipping past itself (datatrove)."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if first_occurrence:
        counts = Counter(grams)
        covered = {j for i, gram in enumerate(grams) if counts[gram] > 1 for j in range(i, i + n)}
        return sum(len(words[j]) for j in covered)
    seen: set[tuple[str, ...]] = set()
    chars = i = 0
    while i < len(grams):
        if grams[i] in seen:
            chars += sum(map(len, grams[i]))
            i += n
        else:
            seen.add(grams[i])
            i += 1
    return chars


def gopher_repetition(text: str, p: GopherRepetitionParams) -> tuple[set[str], str]:
    lines = [line for line in text.split("\n") if line]
    paragraphs = [para for para in re.split(r"\n{2,}", text.strip()) if para]
    words = text.split()
    word_chars = sum(map(len, words))
    dup_lines, dup_line_chars = repeated(lines)
    dup_paras, dup_para_chars = repeated(paragraphs)
    values = {
        "dup_line_frac": ratio(dup_lines, len(lines)),
        "dup_para_frac": ratio(dup_paras, len(paragraphs)),
        "dup_line_chars_frac": ratio(dup_line_chars, len(text)),
        "dup_para_chars_frac": ratio(dup_para_chars, len(text)),
    }
    values |= {f"top_{n}gram_char_frac": ratio(top_gram_chars(words, n), word_chars) for n in (2, 3, 4)}
    values |= {f"dup_{n}gram_char_frac": ratio(dup_gram_chars(words, n, p.count_first_occurrence), word_chars)
               for n in range(5, 11)}
    return {f"max_{name}" for name, value in values.items() if value > getattr(p, f"max_{name}")}, text


# --- C4: the TFDS code's clean_page, then the bad-word list ---------------------------------------

CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
POLICY = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]


def sentences(line: str) -> int:
    """One, plus one per run of end marks (closing quotes or brackets after it) followed by whitespace."""
    return 1 + len(re.findall(r"[.!?]+[\"')\]”’]*\s", line))


def word_hits(text: str, words: tuple[str, ...], whole: bool) -> int:
    """Listed words (with no word character on either side when `whole`), the longest where several start."""
    listed = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return len(re.findall(rf"(?<![\w{MARKS}])(?:{listed})(?![\w{MARKS}])" if whole else listed, text))


def c4(text: str, p: C4Params) -> tuple[set[str], str]:
    valid, count, lorem, curly = [], 0, False, False
    for line in text.splitlines():
        line = line.strip()
        if p.max_word_chars is not None and any(len(word) > p.max_word_chars for word in line.split()):
            continue
        if p.remove_citations:
            line = CITATION.sub("", line)
        if not line.endswith(tuple(p.line_end_chars)) or line.endswith("..."):
            continue
        if len(line.split()) < p.min_words_per_line:
            continue
        lower = line.lower()
        lorem |= "lorem ipsum" in lower
        if p.drop_javascript_lines and "javascript" in lower:
            continue
        curly |= "{" in line
        if p.drop_policy_lines and any(phrase in lower for phrase in POLICY):
            continue
        count += sentences(line)
        valid.append(line)
    cleaned = "\n".join(valid).strip()
    listed = bad_words(p.bad_words_file)
    hits = word_hits(cleaned.lower(), listed, p.bad_words_match == "word") if p.max_bad_words is not None else 0
    fails = {
        "lorem_ipsum": p.drop_lorem_ipsum and lorem,
        "curly_bracket": p.drop_curly_bracket and curly,
        "max_bad_words": p.max_bad_words is not None and hits > p.max_bad_words,
        "min_sentences": count < p.min_sentences,
    }
    return {rule for rule, fail in fails.items() if fail}, cleaned


# --- FineWeb: its release code --------------------------------------------------------------------

def fineweb(text: str, p: FineWebParams) -> tuple[set[str], str]:
    lines = text.split("\n")
    below = (lambda v, t: v <= t) if p.drop_at_threshold else (lambda v, t: v < t)
    above = (lambda v, t: v >= t) if p.drop_at_threshold else (lambda v, t: v > t)
    non_empty = [line for line in lines if line.strip() != ""]
    fails = {
        "min_line_punct_frac": below(ratio(sum(line.endswith(tuple(p.line_end_chars)) for line in lines), len(lines)),
                                     p.min_line_punct_frac),
        "max_short_line_frac": above(ratio(sum(len(line) <= p.short_line_chars for line in lines), len(lines)),
                                     p.max_short_line_frac),
        "max_dup_line_chars_frac": above(ratio(repeated(non_empty)[1], len(text.replace("\n", ""))),
                                         p.max_dup_line_chars_frac),
        "max_newline_word_ratio": p.max_newline_word_ratio is not None
        and ratio(text.count("\n"), len(text.split())) > p.max_newline_word_ratio,
    }
    return {rule for rule, fail in fails.items() if fail}, text


ORACLES: dict[str, Callable[[str, Any], tuple[set[str], str]]] = {
    "gopher_quality": gopher_quality, "gopher_repetition": gopher_repetition, "c4": c4, "fineweb": fineweb,
}
