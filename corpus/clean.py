"""The clean step: ftfy, Unicode NFC, invisible characters, whitespace and C4 line rules.

ftfy is the bottleneck (about 7-13 MB/s per core), yet most web text needs none of its fixes.
`needs_ftfy` is a cheap, conservative pre-test built from the triggers of each ftfy fixer
(ftfy's own `is_bad` for mojibake, NFC, the characters each fixer rewrites); text that passes
it is exactly what ftfy would return, so skipping ftfy changes no output (tested).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from tokenmill.corpus.parts import Batch, rejected_rows
from tokenmill.corpus.step import Version, input_parts, read_batches, run_docs_step
from tokenmill.corpus.store import Store

STEP = "clean"
CODE_VERSION = "clean-v1"
REASON_EMPTY = "clean:empty"

# C4 (Raffel et al. 2020, TFDS c4_utils): boilerplate phrases that mark a policy/cookie line.
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
TERMINAL_PUNCT = ".!?\"'\u201d\u2019\u2026"


class CleanParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fix_encoding: bool = Field(default=True, description="ftfy: repair mojibake (UTF-8 decoded as cp1252/latin-1)")
    unescape_html: bool = Field(default=True, description="ftfy: decode HTML entities in lines that hold no markup")
    uncurl_quotes: bool = Field(default=False, description="ftfy: turn curly quotes into straight ones")
    fix_character_width: bool = Field(default=False, description="ftfy: fold full-width Latin and half-width kana")
    fix_latin_ligatures: bool = Field(default=False, description="ftfy: expand ligatures such as 'ﬁ' into letters")
    nfkc: bool = Field(default=False, description="normalize to NFKC instead of NFC (folds compatibility forms)")
    collapse_spaces: bool = Field(
        default=True, description="collapse runs of spaces/tabs inside a line to one space (indentation is kept)"
    )
    max_blank_lines: int = Field(default=2, ge=0, description="longer runs of blank lines are cut to this many")
    drop_javascript_lines: bool = Field(default=True, description="C4: drop lines that mention 'javascript'")
    drop_policy_lines: bool = Field(default=True, description="C4: drop cookie / privacy-policy / terms-of-use lines")
    drop_lines_without_terminal_punct: bool = Field(
        default=False, description="C4: drop non-blank lines that do not end in terminal punctuation (off: hurts code)"
    )
    max_word_chars: int = Field(
        default=1000, ge=0, description="C4: drop lines holding a word longer than this many characters; 0 = off"
    )


def ftfy_config(params: CleanParams) -> Any:
    """The web-corpus ftfy settings: fix encodings and controls, keep quotes, widths and ligatures."""
    import ftfy

    return ftfy.TextFixerConfig(
        unescape_html="auto" if params.unescape_html else False,
        fix_encoding=params.fix_encoding,
        uncurl_quotes=params.uncurl_quotes,
        fix_character_width=params.fix_character_width,
        fix_latin_ligatures=params.fix_latin_ligatures,
        normalization="NFKC" if params.nfkc else "NFC",
        explain=False,
    )


@functools.lru_cache(maxsize=1)
def _ftfy_trigger_re() -> re.Pattern[str]:
    """Characters any enabled-by-default ftfy fixer rewrites: entities, escapes, C1, breaks, surrogates, controls."""
    from ftfy.chardata import CONTROL_CHARS

    controls = "".join(re.escape(chr(c)) for c in sorted(CONTROL_CHARS))
    return re.compile(f"[&\\r\\x80-\\x9f\\u2028\\u2029\\ud800-\\udfff{controls}]")


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


def fix_text(text: str, config: Any) -> tuple[str, bool]:
    """ftfy's output, and whether ftfy was called: only when the pre-test says it could change something.

    `ftfy.fix_text` fixes each line on its own (`fix_and_explain` per segment); this walks the same
    segments and leaves the ones the pre-test passes alone, so a doc with one broken line costs one line.
    """
    if not needs_ftfy(text, config):
        return text, False
    import ftfy

    out, pos = [], 0
    while pos < len(text):
        end = text.find("\n", pos) + 1 or len(text)
        end = min(end, pos + config.max_decode_length)
        segment = text[pos:end]
        if config.unescape_html == "auto" and "<" in segment:
            config = config._replace(unescape_html=False)
        out.append(ftfy.fix_and_explain(segment, config)[0] if needs_ftfy(segment, config) else segment)
        pos = end
    return "".join(out), True


# Invisible characters ftfy keeps: zero-width space, word joiner, soft hyphen, and C0 controls
# other than tab and newline (form feed and vertical tab become line breaks).
INVISIBLE_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f\u200b\u2060\u00ad\ufeff]")
LINE_BREAK_CONTROLS_RE = re.compile("[\x0b\x0c]")
# What `[^\S\n]` matches: Python's whitespace but the newline, for `str.rstrip`.
SPACES_BUT_NEWLINE = "".join(ch for ch in map(chr, range(0x3000 + 1)) if ch.isspace() and ch != "\n")
DOUBLE_SPACE_RE = re.compile(r"[^\S\n]{2}")
INNER_SPACES_RE = re.compile(r"(?<=\S)[^\S\n]{2,}(?=\S)")


def remove_invisible(text: str) -> str:
    return INVISIBLE_RE.sub("", LINE_BREAK_CONTROLS_RE.sub("\n", text))


def normalize_whitespace(text: str, collapse_spaces: bool, max_blank_lines: int) -> str:
    """Trailing spaces removed, inner runs collapsed, long blank runs cut, ends stripped.

    Each regex runs only where a cheap test finds something for it: they scan at about 10 MB/s.
    """
    text = "\n".join(line.rstrip(SPACES_BUT_NEWLINE) for line in text.split("\n"))
    if collapse_spaces and DOUBLE_SPACE_RE.search(text):
        text = INNER_SPACES_RE.sub(" ", text)
    if "\n" * (max_blank_lines + 2) in text:
        text = re.sub("\n{%d,}" % (max_blank_lines + 2), "\n" * (max_blank_lines + 1), text)
    return text.strip()


def contains_any(text: str, words: tuple[str, ...], pattern: re.Pattern[str]) -> bool:
    """Case-insensitive search for `words` (`pattern` is their re.I alternation); ASCII text takes `in`."""
    if text.isascii():
        lower = text.lower()
        return any(word in lower for word in words)
    return pattern.search(text) is not None


def has_long_word(text: str, max_chars: int) -> bool:
    return max(map(len, text.split()), default=0) > max_chars  # split's whitespace is re's \s


def line_rules(params: CleanParams) -> list[tuple[str, re.Pattern[str], Callable[[str], bool]]]:
    """The enabled C4 line rules as (name, pattern matching a whole line with its newline, hint), in order.

    A line pattern scans at about 10 MB/s; its hint, true for a text wherever the pattern can
    match there, is tested first."""
    hints = {
        "javascript": ("javascript", ("javascript",)),
        "policy": ("|".join(re.escape(p) for p in POLICY_PHRASES), ("cookie", "privacy", "terms of use")),
    }
    rules = []
    for name, enabled in (("javascript", params.drop_javascript_lines), ("policy", params.drop_policy_lines)):
        body, words = hints[name]
        if enabled:
            line = re.compile(rf"(?mi)^[^\n]*(?:{body})[^\n]*(?:\n|\Z)")
            hint = functools.partial(contains_any, words=words, pattern=re.compile("|".join(words), re.I))
            rules.append((name, line, hint))
    if params.max_word_chars:
        line = re.compile(rf"(?m)^[^\n]*\S{{{params.max_word_chars + 1},}}[^\n]*(?:\n|\Z)")
        rules.append(("long_word", line, functools.partial(has_long_word, max_chars=params.max_word_chars)))
    if params.drop_lines_without_terminal_punct:
        no_punct = re.compile(rf"(?m)^[^\n]*[^{re.escape(TERMINAL_PUNCT)}\s][^\S\n]*(?:\n|\Z)")
        rules.append(("no_terminal_punct", no_punct, no_punct.search))
    return rules


def apply_line_rules(text: str, rules: list[tuple[str, re.Pattern[str]]]) -> tuple[str, dict[str, int]]:
    """Drop the lines each rule matches; count lines dropped per rule (a line counts for its first rule)."""
    counts = {}
    for name, pattern, hint in rules:
        if hint(text):
            text, n = pattern.subn("", text)
            if n:
                counts[name] = n
    return text, counts


def clean_text(text: str, params: CleanParams, config: Any, rules: list) -> tuple[str, Counter]:
    """One doc through the whole cleaning chain; the counter says what changed."""
    changes: Counter = Counter()
    fixed, called = fix_text(text, config)
    changes["docs_ftfy_called"] += called
    changes["docs_ftfy_changed"] += fixed != text
    visible = remove_invisible(fixed)
    changes["docs_invisible_removed"] += visible != fixed
    spaced = normalize_whitespace(visible, params.collapse_spaces, params.max_blank_lines)
    changes["docs_whitespace_changed"] += spaced != visible
    cleaned, dropped = apply_line_rules(spaced, rules)
    for rule, n in dropped.items():
        changes[f"lines_dropped.{rule}"] += n
        changes[f"docs_lines_dropped.{rule}"] += 1
    if dropped:
        cleaned = normalize_whitespace(cleaned, params.collapse_spaces, params.max_blank_lines)
    changes["chars_removed"] += len(text) - len(cleaned)
    return cleaned, changes


def clean_batch(table: pa.Table, params: CleanParams, config: Any, rules: list) -> Batch:
    texts = [t or "" for t in table["text"].to_pylist()]
    counters: Counter = Counter()
    cleaned = []
    for text in texts:
        new, changes = clean_text(text, params, config, rules)
        cleaned.append(new)
        counters.update(changes)
    table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(cleaned, pa.large_string()))
    empty = pa.array([not t for t in cleaned])
    kept = table.filter(pc.invert(empty))
    return Batch(kept=kept, rejected=rejected_rows(table, empty, REASON_EMPTY), counters=dict(counters))


def clean_part(url: str, params: CleanParams) -> Iterator[Batch]:
    """The partition function: one input part, streamed in batches."""
    config = ftfy_config(params)
    rules = line_rules(params)
    for table in read_batches(url):
        yield clean_batch(table, params, config, rules)


def run_clean(store: Store, params: CleanParams, client: Any, *, force: bool = False, input_version: str) -> Version:
    """Commit the cleaned version of `input_version` (or find it cached)."""
    return run_docs_step(
        store,
        client,
        step=STEP,
        code_version=CODE_VERSION,
        params=params,
        inputs=[input_version],
        tasks=input_parts(store, input_version),
        process=functools.partial(clean_part, params=params),
        force=force,
    )
