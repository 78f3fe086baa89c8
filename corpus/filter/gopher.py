"""Gopher quality and repetition filters (Rae et al. 2021, "Scaling Language Models", App. A).

Quality signals are byte counts and pyarrow regex counts over the whole batch. Repetition is one
compiled pass per doc (`repetition`); n-gram character shares are measured on words without the
spaces between them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from tokenmill.corpus.filter.kernels.quality import (
    LETTER_WORD_COUNT,
    STOP_WORD_COUNT,
    SYMBOL_COUNT,
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
)
from tokenmill.corpus.store.settings import Settings
from tokenmill.corpus.text.utf8 import per_text

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
BULLETS = "•‣●▪◦∙-*"  # a line starting with one is a bullet line
ELLIPSES = ["...", "…"]
TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)


class GopherQualityParams(Settings):
    min_words: int = Field(default=50, ge=0, description="fewer whitespace-separated words drop the doc")
    max_words: int = Field(default=100_000, ge=0, description="more words drop the doc")
    min_mean_word_length: float = Field(default=3, ge=0, description="mean word length below this drops the doc")
    max_mean_word_length: float = Field(default=10, ge=0, description="mean word length above this drops the doc")
    max_symbol_word_ratio: float = Field(default=0.1, ge=0, description="('#' + '...' + '…') per word above this")
    max_bullet_lines_frac: float = Field(default=0.9, ge=0, le=1, description="share of lines starting with a bullet")
    max_ellipsis_lines_frac: float = Field(default=0.3, ge=0, le=1, description="share of lines ending in an ellipsis")
    min_alpha_words_frac: float = Field(default=0.8, ge=0, le=1, description="share of words holding a letter")
    min_stop_words: int = Field(default=2, ge=0, description=f"occurrences of the stop words {', '.join(STOP_WORDS)}")


def quality_signals(batch: TextBatch, params: GopherQualityParams) -> dict[str, Any]:
    """Word, space, symbol, stop word and line counts from the batch's UTF-8 bytes."""
    n = len(batch)
    raw, bounds = batch.utf8
    words = batch.words
    word_chars = batch.chars - per_text(batch.space, bounds)
    counts = quality_counts(raw, bounds, batch.word_starts, batch.space, STOP_WORDS)
    lines = batch.lines
    n_lines = per_doc(lines.docs, n)
    bullets = per_doc(lines.docs, n, lines.starting_with(BULLETS))
    ellipses = per_doc(lines.docs, n, lines.ending_with(raw, ELLIPSES))
    return {
        "words": words,
        "mean_word_length": safe_div(word_chars, words),
        "symbol_word_ratio": safe_div(counts[:, SYMBOL_COUNT], words),
        "bullet_lines_frac": safe_div(bullets, n_lines),
        "ellipsis_lines_frac": safe_div(ellipses, n_lines),
        "alpha_words_frac": safe_div(counts[:, LETTER_WORD_COUNT], words),
        "stop_words": counts[:, STOP_WORD_COUNT],
    }


def quality_rules(s: Columns, p: GopherQualityParams) -> Rules:
    return [
        rule("min_words", s["words"] < p.min_words),
        rule("max_words", s["words"] > p.max_words),
        rule("min_mean_word_length", s["mean_word_length"] < p.min_mean_word_length),
        rule("max_mean_word_length", s["mean_word_length"] > p.max_mean_word_length),
        rule("max_symbol_word_ratio", s["symbol_word_ratio"] > p.max_symbol_word_ratio),
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
        Signal("symbol_word_ratio"),
        Signal("bullet_lines_frac"),
        Signal("ellipsis_lines_frac"),
        Signal("alpha_words_frac"),
        Signal("stop_words", pa.int64(), COUNT_BINS),
    ),
    signal_version="gopher_quality-v1",
    compute=quality_signals,
    decide=quality_rules,
)


class GopherRepetitionParams(Settings):
    max_dup_line_frac: float = Field(default=0.30, ge=0, le=1, description="share of lines that repeat an earlier one")
    max_dup_para_frac: float = Field(default=0.30, ge=0, le=1, description="share of paragraphs that repeat")
    max_dup_line_chars_frac: float = Field(default=0.20, ge=0, le=1, description="share of chars in repeated lines")
    max_dup_para_chars_frac: float = Field(default=0.20, ge=0, le=1, description="share of chars in repeated paragraphs")
    max_top_2gram_char_frac: float = Field(default=0.20, ge=0, le=1, description="chars in the most frequent 2-gram")
    max_top_3gram_char_frac: float = Field(default=0.18, ge=0, le=1, description="chars in the most frequent 3-gram")
    max_top_4gram_char_frac: float = Field(default=0.16, ge=0, le=1, description="chars in the most frequent 4-gram")
    max_dup_5gram_char_frac: float = Field(default=0.15, ge=0, le=1, description="chars in repeated 5-grams")
    max_dup_6gram_char_frac: float = Field(default=0.14, ge=0, le=1, description="chars in repeated 6-grams")
    max_dup_7gram_char_frac: float = Field(default=0.13, ge=0, le=1, description="chars in repeated 7-grams")
    max_dup_8gram_char_frac: float = Field(default=0.12, ge=0, le=1, description="chars in repeated 8-grams")
    max_dup_9gram_char_frac: float = Field(default=0.11, ge=0, le=1, description="chars in repeated 9-grams")
    max_dup_10gram_char_frac: float = Field(default=0.10, ge=0, le=1, description="chars in repeated 10-grams")


REPETITION_SIGNALS = (
    ["dup_line_frac", "dup_para_frac", "dup_line_chars_frac", "dup_para_chars_frac"]
    + [f"top_{n}gram_char_frac" for n in TOP_NGRAMS]
    + [f"dup_{n}gram_char_frac" for n in DUP_NGRAMS]
)


def repetition_signals(batch: TextBatch, params: GopherRepetitionParams) -> dict[str, Any]:
    """Lines split at newlines, paragraphs at blank lines of the stripped text, words as `str.split()`."""
    raw, bounds = batch.utf8
    counts = repetition_counts(raw, bounds, np.array(TOP_NGRAMS), np.array(DUP_NGRAMS))
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
    signal_version="gopher_repetition-v1",
    compute=repetition_signals,
    decide=repetition_rules,
)
