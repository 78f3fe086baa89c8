"""The run registry: every training run with the data it saw, and runs compared side by side.

Nothing is stored beyond the versions themselves: a run's manifest names its pack and
tokenizer versions, and `store.lineage` walks back from there to the load step, so the
difference between two runs' data is read off their lineages' settings. A run's downstream
scores are those of its eval versions (each task's latest), each with its task file's sha256
and how it was scored (the task's settings, the fine-tuning's, the eval code); runs that differ
only in their seed are one group, whose spread of every score says how much of a difference
between two data versions is noise. Scores on different task files (or eval texts), or scored
differently, are never put side by side: `compare` names them instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from tokenmill.corpus.store.errors import InputError
from tokenmill.corpus.store.versions import Manifest, Store, canonical_json
from tokenmill.train.params import RUN_CONTROL

RUN_STEP = "train"
EVAL_STEP = "eval"
# The headline figures shown per run, in this order (bpb for causal runs, mlm_acc for masked ones).
FIGURES = ("bpb", "mlm_acc", "val_loss", "val_ppl", "cloze_acc", "final_loss", "tokens", "steps", "n_params",
           "train_seconds")
# The scores whose spread over a run's seeds is shown, and each downstream task's.
SCORES = ("bpb", "mlm_acc", "val_loss", "cloze_acc")
TASK_SCORES = ("accuracy", "macro_f1")
# Settings that do not tell two runs apart as experiments: the seed, and how a run ran (train/params.py).
NOT_THE_EXPERIMENT = ("seed", *RUN_CONTROL)


def data_version(store: Store, pack_version: str) -> str | None:
    """The docs version a pack was encoded from (its first input)."""
    inputs = store.manifest(pack_version).inputs
    return inputs[0] if inputs else None


def scoring(ev: Manifest, name: str, entry: dict[str, Any]) -> str:
    """A digest of how an eval scored a task: the file's sha256, the task's settings, the fine-tuning's for a
    classification task, and the eval code. Two scores are comparable when their digests are equal."""
    spec = next((t for t in ev.params.get("tasks", []) if t.get("name") == name), None)
    finetune = ev.params.get("finetune") if entry.get("kind") == "classification" else None
    how = {"sha256": entry.get("sha256"), "task": spec, "finetune": finetune, "code": ev.code_version}
    return hashlib.sha256(canonical_json(how)).hexdigest()[:12]


def downstream(evals: Sequence[Manifest]) -> dict[str, dict[str, Any]]:
    """Each task's latest scores among a run's eval versions (oldest first):
    {task: {kind, sha256, scoring, eval_version, scores…}}."""
    scores: dict[str, dict[str, Any]] = {}
    for ev in evals:
        for name, entry in (ev.stats.get("tasks") or {}).items():
            scores[name] = {"kind": entry.get("kind"), "sha256": entry.get("sha256"),
                            "scoring": scoring(ev, name, entry), "eval_version": ev.id,
                            **{k: entry.get(k) for k in TASK_SCORES}}
    return scores


def downstream_text(scores: dict[str, dict[str, Any]], spread: dict[str, Any] | None = None) -> str:
    """Downstream scores in one line: `task accuracy / macro-F1` per task (accuracy alone for multiple choice),
    with their means over the run's seeds when `spread` has several."""
    def figures(values: list[Any]) -> str:
        return " / ".join("n/a" if v is None else f"{v:.4f}" for v in values)

    parts = []
    for task, entry in scores.items():
        names = [n for n in TASK_SCORES if entry.get(n) is not None] or ["accuracy"]
        text = f"{task} {figures([entry.get(n) for n in names])}"
        over = [(spread or {}).get(f"{task}.{n}") for n in names]
        if all(over) and over[0]["n"] > 1:
            text += f" (mean {figures([o['mean'] for o in over])} over {over[0]['n']} seeds)"
        parts.append(text)
    return "; ".join(parts)


def evals_by_run(store: Store) -> dict[str, list[Manifest]]:
    """Eval versions by the run they scored, oldest first (one listing of the store)."""
    found: dict[str, list[Manifest]] = {}
    for ev in store.versions(EVAL_STEP):
        if ev.inputs:
            found.setdefault(ev.inputs[0], []).append(ev)
    return found


def run_row(store: Store, run: Manifest, evals: Sequence[Manifest] = ()) -> dict[str, Any]:
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
        "objective": run.params.get("objective", "causal"),
        "seed": run.params.get("seed"),
        "model_config": stats.get("model_config"),
        "device": stats.get("device"),
        "eval_sha256": stats.get("eval_sha256"),
        **{name: stats.get(name) for name in FIGURES},
        "wall_seconds": run.wall_seconds,
        "downstream": downstream(evals),
    }


def rows_with_spread(store: Store, runs: Sequence[Manifest]) -> list[dict[str, Any]]:
    """The rows of `runs`, each with the seeds of its experiment and every score's spread over them."""
    evals = evals_by_run(store)
    rows = {run.id: run_row(store, run, evals.get(run.id, [])) for run in store.versions(RUN_STEP)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in store.versions(RUN_STEP):
        groups.setdefault(experiment(run), []).append(rows[run.id])
    return [{**rows[run.id], **seed_spread(rows[run.id], groups[experiment(run)])} for run in runs]


def list_runs(store: Store) -> list[dict[str, Any]]:
    """Every committed run, oldest first, with its data version, final and downstream scores, and each
    score's spread over the seeds of its experiment."""
    return rows_with_spread(store, store.versions(RUN_STEP))


def experiment(run: Manifest) -> str:
    """What a run is as an experiment: its inputs, code and settings but the seed (and how it ran)."""
    settings = {k: v for k, v in run.params.items() if k not in NOT_THE_EXPERIMENT}
    return canonical_json({"inputs": run.inputs, "code": run.code_version, "settings": settings,
                           "eval_sha256": run.stats.get("eval_sha256")})


def seed_siblings(store: Store, run_id: str, seeds: Sequence[int] | None = None) -> list[str]:
    """The committed runs of `seeds` (of any seed, without) that differ from run `run_id` in their seed only."""
    run = store.manifest(run_id)
    same = experiment(run)
    return [other.id for other in store.versions(RUN_STEP) if other.id != run_id
            and (seeds is None or other.params.get("seed") in seeds) and experiment(other) == same]


def spread(values: Sequence[float | None]) -> dict[str, Any] | None:
    """Mean, lowest and highest of a score over seeds (None when no seed has it)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"mean": sum(present) / len(present), "min": min(present), "max": max(present), "n": len(present)}


def seed_spread(row: dict[str, Any], siblings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The spread of each score over a run and the runs that differ from it only in their seed; a task's
    scores count only from seeds scored the same way on the same task file."""
    scores = {name: spread([s.get(name) for s in siblings]) for name in SCORES}
    for task, entry in row["downstream"].items():
        same_file = [s["downstream"][task] for s in siblings if s["downstream"].get(task, {}).get("scoring")
                     == entry["scoring"]]
        for name in TASK_SCORES:
            scores[f"{task}.{name}"] = spread([e.get(name) for e in same_file])
    return {"seeds": sorted(s["seed"] for s in siblings), "spread": scores}


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


def mismatches(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scores the runs hold on different files, or scored differently: the eval texts (`bpb`, `mlm_acc`,
    cloze) when their sha256 differs, each task whose file's sha256 differs, else whose scoring differs.
    {what, differ: "files" or "settings", values: {run: sha256 or scoring digest}}."""
    found = []
    by_run = {row["run"]: row.get("eval_sha256") for row in rows}
    if len(set(by_run.values()) - {None}) > 1:
        found.append({"what": "eval texts", "differ": "files", "values": by_run})
    for task in sorted({task for row in rows for task in row["downstream"]}):
        for key, differ in (("sha256", "files"), ("scoring", "settings")):
            values = {row["run"]: row["downstream"].get(task, {}).get(key) for row in rows}
            if len(set(values.values()) - {None}) > 1:
                found.append({"what": f"task {task}", "differ": differ, "values": values})
                break
    return found


def task_lines(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The downstream lines of a comparison: one per task, score and way of scoring it (file and settings),
    each run's value (with its spread over seeds) only on the line of the way it was scored, so two runs'
    scores share a line only when they share the file and the settings."""
    lines = []
    for task in sorted({task for row in rows for task in row["downstream"]}):
        ways = sorted({row["downstream"][task]["scoring"] for row in rows if task in row["downstream"]})
        for way in ways:
            for name in TASK_SCORES:
                values = {row["run"]: (row["downstream"][task].get(name), row["spread"].get(f"{task}.{name}"))
                          if row["downstream"].get(task, {}).get("scoring") == way else None for row in rows}
                if any(v is not None and v[0] is not None for v in values.values()):
                    lines.append({"task": task, "score": name, "scoring": way, "several": len(ways) > 1,
                                  "values": values})
    return lines


def compare_runs(store: Store, run_ids: Sequence[str]) -> dict[str, Any]:
    """Runs side by side with their downstream scores and each score's spread over the run's seeds, the
    scores not comparable for being on different files (`mismatches`), and the settings that differ along
    their lineages: in the data steps (`data_differences`) and in training itself (`train_differences`)."""
    runs = [store.manifest(r) for r in run_ids]
    for run in runs:
        if run.step != RUN_STEP:
            raise InputError(f"compare: '{run.id}' is a {run.step} version, not a training run")
    rows = rows_with_spread(store, runs)
    data = {run.id: lineage_settings(data_lineage(store, run)) for run in runs}
    own = {run.id: lineage_settings([run]) for run in runs}
    return {
        "runs": rows,
        "tasks": task_lines(rows),
        "mismatches": mismatches(rows),
        "data_differences": setting_differences(data),
        "train_differences": setting_differences(own),
    }
