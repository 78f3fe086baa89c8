"""What names a training run, a fine-tune and an eval version, without torch.

The run step, the fine-tune and the eval step build their keys here, and `tokenmill run` names
the versions it would commit here before it starts anything (`flows.plan`): a run whose train
and eval versions are committed ends with neither Prefect, Dask nor torch imported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tokenmill.corpus.store.step import VersionKey, params_json
from tokenmill.corpus.store.versions import Store
from tokenmill.tokenize.evalset import eval_texts
from tokenmill.train.params import RUN_CONTROL, EvalParams, FinetuneParams, ScoreParams, TrainParams
from tokenmill.train.registry import seed_siblings
from tokenmill.train.tasks import TaskData, read_task

TRAIN_STEP, TRAIN_CODE_VERSION = "train", "train-v2"  # v2: the masked objective; ModelConfig.causal
EVAL_STEP = "eval"
EVAL_CODE_VERSION = "eval-v2"  # v2: masked models scored by masked-token loss and accuracy; downstream tasks
FINETUNE_STEP, FINETUNE_CODE_VERSION = "finetune", "finetune-v1"


def texts_sha256(texts: Sequence[str]) -> str:
    """One checksum of an ordered text set; each text is length-prefixed so boundaries count."""
    sha = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        sha.update(len(data).to_bytes(8, "little"))
        sha.update(data)
    return sha.hexdigest()


def take_texts(texts: Iterable[str], max_bytes: int) -> list[str]:
    """Whole texts in order while they fit in `max_bytes` (the first always), so the set is fixed."""
    chosen, size = [], 0
    for text in texts:
        n = len(text.encode("utf-8", "surrogatepass"))
        if chosen and size + n > max_bytes:
            break
        chosen.append(text)
        size += n
    return chosen


@dataclass(frozen=True)
class EvalSet:
    """The fixed texts and their checksum, which the manifest records so scores stay comparable."""

    texts: list[str]
    sha256: str


def load_eval_set(store: Store, params: ScoreParams) -> EvalSet:
    texts = take_texts(eval_texts(store, params.eval_texts), params.eval_max_bytes)
    return EvalSet(texts, texts_sha256(texts))


def train_key(params: TrainParams, eval_set: EvalSet, *, input_version: str, tokenizer_version: str) -> VersionKey:
    """A run is its settings (less how it runs: RUN_CONTROL), its pack, tokenizer, starting run and eval set."""
    settings = params_json(params)
    identity = {k: v for k, v in settings.items() if k not in RUN_CONTROL} | {"_eval_sha256": eval_set.sha256}
    inputs = (input_version, tokenizer_version) + ((params.init_from,) if params.init_from else ())
    return VersionKey(TRAIN_STEP, TRAIN_CODE_VERSION, settings, inputs, identity, fingerprint=eval_set.sha256)


def seed_params(params: TrainParams) -> list[TrainParams]:
    """The settings of each run `params` asks for: one per seed of `seeds`, or itself."""
    if not params.seeds:
        return [params]
    return [params.model_copy(update={"seed": seed, "seeds": []}) for seed in params.seeds]


def train_version_id(store: Store, params: TrainParams, *, input_version: str, tokenizer_version: str) -> str | None:
    """The run a train step returns (its first seed's) when every seed's run is committed, else None:
    a step with one run to make is not cached (see `flows.steps.StepSpec.version_id`)."""
    eval_set = load_eval_set(store, params)
    ids = [train_key(p, eval_set, input_version=input_version, tokenizer_version=tokenizer_version).id
           for p in seed_params(params)]
    return ids[0] if all(store.exists(vid) for vid in ids) else None


def finetune_key(run_version: str, task: TaskData, params: FinetuneParams) -> VersionKey:
    settings = {"task": params_json(task.spec), **params_json(params)}
    return VersionKey(FINETUNE_STEP, FINETUNE_CODE_VERSION, settings, (run_version,),
                      {**settings, "_task_sha256": task.sha256}, fingerprint=task.sha256)


def eval_key(params: EvalParams, eval_set: EvalSet, tasks: list[TaskData], *, run_version: str) -> VersionKey:
    """Scores are of a run, on an eval set and task files, by these settings; the fine-tuned copies of
    the run each classification task makes are inputs too."""
    settings = params_json(params)
    identity = {**settings, "_eval_sha256": eval_set.sha256, "_task_sha256": [t.sha256 for t in tasks]}
    tuned = [finetune_key(run_version, t, params.finetune).id for t in tasks if t.spec.kind == "classification"]
    return VersionKey(EVAL_STEP, EVAL_CODE_VERSION, settings, (run_version, *tuned), identity,
                      fingerprint=eval_set.sha256)


def eval_version_id(store: Store, params: EvalParams, *, run_version: str) -> str | None:
    """The eval version of `run_version` when it and those of the run's seed siblings (which the eval
    flow scores too) are committed, else None (see `flows.steps.StepSpec.version_id`)."""
    eval_set, tasks = load_eval_set(store, params), [read_task(spec) for spec in params.tasks]
    runs = [run_version, *seed_siblings(store, run_version)] if store.exists(run_version) else [run_version]
    ids = [eval_key(params, eval_set, tasks, run_version=run).id for run in runs]
    return ids[0] if all(store.exists(vid) for vid in ids) else None
