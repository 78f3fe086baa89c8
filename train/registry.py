"""The run registry: every training run with the data it saw, and runs compared side by side.

Nothing is stored beyond the versions themselves: a run's manifest names its pack and
tokenizer versions, and `store.lineage` walks back from there to the load step, so the
difference between two runs' data is read off their lineages' settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tokenmill.corpus.store.errors import InputError
from tokenmill.corpus.store.versions import Manifest, Store, canonical_json

RUN_STEP = "train"
# The headline figures shown per run, in this order.
FIGURES = ("bpb", "val_loss", "val_ppl", "cloze_acc", "final_loss", "tokens", "steps", "n_params", "train_seconds")


def data_version(store: Store, pack_version: str) -> str | None:
    """The docs version a pack was encoded from (its first input)."""
    inputs = store.manifest(pack_version).inputs
    return inputs[0] if inputs else None


def run_row(store: Store, run: Manifest) -> dict[str, Any]:
    pack = run.inputs[0]
    stats = run.stats
    return {
        "run": run.id,
        "created": run.created.isoformat(),
        "data_version": data_version(store, pack),
        "pack_version": pack,
        "tokenizer_version": run.inputs[1],
        "init_from": run.params.get("init_from"),
        "model": run.params.get("model"),
        "model_config": stats.get("model_config"),
        "device": stats.get("device"),
        "eval_sha256": stats.get("eval_sha256"),
        **{name: stats.get(name) for name in FIGURES},
        "wall_seconds": run.wall_seconds,
    }


def list_runs(store: Store) -> list[dict[str, Any]]:
    """Every committed run, oldest first, with its data version and final scores."""
    return [run_row(store, run) for run in store.versions(RUN_STEP)]


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys, so a difference names the exact setting."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def lineage_settings(lineage: Sequence[Manifest]) -> dict[str, Any]:
    """`step.setting -> value` over a lineage; a step that occurs twice is numbered (`clean#2.x`)."""
    seen: dict[str, int] = {}
    settings: dict[str, Any] = {}
    for manifest in lineage:
        seen[manifest.step] = seen.get(manifest.step, 0) + 1
        name = manifest.step if seen[manifest.step] == 1 else f"{manifest.step}#{seen[manifest.step]}"
        settings[f"{name}.<present>"] = True
        for key, value in flatten(manifest.params).items():
            settings[f"{name}.{key}"] = value
    return settings


def setting_differences(settings: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each `step.setting` whose value is not the same in every run (a missing step counts as a value)."""
    keys = sorted({key for values in settings.values() for key in values})
    differences = []
    for key in keys:
        values = {run: run_settings.get(key) for run, run_settings in settings.items()}
        if len({canonical_json(v) for v in values.values()}) > 1:
            step, _, name = key.partition(".")
            differences.append({"step": step, "setting": name, "values": values})
    return differences


def data_lineage(store: Store, run: Manifest) -> list[Manifest]:
    """The docs steps back from the pack's input, then the tokenizer and the pack. The tokenizer's own
    training sample is left out: it would repeat docs steps, and its settings already identify it."""
    pack = store.manifest(run.inputs[0])
    return [*store.lineage(pack.inputs[0]), store.manifest(run.inputs[1]), pack]


def compare_runs(store: Store, run_ids: Sequence[str]) -> dict[str, Any]:
    """Runs side by side, and the settings that differ along their lineages: in the data steps
    (`data_differences`) and in training itself (`train_differences`)."""
    runs = [store.manifest(r) for r in run_ids]
    for run in runs:
        if run.step != RUN_STEP:
            raise InputError(f"compare: '{run.id}' is a {run.step} version, not a training run")
    data = {run.id: lineage_settings(data_lineage(store, run)) for run in runs}
    own = {run.id: lineage_settings([run]) for run in runs}
    return {
        "runs": [run_row(store, run) for run in runs],
        "data_differences": setting_differences(data),
        "train_differences": setting_differences(own),
    }
