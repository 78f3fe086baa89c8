"""Fine-tuning a run on a classification task, committed as a `finetune` version of that run.

Every weight of the run's Transformer is trained, with a linear head on one pooled state per
text: for a causal model the state at the end-of-doc token after the text (the only position
that has read all of it, as GPT fine-tunes on its last token), for a bidirectional one the mean
over the text's tokens (padding hidden from attention). Only the train split is seen; accuracy
and macro-F1 are measured on the test split, beside the majority label's. The version's input
is the parent run, and its stats name the run's pack, tokenizer and data versions and the task
file's sha256, so the registry ties a downstream score to the data it came from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tokenmill.corpus.store.step import Version, Written, commit_version
from tokenmill.corpus.store.versions import Attempt, Store
from tokenmill.tokenize.model import tokenizer_model
from tokenmill.train.checkpoint import run_model, write_weights
from tokenmill.train.device import Runtime
from tokenmill.train.keys import finetune_key
from tokenmill.train.model import GPT
from tokenmill.train.optim import lr_at, make_optimizer
from tokenmill.train.params import FinetuneParams
from tokenmill.train.registry import data_version
from tokenmill.train.tasks import TaskData, classification_scores, classification_split, majority_scores

# What an eval version repeats of a fine-tuned version's stats, per classification task.
FINETUNE_FIGURES = ("accuracy", "macro_f1", "majority_accuracy", "majority_macro_f1", "train_items", "test_items")
PAD_ID = 0  # never attended to by a bidirectional model, never read by a causal one (padding is on the right)


class Classifier(nn.Module):
    """A run's Transformer and a linear head over its pooled state."""

    def __init__(self, body: GPT, n_labels: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.cfg.d_model, n_labels)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Label logits of right-padded texts of `lengths` tokens."""
        keys = torch.arange(idx.shape[1], device=idx.device)[None, :] < lengths[:, None]
        states = self.body.hidden(idx, keys)
        if self.body.cfg.causal:
            pooled = states[torch.arange(len(idx), device=idx.device), lengths - 1]
        else:
            pooled = (states * keys[..., None]).sum(1) / lengths[:, None]
        return self.head(pooled)


def encode(sp: Any, texts: list[str], boundary_id: int, max_tokens: int) -> list[list[int]]:
    """Each text between two boundary tokens, as documents sit in the shards, cut to `max_tokens`."""
    return [[boundary_id, *ids[:max_tokens - 2], boundary_id] for ids in sp.encode(texts)]


def padded(rows: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    idx = torch.full((len(rows), int(lengths.max())), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        idx[i, :len(row)] = torch.tensor(row)
    return idx.to(device), lengths.to(device)


@dataclass(frozen=True)
class Examples:
    rows: list[list[int]]
    labels: list[int]


def fit(model: Classifier, train: Examples, params: FinetuneParams, runtime: Runtime) -> list[float]:
    """AdamW over shuffled batches for `epochs`, warmup then cosine decay to zero; the loss per step."""
    generator = torch.Generator().manual_seed(params.seed)
    optimizer = make_optimizer(model, params.lr, (0.9, 0.999), params.weight_decay, runtime.device.type)
    per_epoch = -(-len(train.rows) // params.batch_size)
    total = per_epoch * params.epochs
    losses = []
    model.train()
    for step in range(total):
        if step % per_epoch == 0:
            order = torch.randperm(len(train.rows), generator=generator).tolist()
        batch = order[(step % per_epoch) * params.batch_size:][:params.batch_size]
        idx, lengths = padded([train.rows[i] for i in batch], runtime.device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total, params.lr, round(params.warmup_frac * total), 0.0, "cosine", 1.0)
        with runtime.autocast():
            logits = model(idx, lengths)
        loss = F.cross_entropy(logits.float(), torch.tensor([train.labels[i] for i in batch], device=idx.device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def predict(model: Classifier, rows: list[list[int]], batch_size: int, runtime: Runtime) -> list[int]:
    model.eval()
    predicted = []
    for start in range(0, len(rows), batch_size):
        idx, lengths = padded(rows[start:start + batch_size], runtime.device)
        with runtime.autocast():
            predicted += model(idx, lengths).argmax(-1).tolist()
    return predicted


def run_finetune(store: Store, run_version: str, task: TaskData, params: FinetuneParams, runtime: Runtime,
                 *, force: bool = False) -> Version:
    """Commit run `run_version` fine-tuned on classification task `task` (or find it cached)."""
    split = classification_split(task)
    run = store.manifest(run_version)
    pack_version, tokenizer_version = run.inputs[0], run.inputs[1]

    def write(attempt: Attempt) -> Written:
        torch.manual_seed(params.seed)
        body = run_model(store, run_version, runtime.device)
        model = Classifier(body, len(split.labels)).to(runtime.device)
        sp = tokenizer_model(store, tokenizer_version)
        boundary_id = int(store.manifest(pack_version).stats["boundary_id"])
        max_tokens = min(params.max_tokens, body.cfg.seq_len)
        train = Examples(encode(sp, [t for t, _ in split.train], boundary_id, max_tokens),
                         [label for _, label in split.train])
        started = time.perf_counter()
        losses = fit(model, train, params, runtime)
        seconds = time.perf_counter() - started
        test_rows = encode(sp, [t for t, _ in split.test], boundary_id, max_tokens)
        predicted = predict(model, test_rows, params.batch_size, runtime)
        scores = classification_scores([label for _, label in split.test], predicted)
        files = [write_weights(store, attempt.path, {"model": model.state_dict(), "config": body.cfg.model_dump(),
                                                     "labels": split.labels})]
        return Written(files, {
            **scores, **majority_scores(split),
            "task": task.spec.name, "task_path": task.spec.path, "task_sha256": task.sha256,
            "labels": split.labels, "train_items": len(split.train), "test_items": len(split.test),
            "pooling": "last" if body.cfg.causal else "mean", "steps": len(losses),
            "final_loss": losses[-1], "train_seconds": round(seconds, 3),
            "run_version": run_version, "pack_version": pack_version, "tokenizer_version": tokenizer_version,
            "data_version": data_version(store, pack_version), "objective": run.stats.get("objective", "causal"),
            "device": str(runtime.device),
        })

    return commit_version(store, finetune_key(run_version, task, params), write, force=force)
