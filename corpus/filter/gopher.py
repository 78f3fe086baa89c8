"""Gopher quality and repetition filters (Rae et al. 2021, "Scaling Language Models", App. A).

Words are whitespace-separated (`str.split()`), lines the ones that are not blank. Quality signals
are compiled counts over the batch's bytes (`kernels.quality`), repetition one compiled pass per doc
(`kernels.repetition`); n-gram character shares are measured on words without the spaces between
them. Where the paper leaves a reading open, a setting names the choice (`params`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from tokenmill.corpus.filter.kernels.quality import (
    DISTINCT_STOP_WORDS,
    ELLIPSES,
    HASHES,
    LETTER_WORDS,
    STOP_WORDS,
    quality_counts,
)
from tokenmill.corpus.filter.kernels.repetition import (
    DUP_LINE_CHARS,
    DUP_LINES,
    DUP_PARA_CHARS,
    DUP_PARAS,
    FIRST_GRAM_COLUMN,
    LINES,
    PARAS,
    WORD_CHARS,
    repetition_counts,
)
from tokenmill.corpus.filter.params import STOP_WORDS as LISTED_STOP_WORDS
from tokenmill.corpus.filter.params import GopherQualityParams, GopherRepetitionParams
from tokenmill.corpus.filter.spec import (
    COUNT_BINS,
    LENGTH_BINS,
    Columns,
    FilterSpec,
    Rules,
    Signal,
    TextBatch,
    per_doc,
    rule,
    safe_div,
    unset_is_off,
)

BULLETS = "•‣●▪◦∙-*"  # a line starting with one is a bullet line: the paper says "bullet point"; Markdown's too
ELLIPSIS_MARKS = ["...", "…"]
TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)


def quality_signals(batch: TextBatch, params: GopherQualityParams) -> dict[str, Any]:
    """Word, space, symbol, stop word and line counts from the batch's UTF-8 bytes."""
    n = len(batch)
    raw, bounds = batch.utf8
    words = batch.words
    word_chars = batch.chars - batch.space_chars
    counts = quality_counts(
        raw, bounds, batch.word_starts, batch.space, LISTED_STOP_WORDS, not params.stop_words_case_sensitive
    )
    lines = batch.lines
    n_lines = per_doc(lines.docs, n)
    bullets = per_doc(lines.docs, n, lines.starting_with(BULLETS))
    ellipses = per_doc(lines.docs, n, lines.ending_with(raw, ELLIPSIS_MARKS))
    return {
        "words": words,
        "mean_word_length": safe_div(word_chars, words),
        "hash_word_ratio": safe_div(counts[:, HASHES], words),
        "ellipsis_word_ratio": safe_div(counts[:, ELLIPSES], words),
        "symbol_word_ratio": safe_div(counts[:, HASHES] + counts[:, ELLIPSES], words),
        "bullet_lines_frac": safe_div(bullets, n_lines),
        "ellipsis_lines_frac": safe_div(ellipses, n_lines),
        "alpha_words_frac": safe_div(counts[:, LETTER_WORDS], words),
        "stop_words": counts[:, DISTINCT_STOP_WORDS if params.distinct_stop_words else STOP_WORDS],
    }


def quality_settings(params: GopherQualityParams) -> dict[str, Any]:
    return {"distinct_stop_words": params.distinct_stop_words, "case_sensitive": params.stop_words_case_sensitive}


def quality_rules(s: Columns, p: GopherQualityParams) -> Rules:
    return [
        rule("min_words", s["words"] < p.min_words),
        rule("max_words", s["words"] > p.max_words),
        rule("min_mean_word_length", s["mean_word_length"] < p.min_mean_word_length),
        rule("max_mean_word_length", s["mean_word_length"] > p.max_mean_word_length),
        rule("max_hash_word_ratio", s["hash_word_ratio"] > p.max_hash_word_ratio),
        rule("max_ellipsis_word_ratio", s["ellipsis_word_ratio"] > p.max_ellipsis_word_ratio),
        rule("max_symbol_word_ratio", s["symbol_word_ratio"] > unset_is_off(p.max_symbol_word_ratio)),
        rule("max_bullet_lines_frac", s["bullet_lines_frac"] > p.max_bullet_lines_frac),
        rule("max_ellipsis_lines_frac", s["ellipsis_lines_frac"] > p.max_ellipsis_lines_frac),
        rule("min_alpha_words_frac", s["alpha_words_frac"] < p.min_alpha_words_frac),
        rule("min_stop_words", s["stop_words"] < p.min_stop_words),
    ]


GOPHER_QUALITY = FilterSpec(
    name="gopher_quality",
    params=GopherQualityParams,
    signals=(
        Signal("words", pa.int64(), COUNT_BINS),
        Signal("mean_word_length", bins=LENGTH_BINS),
        Signal("hash_word_ratio"),
        Signal("ellipsis_word_ratio"),
        Signal("symbol_word_ratio"),
        Signal("bullet_lines_frac"),
        Signal("ellipsis_lines_frac"),
        Signal("alpha_words_frac"),
        Signal("stop_words", pa.int64(), COUNT_BINS),
    ),
    # v2: '#' and ellipses apart; stop words whole Unicode words, distinct or not, case-folded or not.
    signal_version="gopher_quality-v2",
    compute=quality_signals,
    decide=quality_rules,
    signal_settings=quality_settings,
)


REPETITION_SIGNALS = (
    ["dup_line_frac", "dup_para_frac", "dup_line_chars_frac", "dup_para_chars_frac"]
    + [f"top_{n}gram_char_frac" for n in TOP_NGRAMS]
    + [f"dup_{n}gram_char_frac" for n in DUP_NGRAMS]
)


def repetition_signals(batch: TextBatch, params: GopherRepetitionParams) -> dict[str, Any]:
    """Lines split at newlines, paragraphs at blank lines of the stripped text, words as `str.split()`."""
    raw, bounds = batch.utf8
    counts = repetition_counts(raw, bounds, np.array(TOP_NGRAMS), np.array(DUP_NGRAMS), params.count_first_occurrence)
    size = np.maximum(batch.chars, 1)
    word_chars = np.maximum(counts[:, WORD_CHARS], 1)
    values = [
        counts[:, DUP_LINES] / np.maximum(counts[:, LINES], 1),
        counts[:, DUP_PARAS] / np.maximum(counts[:, PARAS], 1),
        counts[:, DUP_LINE_CHARS] / size,
        counts[:, DUP_PARA_CHARS] / size,
    ]
    values += [counts[:, column] / word_chars for column in range(FIRST_GRAM_COLUMN, counts.shape[1])]
    return dict(zip(REPETITION_SIGNALS, values))


def repetition_rules(s: Columns, p: GopherRepetitionParams) -> Rules:
    return [rule(f"max_{name}", s[name] > getattr(p, f"max_{name}")) for name in REPETITION_SIGNALS]


GOPHER_REPETITION = FilterSpec(
    name="gopher_repetition",
    params=GopherRepetitionParams,
    signals=tuple(Signal(name) for name in REPETITION_SIGNALS),
    # v2: repeated n-grams' chars count every occurrence unless `count_first_occurrence` is off.
    signal_version="gopher_repetition-v2",
    compute=repetition_signals,
    decide=repetition_rules,
    signal_settings=lambda params: {"count_first_occurrence": params.count_first_occurrence},
)
