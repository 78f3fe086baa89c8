"""What a filter is (signals, decision, version) and the vector helpers the filters share.

A filter's signals are one function `texts -> columns of numbers` (dolma's attributes), its
decision another function `columns, thresholds -> failing rows per rule`, so a threshold
change never recomputes a signal. Bump `signal_version` whenever a signal's computation
changes, so an old number never silently changes meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

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
class FilterSpec:
    """A named filter: its settings model, signals, their version, and the two functions."""

    name: str
    params: type[BaseModel]
    signals: tuple[Signal, ...]
    signal_version: str
    compute: Callable[[pa.Table, Any], dict[str, Any]]
    decide: Callable[[Columns, Any], Rules]
    signal_settings: Callable[[Any], dict[str, Any]] = field(default=lambda params: {})

    def column(self, signal: str) -> str:
        return f"{self.name}__{signal}"

    def fields(self) -> list[pa.Field]:
        return [pa.field(self.column(s.name), s.type) for s in self.signals]


@dataclass(frozen=True)
class TransformSpec:
    """A filter that rewrites text instead of dropping it (PII); `apply` returns new texts and counts."""

    name: str
    params: type[BaseModel]
    apply: Callable[[pa.Array, Any], tuple[pa.Array, dict[str, int]]]


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


# RE2's `\s` (tab, newline, form feed, carriage return, space): ASCII, so whole UTF-8 bytes can be tested.
RE2_SPACE_BYTES = np.isin(np.arange(256), [9, 10, 12, 13, 32])


def utf8_bytes(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of all texts and each text's [start, end) offsets into them, without copying."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    texts = texts.cast(pa.large_string())
    _, offsets, data = texts.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[texts.offset : texts.offset + len(texts) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return raw, bounds


def per_text(flags: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Per text, the number of true byte flags inside its bounds."""
    cum = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
    return cum[bounds[1:]] - cum[bounds[:-1]]


def space_counts(texts: pa.Array) -> np.ndarray:
    """Matches of RE2 `\s` per text (the count pyarrow's regex gives), from the bytes."""
    raw, bounds = utf8_bytes(texts)
    return per_text(RE2_SPACE_BYTES[raw], bounds)


def word_counts(texts: pa.Array) -> np.ndarray:
    """Matches of RE2 `\S+` per text: bytes that are not space and follow a space or start the text."""
    raw, bounds = utf8_bytes(texts)
    space = RE2_SPACE_BYTES[raw]
    starts = ~space
    starts[1:] &= space[:-1]
    heads = bounds[:-1][bounds[:-1] < bounds[1:]]
    starts[heads] = ~space[heads]
    return per_text(starts, bounds)


def split_lines(texts: pa.Array, strip: bool = True) -> tuple[pa.Array, np.ndarray]:
    """All lines of all texts (stripped, blank ones left out) and the doc index of each line."""
    lines, parents = flat_items(pc.split_pattern(texts, "\n"))
    if strip:
        lines = pc.utf8_trim_whitespace(lines)
    nonblank = as_numpy(pc.greater(pc.utf8_length(lines), 0))
    return lines.filter(pa.array(nonblank)), parents[nonblank]


def flat_items(lists: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The items of a list array, flattened, and the doc index of each (chunks joined: indices are batch-wide)."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    return pc.list_flatten(lists), as_numpy(pc.list_parent_indices(lists))


def nonempty_items(lists: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Like `flat_items`, leaving out empty items (what Python's `str.split()` never yields)."""
    items, parents = flat_items(lists)
    keep = as_numpy(pc.greater(pc.binary_length(items), 0))
    return items.filter(pa.array(keep)), parents[keep]


def per_doc(parents: np.ndarray, n_docs: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Sum (or count) per doc of line-level values."""
    return np.bincount(parents, weights=weights, minlength=n_docs).astype(np.float64)


def rule(name: str, fails: np.ndarray) -> tuple[str, np.ndarray]:
    return name, np.asarray(fails, dtype=bool)
