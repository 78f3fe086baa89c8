"""The C4 filter (Raffel et al. 2020, §2.2) as the TFDS code that made C4 applies it (`c4_utils.clean_page`).

C4 is mostly line cleaning: each page is rewritten to the lines that pass the line rules (counted:
lines and characters removed per rule, citation markers cut), then the page rules judge what is
left: "lorem ipsum" or "{" on a retained line, fewer than 3 sentences, a word of the bad-word list.
Only kept pages are rewritten in the output; a dropped page keeps its text, so its rejected row
shows why it went.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.corpus.clean.step import POLICY_PHRASES
from tokenmill.corpus.filter.kernels.c4 import (
    CITATION_CHARS,
    CITATIONS,
    CURLY_BRACKET,
    FIRST_RULE_COLUMN,
    LINE_RULES,
    LOREM_IPSUM,
    SENTENCES,
    c4_clean,
    phrase_table,
)
from tokenmill.corpus.filter.kernels.unicode import classes
from tokenmill.corpus.filter.kernels.words import word_hits, word_table
from tokenmill.corpus.filter.params import C4Params
from tokenmill.corpus.filter.spec import (
    COUNT_BINS,
    FLAG_BINS,
    Columns,
    FilterSpec,
    Rewrite,
    Rules,
    Signal,
    TextBatch,
    rule,
    unset_is_off,
)
from tokenmill.corpus.store.errors import ConfigError
from tokenmill.corpus.text.utf8 import utf8_bytes

# LDNOOBW's English list at the commit TFDS pins for C4 (25e679f0), CC-BY-4.0: shipped, never downloaded.
DEFAULT_BAD_WORDS = "ldnoobw-en.txt"
PHRASES = ("lorem ipsum", "javascript", *POLICY_PHRASES)  # the order `c4_clean` reads them in


@functools.lru_cache(maxsize=4)
def bad_words(path: str | None) -> tuple[str, ...]:
    """The list's words, lowered and stripped, each once (read once per process)."""
    try:
        if path is None:
            text = (Path(__file__).parent / "data" / DEFAULT_BAD_WORDS).read_text("utf-8")
        else:
            with fsspec.open(path, "rt", encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise ConfigError(f"filter.c4.bad_words_file: cannot read '{path}': {exc.strerror or exc}") from None
    return tuple(sorted({w.strip().lower() for w in text.splitlines() if w.strip()}))


@functools.lru_cache(maxsize=4)
def bad_word_table(path: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The list as `word_hits` reads it, built once per process (it was 5 ms a batch)."""
    return word_table(list(bad_words(path)))


def c4_settings(params: C4Params) -> dict[str, Any]:
    """The line rules, and the bad-word list's content (not its path), decide the rewrite and the signals."""
    listed = None
    if params.max_bad_words is not None:
        listed = hashlib.sha256("\n".join(bad_words(params.bad_words_file)).encode()).hexdigest()
    lines = params.model_dump(include={"max_word_chars", "remove_citations", "line_end_chars", "min_words_per_line",
                                       "drop_javascript_lines", "drop_policy_lines"})
    return {"lines": lines, "bad_words_sha256": listed, "bad_words_match": params.bad_words_match}


def c4_rewrite(texts: pa.Array, params: C4Params) -> Rewrite:
    """Every page's retained lines (`kernels.c4.c4_clean`), with the values the page rules read."""
    raw, bounds = utf8_bytes(texts)
    rules = np.array([
        -1 if params.max_word_chars is None else params.max_word_chars, params.remove_citations,
        params.min_words_per_line, params.drop_javascript_lines, params.drop_policy_lines,
    ], dtype=np.int64)
    end_chars = np.array([ord(ch) for ch in params.line_end_chars], dtype=np.int64)
    out, out_bounds, counts = c4_clean(raw, bounds, rules, end_chars, *phrase_table(PHRASES), classes())
    cleaned = pa.LargeStringArray.from_buffers(len(texts), pa.py_buffer(out_bounds), pa.py_buffer(out))
    removed = {f"c4.lines_removed.{name}": counts[:, FIRST_RULE_COLUMN + k] for k, name in enumerate(LINE_RULES)}
    removed |= {f"c4.chars_removed.{name}": counts[:, FIRST_RULE_COLUMN + len(LINE_RULES) + k]
                for k, name in enumerate(LINE_RULES)}
    changed = pc.fill_null(pc.not_equal(texts.cast(pa.large_string()), cleaned), False)
    removed |= {"c4.citations_removed": counts[:, CITATIONS], "c4.chars_removed.citations": counts[:, CITATION_CHARS],
                "c4.docs_rewritten": changed.to_numpy(zero_copy_only=False).astype(np.int64)}
    values = {"sentences": counts[:, SENTENCES], "lorem_ipsum": counts[:, LOREM_IPSUM],
              "curly_bracket": counts[:, CURLY_BRACKET]}
    return Rewrite(cleaned, values, removed)


def c4_signals(batch: TextBatch, params: C4Params) -> dict[str, Any]:
    """The page values the rewrite found, and listed words in the retained text (lowered)."""
    values = batch.rewrite.values
    hits = np.zeros(len(batch), dtype=np.int64)
    if params.max_bad_words is not None:
        raw, bounds = utf8_bytes(pc.utf8_lower(batch.texts))
        table = bad_word_table(params.bad_words_file)
        hits = word_hits(raw, bounds, *table, params.bad_words_match == "word", classes())
    return {**values, "bad_words": hits}


def c4_rules(s: Columns, p: C4Params) -> Rules:
    """TFDS drops a page at its first lorem-ipsum or '{' line, then counts sentences; bad words after."""
    return [
        rule("lorem_ipsum", p.drop_lorem_ipsum & (s["lorem_ipsum"] > 0)),
        rule("curly_bracket", p.drop_curly_bracket & (s["curly_bracket"] > 0)),
        rule("max_bad_words", s["bad_words"] > unset_is_off(p.max_bad_words)),
        rule("min_sentences", s["sentences"] < p.min_sentences),
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
    # v2: the page rules read the text the line rules retain (TFDS order); whole-word bad words in any script.
    signal_version="c4-v2",
    compute=c4_signals,
    decide=c4_rules,
    signal_settings=c4_settings,
    rewrite=c4_rewrite,
)
