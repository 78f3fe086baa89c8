"""The Prefect flows in process: a changed setting makes new versions from its step on only,
every flow run carries an artifact with its step's counts and its lines in the run's logs; and
the plan of which steps run."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import pytest

from tokenmill.corpus.store.errors import ConfigError, InputError
from tokenmill.flows.plan import check_inputs, plan_steps
from tokenmill.flows.steps import DEFAULT_PIPELINE


def step_flow_runs(prefect: Any, pipeline_run: UUID) -> list[Any]:
    """The step flow runs of one pipeline run (the session's server holds every test's runs)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    return prefect.read_flow_runs(
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[pipeline_run]))
    )


def flow_runs_of(prefect: Any, state: Any) -> list[UUID]:
    """A pipeline run's id and its steps' flow runs' ids."""
    pipeline_run = state.state_details.flow_run_id
    return [pipeline_run, *(run.id for run in step_flow_runs(prefect, pipeline_run))]


@pytest.mark.slow
def test_changed_setting_reruns_its_step_and_descendants_only(prefect_in_process, tmp_path, write_jsonl):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

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
    states = [pipeline(overrides={**overrides, "pipeline.steps": steps}, return_state=True)]
    first = states[0].result()
    assert list(first) == steps
    states.append(pipeline(overrides={**overrides, "pipeline.steps": steps}, return_state=True))
    assert states[1].result() == first

    states.append(pipeline(overrides={**overrides, "pipeline.steps": steps, "tokenizer.vocab_size": 320},
                           return_state=True))
    changed = states[2].result()
    assert changed["load"] == first["load"]
    assert changed["tokenizer"] != first["tokenizer"]
    assert changed["pack"] != first["pack"]

    with get_client(sync_client=True) as prefect:
        runs = [run for state in states for run in flow_runs_of(prefect, state)]
        artifacts = prefect.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=runs)))
    load_summaries = [a for a in artifacts if a.key == "load-summary"]
    assert load_summaries and "| docs_out | 200 |" in load_summaries[0].data
    assert {"load-summary", "tokenizer-summary", "pack-summary"} <= {a.key for a in artifacts}
    progress = [a for a in artifacts if a.key == "load-progress"]
    assert progress and all(a.data == 100 for a in progress), "a step's progress artifact ends at 100%"


@pytest.mark.slow
def test_flow_lines_reach_the_run_logs_and_the_dashboard_is_linked_once(prefect_in_process, tmp_path, write_jsonl):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from tokenmill.flows.pipeline import pipeline

    texts = [{"text": f"Note {i} on flow-run logs and dashboards."} for i in range(40)]
    data = write_jsonl(tmp_path / "in.jsonl", texts)
    overrides = {"store.root": str(tmp_path / "store"), "dask.n_workers": 1, "load.paths": [str(data)],
                 "pipeline.steps": ["load", "clean"]}
    state = pipeline(overrides=overrides, return_state=True)
    versions = state.result()
    APILogHandler().flush()

    pipeline_run = state.state_details.flow_run_id
    with get_client(sync_client=True) as prefect:
        step_runs = {prefect.read_flow(run.flow_id).name: run.id for run in step_flow_runs(prefect, pipeline_run)}
        runs = [pipeline_run, *step_runs.values()]
        logs = prefect.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=runs)))
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=runs))
        )
    said = {(log.flow_run_id, log.message) for log in logs}

    assert set(step_runs) == {"load", "clean"}
    for step, vid in versions.items():
        assert (step_runs[step], f"{step} {vid} committed") in said
    report = tmp_path / "store" / "reports" / f"{versions['clean']}.html"
    assert (pipeline_run, f"report {report.as_uri()}") in said

    dashboards = [a for a in artifacts if a.key == "dask-dashboard"]
    assert len(dashboards) == 1 and dashboards[0].flow_run_id == pipeline_run, "one link for the shared cluster"
    (link,) = [m.split()[-1] for run, m in said if run == pipeline_run and m.startswith("dask dashboard")]
    assert link.startswith("http://127.0.0.1:") and dashboards[0].data == f"[Dask dashboard]({link})"


def test_ingest_steps_run_alone_and_may_start_a_selection():
    assert plan_steps(DEFAULT_PIPELINE, ["crawl"], None) == ["crawl"]
    assert plan_steps(["crawl", "clean", "dedup"], ["load", "clean"], None) == ["load", "clean"]
    assert plan_steps(DEFAULT_PIPELINE, ["crawl", "dedup"], None) == ["crawl", "dedup"]


def test_steps_with_inputs_run_after_the_configured_steps_before_them_or_from_a_version():
    assert plan_steps(DEFAULT_PIPELINE, ["dedup"], None) == ["load", "clean", "dedup"]
    assert plan_steps(DEFAULT_PIPELINE, ["dedup"], "clean-0123456789ab") == ["dedup"]
    with pytest.raises(ConfigError, match="step 'dedup' is not in pipeline.steps; give --from VERSION"):
        plan_steps(["crawl", "clean"], ["dedup"], None)


@pytest.mark.parametrize(
    ("order", "state", "message"),
    [
        (["clean"], {}, "step 'clean' needs a docs version: give --from VERSION, or run an ingest step (load, crawl)"),
        (["crawl", "pack"], {}, "step 'pack' needs a tokenizer version"),
        (["train"], {"tokenizer": "tokenizer-0123456789ab"}, "step 'train' needs a pack version"),
    ],
)
def test_a_step_without_its_input_is_refused_before_anything_runs(order, state, message):
    with pytest.raises(InputError, match=re.escape(message)):
        check_inputs(order, state)


def test_inputs_come_from_earlier_steps_or_the_from_lineage():
    check_inputs(["load", "clean", "tokenizer", "pack", "train", "eval"], {})
    check_inputs(["pack"], {"docs": "filter-0123456789ab", "tokenizer": "tokenizer-0123456789ab"})
