"""The scoring of one model on the eval set and the val split, and the `eval` step.

Training scores its final model with `score_model`; `run_eval` re-scores a committed run
(on another eval set, say) and on the downstream tasks of `eval.tasks`, and commits an `eval`
version whose input is the run; each task's scores carry the sha256 of its file.
"""

from __future__ import annotations

from typing import Any

import torch

from tokenmill.corpus.store.errors import ConfigError
from tokenmill.corpus.store.step import (
    Version,
    VersionKey,
    Written,
    cached_version,
    commit_version,
)
from tokenmill.corpus.store.versions import Attempt, Manifest, Store
from tokenmill.tokenize.model import load_model, special_ids, tokenizer_info, tokenizer_model
from tokenmill.tokenize.shards import Shard
from tokenmill.train.checkpoint import run_model
from tokenmill.train.choice import CAUSAL_ONLY, choice_scores
from tokenmill.train.data import pack_shards, val_windows
from tokenmill.train.device import Runtime, cpu_threads, setup_runtime
from tokenmill.train.eval import (
    TextScorer,
    cloze_items,
    cloze_scores,
    masked_text_scores,
    text_set_bpb,
    val_loss,
)
from tokenmill.train.finetune import FINETUNE_FIGURES, run_finetune
from tokenmill.train.keys import EvalSet, eval_key, load_eval_set
from tokenmill.train.masking import MaskRule, eval_rule, mask_rule
from tokenmill.train.model import GPT
from tokenmill.train.params import EvalParams, ScoreParams
from tokenmill.train.tasks import TaskData, choice_items, read_task


def tokenizer_mask_rule(store: Store, tokenizer_version: str, select: float, replace: float = 1.0,
                        random: float = 0.0) -> MaskRule:
    """The masked objective's rule over a tokenizer's vocabulary; a tokenizer without a mask piece is refused."""
    info = tokenizer_info(store, tokenizer_version)
    if info.mask_id is None:
        raise ConfigError(f"train.objective 'masked': tokenizer {tokenizer_version} has no mask piece (made before "
                          "tokenizer.mask_token existed); train a new tokenizer version")
    sp = load_model(info.model_url, info.model_sha256)
    return mask_rule(select, replace, random, info.mask_id, sp.vocab_size(), special_ids(sp))


def score_model(model: GPT, sp: Any, prefix_id: int, runtime: Runtime, eval_set: EvalSet,
                val_shards: list[Shard], params: ScoreParams, rule: MaskRule | None = None) -> dict[str, Any]:
    """Bits per byte and cloze accuracy on the eval set, loss and perplexity on the val split; a masked
    model (given its `rule`) has masked-token loss and accuracy instead of bits per byte and cloze."""
    model.eval()
    scorer = TextScorer(model, sp, prefix_id, model.cfg.seq_len, runtime)
    windows = val_windows(val_shards, model.cfg.seq_len, params.val_max_tokens)
    if model.cfg.causal:
        items = cloze_items(eval_set.texts, params.cloze_context_words, params.cloze_min_words,
                            params.cloze_max_items)
        texts = {**text_set_bpb(scorer, eval_set.texts, params.eval_batch_size),
                 **cloze_scores(scorer, items, params.eval_batch_size)}
        rule = None
    else:
        if rule is None:
            raise ValueError("a masked model is scored with its mask rule")
        rule = eval_rule(rule, params.mlm_eval_select_rate)
        texts = masked_text_scores(scorer, eval_set.texts, rule)
    return {**texts, **val_loss(model, windows, params.eval_batch_size, runtime, rule),
            "eval_sha256": eval_set.sha256}


# What `score_model` may return; the settings that decide those figures, beside the eval set and the device.
SCORES = ("bpb", "bpb_note", "eval_nats", "eval_bytes", "eval_tokens", "cloze_acc", "cloze_loglik", "cloze_items",
          "mlm_loss", "mlm_acc", "mlm_unigram_acc", "mlm_tokens", "val_loss", "val_ppl", "val_tokens", "eval_sha256")
SCORING = ("val_max_tokens", "eval_batch_size", "cloze_context_words", "cloze_min_words", "cloze_max_items",
           "mlm_eval_select_rate")


def scores_at_the_end(run: Manifest, params: ScoreParams, eval_set: EvalSet, runtime: Runtime) -> dict[str, Any] | None:
    """The scores the train step gave the run's final weights, when scoring them again would repeat
    them: the same eval set, scoring settings, device and torch (with `scores_from` naming the run);
    else None. The pipeline's eval follows its train with the same settings: this halves its scoring."""
    same = all(run.params.get(name) == getattr(params, name) for name in SCORING) and (
        run.stats.get("eval_sha256"), run.stats.get("device"), run.stats.get("torch_version")
    ) == (eval_set.sha256, str(runtime.device), torch.__version__)
    return {**{k: run.stats[k] for k in SCORES if k in run.stats}, "scores_from": run.id} if same else None


def task_entry(task: TaskData) -> dict[str, Any]:
    """What a score on a task is tied to: its name, kind, file and the file's sha256."""
    return {"task": task.spec.name, "kind": task.spec.kind, "path": task.spec.path, "sha256": task.sha256}


def task_scores(scorer: TextScorer, tasks: list[TaskData], tuned: dict[str, Version]) -> dict[str, dict[str, Any]]:
    """Each downstream task's scores by its name, with the task's file and sha256: multiple choice scored
    here, classification by the fine-tuned copy of the run in `tuned`."""
    scores = {}
    for task in tasks:
        if task.spec.kind == "classification":
            version = tuned[task.spec.name]
            result = {k: version.manifest.stats[k] for k in FINETUNE_FIGURES} | {"finetune_version": version.id}
        elif scorer.model.cfg.causal:
            result = choice_scores(scorer, choice_items(task), task.spec.normalize)
        else:
            result = {"accuracy": None, "note": CAUSAL_ONLY}
        scores[task.spec.name] = {**task_entry(task), **result}
    return scores


def run_eval(store: Store, params: EvalParams, client: Any, *, force: bool = False, run_version: str) -> Version:
    """Commit the scores of run `run_version` on the eval set and the downstream tasks (or find them
    cached). Each classification task first fine-tunes a copy of the run, committed as its own version
    (cached in turn); the eval version's inputs are the run and those. The client is unused: scoring
    runs in this process on the chosen device."""
    eval_set = load_eval_set(store, params)
    tasks = [read_task(spec) for spec in params.tasks]
    key = eval_key(params, eval_set, tasks, run_version=run_version)
    cached = cached_version(store, key, force)
    if cached:
        return cached
    with cpu_threads(params.cpu_threads):
        return _eval(store, params, force, key, run_version, eval_set, tasks)


def _eval(store: Store, params: EvalParams, force: bool, key: VersionKey, run_version: str, eval_set: EvalSet,
          tasks: list[TaskData]) -> Version:
    runtime = setup_runtime(params.device)
    tuned = {t.spec.name: run_finetune(store, run_version, t, params.finetune, runtime, force=force)
             for t in tasks if t.spec.kind == "classification"}

    def write(attempt: Attempt) -> Written:
        run = store.manifest(run_version)
        pack_version, tokenizer_version = run.inputs[0], run.inputs[1]
        model = run_model(store, run_version, runtime.device)
        boundary_id = int(store.manifest(pack_version).stats["boundary_id"])
        val = [Shard(p) for p in pack_shards(store, pack_version, "val")]
        rule = None if model.cfg.causal else tokenizer_mask_rule(store, tokenizer_version, params.mlm_eval_select_rate)
        sp = tokenizer_model(store, tokenizer_version)
        scores = scores_at_the_end(run, params, eval_set, runtime) or \
            score_model(model, sp, boundary_id, runtime, eval_set, val, params, rule)
        downstream = task_scores(TextScorer(model, sp, boundary_id, model.cfg.seq_len, runtime), tasks, tuned)
        return Written([], {**scores, "tasks": downstream, "run_version": run_version, "device": str(runtime.device),
                            "torch_version": torch.__version__})

    return commit_version(store, key, write, force=force)
