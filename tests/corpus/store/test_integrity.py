"""A damaged version (a part deleted, or replaced by another valid file) is caught before any work,
and a corrupted manifest makes only its own version broken."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tokenmill.corpus.clean.step import CleanParams, run_clean
from tokenmill.corpus.store.errors import BrokenManifestError, DamagedVersionError
from tokenmill.corpus.store.step import VersionKey, Written, commit_version
from tokenmill.corpus.store.versions import MANIFEST, Store


def delete_part(path: Path) -> None:
    path.unlink()


def replace_part(path: Path) -> None:
    pq.write_table(pa.table({"id": ["x", "y"], "text": ["another, perfectly valid file", "with other rows"]}), path)


DAMAGE = {"deleted": (delete_part, "missing"), "replaced": (replace_part, "bytes where the manifest records")}


@pytest.mark.parametrize("kind", DAMAGE)
def test_the_next_step_refuses_a_damaged_input_before_any_work(store: Store, client, docs_version, kind):
    loaded = docs_version([f"a document about topic {i}, long enough to keep" for i in range(30)])
    part = store.manifest(loaded).data_files()[0]
    damage, problem = DAMAGE[kind]
    damage(Path(store.data_dir(loaded)) / part)
    with pytest.raises(DamagedVersionError) as raised:
        run_clean(store, CleanParams(), client, input_version=loaded)
    message = str(raised.value)
    assert f"version '{loaded}' is damaged: {part}" in message and problem in message and "\n" not in message
    assert not Path(store.root, "clean").exists()  # no attempt was begun: nothing ran


@pytest.mark.parametrize("kind", DAMAGE)
def test_commit_version_checks_every_input_before_write(store: Store, kind, commit_parts):
    good, damaged = commit_parts(store, "good"), commit_parts(store, "damaged")
    DAMAGE[kind][0](Path(store.data_dir(damaged)) / "part-00001.parquet")
    calls = []
    key = VersionKey("clean", "clean-v1", {}, (good, damaged))
    with pytest.raises(DamagedVersionError, match=f"'{damaged}' is damaged: part-00001.parquet"):
        commit_version(store, key, lambda attempt: calls.append(attempt) or Written([], {}))
    assert calls == [] and not store.exists(key.id)
    assert store.damage(good) == [] and [d.path for d in store.damage(damaged)] == ["part-00001.parquet"]


def test_checksums_catch_a_same_size_replacement_that_sizes_cannot(store: Store, commit_parts):
    vid = commit_parts(store, "flipped")
    path = Path(store.data_dir(vid)) / "part-00000.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert store.damage(vid) == []
    assert [(d.path, d.problem) for d in store.damage(vid, checksums=True)] == \
        [("part-00000.parquet", "sha256 differs from the manifest (same size, other bytes)")]


CORRUPT = {"truncated": lambda raw: raw[: len(raw) // 2], "garbage": lambda raw: b"\x00\xff\x93 not json " * 8}


@pytest.mark.parametrize("kind", CORRUPT)
def test_a_corrupted_manifest_breaks_only_its_own_version(store: Store, kind, commit_parts):
    first, broken, last = (commit_parts(store, name) for name in ("first", "broken", "last"))
    manifest = Path(store.version_dir(broken)) / MANIFEST
    manifest.write_bytes(CORRUPT[kind](manifest.read_bytes()))
    listing = store.scan()
    assert [m.id for m in listing.manifests] == [first, last] and list(listing.broken) == [broken]
    assert listing.broken[broken].startswith("is not valid JSON")
    assert [m.id for m in store.versions()] == [first, last]
    with pytest.raises(BrokenManifestError, match=f"version '{broken}' is broken: its manifest is not valid JSON"):
        store.manifest(broken)


def test_a_manifest_pointing_outside_its_folder_is_broken(store: Store, commit_parts):
    vid = commit_parts(store, "escape")
    manifest = Path(store.version_dir(vid)) / MANIFEST
    manifest.write_text(manifest.read_text().replace('"part-00000.parquet"', '"../../../etc/passwd"'))
    with pytest.raises(BrokenManifestError, match="files.0.path: '../../../etc/passwd' is not a path inside"):
        store.manifest(vid)


def test_a_misrecorded_size_over_the_right_bytes_is_intact(store: Store, commit_parts):
    """Pack shards recorded their size in tokens, not bytes: a size mismatch is settled by the sha256."""
    vid = commit_parts(store, "miscounted")
    path = Path(store.version_dir(vid)) / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["files"][0]["bytes"] //= 2
    path.write_text(json.dumps(manifest))
    assert store.damage(vid) == [] and store.check_files(vid).id == vid
