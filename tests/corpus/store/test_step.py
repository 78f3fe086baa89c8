"""The step contract: one outline (version id -> cached? -> attempt -> stages -> stats -> manifest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from tokenmill.corpus.store.step import STATS_FILE, VersionKey, Written, commit_version
from tokenmill.corpus.store.versions import Attempt, Store, version_id


class Settings(BaseModel):
    threshold: float = 0.5


def test_key_hashes_settings_inputs_code_and_fingerprint():
    key = VersionKey.of("clean", "clean-v1", Settings(), ["load-0123456789ab"])
    assert key.id == version_id("clean", {"threshold": 0.5}, ["load-0123456789ab"], "clean-v1")
    ingest = VersionKey.of("load", "load-v1", Settings(), fingerprint="abc")
    assert ingest.id == version_id("load", {"threshold": 0.5, "_fingerprint": "abc"}, [], "load-v1")
    assert ingest.settings == {"threshold": 0.5}
    assert VersionKey.of("load", "load-v1", Settings(), fingerprint="abd").id != ingest.id


def test_commit_writes_stats_and_manifest_then_finds_it_cached(store: Store):
    key = VersionKey.of("load", "load-v1", Settings(), fingerprint="abc")
    calls = []

    def write(attempt: Attempt) -> Written:
        calls.append(attempt.vid)
        model = attempt.write_bytes("model.bin", b"weights")
        return Written([model], {"docs_out": 3, "detail": [1, 2]}, {"docs_out": 3})

    made = commit_version(store, key, write)
    assert not made.cached and made.id == key.id
    assert made.manifest.stats == {"docs_out": 3}
    assert made.manifest.fingerprint == "abc"
    assert {f.path for f in made.manifest.files} == {"model.bin", STATS_FILE}
    assert store.read_json(key.id, STATS_FILE) == {"docs_out": 3, "detail": [1, 2]}
    again = commit_version(store, key, write)
    assert again.cached and again.manifest == made.manifest and calls == [key.id]
    forced = commit_version(store, key, write, force=True)
    assert not forced.cached and len(calls) == 2


def test_a_failed_stage_leaves_nothing_and_frees_the_version(store: Store):
    loaded = commit_version(store, VersionKey.of("load", "load-v1", Settings()), lambda attempt: Written([], {}))
    key = VersionKey.of("clean", "clean-v1", Settings(), [loaded.id])

    def fail(attempt: Attempt) -> Written:
        attempt.write_bytes("half.bin", b"x")
        raise ValueError("stage failed")

    with pytest.raises(ValueError, match="stage failed"):
        commit_version(store, key, fail)
    assert not store.exists(key.id)
    assert not list(Path(store.root, "clean", ".staging").iterdir())
    assert commit_version(store, key, lambda attempt: Written([], {"docs_out": 0})).manifest.stats == {"docs_out": 0}
