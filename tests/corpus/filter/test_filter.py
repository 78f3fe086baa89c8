"""The filter step: each rule at its threshold, language ID offline, PII, signal reuse, conservation."""

from __future__ import annotations

import socket
import typing

import pyarrow as pa
import pytest
from pydantic import ValidationError

from tokenmill.corpus.filter.lang import identify
from tokenmill.corpus.filter.params import FilterName, FilterParams, GopherQualityParams, PiiParams
from tokenmill.corpus.filter.pii import redact_batch
from tokenmill.corpus.filter.registry import FILTERS
from tokenmill.corpus.filter.spec import TextBatch, as_numpy
from tokenmill.corpus.filter.step import run_filter

GOOD = (
    "The history of the city is long and varied, and it has been shaped by many people over the years. "
    "Its people have built roads, bridges and schools with care. The river that runs through the middle "
    "of the town was once the main route for trade with the coast. Today it is a quiet place to walk. "
    "Many visitors come in the summer to see the old market and the church. The local museum tells the "
    "story of the region with maps, letters and photographs from that time."
)


def signals_of(name: str, text: str, params=None, source: str = "http://example.com/a") -> dict:
    spec = FILTERS[name]
    params = params or spec.params()
    table = pa.table({"text": pa.array([text], pa.large_string()), "source": [source]})
    values, _ = spec.signals_of(TextBatch(table), params)
    return {s.name: as_numpy(pa.array(values[s.name], s.type)) for s in spec.signals}


def failed(name: str, text: str, **settings) -> set[str]:
    spec = FILTERS[name]
    params = spec.params(**settings)
    return {rule for rule, fails in spec.decide(signals_of(name, text, params), params) if fails[0]}


def lines(*items: str) -> str:
    return "\n".join(items)


WORDS = [f"w{i}ord" for i in range(200)]
SENTENCE = "This line has words enough to stay. "
PAIRS = [a + b for a in "efghijklmn" for b in "opqrstuvwxyz"]
CASES = [
    # (filter, rule, settings, doc just inside, doc just outside)
    ("length", "min_chars", {"min_chars": 5}, "abcde", "abcd"),
    ("length", "max_words", {"max_words": 3}, "a b c", "a b c d"),
    ("gopher_quality", "min_words", {}, " ".join(WORDS[:50]), " ".join(WORDS[:49])),
    ("gopher_quality", "max_words", {"max_words": 100}, " ".join(WORDS[:100]), " ".join(WORDS[:101])),
    ("gopher_quality", "min_mean_word_length", {}, "abc " * 60, "abc ab " * 30),
    ("gopher_quality", "max_mean_word_length", {}, "abcdefghij " * 60, "abcdefghij abcdefghijkl " * 30),
    ("gopher_quality", "max_hash_word_ratio", {}, "word " * 90 + "#x " * 10, "word " * 89 + "#x " * 11),
    ("gopher_quality", "max_ellipsis_word_ratio", {}, "word " * 90 + "x... " * 10, "word " * 89 + "x… " * 11),
    ("gopher_quality", "max_symbol_word_ratio", {"max_symbol_word_ratio": 0.1}, "word " * 90 + "#x x... " * 5,
     "word " * 88 + "#x x… " * 6),
    ("gopher_quality", "max_bullet_lines_frac", {}, lines(*["- item"] * 9, "text"), lines(*["- item"] * 10)),
    ("gopher_quality", "max_ellipsis_lines_frac", {}, lines(*["a..."] * 3, *["b"] * 7), lines(*["a…"] * 4, *["b"] * 6)),
    ("gopher_quality", "min_alpha_words_frac", {}, "a " * 8 + "1 " * 2, "a " * 7 + "1 " * 3),
    ("gopher_quality", "min_stop_words", {}, "The cat and dog", "the cat, the dog"),
    ("gopher_quality", "min_stop_words", {"distinct_stop_words": False}, "the cat, the dog", "the cat or dog"),
    ("gopher_quality", "min_stop_words", {"stop_words_case_sensitive": True}, "the cat and dog", "The cat and dog"),
    ("gopher_repetition", "max_dup_line_frac", {}, lines(*WORDS[:7], *WORDS[:3]), lines(*WORDS[:6], *WORDS[:4])),
    ("gopher_repetition", "max_dup_para_frac", {"max_dup_para_chars_frac": 1}, "\n\n".join(WORDS[:7] + WORDS[:3]),
     "\n\n".join(WORDS[:6] + WORDS[:4])),
    # 2-letter words: "ab cd" twice holds 8 of 40 word chars (0.2), then 8 of 38 (0.21)
    ("gopher_repetition", "max_top_2gram_char_frac", {}, " ".join(PAIRS[:16] + ["ab", "cd"] * 2),
     " ".join(PAIRS[:15] + ["ab", "cd"] * 2)),
    ("c4", "min_sentences", {}, lines(SENTENCE, 'He said "so it goes in the end." Then left.'),
     lines(SENTENCE, "He said so it goes in the end. Then")),
    ("c4", "lorem_ipsum", {}, lines(SENTENCE * 3, "Some Lorem Ipsum text here"),
     lines(SENTENCE * 3, "Some Lorem Ipsum text here.")),
    ("c4", "curly_bracket", {}, lines(SENTENCE * 3, "a dict {1: 2} is here"),
     lines(SENTENCE * 3, "a dict {1: 2} is here.")),
    ("c4", "max_bad_words", {}, SENTENCE * 3 + " A class.", SENTENCE * 3 + " An ass."),
    # FineWeb: a doc at the threshold drops (<= 0.25 here); blank lines are lines
    ("fineweb", "min_line_punct_frac", {"min_line_punct_frac": 0.25}, lines("Ends.", "a", "b"),
     lines("Ends.", *"abc")),
    ("fineweb", "min_line_punct_frac", {"min_line_punct_frac": 0.25}, lines("Ends.", "a", "b"),
     lines("Ends.", "a", "", "b")),
    ("fineweb", "max_short_line_frac", {"max_short_line_frac": 0.5}, lines("x" * 31, "x" * 31, "short"),
     lines("x" * 31, "short")),
    ("fineweb", "max_dup_line_chars_frac", {"max_dup_line_chars_frac": 0.1}, lines("a" * 81, "b" * 10, "b" * 10),
     lines("a" * 80, "b" * 10, "b" * 10)),
    ("fineweb", "max_newline_word_ratio", {"max_newline_word_ratio": 0.3}, lines("a b c d e f g", "h", "i", "j"),
     lines("a b c d e f", "h", "i", "j")),
]


@pytest.mark.parametrize("name,rule,settings,inside,outside", CASES, ids=[f"{c[0]}.{c[1]}" for c in CASES])
def test_rule_just_inside_and_just_outside(name, rule, settings, inside, outside):
    assert rule not in failed(name, inside, **settings)
    assert rule in failed(name, outside, **settings)


@pytest.mark.parametrize("rule", [r[0] for r in FILTERS["gopher_repetition"].decide(
    signals_of("gopher_repetition", "a b"), FILTERS["gopher_repetition"].params())])
def test_every_repetition_rule_cuts_at_its_threshold(rule):
    """On a repetitive doc: the threshold equal to the signal keeps it, one just below drops it."""
    text = "\n\n".join(["the same line again and again"] * 3 + ["other words", " ".join(["x y z w v u t s r q"] * 4)])
    signal = rule[len("max_"):]
    value = float(signals_of("gopher_repetition", text)[signal][0])
    assert value > 0
    assert rule not in failed("gopher_repetition", text, **{rule: value})
    assert rule in failed("gopher_repetition", text, **{rule: value - 1e-3})


def test_gopher_quality_known_values():
    s = signals_of("gopher_quality", "The cat #tag 123...\n- and the dog")
    assert s["words"][0] == 8
    assert s["stop_words"][0] == 2  # distinct: the, and
    assert s["hash_word_ratio"][0] == s["ellipsis_word_ratio"][0] == pytest.approx(1 / 8)
    assert s["ellipsis_lines_frac"][0] == 0.5
    assert s["bullet_lines_frac"][0] == 0.5
    assert s["alpha_words_frac"][0] == pytest.approx(6 / 8)


PARAGRAPHS = {
    "en": GOOD,
    "de": "Die Geschichte der Stadt ist lang und vielfältig. Viele Menschen haben sie über die Jahre geprägt, "
    "und der Fluss war einst der wichtigste Handelsweg zur Küste.",
    "fr": "L'histoire de la ville est longue et variée. Beaucoup de gens l'ont façonnée au fil des années, "
    "et la rivière était autrefois la principale route commerciale vers la côte.",
    "zh": "这座城市的历史悠久而丰富。多年来，许多人塑造了它，"
    "穿过城镇中心的河流曾经是通往海岸的主要贸易路线。",
    "ja": "この町の歴史は長く、多様です。長年にわたり多くの人々がこの町を形作ってきました。"
    "川はかつて海岸への主要な交易路でした。",
}


def test_language_identified_with_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for lang, text in PARAGRAPHS.items():
        found, score = identify(text, 2000)
        assert found == lang and score > 0.65


def test_language_keep_list_and_wildcard():
    assert failed("language", PARAGRAPHS["de"]) == {"not_kept"}
    assert failed("language", PARAGRAPHS["de"], keep=["*"]) == set()
    assert failed("language", PARAGRAPHS["de"], keep=["de", "en"]) == set()


def test_pii_redacts_emails_and_public_ips_only():
    texts = pa.array(["mail bob@example.org from 8.8.8.8 and 192.168.1.1 or 127.0.0.1", "none"], pa.large_string())
    out, counts = redact_batch(texts, PiiParams())
    assert out.to_pylist()[0] == "mail <EMAIL> from <IP> and 192.168.1.1 or 127.0.0.1"
    assert counts == {"pii.email": 1, "pii.ip": 1, "pii.docs_changed": 1}


def test_url_blocklist_domains_and_substrings(tmp_path):
    listing = tmp_path / "block.txt"
    listing.write_text("bad.com\nsubstring:/casino/\n")
    assert failed("url_blocklist", "t", file=str(listing)) == set()
    spec = FILTERS["url_blocklist"]
    params = spec.params(file=str(listing))
    for url, rule in [("https://www.bad.com/x", "domain"), ("http://ok.org/casino/1", "substring")]:
        s = signals_of("url_blocklist", "t", params, source=url)
        assert {r for r, f in spec.decide(s, params) if f[0]} == {rule}


def test_filter_step_reasons_threshold_rerun_and_conservation(store, client, tmp_path, write_jsonl):
    from tokenmill.corpus.ingest.load import LoadParams, run_load

    huge = "y" * (5 * 2**20)
    docs = [
        {"text": GOOD + " Contact bob@example.org.", "url": "http://a.example/good"},
        {"text": PARAGRAPHS["de"] * 4, "url": "http://a.example/de"},
        {"text": "Too short.", "url": "http://a.example/short"},
        {"text": "\x00\x01 binary \ufffd\ufffd", "url": "http://a.example/bin"},
        {"text": huge, "url": "http://a.example/huge"},
        {"text": "   ", "url": "http://a.example/blank"},
        '{"text": "lone \\ud800 surrogate", "url": "http://a.example/surrogate"}',
    ]
    path = write_jsonl(tmp_path / "docs.jsonl", docs)
    source = run_load(store, LoadParams(paths=[str(path)], source_field="url"), client).id
    first = run_filter(store, FilterParams(), client, input_version=source)
    stats = store.read_json(first.id, "stats.json")
    assert stats["docs_in"] == store.manifest(source).stats["docs_out"] == stats["docs_out"] + stats["docs_rejected"]
    assert all(n > 0 for n in stats["signals"]["computed_docs"].values())
    kept = store.read_docs(first.id).compute()
    rejected = store.read_docs(first.id, kind="rejected").compute().set_index("source")
    assert list(kept["source"]) == ["http://a.example/good"]
    assert kept["text"].iloc[0].endswith("Contact <EMAIL>.")
    assert kept["lang"].iloc[0] == "en" and kept["gopher_quality__words"].iloc[0] > 50
    assert rejected.loc["http://a.example/de", "reason"] == "filter:language.not_kept"
    assert rejected.loc["http://a.example/de", "language__lang"] == "de"
    assert rejected.loc["http://a.example/short", "reason"].startswith("filter:")
    assert stats["counters"]["chars_dropped.filter:language.not_kept"] > 0
    assert sum(stats["signals"]["histograms"]["gopher_quality__words"]["counts"]) == stats["docs_in"]

    stricter = FilterParams(gopher_quality={"min_words": 100})
    second = run_filter(store, stricter, client, input_version=source)
    assert second.id != first.id and not second.cached
    stats2 = store.read_json(second.id, "stats.json")
    assert set(stats2["signals"]["computed_docs"].values()) == {0}
    assert stats2["signals"]["histograms"] == stats["signals"]["histograms"]  # kept by the signals versions
    assert stats2["docs_out"] == 0
    assert store.read_docs(second.id, kind="rejected").compute().set_index("source").loc[
        "http://a.example/good", "reason"] == "filter:gopher_quality.min_words"

    again = run_filter(store, FilterParams(), client, input_version=first.id)
    stats3 = store.read_json(again.id, "stats.json")
    assert set(stats3["signals"]["versions"].values()) == {"input columns"}
    assert set(stats3["signals"]["computed_docs"].values()) == {0}
    assert sum(stats3["signals"]["histograms"]["gopher_quality__words"]["counts"]) == stats3["docs_in"]
    assert stats3["docs_out"] == 1


def test_a_transform_changes_the_signals_of_the_filters_after_it_only(store, client, tmp_path, write_jsonl):
    from tokenmill.corpus.ingest.load import LoadParams, run_load

    text = "Write to bob@example.org today."
    source = run_load(store, LoadParams(paths=[str(write_jsonl(tmp_path / "d.jsonl", [{"text": text}]))]), client).id
    chars = {}
    for order in (["pii", "length"], ["length", "pii"]):
        version = run_filter(store, FilterParams(filters=order), client, input_version=source)
        kept = store.read_docs(version.id).compute()
        assert kept["text"].iloc[0] == "Write to <EMAIL> today."
        chars[order[0]] = kept["length__chars"].iloc[0]
    assert (chars["pii"], chars["length"]) == (len("Write to <EMAIL> today."), len(text))


def test_presets_set_defaults_and_explicit_settings_win():
    paper = FilterParams()
    assert (paper.c4.min_sentences, paper.c4.min_words_per_line, paper.fineweb.max_dup_line_chars_frac) == (3, 5, 0.1)
    assert paper.gopher_repetition.count_first_occurrence and paper.gopher_quality.distinct_stop_words
    ours = FilterParams(preset="datatrove", c4={"min_sentences": 4}, gopher_quality=GopherQualityParams(min_words=10))
    assert (ours.c4.min_sentences, ours.c4.min_words_per_line, ours.c4.max_bad_words) == (4, 3, None)
    assert ours.gopher_quality.min_words == 10 and not ours.gopher_quality.distinct_stop_words
    assert not ours.gopher_repetition.count_first_occurrence
    assert (ours.fineweb.max_dup_line_chars_frac, ours.fineweb.max_newline_word_ratio) == (0.01, 0.3)
    with pytest.raises(ValidationError, match="preset"):
        FilterParams(preset="tfds")


def test_every_filter_name_is_registered():
    assert set(FILTERS) == set(typing.get_args(FilterName))
