"""Prefect flow `pipeline`: the configured steps in order, each as its own subflow.

Every step reads the latest version of the kind it consumes (docs, tokenizer, pack …), so
`run dedup --from clean-…` reruns one step, `run crawl clean` cleans a fresh crawl, and a
plain `run` walks the whole chain, finding unchanged steps cached.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tokenmill.corpus.store.runtime import check_store_reach
from tokenmill.corpus.store.versions import Store
from tokenmill.flows.clean import clean
from tokenmill.flows.common import flow_cluster, publish_report
from tokenmill.flows.config import load_config
from tokenmill.flows.crawl import crawl
from tokenmill.flows.dedup import dedup
from tokenmill.flows.eval import eval as eval_flow
from tokenmill.flows.filter import filter as filter_flow
from tokenmill.flows.load import load
from tokenmill.flows.pack import pack
from tokenmill.flows.plan import check_inputs, initial_state, plan_steps, step_inputs
from tokenmill.flows.steps import STEPS
from tokenmill.flows.tokenizer import tokenizer
from tokenmill.flows.train import train

STEP_FLOWS = {
    "crawl": crawl,
    "load": load,
    "clean": clean,
    "dedup": dedup,
    "filter": filter_flow,
    "tokenizer": tokenizer,
    "pack": pack,
    "train": train,
    "eval": eval_flow,
}


@flow(name="pipeline", description="Run the configured tokenmill steps in order; unchanged steps are cached.")
def pipeline(
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    steps: list[str] | None = None,
    from_version: str | None = None,
    force: bool = False,
) -> dict[str, str]:
    """Returns {step: version id} for every step that ran or was found cached."""
    config = load_config(config_path, overrides or {})
    check_store_reach(config.store, config.dask)
    store = Store.from_settings(config.store)
    selected = list(steps or [])
    order = plan_steps(config.pipeline.steps, selected, from_version)
    state = initial_state(store, from_version)
    check_inputs(order, state)
    results: dict[str, str] = {}
    with flow_cluster(config.dask, store):
        for name in order:
            spec = STEPS[name]
            forced = force and (not selected or name in selected)
            vid = STEP_FLOWS[name](config_path=config_path, overrides=overrides, force=forced,
                                   **step_inputs(name, state))
            state[spec.produces] = vid
            results[name] = vid
    if results:
        publish_report(store, list(results.values())[-1])
    return results
