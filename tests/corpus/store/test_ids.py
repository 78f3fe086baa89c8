"""Version ids are checked wherever they enter the store: a `..` id never reaches a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenmill.corpus.dedup.step import DedupParams, run_dedup
from tokenmill.corpus.filter.signals import SIGNALS_STEP
from tokenmill.corpus.store.errors import InputError
from tokenmill.corpus.store.layout import KNOWN_STEPS, step_of
from tokenmill.corpus.store.step import VersionKey, Written, commit_version
from tokenmill.corpus.store.versions import Store, version_id
from tokenmill.flows.steps import STEPS
from tokenmill.train.keys import FINETUNE_STEP

EVIL = "../../outside/evil-abcdefabcdef"
NOT_IDS = [EVIL, "load-0123456789AB", "load-0123456789a", "load-0123456789abc", "load-0123456789ab\n",
           "load/../clean-0123456789ab", "toy-0123456789ab", "load", ""]


def test_known_steps_are_every_step_that_commits():
    assert set(STEPS) | {SIGNALS_STEP, FINETUNE_STEP} == set(KNOWN_STEPS)


def test_ids_are_a_known_step_and_12_hex_digits():
    vid = version_id("clean", {"a": 1}, ["load-0123456789ab"], "clean-v1")
    assert step_of(vid) == "clean" and len(vid) == len("clean-") + 12
    assert step_of("signals-0123456789ab") == "signals"
    for bad in NOT_IDS:
        with pytest.raises(InputError, match="is not a version id"):
            step_of(bad)
    with pytest.raises(InputError, match="unknown step"):
        version_id("../evil", {}, [], "v1")


def outside_version(store: Store) -> Path:
    """A committed-looking version beside the store, where the `..` id would have pointed."""
    outside = Path(store.root).parent / "outside" / "evil-abcdefabcdef"
    outside.mkdir(parents=True)
    (outside / "_manifest.json").write_text('{"id": "evil"}')
    return outside


@pytest.mark.parametrize("call", [
    lambda store: store.manifest(EVIL),
    lambda store: store.exists(EVIL),
    lambda store: store.files(EVIL),
    lambda store: store.check_files(EVIL),
    lambda store: store.lineage(EVIL),
    lambda store: store.read_json(EVIL, "stats.json"),
    lambda store: store.begin("load", EVIL),
    lambda store: store.versions("../outside"),
], ids=["manifest", "exists", "files", "check_files", "lineage", "read_json", "begin", "versions"])
def test_store_api_refuses_dotdot_ids(store: Store, call):
    outside_version(store)
    with pytest.raises(InputError, match="not a version id|unknown step"):
        call(store)
    assert not Path(store.root).exists()  # nothing created, not even the store


def test_a_step_refuses_a_dotdot_input_before_any_work(store: Store):
    outside_version(store)
    key = VersionKey("clean", "clean-v1", {}, (EVIL,))
    with pytest.raises(InputError, match="is not a version id"):
        commit_version(store, key, lambda attempt: Written([], {}))
    assert store.versions() == []


def test_a_config_setting_naming_a_dotdot_version_is_refused(store: Store):
    """`dedup.against` names versions in the config: it reaches the store through the same check."""
    with pytest.raises(InputError, match="is not a version id"):
        run_dedup(store, DedupParams(against=[EVIL]), None, input_version="load-0123456789ab")
