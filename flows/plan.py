"""What `tokenmill run` will do, decided before anything starts: the steps in order, the kind of
version each reads, and whether every one of them is already committed.

Light to import on purpose: the CLI plans here before it imports Prefect, and a run whose steps
are all committed ends here, with neither a Prefect flow run nor a Dask cluster (nothing would
run in them).
"""

from __future__ import annotations

from typing import Any

from tokenmill.corpus.store.errors import ConfigError, InputError
from tokenmill.corpus.store.versions import Store, step_of
from tokenmill.flows.steps import STEPS


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


def step_inputs(name: str, state: dict[str, str]) -> dict[str, str | None]:
    """The input versions step `name` reads: the latest of each kind it consumes."""
    return {keyword: state.get(kind) for keyword, kind in STEPS[name].inputs.items()}


def committed_versions(store: Store, config: Any, order: list[str], state: dict[str, str]) -> dict[str, str] | None:
    """{step: version id} when every step of `order` would find its version committed; None as soon as
    one has work to do or cannot name its version before the work (see `StepSpec.version_id`)."""
    state = dict(state)
    results: dict[str, str] = {}
    for name in order:
        spec = STEPS[name]
        vid = spec.version_id(store, getattr(config, name), **step_inputs(name, state))
        if vid is None or not store.exists(vid):
            return None
        state[spec.produces] = results[name] = vid
    return results
