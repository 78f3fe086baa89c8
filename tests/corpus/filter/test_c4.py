"""C4: line cleaning on hand-made pages whose output is written out, page rules on the retained lines,
bad words in any script, the shipped list, and the step: only kept pages rewritten, counted."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tokenmill.corpus.filter.c4 import bad_words, c4_rewrite
from tokenmill.corpus.filter.params import C4Params, FilterParams
from tokenmill.corpus.filter.registry import FILTERS
from tokenmill.corpus.filter.spec import TextBatch, as_numpy
from tokenmill.corpus.filter.step import check_filter, run_filter
from tokenmill.corpus.store.errors import ConfigError

WIKI_PAGE = (
    "Main page\n"
    "Please enable JavaScript to use all the features of this site.\n"
    "The river Avon flows through the town of Bath.[1] It was once used for trade.[2][3]\r\n"
    "Its banks are lined with old stone houses and gardens.[citation needed]\u2028"
    "Short line.\n"
    "\n"
    "This site uses cookies to give you the best experience.\n"
    "More to come, stay tuned for the next update...\n"
    "  The town's museum is open every day of the week!  \n"
    "A line with a " + "x" * 1001 + " word ends here.\n"
    "[edit]\n"
    'He said: "The water is cold in winter."\n'
)
WIKI_CLEANED = (
    "The river Avon flows through the town of Bath. It was once used for trade.\n"
    "Its banks are lined with old stone houses and gardens.\n"
    "The town's museum is open every day of the week!\n"
    'He said: "The water is cold in winter."'
)
SENTENCES = "One line holds five words here. Two lines hold more words than that. Three is the last one here."


def rewrite(texts: list[str], **settings) -> tuple[list[str], dict[str, int], dict[str, list[int]]]:
    result = c4_rewrite(pa.array(texts, pa.large_string()), C4Params(**settings))
    return result.texts.to_pylist(), result.totals(), {k: v.tolist() for k, v in result.values.items()}


def failed(text: str, **settings) -> set[str]:
    params = C4Params(**settings)
    values, _ = FILTERS["c4"].signals_of(TextBatch(pa.table({"text": pa.array([text], pa.large_string())})), params)
    columns = {s.name: as_numpy(pa.array(values[s.name], s.type)) for s in FILTERS["c4"].signals}
    return {rule for rule, fails in FILTERS["c4"].decide(columns, params) if fails[0]}


def test_a_wikipedia_like_page_keeps_its_prose_lines_in_tfds_order():
    texts, counts, values = rewrite([WIKI_PAGE])
    assert texts == [WIKI_CLEANED]
    assert values == {"sentences": [5], "lorem_ipsum": [0], "curly_bracket": [0]}
    removed = {key.removeprefix("c4.lines_removed."): n for key, n in counts.items() if "lines_removed" in key}
    assert removed == {"long_word": 1, "no_end_mark": 3, "few_words": 1, "javascript": 1, "policy": 1}
    assert counts["c4.chars_removed.few_words"] == len("Short line.")
    no_end_mark = "Main page" + "More to come, stay tuned for the next update..." + "[edit]"
    assert counts["c4.chars_removed.no_end_mark"] == len(no_end_mark)
    assert counts["c4.citations_removed"] == 4
    assert counts["c4.chars_removed.citations"] == len("[1][2][3][citation needed]")
    assert counts["c4.docs_rewritten"] == 1


@pytest.mark.parametrize("page,cleaned", [
    ("", ""),
    ("\n\n  \n", ""),
    ("Just one short line", ""),
    # a citation at the end leaves a space after the end mark: TFDS drops the line
    ("The old bridge was built in stone. [4]\nIt still carries traffic every day.",
     "It still carries traffic every day."),
    # at the start it leaves a space the final strip removes
    ("[5] The old bridge was built in stone.", "The old bridge was built in stone."),
    # end marks: . ? ! " (an end quote), not ' or … or ...
    ("Is this line a question for you?\nIt ends in a quote 'like this'\nIt ends in an ellipsis of sorts…",
     "Is this line a question for you?"),
])
def test_lines_retained(page, cleaned):
    assert rewrite([page])[0] == [cleaned]


def test_settings_change_which_lines_stay():
    page = "Tiny line of four.\nThis one ends in 'quotes'\nEnable javascript for this page to work."
    assert rewrite([page])[0] == [""]
    assert rewrite([page], min_words_per_line=3, line_end_chars=".?!\"'", drop_javascript_lines=False)[0] == [page]


def test_page_rules_read_the_retained_lines_only():
    assert failed(SENTENCES + "\nA { in a line without an end mark") == set()
    assert failed(SENTENCES + "\nA { in a line that ends in a period.") == {"curly_bracket"}
    assert failed(SENTENCES + "\nlorem ipsum dolor") == set()
    assert failed(SENTENCES + "\nLorem Ipsum dolor sit amet consectetur.") == {"lorem_ipsum"}
    # TFDS checks "lorem ipsum" before "javascript", and "{" after it
    assert failed(SENTENCES + "\nLorem ipsum needs javascript to show.") == {"lorem_ipsum"}
    assert failed(SENTENCES + "\nThis {javascript} code line is dropped.") == set()
    assert failed("Only one line. It has two sentences.") == {"min_sentences"}
    assert failed('He said: "Go on." She did. They left.') == set()  # three, with a sentence ending in ."


def test_bad_words_of_any_script_match_whole_words_only(tmp_path):
    listing = tmp_path / "words.txt"
    listing.write_text("сука\nバカ\ncabrón\n", encoding="utf-8")
    settings = {"bad_words_file": str(listing), "min_sentences": 0, "min_words_per_line": 1,
                "line_end_chars": ".!。！"}
    hits = {
        "Ты сука.": 1, "СУКА!": 1, "Сукачёв поёт.": 0, "пасука.": 0,
        "バカ！": 1, "バカンスに行きます。": 0, "これはバカです。": 0,
        "¡Qué cabrón!": 1, "Cabrón.": 1, "Qué cabrónazo.": 0, "Escabrón.": 0,
    }
    params = C4Params(**settings)
    batch = TextBatch(pa.table({"text": pa.array(list(hits), pa.large_string())}))
    values, _ = FILTERS["c4"].signals_of(batch, params)
    assert dict(zip(hits, values["bad_words"].tolist())) == hits
    anywhere = C4Params(**settings, bad_words_match="substring")
    values, _ = FILTERS["c4"].signals_of(batch, anywhere)
    assert values["bad_words"].tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]


def test_the_default_list_ships_and_a_bad_list_is_one_line():
    listed = bad_words(None)
    assert len(listed) == 377 and "2g1c" in listed and "🖕" in listed
    assert failed(SENTENCES + " Nothing but a class.") == set()
    assert failed(SENTENCES + " It is a dildo.") == {"max_bad_words"}
    assert failed(SENTENCES + " It is a dildo.", max_bad_words=None) == set()
    with pytest.raises(ConfigError, match=r"^filter\.c4\.bad_words_file: cannot read '/no/such/list.txt'"):
        check_filter(FilterParams(c4={"bad_words_file": "/no/such/list.txt"}))


def test_the_step_rewrites_the_pages_it_keeps_and_counts_the_lines(store, client, tmp_path, write_jsonl):
    from tokenmill.corpus.ingest.load import LoadParams, run_load

    repeated = "The same long sentence comes back on every line of this page.\n"
    docs = [
        {"text": WIKI_PAGE, "url": "http://a.example/wiki"},
        {"text": "Home | About | Contact\nOnly one sentence is here.", "url": "http://a.example/menu"},
        {"text": SENTENCES + "\n" + repeated * 3 + "Menu", "url": "http://a.example/repeats"},
    ]
    source = run_load(store, LoadParams(paths=[str(write_jsonl(tmp_path / "d.jsonl", docs))], source_field="url"),
                      client).id
    params = FilterParams(filters=["c4", "fineweb"])
    first = run_filter(store, params, client, input_version=source)
    stats = store.read_json(first.id, "stats.json")
    assert stats["docs_in"] == 3 == stats["docs_out"] + stats["docs_rejected"]
    kept = store.read_docs(first.id).compute()
    rejected = store.read_docs(first.id, kind="rejected").compute().set_index("source")
    assert kept["text"].tolist() == [WIKI_CLEANED]
    assert rejected.loc["http://a.example/menu", "reason"] == "filter:c4.min_sentences"
    assert rejected.loc["http://a.example/menu", "text"] == docs[1]["text"]  # as the rule that dropped it saw it
    assert rejected.loc["http://a.example/repeats", "reason"] == "filter:fineweb.max_dup_line_chars_frac"
    assert rejected.loc["http://a.example/repeats", "text"] == SENTENCES + "\n" + repeated * 2 + repeated.strip()
    counters = stats["counters"]
    assert counters["c4.lines_removed.javascript"] == 1 and counters["c4.lines_removed.no_end_mark"] == 4
    assert counters["c4.docs_rewritten"] == 2
    assert stats["signals"]["readings"]["c4"]["lines"]["min_words_per_line"] == 5

    again = run_filter(store, params, client, input_version=first.id)
    stats = store.read_json(again.id, "stats.json")
    assert set(stats["signals"]["versions"].values()) == {"input columns"}
    assert store.read_docs(again.id).compute()["text"].tolist() == [WIKI_CLEANED]
    assert not any(key.startswith("c4.") for key in stats["counters"])
