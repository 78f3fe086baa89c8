"""The Prefect flows in process: a changed setting makes new versions from its step on only,
and every flow run carries an artifact with its step's counts."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_changed_setting_reruns_its_step_and_descendants_only(prefect_harness, tmp_path, write_jsonl):
    from prefect.client.orchestration import get_client
    from tokenmill.flows.pipeline import pipeline

    texts = [f"Document {i} talks about tokenizers, shards and {i % 7} models. " * 8 for i in range(200)]
    data = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    overrides = {
        "store.root": str(tmp_path / "store"),
        "dask.n_workers": 1,
        "load.paths": [str(data)],
        "tokenizer.vocab_size": 300,
        "pack.val_fraction": 0.1,
    }
    steps = ["load", "tokenizer", "pack"]
    first = pipeline(overrides={**overrides, "pipeline.steps": steps})
    assert list(first) == steps
    again = pipeline(overrides={**overrides, "pipeline.steps": steps})
    assert again == first

    changed = pipeline(overrides={**overrides, "pipeline.steps": steps, "tokenizer.vocab_size": 320})
    assert changed["load"] == first["load"]
    assert changed["tokenizer"] != first["tokenizer"]
    assert changed["pack"] != first["pack"]

    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts()
    load_summaries = [a for a in artifacts if a.key == "load-summary"]
    assert load_summaries and "| docs_out | 200 |" in load_summaries[0].data
    assert {"load-summary", "tokenizer-summary", "pack-summary"} <= {a.key for a in artifacts}
    progress = [a for a in artifacts if a.key == "load-progress"]
    assert progress and all(a.data == 100 for a in progress), "a step's progress artifact ends at 100%"
