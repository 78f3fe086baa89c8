"""The dedup step on a small real store: exact and near duplicates, survivors, determinism, incremental."""

from __future__ import annotations

import hashlib
import importlib.util
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tokenmill.corpus.dedup.lsh import optimal_bands
from tokenmill.corpus.dedup.step import DedupParams, run_dedup
from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.store.errors import ConfigError

VOCAB = [f"w{i}" for i in range(5000)]


def words(seed: int, n: int = 300) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(VOCAB) for _ in range(n)]


def substituted(tokens: list[str], rate: float, seed: int) -> list[str]:
    """A copy with `rate` of the words replaced (a known edit rate)."""
    rng = random.Random(seed)
    return [rng.choice(VOCAB) + "x" if rng.random() < rate else t for t in tokens]


def corpus() -> list[dict]:
    """10 unrelated docs, exact copies (with case/space changes), near and far edits, shared boilerplate."""
    base = [words(i) for i in range(10)]
    docs = [{"text": " ".join(t), "url": f"http://a/{i}"} for i, t in enumerate(base)]
    docs.append({"text": "  ".join(base[0]).upper(), "url": "http://copy/0"})
    docs.append({"text": " ".join(substituted(base[1], 0.005, 1)), "url": "http://near/1"})
    docs.append({"text": " ".join(substituted(base[1], 0.005, 2)), "url": "http://near/1b"})
    docs.append({"text": " ".join(substituted(base[2], 0.35, 3)), "url": "http://far/2"})
    boiler = "Copyright 2024 Example Corp. All rights reserved. Subscribe to our newsletter today."
    docs.append({"text": boiler + "\n" + " ".join(words(100, 120)), "url": "http://boiler/1"})
    docs.append({"text": boiler + "\n" + " ".join(words(101, 120)), "url": "http://boiler/2"})
    return docs


def load(store, client, tmp_path, write_jsonl, docs, name: str, chunk_mb: float = 64):
    path = write_jsonl(tmp_path / f"{name}.jsonl", docs)
    params = LoadParams(paths=[str(path)], source_field="url", chunk_mb=chunk_mb)
    return run_load(store, params, client).id


def outcome(store, vid: str) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, int]]]:
    """(rejected source -> (reason, duplicate_of source), kept source -> (cluster source, size))."""
    kept = store.read_docs(vid, columns=["id", "source", "dup_cluster", "dup_cluster_size"]).compute()
    rejected = store.read_docs(vid, columns=["source", "reason", "duplicate_of"], kind="rejected").compute()
    by_id = dict(zip(kept["id"], kept["source"]))
    return (
        {r.source: (r.reason, by_id.get(r.duplicate_of, r.duplicate_of)) for r in rejected.itertuples()},
        {r.source: (by_id[r.dup_cluster], r.dup_cluster_size) for r in kept.itertuples()},
    )


def test_finds_exact_and_near_duplicates_keeps_the_rest(store, client, tmp_path, write_jsonl):
    vid = load(store, client, tmp_path, write_jsonl, corpus(), "docs")
    version = run_dedup(store, DedupParams(), client, input_version=vid)
    rejected, kept = outcome(store, version.id)
    exact = {"http://a/0", "http://copy/0"}
    near = {"http://a/1", "http://near/1", "http://near/1b"}
    (exact_survivor,), (near_survivor,) = exact & set(kept), near & set(kept)
    assert rejected == {
        **{src: ("dedup:exact", exact_survivor) for src in exact - {exact_survivor}},
        **{src: ("dedup:minhash", near_survivor) for src in near - {near_survivor}},
    }
    assert kept[exact_survivor] == (exact_survivor, 2)
    assert kept[near_survivor] == (near_survivor, 3)
    assert "http://far/2" in kept and "http://boiler/1" in kept and "http://boiler/2" in kept
    assert kept["http://far/2"][1] == 1
    stats = store.read_json(version.id, "stats.json")
    assert stats["docs_in"] == 16 == stats["docs_out"] + stats["docs_rejected"]
    assert (stats["exact_removed"], stats["near_removed"]) == (1, 2)
    assert (stats["bands"], stats["rows"]) == optimal_bands(0.6, 128)  # tuned 0.2 below the threshold
    assert stats["cluster_size_histogram"] == {"2": 1, "3": 1}
    assert stats["largest_clusters"][0]["size"] == 3
    paths = [f.path for f in version.manifest.files]
    assert any(p.startswith("signatures/") for p in paths) and any(p.startswith("clusters/") for p in paths)


def test_survivor_rules_are_deterministic_and_configurable(store, client, tmp_path, write_jsonl):
    text = " ".join(words(7))
    docs = [
        {"text": text, "url": "http://z/long", "fetched_at": None},
        {"text": text + " tail words here", "url": "http://m/longer"},
    ]
    vid = load(store, client, tmp_path, write_jsonl, docs, "rules")
    longest = outcome(store, run_dedup(store, DedupParams(keep="longest"), client, input_version=vid).id)
    min_id = outcome(store, run_dedup(store, DedupParams(keep="min_id"), client, input_version=vid).id)
    assert set(longest[1]) == {"http://m/longer"}
    kept_ids = store.read_docs(vid, columns=["id", "source"]).compute()
    smallest = kept_ids.sort_values("id")["source"].iloc[0]
    assert set(min_id[1]) == {smallest}


def test_same_survivors_under_another_partitioning(store, client, tmp_path, write_jsonl):
    docs = corpus()
    one = load(store, client, tmp_path, write_jsonl, docs, "docs")
    many = load(store, client, tmp_path, write_jsonl, docs, "docs", chunk_mb=0.004)
    assert len(store.files(many)) > 3
    params = DedupParams(shuffle_partitions=3, single_task_docs=0)  # by Dask shuffles, not in one task
    first = outcome(store, run_dedup(store, DedupParams(), client, input_version=one).id)
    second = run_dedup(store, params, client, input_version=many)
    assert first == outcome(store, second.id)
    assert store.read_json(second.id, "stats.json")["components_method"] == "single_task"  # scipy on a worker


def test_distributed_components_give_the_same_clusters(store, client, tmp_path, write_jsonl):
    vid = load(store, client, tmp_path, write_jsonl, corpus(), "docs")
    single = outcome(store, run_dedup(store, DedupParams(), client, input_version=vid).id)
    version = run_dedup(store, DedupParams(max_union_find_edges=0, single_task_docs=0), client, input_version=vid)
    assert store.read_json(version.id, "stats.json")["components_method"] == "distributed"
    assert outcome(store, version.id) == single


def test_incremental_against_an_earlier_version(store, client, tmp_path, write_jsonl):
    old_docs = corpus()[:10]
    old_version = load(store, client, tmp_path, write_jsonl, old_docs, "old")
    old = run_dedup(store, DedupParams(), client, input_version=old_version)
    base = [words(i) for i in range(3)]
    new_docs = [
        {"text": " ".join(substituted(base[0], 0.01, 2)), "url": "http://new/near0"},
        {"text": " ".join(base[1]), "url": "http://new/copy1"},
        {"text": " ".join(words(500)), "url": "http://new/fresh"},
    ]
    new = load(store, client, tmp_path, write_jsonl, new_docs, "new")
    version = run_dedup(store, DedupParams(against=[old.id]), client, input_version=new)
    assert version.manifest.inputs == [new, old.id]
    rejected = store.read_docs(version.id, columns=["source", "reason", "duplicate_of"], kind="rejected").compute()
    old_ids = store.read_docs(old.id, columns=["id", "source"]).compute().set_index("id")["source"]
    got = {r.source: (r.reason, old_ids[r.duplicate_of]) for r in rejected.itertuples()}
    assert got == {"http://new/near0": ("dedup:minhash", "http://a/0"), "http://new/copy1": ("dedup:exact", "http://a/1")}
    kept = store.read_docs(version.id, columns=["source"]).compute()
    assert kept["source"].tolist() == ["http://new/fresh"]


def test_against_must_be_a_dedup_version_with_the_same_signatures(store, client, docs_version):
    vid = docs_version(["one doc", "another doc"])
    with pytest.raises(ConfigError, match="not a dedup version"):
        run_dedup(store, DedupParams(against=[vid]), client, input_version=vid)
    old = run_dedup(store, DedupParams(), client, input_version=vid)
    with pytest.raises(ConfigError, match="num_perm"):
        run_dedup(store, DedupParams(against=[old.id], num_perm=64), client, input_version=vid)


def test_params_resolve_bands_and_reject_bad_settings():
    assert (DedupParams(threshold=0.7).bands, DedupParams(threshold=0.7).rows) == optimal_bands(0.5, 128)
    tuned = DedupParams(threshold=0.7, candidate_threshold=0.7)
    assert (tuned.bands, tuned.rows) == optimal_bands(0.7, 128)
    assert (DedupParams(bands=16, rows=8).bands, DedupParams(bands=16, rows=8).rows) == (16, 8)
    with pytest.raises(ValueError, match="together"):
        DedupParams(bands=4)
    with pytest.raises(ValueError, match="exceeds"):
        DedupParams(bands=20, rows=10)
    with pytest.raises(ValueError):
        DedupParams(treshold=0.5)


def test_rerun_is_cached(store, client, docs_version):
    vid = docs_version(["alpha beta gamma delta", "alpha beta gamma delta"])
    first = run_dedup(store, DedupParams(), client, input_version=vid)
    assert run_dedup(store, DedupParams(), client, input_version=vid).cached
    assert pq.read_table(store.files(first.id, "rejected")[0])["reason"].to_pylist() == ["dedup:exact"]


def test_labelled_benchmark_f1_at_high_similarity(client, tmp_path):
    """bench/dedup_quality.py on 60 real docs: pairs at Jaccard >= 0.9 found, none below 0.5 merged, no true
    pair lost, and no doc removed for a survivor it does not resemble."""
    path = Path(__file__).resolve().parents[3] / "bench" / "dedup_quality.py"
    spec = importlib.util.spec_from_file_location("dedup_quality", path)
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    result = quality.run_quality(quality.real_texts(60), tmp_path, client, DedupParams())
    assert result["pairs_at_0.9"]["f1"] >= 0.95
    assert result["at_threshold"]["merged_below_0.5"] == 0
    assert result["at_threshold"]["true_pairs_fully_removed"] == 0
    assert result["at_threshold"]["removed_for_an_unlike_survivor"] == 0


def test_copies_spread_over_parts_form_one_group_and_one_cluster_file_per_part(store, client, tmp_path,
                                                                               write_jsonl):
    """120 copies of one text over four input parts (grouped within each part before the shuffle by
    text key): one survivor, the smallest id, and one described cluster file per input part."""
    files = []
    for part in range(4):
        docs = [{"text": "Subscribe to our newsletter for weekly updates.", "url": f"http://b/{part}/{n}"}
                for n in range(30)]
        docs += [{"text": " ".join(words(100 * part + n)), "url": f"http://u/{part}/{n}"} for n in range(5)]
        files.append(write_jsonl(tmp_path / f"part-{part}.jsonl", docs))
    vid = run_load(store, LoadParams(paths=[str(f) for f in files], source_field="url"), client).id
    version = run_dedup(store, DedupParams(keep="min_id", shuffle_partitions=3), client, input_version=vid)
    rejected, kept = outcome(store, version.id)
    copies = store.read_docs(vid, columns=["id", "source"]).compute()
    copies = copies[copies["source"].str.startswith("http://b/")]
    survivor = copies.sort_values("id")["source"].iloc[0]
    assert kept[survivor] == (survivor, 120)
    assert rejected == {source: ("dedup:exact", survivor) for source in copies["source"] if source != survivor}
    clusters = [f for f in version.manifest.files if f.path.startswith("clusters/")]
    assert [f.path for f in clusters] == [f"clusters/part={p}/clusters.pq" for p in range(4)]
    assert sum(f.rows for f in clusters) == 120
    for entry in clusters:
        data = store.fs.cat(store.file_path(version.id, entry.path))
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry.bytes, entry.sha256)


def window(start: int, stop: int) -> str:
    """Words start..stop-1 of one sequence of distinct words: 5-word shingles start..stop-5."""
    return " ".join(f"u{i}" for i in range(start, stop))


def test_pairs_are_decided_by_exact_jaccard_whatever_the_signatures_say(store, client, tmp_path, write_jsonl):
    """Prefixes of one text: 81 and 79 of its 100 shingles. With 64 bands of 2 rows both pairs are
    candidates for certain, and the signatures estimate either near 0.8; the exact sets decide."""
    docs = [{"text": window(0, 104), "url": "http://t/full"}, {"text": window(0, 85), "url": "http://t/j081"},
            {"text": window(1000, 1104), "url": "http://u/full"}, {"text": window(1000, 1083), "url": "http://u/j079"}]
    vid = load(store, client, tmp_path, write_jsonl, docs, "exact")
    version = run_dedup(store, DedupParams(bands=64, rows=2, keep="longest"), client, input_version=vid)
    rejected = store.read_docs(version.id, columns=["source", "reason", "duplicate_jaccard"], kind="rejected").compute()
    assert rejected["source"].tolist() == ["http://t/j081"]
    assert rejected["duplicate_jaccard"].tolist() == [pytest.approx(0.81)]


@pytest.mark.parametrize("order", ["abc", "cab"])
def test_no_doc_is_removed_for_a_survivor_it_does_not_resemble(store, client, tmp_path, write_jsonl, order):
    """A~B (J 0.91) and B~C (0.85) chain C to A (0.78): A survives as the longest, B goes, C stays. In
    the order "cab", C, which splits off, is also the first row: the node that labels the component."""
    texts = {"a": window(0, 110), "b": window(8, 112), "c": window(16, 120)}
    docs = [{"text": texts[name], "url": f"http://c/{name}"} for name in order]
    vid = load(store, client, tmp_path, write_jsonl, docs, f"chain-{order}")
    version = run_dedup(store, DedupParams(keep="longest"), client, input_version=vid)
    rejected, kept = outcome(store, version.id)
    shuffled = run_dedup(store, DedupParams(keep="longest", single_task_docs=0), client, input_version=vid)
    assert outcome(store, shuffled.id) == (rejected, kept)
    assert rejected == {"http://c/b": ("dedup:minhash", "http://c/a")}
    assert kept == {"http://c/a": ("http://c/a", 2), "http://c/c": ("http://c/c", 1)}
    measured = store.read_docs(version.id, columns=["duplicate_jaccard"], kind="rejected").compute()
    assert measured["duplicate_jaccard"].tolist() == [pytest.approx(98 / 108)]
    assert store.read_json(version.id, "stats.json")["split_off"] == 1


def test_a_few_parts_are_signed_one_row_group_per_task_with_their_rows_numbered_in_the_part(tmp_path):
    """Two parts of 3 row groups each: six signing tasks, whose rows number each part from 0 as one task would."""
    from datetime import datetime, timezone

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tokenmill.corpus.dedup.step import sign_part, sign_tasks

    parts = []
    for p in range(2):
        texts = [f"part {p} doc {i} " + window(i, i + 20) for i in range(7)]
        table = pa.table({"id": [f"{p}-{i}" for i in range(7)], "text": texts,
                          "fetched_at": pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * 7,
                                                 pa.timestamp("us", tz="UTC"))})
        pq.write_table(table, tmp_path / f"part-{p}.parquet", row_group_size=3)
        parts.append(str(tmp_path / f"part-{p}.parquet"))
    tasks = sign_tasks(parts)
    assert [(index, group, first) for index, _, group, first in tasks] == [
        (0, 0, 0), (0, 1, 3), (0, 2, 6), (1, 0, 0), (1, 1, 3), (1, 2, 6)]
    out = tmp_path / "dedup"
    for index, url, group, first in tasks:
        sign_part(index, url, str(out), DedupParams(), group, first)
    signed = pq.read_table(out / "signatures").sort_by([("part", "ascending"), ("row", "ascending")])
    assert signed["id"].to_pylist() == [f"{p}-{i}" for p in range(2) for i in range(7)]
    assert signed["row"].to_pylist() == list(range(7)) * 2
