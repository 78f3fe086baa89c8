"""The CLI and the flows on a store with bad ids, damaged files and broken manifests: one line,
the right exit code, and the rest of the store still usable. In-process (typer's CliRunner), plus
one real `tokenmill` process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tokenmill.corpus.store.errors import DamagedVersionError, InputError
from tokenmill.corpus.store.layout import KNOWN_STEPS
from tokenmill.corpus.store.versions import MANIFEST, Store
from tokenmill.flows.cli import app

EVIL = "../../outside/evil-abcdefabcdef"


def tokenmill(store: Store, *args: str):
    return CliRunner().invoke(app, [*args, "--store", store.url])


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("args", [
    ["show", EVIL], ["stats", EVIL], ["report", EVIL], ["verify", EVIL], ["run", "--from", EVIL, "clean"],
    ["train", "--from", EVIL], ["compare", EVIL, "train-0123456789ab"], ["versions", "--step", "../outside"],
], ids=lambda args: args[0])
def test_cli_refuses_dotdot_ids_in_one_line_with_exit_2(store: Store, args):
    result = tokenmill(store, *args)
    assert result.exit_code == 2, result.output
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "is not a version id" in lines[0] or "unknown step '../outside'" in lines[0]
    assert not Path(store.root).exists()


DAMAGE = {
    "deleted": (lambda path: path.unlink(), "missing"),
    "replaced": (lambda path: pq.write_table(pa.table({"id": ["x"], "text": ["another valid file"]}), path),
                 "bytes where the manifest"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_verify_lists_a_damaged_part_and_exits_1(store: Store, kind, commit_parts):
    intact, damaged = commit_parts(store, "intact"), commit_parts(store, "damaged")
    clean = tokenmill(store, "verify", "--all")
    assert clean.exit_code == 0 and "2 version(s), 4 files" in clean.stdout and "all intact" in clean.stdout
    damage, problem = DAMAGE[kind]
    damage(Path(store.data_dir(damaged)) / "part-00001.parquet")

    for args in (["verify", damaged], ["verify", "--all"]):
        result = tokenmill(store, *args)
        assert result.exit_code == 1
        listed = [line for line in result.stdout.splitlines() if line.startswith("damaged ")]
        assert len(listed) == 1 and listed[0].startswith(f"damaged {damaged}/part-00001.parquet: ")
        assert problem in listed[0]
        assert "1 damaged" in result.stdout
    assert tokenmill(store, "verify", intact).exit_code == 0
    as_json = json.loads(tokenmill(store, "verify", damaged, "--json").stdout)
    assert [(d["version"], d["file"]) for d in as_json["damaged"]] == [(damaged, "part-00001.parquet")]

    shown = tokenmill(store, "show", damaged)
    assert shown.exit_code == 1 and "lineage: " in shown.stdout
    lines = error_lines(shown.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"damaged {damaged}/part-00001.parquet: ") and problem in lines[0]


CORRUPT = {"truncated": lambda raw: raw[: len(raw) // 2], "garbage": lambda raw: b"\x00\xff\x93 not json " * 8}


@pytest.mark.parametrize("kind", CORRUPT)
def test_a_corrupted_manifest_is_listed_as_broken_and_shown_in_one_line(store: Store, kind, commit_parts):
    first, broken, last = (commit_parts(store, name) for name in ("first", "broken", "last"))
    path = Path(store.version_dir(broken)) / MANIFEST
    path.write_bytes(CORRUPT[kind](path.read_bytes()))

    listed = tokenmill(store, "versions", "--json")
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [row["id"] for row in rows] == [first, last, broken]
    assert rows[2]["broken"].startswith("manifest is not valid JSON") and rows[0]["docs_out"] == 6
    table = tokenmill(store, "versions")
    assert table.exit_code == 0
    assert [line for line in table.stdout.splitlines() if line.startswith("broken ")] == \
        [f"broken {broken}: {rows[2]['broken']}"]

    shown = tokenmill(store, "show", broken)
    assert shown.exit_code == 2 and shown.stdout == ""
    lines = error_lines(shown.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: version '{broken}' is broken: its manifest is not valid")
    assert tokenmill(store, "show", first).exit_code == 0
    verified = tokenmill(store, "verify", "--all")
    assert verified.exit_code == 1 and f"damaged {broken}/{MANIFEST}: is not valid JSON" in verified.stdout


def test_a_flow_refuses_a_dotdot_or_damaged_input_version_before_any_work(store: Store, commit_parts):
    """What a deployment run receives: the flow's `input_version` parameter."""
    from tokenmill.flows.clean import clean

    overrides = {"store.root": store.url}
    with pytest.raises(InputError, match=r"input_version: '\.\./\.\./outside/evil-abcdefabcdef' is not a version id"):
        clean(input_version=EVIL, overrides=overrides)
    damaged = commit_parts(store, "damaged")
    (Path(store.data_dir(damaged)) / "part-00000.parquet").unlink()
    with pytest.raises(DamagedVersionError, match=f"version '{damaged}' is damaged: part-00000.parquet missing"):
        clean(input_version=damaged, overrides=overrides)
    assert [m.id for m in store.versions()] == [damaged] and not Path(store.root, "clean").exists()


@pytest.mark.slow
def test_the_tokenmill_command_refuses_a_dotdot_id_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-c", "from tokenmill.flows.cli import main; main()", "show", EVIL,
                             "--store", str(tmp_path / "store")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert error_lines(result.stderr) == [f"error: VERSION: '{EVIL}' is not a version id (expected <step>-<12 hex "
                                          f"digits>, step one of {', '.join(KNOWN_STEPS)})"]
