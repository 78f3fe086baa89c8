"""Each step names, before any work, the version its run commits: the plan that lets a run whose
versions are all committed skip Prefect and Dask."""

from __future__ import annotations

import pytest

from tokenmill.flows.config import load_config
from tokenmill.flows.plan import committed_versions, step_inputs
from tokenmill.flows.steps import STEPS

pytestmark = pytest.mark.slow
ORDER = ["load", "clean", "dedup", "filter", "tokenizer", "pack"]
SETTINGS = {"load.python_docs_max_mb": 0.3, "tokenizer.vocab_size": 600, "tokenizer.heldout_fraction": 0.0,
            "pack.val_fraction": 0.1}


def test_each_step_names_the_version_its_run_commits(store, client):
    config = load_config(None, SETTINGS)
    assert committed_versions(store, config, ORDER, {}) is None  # nothing committed yet
    state: dict[str, str] = {}
    committed = {}
    for name in ORDER:
        spec = STEPS[name]
        version = spec.run(store, getattr(config, name), client, **step_inputs(name, state))
        state[spec.produces] = committed[name] = version.id
    assert committed_versions(store, config, ORDER, {}) == committed
    changed = load_config(None, {**SETTINGS, "filter.gopher_quality.min_words": 10})
    assert committed_versions(store, changed, ORDER, {}) is None  # the filter, then all after it, to redo
    assert committed_versions(store, changed, ORDER[:3], {}) == {k: committed[k] for k in ORDER[:3]}
