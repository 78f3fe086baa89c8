"""The clean step: ftfy, Unicode NFC, invisible characters, whitespace and C4 line rules.

ftfy runs only on the segments `clean_ftfy`'s conservative pre-test flags (most web text needs
none of its fixes), and the rest of the chain runs as column operations over the batch (RE2 via
pyarrow.compute, see `clean_re2`) that touch only the rows each stage finds work in
(`clean_column`): per-doc Python loops and regexes at about 10 MB/s had become the bottleneck
(6 MB/s per core on the bench, ~4% of docs needing ftfy); the batch form runs 40 MB/s.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from tokenmill.corpus.clean.ftfy_fast import fix_column, fix_text, needs_ftfy_mask
from tokenmill.corpus.store.parts import Batch, rejected_rows
from tokenmill.corpus.store.settings import Settings
from tokenmill.corpus.store.step import (
    Version,
    VersionKey,
    input_parts,
    read_batches,
    run_docs_step,
)
from tokenmill.corpus.store.versions import Store
from tokenmill.corpus.text import re2 as clean_re2
from tokenmill.corpus.text.re2 import (
    NOT_WS,
    WHITESPACE,
    WS,
    WS_BUT_NEWLINE,
    map_rows,
    map_texts,
    re2_class,
)

STEP = "clean"
CODE_VERSION = "clean-v1"
REASON_EMPTY = "clean:empty"

# C4 (Raffel et al. 2020, TFDS c4_utils): boilerplate phrases that mark a policy/cookie line.
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
TERMINAL_PUNCT = ".!?\"'\u201d\u2019\u2026"


class CleanParams(Settings):
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


# Invisible characters ftfy keeps: zero-width space, word joiner, soft hyphen, and C0 controls
# other than tab and newline (form feed and vertical tab become line breaks).
LINE_BREAK_CONTROLS = "\x0b\x0c"
INVISIBLE = "".join(map(chr, [*range(0x09), *range(0x0E, 0x20), 0x7F, 0x200B, 0x2060, 0xAD, 0xFEFF]))
# Whitespace as Python's str.strip() and re's \s see it: lines' trailing spaces go first, so that a run
# of spaces after a non-space always ends at a non-space (INNER_SPACES needs no lookahead).
TRAILING_SPACES = f"(?m){WS_BUT_NEWLINE}+$"
INNER_SPACES = f"({NOT_WS}){WS_BUT_NEWLINE}{{2,}}"


def remove_invisible(texts: pa.Array) -> pa.Array:
    texts = pc.replace_substring_regex(texts, re2_class(LINE_BREAK_CONTROLS), "\n")
    return pc.replace_substring_regex(texts, re2_class(INVISIBLE), "")


def cut_blank_lines(text: str, max_blank_lines: int) -> str:
    return re.sub(f"\n{{{max_blank_lines + 2},}}", "\n" * (max_blank_lines + 1), text)


def blank_run(max_blank_lines: int) -> str:
    """RE2 for a blank-line run longer than allowed, spelled out: RE2 counts only to 1000."""
    return "\\n" * (max_blank_lines + 2)


def normalize_whitespace(texts: pa.Array, collapse_spaces: bool, max_blank_lines: int) -> pa.Array:
    """Trailing spaces removed, inner runs collapsed, long blank runs cut, ends stripped.

    Each replacement runs only on the rows its pattern finds something in: finding scans three times
    faster than replacing."""
    trailing = pc.match_substring_regex(texts, TRAILING_SPACES)
    texts, _ = map_rows(texts, trailing, lambda rows: pc.replace_substring_regex(rows, TRAILING_SPACES, ""))
    if collapse_spaces:
        inner = pc.match_substring_regex(texts, INNER_SPACES)
        texts, _ = map_rows(texts, inner, lambda rows: pc.replace_substring_regex(rows, INNER_SPACES, "\\1 "))
    cut = functools.partial(cut_blank_lines, max_blank_lines=max_blank_lines)
    texts, _ = map_rows(texts, pc.match_substring_regex(texts, blank_run(max_blank_lines)), map_texts(cut))
    return pc.utf8_trim(texts, WHITESPACE)


def whitespace_work(texts: pa.Array, collapse_spaces: bool, max_blank_lines: int) -> pa.Array:
    """The texts `normalize_whitespace` changes: a line's trailing space, an inner run, a long blank run, an end."""
    found = [f"{WS_BUT_NEWLINE}(?:\\n|\\z)", f"\\A{WS}", f"{WS}\\z", blank_run(max_blank_lines)]
    return pc.match_substring_regex(texts, "|".join(found + [f"{NOT_WS}{WS_BUT_NEWLINE}{{2}}"] * collapse_spaces))


def contains_any(text: str, words: tuple[str, ...], pattern: re.Pattern[str]) -> bool:
    """Case-insensitive search for `words` (`pattern` is their re.I alternation); ASCII text takes `in`."""
    if text.isascii():
        lower = text.lower()
        return any(word in lower for word in words)
    return pattern.search(text) is not None


def has_long_word(text: str, max_chars: int) -> bool:
    return max(map(len, text.split()), default=0) > max_chars  # split's whitespace is re's \s


class LineRule(NamedTuple):
    """A C4 line rule: `line` matches a whole line with its newline. `hint` is true for a text wherever
    `line` can match there, and `batch_hint` (RE2) finds something there; both run far faster than `line`."""

    name: str
    line: re.Pattern[str]
    hint: Callable[[str], bool]
    batch_hint: str


def line_rules(params: CleanParams) -> list[LineRule]:
    """The enabled C4 line rules, in order."""
    phrases = {"javascript": ("javascript",), "policy": POLICY_PHRASES}
    hint_words = {"javascript": ("javascript",), "policy": ("cookie", "privacy", "terms of use")}
    rules = []
    for name, enabled in (("javascript", params.drop_javascript_lines), ("policy", params.drop_policy_lines)):
        if enabled:
            line = re.compile(rf"(?mi)^[^\n]*(?:{'|'.join(map(re.escape, phrases[name]))})[^\n]*(?:\n|\Z)")
            words = hint_words[name]
            hint = functools.partial(contains_any, words=words, pattern=re.compile("|".join(words), re.IGNORECASE))
            rules.append(LineRule(name, line, hint, clean_re2.ignorecase_alternation(phrases[name])))
    if params.max_word_chars:
        n = params.max_word_chars + 1
        line = re.compile(rf"(?m)^[^\n]*\S{{{n},}}[^\n]*(?:\n|\Z)")
        hint = functools.partial(has_long_word, max_chars=params.max_word_chars)
        # A run of 256 non-spaces at least: RE2's DFA gives up on longer counts (700: 100x slower, measured).
        rules.append(LineRule("long_word", line, hint, f"{NOT_WS}{{{min(n, 256)}}}"))
    if params.drop_lines_without_terminal_punct:
        no_punct = re.compile(rf"(?m)^[^\n]*[^{re.escape(TERMINAL_PUNCT)}\s][^\S\n]*(?:\n|\Z)")
        no_punct_re2 = f"(?m)^[^\\n]*{re2_class(TERMINAL_PUNCT + WHITESPACE, negate=True)}{WS_BUT_NEWLINE}*(?:\\n|\\z)"
        rules.append(LineRule("no_terminal_punct", no_punct, no_punct.search, no_punct_re2))
    return rules


def apply_line_rules(text: str, rules: list[LineRule]) -> tuple[str, dict[str, int]]:
    """Drop the lines each rule matches; count lines dropped per rule (a line counts for its first rule)."""
    counts = {}
    for rule in rules:
        if rule.hint(text):
            text, n = rule.line.subn("", text)
            if n:
                counts[rule.name] = n
    return text, counts


def drop_lines(texts: pa.Array, rules: list[LineRule], changes: Counter) -> pa.Array:
    """`apply_line_rules` on each text, the counts added to `changes`."""
    out = []
    for text in texts.to_pylist():
        text, dropped = apply_line_rules(text, rules)
        for rule, n in dropped.items():
            changes[f"lines_dropped.{rule}"] += n
            changes[f"docs_lines_dropped.{rule}"] += 1
        out.append(text)
    return pa.array(out, texts.type)


def clean_column(texts: pa.Array, params: CleanParams, rules: list[LineRule]) -> tuple[pa.Array, Counter]:
    """The chain after ftfy (invisible characters, whitespace, C4 lines), a stage at a time over a batch.

    Each stage finds the rows it has work in with one RE2 pass and changes only those: on web text
    most docs have no invisible characters, few have stray whitespace, fewer a line a C4 rule drops.
    """
    changes: Counter = Counter()
    invisible = pc.match_substring_regex(texts, re2_class(INVISIBLE + LINE_BREAK_CONTROLS))
    visible, changes["docs_invisible_removed"] = map_rows(texts, invisible, remove_invisible)
    spaces = (params.collapse_spaces, params.max_blank_lines)
    spaced, changes["docs_whitespace_changed"] = map_rows(
        visible, whitespace_work(visible, *spaces), lambda rows: normalize_whitespace(rows, *spaces)
    )
    if not rules:
        return spaced, changes
    # One pass per rule: RE2's DFA for their union grows to the product of theirs (3x slower, measured).
    ruled = functools.reduce(pc.or_, [pc.match_substring_regex(spaced, rule.batch_hint) for rule in rules])
    dropped, _ = map_rows(spaced, ruled, lambda rows: drop_lines(rows, rules, changes))
    respaced, _ = map_rows(dropped, pc.not_equal(dropped, spaced), lambda rows: normalize_whitespace(rows, *spaces))
    return respaced, changes


def clean_text(text: str, params: CleanParams, config: Any, rules: list[LineRule]) -> tuple[str, Counter]:
    """One doc through the whole cleaning chain; the counter says what changed."""
    fixed, called = fix_text(text, config)
    cleaned, changes = clean_column(pa.array([fixed], pa.large_string()), params, rules)
    cleaned_text = cleaned[0].as_py()
    changes.update(
        docs_ftfy_called=called, docs_ftfy_changed=fixed != text, chars_removed=len(text) - len(cleaned_text)
    )
    return cleaned_text, changes


def clean_batch(table: pa.Table, params: CleanParams, config: Any, rules: list[LineRule]) -> Batch:
    """`clean_text` of every doc: ftfy one doc at a time where it has work, the rest over the column."""
    texts = pc.fill_null(table["text"].combine_chunks().cast(pa.large_string()), "")
    counters: Counter = Counter()
    if len(texts):
        slow = needs_ftfy_mask(texts, config)
        fixed, changed = map_rows(texts, slow, functools.partial(fix_column, config=config))
        counters.update(docs_ftfy_called=pc.sum(slow).as_py(), docs_ftfy_changed=changed)
        cleaned, changes = clean_column(fixed, params, rules)
        counters.update(changes)
        counters["chars_removed"] = clean_re2.total_chars(texts) - clean_re2.total_chars(cleaned)
        texts = cleaned
    table = table.set_column(table.schema.get_field_index("text"), "text", texts)
    empty = pc.equal(pc.utf8_length(texts), 0)
    kept = table.filter(pc.invert(empty))
    return Batch(kept=kept, rejected=rejected_rows(table, empty, REASON_EMPTY), counters=dict(counters))


def clean_part(url: str, params: CleanParams) -> Iterator[Batch]:
    """The partition function: one input part, streamed in batches."""
    config = ftfy_config(params)
    rules = line_rules(params)
    for table in read_batches(url):
        yield clean_batch(table, params, config, rules)


def version_key(store: Store, params: CleanParams, *, input_version: str) -> VersionKey:
    """What names a clean version: its settings and its input (`store` unused, see `flows.steps`)."""
    return VersionKey.of(STEP, CODE_VERSION, params, [input_version])


def run_clean(store: Store, params: CleanParams, client: Any, *, force: bool = False, input_version: str) -> Version:
    """Commit the cleaned version of `input_version` (or find it cached)."""
    key = version_key(store, params, input_version=input_version)
    tasks = input_parts(store, input_version)
    return run_docs_step(store, client, key, tasks, functools.partial(clean_part, params=params), force=force)
