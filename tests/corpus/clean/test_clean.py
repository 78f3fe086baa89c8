"""The clean step: ftfy fixes with the web-corpus settings, the fast path, C4 line rules, conservation."""

from __future__ import annotations

import unicodedata

import ftfy
import ftfy.bad_codecs  # noqa: F401  registers sloppy-windows-1252
import pytest

from tokenmill.corpus.clean.ftfy_fast import needs_ftfy
from tokenmill.corpus.clean.step import (
    CleanParams,
    apply_line_rules,
    clean_text,
    ftfy_config,
    line_rules,
    run_clean,
)

PARAMS = CleanParams()
CONFIG = ftfy_config(PARAMS)
RULES = line_rules(PARAMS)


def clean(text: str, params: CleanParams = PARAMS) -> str:
    return clean_text(text, params, ftfy_config(params), line_rules(params))[0]


@pytest.mark.parametrize(
    "original",
    ["naïve café déjà vu", "“Smart” quotes — and an em dash", "Grüße aus Köln", "€100 für Straße", "Ça marche très bien"],
)
def test_mojibake_from_cp1252_is_fixed(original):
    broken = original.encode("utf-8").decode("sloppy-windows-1252")  # how browsers read cp1252
    assert broken != original
    assert clean(broken) == original


def test_curly_quotes_kept_by_default_and_uncurled_on_request():
    text = "She said “hello” and ‘bye’."
    assert clean(text) == text
    assert clean(text, CleanParams(uncurl_quotes=True)) == "She said \"hello\" and 'bye'."


def test_widths_and_ligatures_kept_by_default():
    text = "ﬁne ＡＢＣ"
    assert clean(text) == text
    assert clean(text, CleanParams(fix_latin_ligatures=True, fix_character_width=True)) == "fine ABC"


def test_output_is_nfc_and_controls_are_gone():
    out = clean("e\u0301te\u0301 a\x00b\x07c\u200bd\x1b[31mred\ufeff")
    assert unicodedata.is_normalized("NFC", out)
    assert out == "été abcdred"
    assert not any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in out)


def test_whitespace_normalized_and_indentation_kept():
    assert clean("a   b \t c  \n\n\n\n\n    indented   line   \r\nz") == "a b c\n\n\n    indented line\nz"


def test_c4_line_rules_drop_and_count_per_rule():
    params = CleanParams(drop_lines_without_terminal_punct=True, max_word_chars=15)
    text = "Please enable JavaScript.\nSee our privacy policy.\nA good line.\nno punctuation here\nword aaaaaaaaaaaaaaaaaaaa."
    out, changes = clean_text(text, params, ftfy_config(params), line_rules(params))
    assert out == "A good line."
    assert changes["lines_dropped.javascript"] == 1
    assert changes["lines_dropped.policy"] == 1
    assert changes["lines_dropped.no_terminal_punct"] == 1
    assert changes["lines_dropped.long_word"] == 1


def test_line_rules_off_keep_lines():
    params = CleanParams(drop_javascript_lines=False, drop_policy_lines=False, max_word_chars=0)
    assert apply_line_rules("javascript\nprivacy policy", line_rules(params)) == ("javascript\nprivacy policy", {})


SAMPLES = [
    "plain ascii text.\nSecond line.",
    "Tom &amp; Jerry",
    "<p>&amp; stays in markup</p>",
    "The Mona Lisa doesnâ€™t have eyebrows.",
    "“curly” – dashes … ellipsis",
    "Ünïcödé façade",
    "e\u0301",
    "\u00c3\u00a9 and \u00e2\u0080\u0099",
    "line\r\nbreaks\u2028sep\x85",
    "tab\tand\x0bvt",
    "日本語のテキストです。",
    "中文文本，没有问题。",
    "Ελληνικά και русский",
    "\ud83d lone surrogate",
    "control\x00\x1f\x7f chars",
    "C1 \x80\x9f controls",
    "ﬁ ligature ＡＢ",
    "voilÃ le travail",
    "Ã©tÃ© en franÃ§ais",
    "emoji 👍 and ZWJ 👨\u200d👩",
    "",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_fast_path_matches_ftfy_on_everything(text):
    """Skipping ftfy where the pre-test allows gives exactly ftfy's output."""
    expected = ftfy.fix_text(text, CONFIG)
    assert clean_text(text, PARAMS, CONFIG, RULES)[0] == clean_text(expected, PARAMS, CONFIG, RULES)[0]
    if not needs_ftfy(text, CONFIG):
        assert expected == text


def test_fast_path_skips_clean_text():
    assert not needs_ftfy("Ordinary English text, with “quotes” and café.", CONFIG)
    assert needs_ftfy("doesnâ€™t", CONFIG)


def test_run_clean_conservation_on_bad_inputs(store, client, docs_version, tmp_path, write_jsonl):
    huge = "x" * (5 * 2**20)
    docs = ["Good text here.", "", "   \n\t  ", "\x00\x01\x02\x03\ufffd\ufffd", huge, "Fine doc â€™ fixed.", "\u200b\u00ad"]
    path = write_jsonl(tmp_path / "bad.jsonl", [{"text": d} for d in docs] + ['{"text": "lone \\ud800 surrogate"}'])
    from tokenmill.corpus.ingest.load import LoadParams, run_load

    loaded = run_load(store, LoadParams(paths=[str(path)]), client)
    version = run_clean(store, CleanParams(), client, input_version=loaded.id)
    stats = store.read_json(version.id, "stats.json")
    assert stats["docs_in"] == loaded.manifest.stats["docs_out"]
    assert stats["docs_in"] == stats["docs_out"] + stats["docs_rejected"]
    kept = store.read_docs(version.id).compute()
    rejected = store.read_docs(version.id, kind="rejected").compute()
    assert set(rejected["reason"]) == {"clean:empty"}
    assert "Fine doc ’ fixed." in set(kept["text"])
    assert len(rejected) >= 1 and all(t.strip() for t in kept["text"])
    assert len(kept) + len(rejected) == loaded.manifest.stats["docs_out"]
    assert stats["counters"]["docs_ftfy_changed"] >= 1
    again = run_clean(store, CleanParams(), client, input_version=loaded.id)
    assert again.cached and again.id == version.id
