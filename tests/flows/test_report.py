"""Stats reports: helpers on known values, report content from fabricated and real lineages,
and (slow) the page opened in headless Chromium."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tokenmill.corpus.store.step import VersionKey, Written, commit_version
from tokenmill.flows.report.data import (
    Bin,
    drop_rows,
    headline_tables,
    log2_bins,
    main_chain,
    outer_bins,
    read_stats,
    report_data,
    thresholds,
    trim,
)
from tokenmill.flows.report.html import build_report, marker_x

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_report.py"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_report", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Dom(HTMLParser):
    """Every element's tag and attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))


def parse(html: str) -> Dom:
    dom = Dom()
    dom.feed(html)
    return dom


def funnel_from_dom(dom: Dom, side: str = "main") -> list[dict[str, str]]:
    return [a for tag, a in dom.elements if "funnel-row" in a.get("class", "") and a.get("data-side") == side]


@pytest.fixture
def lineage(store):
    return bench_module().fabricate_lineage(store, docs=10_000, runs=1)


def test_histogram_bins_and_threshold_position():
    edges = [0, 1, 2, 4, 8]
    assert log2_bins(edges, [1, 0, 3, 0, 2]) == [Bin(0, 1, 1), Bin(1, 2, 0), Bin(2, 4, 3), Bin(4, 8, 0), Bin(8, None, 2)]
    outer = outer_bins([0.0, 0.5, 1.0], [4, 5, 6, 7])
    assert outer == [Bin(None, 0.0, 4), Bin(0.0, 0.5, 5), Bin(0.5, 1.0, 6), Bin(1.0, None, 7)]
    assert marker_x(outer, 0.75) == 2.5
    bins = [Bin(0, 1, 0), Bin(1, 2, 5), Bin(2, 3, 0), Bin(3, 4, 0), Bin(4, 5, 0)]
    assert trim(bins) == [Bin(1, 2, 5)]
    assert trim(bins, keep=[3.5]) == bins[1:4]


def test_thresholds_follow_setting_names():
    params = {"min_words": 50, "max_words": 100_000, "min_stop_words": 2, "keep": True}
    assert thresholds(params, "words") == [(50.0, "min_words=50"), (100000.0, "max_words=100000")]
    assert thresholds(params, "stop_words") == [(2.0, "min_stop_words=2")]
    assert thresholds(params, "keep") == []


def test_drop_rows_conserve_docs():
    stats = {"docs_in": 10, "docs_out": 7, "bytes_out": 70, "rejected": {"x:a": {"docs": 2, "bytes": 5},
                                                                          "x:b": {"docs": 1, "bytes": 1}}}
    rows = drop_rows(stats)
    assert rows[0] == {"outcome": "kept", "docs": 7, "bytes": 70}
    assert sum(r["docs"] for r in rows) == stats["docs_in"]
    assert drop_rows({"vocab_size": 10}) == []


def test_older_reason_names_read_in_todays_words(store, commit_parts):
    """A filter-v1 version said `language.keep` for docs outside the keep list; reports say `not_kept`."""
    stats = {"docs_in": 5, "docs_out": 3, "rejected": {"filter:language.keep": {"docs": 2, "bytes": 9}}}
    key = VersionKey("filter", "filter-v1", {}, (commit_parts(store, "older"),))
    version = commit_version(store, key, lambda attempt: Written([], stats))
    rows = drop_rows(read_stats(store, version.manifest))
    assert [r["outcome"] for r in rows] == ["kept", "filter:language.not_kept"]
    assert rows[1]["docs"] == 2


def test_main_chain_skips_side_inputs(store, lineage):
    chain = main_chain(store.lineage(lineage["pack"]))
    assert [m.step for m in chain] == ["load", "clean", "dedup", "filter", "pack"]


def test_report_funnel_matches_stats_and_is_self_contained(store, lineage):
    html = build_report(store, lineage["pack"])
    dom = parse(html)
    rows = funnel_from_dom(dom)
    assert [r["data-step"] for r in rows] == ["load", "clean", "dedup", "filter", "pack"]
    for row in rows:
        stats = store.read_json(row["data-version"], "stats.json")
        assert int(row["data-docs-in"]) == stats["docs_in"]
        assert int(row["data-docs-out"]) == stats["docs_out"]
        reasons = [a for _, a in dom.elements if a.get("class") == "reason" and a.get("data-step") == row["data-step"]]
        assert {r["data-reason"] for r in reasons} == set(stats["rejected"])
        assert int(row["data-docs-out"]) + sum(int(r["data-docs"]) for r in reasons) == int(row["data-docs-in"])
    for tag, attrs in dom.elements:
        assert tag not in ("script", "link", "iframe", "img")
        assert not any("http" in attrs.get(name, "") for name in ("src", "href"))


def test_report_sections_show_thresholds_clusters_and_runs(store, lineage):
    html = build_report(store, lineage["pack"])
    dom = parse(html)
    lines = {a["data-value"] for tag, a in dom.elements if a.get("class") == "threshold"}
    assert {"50", "100000", "3", "0.15"} <= lines  # gopher min/max_words, min_mean_word_length, max_dup_5gram
    assert "Cookie policy of site 0, variant 0" in html
    assert "duplicate cluster sizes" in html and "tokens per train shard" in html
    assert lineage["train"] in html and lineage["eval"] in html
    assert "chars_per_token" in html  # tokenizer figures
    assert 'data-step="signals"' not in html  # side versions folded into the filter's inputs


def test_report_vs_shows_both_funnels_and_differing_settings(store, lineage):
    bench = bench_module()
    import random

    other, _ = bench.docs_step(store, random.Random(1), "dedup", [lineage["clean"]], 9_990, {"dedup:exact": 0.2})
    report = report_data(store, lineage["dedup"], vs=other)
    assert [d["step"] for d in report.differences] == ["dedup"]
    dom = parse(build_report(store, lineage["dedup"], vs=other))
    b_rows = funnel_from_dom(dom, "b")
    assert [r["data-version"] for r in b_rows][-1] == other
    assert int(b_rows[-1]["data-docs-out"]) == store.manifest(other).stats["docs_out"]


def test_headline_tables_for_stats_command(store, lineage):
    tables = {title: rows for title, _, rows in headline_tables(store, lineage["dedup"])}
    assert [row[0] for row in tables["funnel"]] == ["load", "clean", "dedup"]
    assert {row[1] for row in tables["drops per reason"]} == {"load:empty", "clean:empty", "dedup:exact", "dedup:minhash"}
    assert tables["languages"][0][0] == "en"


def test_report_of_real_load_version(store, docs_version):
    vid = docs_version(["alpha beta gamma", "", {"text": "delta", "url": "https://example.org/a"}])
    rows = funnel_from_dom(parse(build_report(store, vid)))
    assert [(r["data-step"], r["data-docs-in"], r["data-docs-out"]) for r in rows] == [("load", "3", "2")]
    assert "example.org" in build_report(store, vid)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_report_opens_in_headless_chromium(store, client, docs_version, tmp_path):
    """A real load → clean → dedup lineage: no console errors, a screenshot, the funnel read from the DOM."""
    from tokenmill.corpus.clean.step import CleanParams, run_clean
    from tokenmill.corpus.dedup.step import DedupParams, run_dedup

    texts = [f"Document {i} talks about topic {i % 7} in plain English words." for i in range(30)]
    load = docs_version(texts + texts[:5] + [""])
    clean = run_clean(store, CleanParams(), client, input_version=load).id
    dedup = run_dedup(store, DedupParams(), client, input_version=clean).id
    page = tmp_path / "report.html"
    page.write_text(build_report(store, dedup), encoding="utf-8")
    url = page.as_uri()
    shot = tmp_path / "report.png"
    run = subprocess.run([chromium(), *CHROMIUM_FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert errors == []
    rows = funnel_from_dom(parse(run.stdout))
    expected = [(m.step, m.stats["docs_in"], m.stats["docs_out"]) for m in store.lineage(dedup)]
    assert [(r["data-step"], int(r["data-docs-in"]), int(r["data-docs-out"])) for r in rows] == expected
    assert expected[0][1:] == (36, 35) and expected[-1][2] == 30
    subprocess.run([chromium(), *CHROMIUM_FLAGS, "--window-size=1200,1600", f"--screenshot={shot}", url],
                   capture_output=True, timeout=90, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
