"""Length and FineWeb (Penedo et al. 2024) filters.

FineWeb's lines are read as its release code reads them (datatrove's FineWebQualityFilter when
FineWeb was released): `text.split("\\n")`, blank lines counted, nothing stripped; a doc exactly
at a threshold drops, as the paper and the code both say (<= 0.12, >= 0.67, >= 0.1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from tokenmill.corpus.filter.kernels.fineweb import (
    DUP_LINE_CHARS,
    LINES,
    NEWLINES,
    PUNCT_LINES,
    SHORT_LINES,
    fineweb_counts,
)
from tokenmill.corpus.filter.params import FineWebParams, LengthParams
from tokenmill.corpus.filter.spec import (
    COUNT_BINS,
    Columns,
    FilterSpec,
    Rules,
    Signal,
    TextBatch,
    rule,
    safe_div,
    unset_is_off,
)


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
    signal_version="length-v2",  # v2: words split at Unicode whitespace, as `str.split()` does
    compute=length_signals,
    decide=length_rules,
)


def fineweb_signals(batch: TextBatch, params: FineWebParams) -> dict[str, Any]:
    raw, bounds = batch.utf8
    end_chars = np.array([ord(ch) for ch in params.line_end_chars], dtype=np.int64)
    counts = fineweb_counts(raw, bounds, end_chars, params.short_line_chars)
    newlines = counts[:, NEWLINES]
    return {
        "line_punct_frac": safe_div(counts[:, PUNCT_LINES], counts[:, LINES]),
        "short_line_frac": safe_div(counts[:, SHORT_LINES], counts[:, LINES]),
        "dup_line_chars_frac": safe_div(counts[:, DUP_LINE_CHARS], batch.chars - newlines),
        "newline_word_ratio": safe_div(newlines, batch.words),
    }


def fineweb_settings(params: FineWebParams) -> dict[str, Any]:
    return {"line_end_chars": params.line_end_chars, "short_line_chars": params.short_line_chars}


def fineweb_rules(s: Columns, p: FineWebParams) -> Rules:
    """Each fraction against its threshold; one equal to it drops too when `drop_at_threshold`."""
    below, above = (np.less_equal, np.greater_equal) if p.drop_at_threshold else (np.less, np.greater)
    return [
        rule("min_line_punct_frac", below(s["line_punct_frac"], p.min_line_punct_frac)),
        rule("max_short_line_frac", above(s["short_line_frac"], p.max_short_line_frac)),
        rule("max_dup_line_chars_frac", above(s["dup_line_chars_frac"], p.max_dup_line_chars_frac)),
        rule("max_newline_word_ratio", s["newline_word_ratio"] > unset_is_off(p.max_newline_word_ratio)),
    ]


FINEWEB = FilterSpec(
    name="fineweb",
    params=FineWebParams,
    signals=tuple(Signal(name) for name in (
        "line_punct_frac", "short_line_frac", "dup_line_chars_frac", "newline_word_ratio"
    )),
    # v2: lines as the release code reads them (blank ones counted, none stripped), its line-end characters.
    signal_version="fineweb-v2",
    compute=fineweb_signals,
    decide=fineweb_rules,
    signal_settings=fineweb_settings,
)
