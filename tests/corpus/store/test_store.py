"""The store's ids, commit protocol, incomplete attempts and lineage."""

from pathlib import Path

import pytest

from tokenmill.corpus.store.errors import InputError
from tokenmill.corpus.store.versions import MANIFEST, Store, step_of, version_id


def test_version_id_is_stable_and_sensitive_to_each_part():
    base = version_id("dedup", {"threshold": 0.8, "num_perm": 128}, ["clean-aaaaaaaaaaaa"], "dedup-v1")
    assert base == version_id("dedup", {"num_perm": 128, "threshold": 0.8}, ["clean-aaaaaaaaaaaa"], "dedup-v1")
    assert base.startswith("dedup-") and len(base) == len("dedup-") + 12
    others = {
        version_id("dedup", {"threshold": 0.7, "num_perm": 128}, ["clean-aaaaaaaaaaaa"], "dedup-v1"),
        version_id("dedup", {"threshold": 0.8, "num_perm": 128}, ["clean-bbbbbbbbbbbb"], "dedup-v1"),
        version_id("dedup", {"threshold": 0.8, "num_perm": 128}, ["clean-aaaaaaaaaaaa"], "dedup-v2"),
    }
    assert base not in others and len(others) == 3


def test_step_of_rejects_non_ids():
    assert step_of("load-0123456789ab") == "load"
    with pytest.raises(InputError):
        step_of("load")


def commit_simple(store: Store, vid: str, payload: str = "x", force: bool = False):
    attempt = store.begin("load", vid)
    entry = attempt.write_json("stats.json", {"payload": payload})
    return attempt.commit({"a": 1}, [], "load-v1", [entry], {"docs_out": 1}, force=force)


def test_commit_publishes_with_manifest_last_and_is_listed(store: Store):
    vid = version_id("load", {"a": 1}, [], "load-v1")
    assert not store.exists(vid)
    manifest = commit_simple(store, vid)
    assert store.exists(vid)
    assert store.manifest(vid) == manifest
    assert [m.id for m in store.versions()] == [vid]
    assert store.read_json(vid, "stats.json") == {"payload": "x"}
    assert not list(Path(store.root, "load", ".staging").iterdir())


def test_incomplete_attempts_are_invisible_and_removed(store: Store):
    vid = version_id("load", {"a": 2}, [], "load-v1")
    killed = store.begin("load", vid)
    killed.write_json("stats.json", {"partial": True})
    half_published = Path(store.root, "load", vid)
    half_published.mkdir(parents=True)
    (half_published / "part-00000.parquet").write_bytes(b"partial")
    assert not store.exists(vid) and store.versions() == []

    commit_simple(store, vid)
    assert store.exists(vid)
    assert not Path(killed.path).exists()
    assert not (half_published / "part-00000.parquet").exists()


def test_second_writer_keeps_the_first_commit_unless_forced(store: Store):
    vid = version_id("load", {"a": 3}, [], "load-v1")
    first = commit_simple(store, vid, "first")
    again = commit_simple(store, vid, "second")
    assert again.created == first.created
    assert store.read_json(vid, "stats.json") == {"payload": "first"}

    forced = commit_simple(store, vid, "forced", force=True)
    assert forced.created > first.created
    assert store.read_json(vid, "stats.json") == {"payload": "forced"}
    assert (Path(store.root, "load", vid) / MANIFEST).exists()


def test_lineage_lists_inputs_before_their_users(store: Store):
    ids = {}
    for step, inputs in [("load", []), ("clean", ["load"]), ("tokenizer", ["clean"]), ("pack", ["clean", "tokenizer"])]:
        parent_ids = [ids[p] for p in inputs]
        vid = version_id(step, {}, parent_ids, f"{step}-v1")
        attempt = store.begin(step, vid)
        attempt.commit({}, parent_ids, f"{step}-v1", [], {})
        ids[step] = vid
    assert [m.step for m in store.lineage(ids["pack"])] == ["load", "clean", "tokenizer", "pack"]


def test_missing_version_is_an_input_error(store: Store):
    with pytest.raises(InputError, match="not in the store"):
        store.manifest("load-0123456789ab")
