"""The settings of the train and eval steps, apart from the code that needs torch.

The CLI, the config and every flow import these models; keeping torch out of this module
keeps them starting in a second instead of several.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from tokenmill.corpus.ingest.pydocs import PYTHON_TOPICS_URL
from tokenmill.corpus.store.settings import Settings
from tokenmill.train.builtin_tasks import STDLIB_PACKAGES_URL

DEFAULT_STEPS = 200
# How a run runs, not what it trains: left out of its version id, so a resumed run is the same version, a run
# on more ranks with the same tokens per step is the same run (its world size is in the stats), and `seeds`
# (which only lists the runs to make) names no run.
RUN_CONTROL = ("resume", "progress", "log_every", "nproc_per_node", "nnodes", "rdzv_endpoint", "rank_timeout_s",
               "seeds")


class ScoreParams(Settings):
    """How a model is scored, by the train step at its end and by the eval step."""

    eval_texts: list[str] = Field(
        default_factory=lambda: [PYTHON_TOPICS_URL],
        description="the fixed eval text set for bits per byte and cloze: files, globs, a docs version id, "
        "or python-docs://topics (the pydoc topics that ship with Python)",
    )
    eval_max_bytes: int = Field(default=2_000_000, ge=1, description="UTF-8 bytes of eval texts used (whole texts)")
    val_max_tokens: int = Field(default=1_000_000, ge=0, description="target tokens of the pack's val split scored")
    eval_batch_size: int = Field(default=8, ge=1,
                                 description="val windows, eval text pieces or cloze items per forward pass")
    cloze_context_words: int = Field(default=64, ge=1, description="words of context before the cloze's last word")
    cloze_min_words: int = Field(default=12, ge=2, description="shortest paragraph (in words) used as a cloze item")
    cloze_max_items: int = Field(default=500, ge=0, description="most cloze items scored")
    mlm_eval_select_rate: float = Field(
        default=0.15, gt=0, lt=1, description="masked models: share of eval and val tokens masked (all by the mask "
        "piece, at fixed positions) for masked-token loss and accuracy")
    device: str = Field(default="auto", description="auto (CUDA if present, else CPU), cpu, cuda or cuda:N")
    cpu_threads: int | None = Field(default=None, ge=1, description="torch CPU threads (default: torch's choice)")


class TaskSpec(Settings):
    """A downstream task as data: a JSONL file and how to read and score it. Multiple choice items are
    `{context, choices, gold}` (gold: the index of the right choice), scored as lm-evaluation-harness does,
    by each choice's log-likelihood after the context (causal models); classification items are
    `{text, label}`, split into train and test by a hash of the text, for fine-tuning."""

    name: str = Field(default="", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="the task's name in reports (default: the file name without extension)")
    path: str = Field(default="", description="the JSONL file: a path or fsspec URL, or a built-in task "
                      "(python-docs://tasks/stdlib-packages)")
    kind: Literal["multiple_choice", "classification"] = Field(
        default="classification", description="multiple_choice: zero-shot by log-likelihood; classification: "
        "fine-tuned with a classification head")
    context_field: str = Field(default="context", description="multiple choice: the field of the context")
    choices_field: str = Field(default="choices", description="multiple choice: the field of the list of choices "
                               "(each usually starting with a space, as the continuation of the context)")
    gold_field: str = Field(default="gold", description="multiple choice: the field of the right choice's index")
    normalize: Literal["none", "chars", "tokens"] = Field(
        default="chars", description="multiple choice: a choice's log-likelihood divided by its characters "
        "(the harness's acc_norm) or tokens, or not at all (its acc, which favours short choices)")
    text_field: str = Field(default="text", description="classification: the field of the text")
    label_field: str = Field(default="label", description="classification: the field of the label")
    test_fraction: float = Field(default=0.2, gt=0, lt=1, description="classification: share of the items (by a "
                                 "hash of the text) held out as the test split")

    @model_validator(mode="after")
    def _named(self) -> TaskSpec:
        if not self.path:
            raise ValueError("a task needs its path")
        if not self.name:
            stem = self.path.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
            self.name = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).lstrip("-._") or "task"
        return self


class FinetuneParams(Settings):
    """How a run is fine-tuned on a classification task: every weight, with a linear head on a pooled state."""

    epochs: int = Field(default=3, ge=1, description="passes over the task's train split")
    lr: float = Field(default=1e-3, gt=0, description="peak learning rate (1e-3 suits the tiny demo model; models "
                      "of BERT's size take 2e-5 to 5e-5)")
    warmup_frac: float = Field(default=0.1, ge=0, lt=1, description="share of the steps in linear warmup, then "
                               "cosine decay to zero")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW decay on >= 2-D weights")
    batch_size: int = Field(default=16, ge=1, description="examples per step")
    max_tokens: int = Field(default=64, ge=3, description="tokens per example, boundary tokens included (longer "
                            "texts are cut; at most the model's seq_len); 64 fine-tunes the demo 40% faster than "
                            "128 at 0.02 less accuracy")
    seed: int = Field(default=0, description="seed of the head's init and the example order")


class EvalParams(ScoreParams):
    """The eval step's settings: a committed run scored again, and on the downstream tasks."""

    tasks: list[TaskSpec] = Field(
        default_factory=list, description="downstream tasks, each a table: {name, path, kind, and its field names}; "
        f"the demo's is {STDLIB_PACKAGES_URL}: which standard-library package a docstring comes from")
    finetune: FinetuneParams = Field(default_factory=FinetuneParams,
                                     description="fine-tuning on the classification tasks")

    @model_validator(mode="after")
    def _distinct_names(self) -> EvalParams:
        names = [task.name for task in self.tasks]
        if len(set(names)) < len(names):
            raise ValueError(f"eval.tasks: two tasks are named {max(names, key=names.count)!r}; give each a name")
        return self


class TrainParams(ScoreParams):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="tiny", description="named size: tiny (CPU tests), small (~25 M), gpt2 (~124 M)")
    n_layer: int | None = Field(default=None, ge=1, description="Transformer blocks (overrides the named size)")
    n_head: int | None = Field(default=None, ge=1, description="attention heads (overrides the named size)")
    d_model: int | None = Field(default=None, ge=2, description="residual width (overrides the named size)")
    objective: Literal["causal", "masked"] = Field(
        default="causal", description="causal: predict each next token (GPT); masked: bidirectional attention, "
        "predict the selected tokens (BERT)")
    mask_select_rate: float = Field(default=0.15, gt=0, lt=1, description="masked: share of tokens selected (BERT: "
                                    "0.15), drawn afresh for every batch")
    mask_replace_rate: float = Field(default=0.8, ge=0, le=1, description="masked: share of the selected tokens "
                                     "replaced by the mask piece (BERT: 0.8)")
    mask_random_rate: float = Field(default=0.1, ge=0, le=1, description="masked: share of the selected tokens "
                                    "replaced by a random token (BERT: 0.1); the rest are kept as they are")
    seq_len: int = Field(default=256, ge=1, description="tokens of context per training window")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout probability (0 for pretraining)")
    batch_size: int = Field(default=8, ge=1, description="windows per micro-batch on each device")
    tokens_per_step: int = Field(
        default=0, ge=0, description="target tokens per optimizer step, reached by gradient accumulation (0: one "
        "micro-batch per device)")
    steps: int | None = Field(default=None, ge=1, description="optimizer steps to train (default 200 unless tokens)")
    tokens: int | None = Field(default=None, ge=1, description="token budget; sets the steps from tokens per step")
    lr: float = Field(default=1e-3, gt=0, description="peak learning rate")
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="final learning rate as a share of the peak")
    warmup_steps: int = Field(default=20, ge=0, description="steps of linear warmup (capped at the run's steps)")
    schedule: Literal["cosine", "wsd"] = Field(default="cosine", description="decay after warmup: cosine or WSD")
    wsd_decay_frac: float = Field(default=0.2, gt=0, le=1, description="WSD: share of steps in the final decay")
    weight_decay: float = Field(default=0.1, ge=0, description="AdamW decay on >= 2-D weights only")
    beta1: float = Field(default=0.9, ge=0, lt=1, description="AdamW beta1")
    beta2: float = Field(default=0.95, ge=0, lt=1, description="AdamW beta2")
    grad_clip: float = Field(default=1.0, ge=0, description="max global gradient norm (0: no clipping)")
    eval_every: int = Field(default=50, ge=0, description="steps between val-loss evaluations (0: only at the end)")
    eval_val_tokens: int = Field(default=65_536, ge=0, description="val target tokens scored at each evaluation")
    checkpoint_every: int = Field(default=50, ge=1, description="steps between checkpoints of a running job")
    seed: int = Field(default=0, description="seed of the weights' init, the window order, dropout and masking")
    seeds: list[int] = Field(
        default_factory=list, description="train one run per seed (each its own version; `seed` is then unused), "
        "so runs and compare show each score's spread over seeds, the noise a data version's difference must beat")
    init_from: str | None = Field(default=None, description="a run id whose final weights start this run")
    compile: bool = Field(default=False, description="torch.compile the model with Inductor, on CUDA or the CPU "
                          "(a minute or more of compiling before the first step)")
    resume: bool = Field(default=True, description="continue from the run's last checkpoint when one was left")
    progress: bool = Field(default=True, description="draw a progress bar on a terminal (log lines elsewhere)")
    log_every: int = Field(default=10, ge=1, description="steps between log lines when no terminal shows the bar")
    nproc_per_node: int = Field(
        default=1, ge=1, description="DDP processes on this node (torchrun ranks; one per GPU, or gloo on the CPU)")
    nnodes: int = Field(default=1, ge=1, description="nodes in the DDP job; each node runs the same command")
    rdzv_endpoint: str | None = Field(
        default=None, description="host:port where the nodes of a multi-node job meet (needed when nnodes > 1)")
    rank_timeout_s: float = Field(
        default=1800.0, gt=0, description="how long a rank waits at a barrier for the others (it must cover rank "
        "0's final scoring and commit) before the job fails instead of hanging")

    @model_validator(mode="after")
    def _rendezvous(self) -> TrainParams:
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("train.nnodes > 1 needs train.rdzv_endpoint (host:port of the node that hosts rank 0)")
        return self

    @model_validator(mode="after")
    def _distinct_seeds(self) -> TrainParams:
        if len(set(self.seeds)) < len(self.seeds):
            raise ValueError(f"train.seeds lists a seed twice: {self.seeds}")
        return self

    @model_validator(mode="after")
    def _mask_shares(self) -> TrainParams:
        if self.mask_replace_rate + self.mask_random_rate > 1:
            raise ValueError("train.mask_replace_rate + train.mask_random_rate must be at most 1")
        return self

    @model_validator(mode="after")
    def _one_budget(self) -> TrainParams:
        if self.steps is not None and self.tokens is not None:
            raise ValueError("give train.steps or train.tokens, not both")
        return self
