"""Prefect flow `pipeline`: the configured steps in order, each as its own subflow.

Every step reads the latest version of the kind it consumes (docs, tokenizer, pack …), so
`run dedup --from clean-…` reruns one step, `run crawl clean` cleans a fresh crawl, and a
plain `run` walks the whole chain, finding unchanged steps cached.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tokenmill.corpus.store.errors import ConfigError, InputError
from tokenmill.corpus.store.versions import Store, step_of
from tokenmill.corpus.store.workers import check_store_reach
from tokenmill.flows.clean import clean
from tokenmill.flows.common import flow_cluster, publish_report
from tokenmill.flows.config import load_config
from tokenmill.flows.crawl import crawl
from tokenmill.flows.dedup import dedup
from tokenmill.flows.eval import eval as eval_flow
from tokenmill.flows.filter import filter as filter_flow
from tokenmill.flows.load import load
from tokenmill.flows.pack import pack
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


def plan_steps(configured: list[str], selected: list[str], from_version: str | None) -> list[str]:
    """Which steps run, in order.

    Named steps run alone when the first has its input: the `--from` version, or none needed
    (an ingest step such as load or crawl). Otherwise they run after the configured steps
    before them (cheap: those are cached). No names means the configured chain (after the
    `--from` version's step, if given).
    """
    unknown = [s for s in selected if s not in STEPS]
    if unknown:
        raise ConfigError(f"unknown step '{unknown[0]}'; known steps: {', '.join(STEPS)}")
    if selected and (from_version or not STEPS[selected[0]].inputs):
        return list(selected)
    if selected:
        missing = [s for s in selected if s not in configured]
        if missing:
            raise ConfigError(f"step '{missing[0]}' is not in pipeline.steps; give --from VERSION to run it alone")
        last = max(configured.index(s) for s in selected)
        return configured[: last + 1]
    if from_version:
        start = step_of(from_version)
        return configured[configured.index(start) + 1 :] if start in configured else list(configured)
    return list(configured)


def check_inputs(order: list[str], state: dict[str, str]) -> None:
    """Refuse, before anything runs, a plan where a step reads a kind of version that neither
    `--from` nor an earlier step gives."""
    kinds = set(state)
    for name in order:
        missing = sorted(set(STEPS[name].inputs.values()) - kinds)
        if missing:
            ingest = ", ".join(s for s, spec in STEPS.items() if not spec.inputs)
            raise InputError(f"step '{name}' needs a {' and a '.join(missing)} version: "
                             f"give --from VERSION, or run an ingest step ({ingest}) before it")
        kinds.add(STEPS[name].produces)


def initial_state(store: Store, from_version: str | None) -> dict[str, str]:
    """The latest version of each kind along `--from`'s lineage: a pack brings its tokenizer too."""
    if not from_version:
        return {}
    if not store.exists(from_version):
        raise InputError(f"--from: version '{from_version}' is not in the store {store.url}")
    if step_of(from_version) not in STEPS:
        raise InputError(f"--from: '{from_version}' is a {step_of(from_version)} version, which no step reads")
    state: dict[str, str] = {}
    for manifest in store.lineage(from_version):
        if manifest.step in STEPS:
            state[STEPS[manifest.step].produces] = manifest.id
    state[STEPS[step_of(from_version)].produces] = from_version
    return state


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
            inputs = {keyword: state.get(kind) for keyword, kind in spec.inputs.items()}
            forced = force and (not selected or name in selected)
            vid = STEP_FLOWS[name](config_path=config_path, overrides=overrides, force=forced, **inputs)
            state[spec.produces] = vid
            results[name] = vid
    if results:
        publish_report(store, list(results.values())[-1])
    return results
