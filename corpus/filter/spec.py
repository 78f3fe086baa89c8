"""What a filter is (signals, decision, version) and the vector helpers the filters share.

A filter's signals are one function `texts -> columns of numbers` (dolma's attributes), its
decision another function `columns, thresholds -> failing rows per rule`, so a threshold
change never recomputes a signal. Bump `signal_version` whenever a signal's computation
changes, so an old number never silently changes meaning. A filter may also rewrite the text
(C4's line cleaning): its signals are read from the rewritten text, which the filters after it
see, and only the docs it keeps are rewritten in the output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from tokenmill.corpus.filter.kernels.bytes import Lines, space_mask, stripped_lines
from tokenmill.corpus.text.utf8 import count_in, per_text, utf8_bytes, word_starts

# Histogram edges: fractions in twentieths, counts on log2 steps, small ratios and lengths linearly.
FRAC_BINS = tuple(np.round(np.linspace(0, 1, 21), 2).tolist())
COUNT_BINS = (0,) + tuple(2**k for k in range(25))
LENGTH_BINS = tuple(range(0, 21))
FLAG_BINS = (0, 1)


@dataclass(frozen=True)
class Signal:
    """One typed signal column; `bins` are its histogram edges (empty: no histogram)."""

    name: str
    type: pa.DataType = pa.float32()
    bins: tuple[float, ...] = FRAC_BINS


Columns = Mapping[str, np.ndarray]
Rules = list[tuple[str, np.ndarray]]


@dataclass(frozen=True)
class Rewrite:
    """A filter's rewrite of a batch's texts: the new texts, per-doc values found on the way (for its
    signals, so the pass runs once) and per-doc counts of what it removed, so the rows a step keeps are
    counted apart without rewriting them a second time."""

    texts: pa.Array
    values: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]

    def totals(self, rows: np.ndarray | None = None) -> dict[str, int]:
        """The counts summed over the rows under the `rows` mask (all rows when None)."""
        return {name: int(counts.sum() if rows is None else counts[rows].sum()) for name, counts in self.counts.items()}


@dataclass(frozen=True)
class FilterSpec:
    """A named filter: its settings model, signals, their version, and the two functions; `signal_settings`
    are the settings its signals (and rewrite) depend on, the reading of the rule it follows."""

    name: str
    params: type[BaseModel]
    signals: tuple[Signal, ...]
    signal_version: str
    compute: Callable[[TextBatch, Any], dict[str, Any]]
    decide: Callable[[Columns, Any], Rules]
    signal_settings: Callable[[Any], dict[str, Any]] = field(default=lambda params: {})
    rewrite: Callable[[pa.Array, Any], Rewrite] | None = None

    def column(self, signal: str) -> str:
        return f"{self.name}__{signal}"

    def fields(self) -> list[pa.Field]:
        return [pa.field(self.column(s.name), s.type) for s in self.signals]

    def signals_of(self, batch: TextBatch, params: Any) -> tuple[dict[str, Any], TextBatch]:
        """The signals of `batch` and the batch the next filter sees: rewritten, for a filter that rewrites."""
        if self.rewrite is not None:
            batch = batch.rewritten(self.rewrite(batch.texts, params))
        return self.compute(batch, params), batch


@dataclass(frozen=True)
class TransformSpec:
    """A filter that rewrites text instead of dropping it (PII); `apply` returns new texts and counts."""

    name: str
    params: type[BaseModel]
    apply: Callable[[pa.Array, Any], tuple[pa.Array, dict[str, int]]]


class TextBatch:
    """A batch of docs and the views of its texts that several filters share, each made once on first use
    (length, gopher_quality and fineweb all count words; gopher_quality and fineweb both read lines)."""

    def __init__(self, table: pa.Table, rewrite: Rewrite | None = None) -> None:
        self.table = table
        self.rewrite = rewrite  # the rewrite that made these texts, if a filter rewrote them

    def rewritten(self, rewrite: Rewrite) -> TextBatch:
        index = self.table.schema.get_field_index("text")
        return TextBatch(self.table.set_column(index, "text", rewrite.texts), rewrite)

    def __getitem__(self, column: str) -> pa.ChunkedArray:
        return self.table[column]

    def __len__(self) -> int:
        return self.table.num_rows

    @cached_property
    def texts(self) -> pa.Array:
        return self.table["text"].combine_chunks().cast(pa.large_string())

    @cached_property
    def utf8(self) -> tuple[np.ndarray, np.ndarray]:
        """The texts' UTF-8 bytes and each text's [start, end) offsets into them (`utf8_bytes`)."""
        return utf8_bytes(self.texts)

    @cached_property
    def space(self) -> np.ndarray:
        """Per byte: part of a whitespace character, as Python's `str.split()` sees it (Unicode, so a
        no-break or ideographic space parts words too)."""
        return space_mask(self.utf8[0])

    @cached_property
    def word_starts(self) -> np.ndarray:
        """Byte positions where a word of `str.split()` starts."""
        raw, bounds = self.utf8
        return word_starts(raw, bounds, self.space)

    @cached_property
    def words(self) -> np.ndarray:
        """Words of `str.split()` per text."""
        return count_in(self.word_starts, self.utf8[1])

    @cached_property
    def space_chars(self) -> np.ndarray:
        """Whitespace characters per text."""
        raw, bounds = self.utf8
        return per_text(self.space & ((raw & 0xC0) != 0x80), bounds)

    @cached_property
    def chars(self) -> np.ndarray:
        return as_numpy(pc.utf8_length(self.texts))

    @cached_property
    def lines(self) -> Lines:
        """Stripped non-blank lines, as byte ranges into `utf8`."""
        raw, bounds = self.utf8
        return Lines(*stripped_lines(raw, bounds))

    @cached_property
    def lower(self) -> pa.Array:
        return pc.utf8_lower(self.texts)


def histogram(values: np.ndarray, bins: tuple[float, ...]) -> list[int]:
    """Counts below the first edge, in each [edge, next edge), and at or above the last edge."""
    index = np.searchsorted(np.asarray(bins, dtype=np.float64), values.astype(np.float64), side="right")
    return np.bincount(index, minlength=len(bins) + 1).tolist()


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (an empty doc has no ratio to speak of)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def as_numpy(values: Any) -> np.ndarray:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.to_numpy(zero_copy_only=False)
    return np.asarray(values)


def count_regex(texts: pa.Array, pattern: str, ignore_case: bool = False) -> np.ndarray:
    """Non-overlapping matches of an RE2 pattern per text, vectorized by pyarrow."""
    return as_numpy(pc.count_substring_regex(texts, pattern, ignore_case=ignore_case)).astype(np.int64)


def per_doc(parents: np.ndarray, n_docs: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Sum (or count) per doc of line-level values."""
    return np.bincount(parents, weights=weights, minlength=n_docs).astype(np.float64)


def unset_is_off(threshold: float | None) -> float:
    """A `max_` threshold that is None (the rule is off) as one no value exceeds."""
    return np.inf if threshold is None else threshold


def rule(name: str, fails: np.ndarray) -> tuple[str, np.ndarray]:
    return name, np.asarray(fails, dtype=bool)
