"""Length, C4 page-level (Raffel et al. 2020) and FineWeb (Penedo et al. 2024) filters.

All signals are pyarrow counts over the whole batch.
"""

from __future__ import annotations

import hashlib
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
from pydantic import Field

from tokenmill.corpus.filter.kernels.c4 import (
    CURLY_BRACKET,
    LOREM_IPSUM,
    SENTENCES,
    c4_counts,
)
from tokenmill.corpus.filter.spec import (
    COUNT_BINS,
    FLAG_BINS,
    Columns,
    FilterSpec,
    Rules,
    Signal,
    TextBatch,
    count_regex,
    per_doc,
    rule,
    safe_div,
)
from tokenmill.corpus.store.errors import ConfigError
from tokenmill.corpus.store.settings import Settings
from tokenmill.corpus.text.utf8 import per_text

# FineWeb's line-end punctuation (datatrove's FineWebQualityFilter stop chars).
LINE_END_PUNCT = ".!?\"'…”’"
FINEWEB_SHORT_LINE_CHARS = 30


class LengthParams(Settings):
    min_chars: int = Field(default=1, ge=0, description="docs with fewer characters are dropped")
    max_chars: int = Field(default=5_000_000, ge=0, description="docs with more characters are dropped")
    min_words: int = Field(default=1, ge=0, description="docs with fewer whitespace-separated words are dropped")
    max_words: int = Field(default=1_000_000, ge=0, description="docs with more words are dropped")


def length_signals(batch: TextBatch, params: LengthParams) -> dict[str, Any]:
    return {"chars": batch.chars, "words": batch.words}


def length_rules(s: Columns, p: LengthParams) -> Rules:
    return [
        rule("min_chars", s["chars"] < p.min_chars),
        rule("max_chars", s["chars"] > p.max_chars),
        rule("min_words", s["words"] < p.min_words),
        rule("max_words", s["words"] > p.max_words),
    ]


LENGTH = FilterSpec(
    name="length",
    params=LengthParams,
    signals=(Signal("chars", pa.int64(), COUNT_BINS), Signal("words", pa.int64(), COUNT_BINS)),
    signal_version="length-v1",
    compute=length_signals,
    decide=length_rules,
)


class C4Params(Settings):
    min_sentences: int = Field(default=5, ge=0, description="pages with fewer sentences ('.', '!' or '?' ends) drop")
    drop_lorem_ipsum: bool = Field(default=True, description="drop pages containing 'lorem ipsum'")
    drop_curly_bracket: bool = Field(default=True, description="drop pages containing '{' (code, not prose)")
    bad_words_file: str | None = Field(
        default=None, description="a file of bad words, one per line (e.g. LDNOOBW); pages containing one drop"
    )
    max_bad_words: int = Field(default=0, ge=0, description="pages with more bad-word hits than this drop")


def read_word_list(path: str | None) -> list[str]:
    if path is None:
        return []
    try:
        with fsspec.open(path, "rt", encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"filter.c4.bad_words_file: cannot read '{path}': {exc.strerror}") from None
    return sorted({w.strip().lower() for w in text.splitlines() if w.strip()})


def c4_settings(params: C4Params) -> dict[str, Any]:
    """The bad-word list's content, not its path, decides the `bad_words` signal."""
    words = read_word_list(params.bad_words_file)
    return {"bad_words_sha256": hashlib.sha256("\n".join(words).encode()).hexdigest() if words else None}


def c4_signals(batch: TextBatch, params: C4Params) -> dict[str, Any]:
    raw, bounds = batch.utf8
    counts = c4_counts(raw, bounds)
    words = read_word_list(params.bad_words_file)
    if words:
        bad = count_regex(batch.lower, r"\b(?:%s)\b" % "|".join(pc_escape(w) for w in words))
    else:
        bad = np.zeros(len(batch), dtype=np.int64)
    return {
        "sentences": counts[:, SENTENCES],
        "lorem_ipsum": counts[:, LOREM_IPSUM].astype(np.int8),
        "curly_bracket": counts[:, CURLY_BRACKET].astype(np.int8),
        "bad_words": bad,
    }


def pc_escape(word: str) -> str:
    """Escape a literal for RE2, which has no re.escape of its own."""
    return "".join("\\" + ch if ch.isascii() and not ch.isalnum() and ch != " " else ch for ch in word)


def c4_rules(s: Columns, p: C4Params) -> Rules:
    return [
        rule("min_sentences", s["sentences"] < p.min_sentences),
        rule("lorem_ipsum", p.drop_lorem_ipsum & (s["lorem_ipsum"] > 0)),
        rule("curly_bracket", p.drop_curly_bracket & (s["curly_bracket"] > 0)),
        rule("max_bad_words", s["bad_words"] > p.max_bad_words),
    ]


C4 = FilterSpec(
    name="c4",
    params=C4Params,
    signals=(
        Signal("sentences", pa.int64(), COUNT_BINS),
        Signal("lorem_ipsum", pa.int8(), FLAG_BINS),
        Signal("curly_bracket", pa.int8(), FLAG_BINS),
        Signal("bad_words", pa.int64(), COUNT_BINS),
    ),
    signal_version="c4-v1",
    compute=c4_signals,
    decide=c4_rules,
    signal_settings=c4_settings,
)


class FineWebParams(Settings):
    min_line_punct_frac: float = Field(default=0.12, ge=0, le=1, description="share of lines ending in punctuation")
    max_short_line_frac: float = Field(
        default=0.67, ge=0, le=1, description=f"share of lines of at most {FINEWEB_SHORT_LINE_CHARS} chars"
    )
    max_dup_line_chars_frac: float = Field(default=0.01, ge=0, le=1, description="share of chars in repeated lines")
    max_newline_word_ratio: float = Field(default=0.3, ge=0, description="newlines per word")


def fineweb_signals(batch: TextBatch, params: FineWebParams) -> dict[str, Any]:
    n = len(batch)
    raw, bounds = batch.utf8
    lines = batch.lines
    n_lines = per_doc(lines.docs, n)
    punct = lines.ending_with(raw, list(LINE_END_PUNCT))
    short = lines.chars <= FINEWEB_SHORT_LINE_CHARS
    dup_chars = lines.repeated(raw, n)[1]
    newlines = per_text(raw == 10, bounds)
    return {
        "line_punct_frac": safe_div(per_doc(lines.docs, n, punct), n_lines),
        "short_line_frac": safe_div(per_doc(lines.docs, n, short), n_lines),
        "dup_line_chars_frac": safe_div(dup_chars, batch.chars - newlines),
        "newline_word_ratio": safe_div(newlines, batch.words),
    }


def fineweb_rules(s: Columns, p: FineWebParams) -> Rules:
    return [
        rule("min_line_punct_frac", s["line_punct_frac"] < p.min_line_punct_frac),
        rule("max_short_line_frac", s["short_line_frac"] > p.max_short_line_frac),
        rule("max_dup_line_chars_frac", s["dup_line_chars_frac"] > p.max_dup_line_chars_frac),
        rule("max_newline_word_ratio", s["newline_word_ratio"] > p.max_newline_word_ratio),
    ]


FINEWEB = FilterSpec(
    name="fineweb",
    params=FineWebParams,
    signals=tuple(Signal(name) for name in (
        "line_punct_frac", "short_line_frac", "dup_line_chars_frac", "newline_word_ratio"
    )),
    signal_version="fineweb-v1",
    compute=fineweb_signals,
    decide=fineweb_rules,
)
