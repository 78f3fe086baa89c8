"""ftfy only where it can change something: a conservative pre-test, then ftfy on suspect segments.

ftfy runs at about 7-13 MB/s per core, yet most web text needs none of its fixes. `needs_ftfy`
is built from the triggers of each ftfy fixer (ftfy's own `is_bad` for mojibake, NFC, the
characters each fixer rewrites); text that passes it is exactly what ftfy would return, so
skipping ftfy changes no output (tested). `fix_column` runs the pre-test over a batch with RE2
and calls ftfy only on the segments (lines) it flags, as `ftfy.fix_text` would cut them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.corpus.text import re2 as clean_re2
from tokenmill.corpus.text.re2 import re2_class


@functools.lru_cache(maxsize=1)
def ftfy_trigger_chars() -> str:
    """Characters any enabled-by-default ftfy fixer rewrites: entities, escapes, C1, breaks, controls."""
    from ftfy.chardata import CONTROL_CHARS

    return "&\r" + "".join(map(chr, range(0x80, 0xA0))) + "\u2028\u2029" + "".join(map(chr, sorted(CONTROL_CHARS)))


@functools.lru_cache(maxsize=1)
def _ftfy_trigger_re() -> re.Pattern[str]:
    """The trigger characters and lone surrogates (which ftfy also fixes)."""
    return re.compile(f"[{re.escape(ftfy_trigger_chars())}\\ud800-\\udfff]")


@functools.lru_cache(maxsize=1)
def _segment_suspect_re() -> re.Pattern[str]:
    """A character that can make `needs_ftfy` true for a line: a trigger or any non-ASCII character."""
    clean_ascii = "".join(ch for ch in map(chr, range(128)) if ch not in ftfy_trigger_chars())
    return re.compile(f"[^{re.escape(clean_ascii)}]")


def needs_ftfy(text: str, config: Any) -> bool:
    """False only when ftfy (with `config`) would return `text` unchanged; cheap on clean text."""
    if _ftfy_trigger_re().search(text):
        return True
    if text.isascii():
        return False
    if config.uncurl_quotes or config.fix_character_width or config.fix_latin_ligatures:
        return True
    if not unicodedata.is_normalized(config.normalization, text):
        return True
    if config.fix_encoding:
        from ftfy.badness import is_bad

        return is_bad(text)
    return False


@functools.lru_cache(maxsize=1)
def _badness_hint() -> str | None:
    """RE2 that finds something wherever ftfy's `is_bad` does (its BADNESS_RE, carried over)."""
    from ftfy.badness import BADNESS_RE

    return clean_re2.verbose_hint(BADNESS_RE.pattern)


def needs_ftfy_mask(texts: pa.Array, config: Any) -> pa.Array:
    """`needs_ftfy` of every text, with RE2 passes over the batch; Python sees only non-ASCII texts.

    Arrow strings are valid UTF-8, so they hold no lone surrogates and the RE2 class can leave them out.
    """
    triggered = pc.match_substring_regex(texts, re2_class(ftfy_trigger_chars()))
    unsure = pc.and_not(pc.invert(pc.string_is_ascii(texts)), triggered)
    if config.uncurl_quotes or config.fix_character_width or config.fix_latin_ligatures:
        return pc.or_(triggered, unsure)
    if not pc.any(unsure).as_py():
        return triggered
    from ftfy.badness import is_bad

    candidates = texts.filter(unsure)
    maybe_bad = clean_re2.matches(candidates, _badness_hint()).to_pylist() if config.fix_encoding else None
    verdicts = [
        not unicodedata.is_normalized(config.normalization, text) or bool(maybe_bad and maybe_bad[i] and is_bad(text))
        for i, text in enumerate(candidates.to_pylist())
    ]
    return pc.replace_with_mask(triggered, unsure, pa.array(verdicts))


def _segment_around(text: str, pos: int, max_len: int) -> tuple[int, int]:
    """The bounds of the segment `ftfy.fix_text` cuts around `pos`: its line, split every `max_len` characters."""
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos) + 1 or len(text)
    start = line_start + (pos - line_start) // max_len * max_len
    return start, min(start + max_len, line_end)


def suspect_segments(text: str, max_len: int) -> list[tuple[int, int]]:
    """The segments `ftfy.fix_text` cuts that hold a trigger or a non-ASCII character: only these can need ftfy."""
    bounds = []
    suspect = _segment_suspect_re().search(text)
    while suspect:
        bounds.append(_segment_around(text, suspect.start(), max_len))
        suspect = _segment_suspect_re().search(text, bounds[-1][1])
    return bounds


def fix_segments(text: str, bounds: list[tuple[int, int]], needs: list[bool], config: Any) -> str:
    """ftfy's output for a text, given its suspect segments and which of them `needs_ftfy`.

    `ftfy.fix_text` fixes each segment (a line, or `max_decode_length` characters of one) on its own,
    without HTML unescaping from the first segment holding '<' on; the others come back unchanged.
    """
    import ftfy

    first_tag = text.find("<") if config.unescape_html == "auto" else -1
    markup_config = config._replace(unescape_html=False)
    out, pos = [], 0
    for (start, end), need in zip(bounds, needs, strict=True):
        segment = text[start:end]
        if need:
            segment = ftfy.fix_and_explain(segment, markup_config if 0 <= first_tag < end else config)[0]
        out += [text[pos:start], segment]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def fix_text(text: str, config: Any) -> tuple[str, bool]:
    """ftfy's output, and whether ftfy was called: only when the pre-test says it could change something."""
    if not needs_ftfy(text, config):
        return text, False
    bounds = suspect_segments(text, config.max_decode_length)
    return fix_segments(text, bounds, [needs_ftfy(text[s:e], config) for s, e in bounds], config), True


def fix_column(texts: pa.Array, config: Any) -> pa.Array:
    """`fix_text` of texts that need ftfy, the pre-test of all their suspect segments run as one batch."""
    docs = texts.to_pylist()
    bounds = [suspect_segments(text, config.max_decode_length) for text in docs]
    segments = pa.array([text[s:e] for text, b in zip(docs, bounds) for s, e in b], pa.large_string())
    needs = needs_ftfy_mask(segments, config).to_pylist() if len(segments) else []
    out, first = [], 0
    for text, b in zip(docs, bounds):
        out.append(fix_segments(text, b, needs[first : first + len(b)], config))
        first += len(b)
    return pa.array(out, texts.type)
