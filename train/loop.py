"""The train step: pretrain a Transformer on a pack version's shards and commit the run.

Outline: resolve the model and the token budget; build the model (or load `init_from`'s
weights) and AdamW; continue from the run's last checkpoint if a killed attempt left one;
then per step: accumulate gradients over micro-batches, clip, set the scheduled rate, step,
log, evaluate every `eval_every` steps and checkpoint every `checkpoint_every` steps. At the
end the final model is scored (bits per byte, val loss, cloze; masked-token loss and accuracy
for the masked objective) and the run is committed under `runs/<run_id>/` with its weights,
per-step metrics (Parquet) and final figures. The objective changes only the attention
(causal or bidirectional) and each batch's (inputs, targets): the next tokens, or BERT's masks.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from tokenmill.corpus.store.errors import ConfigError, InputError
from tokenmill.corpus.store.step import (
    Version,
    VersionKey,
    Written,
    cached_version,
    commit_version,
)
from tokenmill.corpus.store.versions import Attempt, Manifest, Store, folder_of
from tokenmill.tokenize.model import tokenizer_info, tokenizer_model
from tokenmill.tokenize.shards import Shard
from tokenmill.train.checkpoint import (
    checkpoints,
    latest_checkpoint,
    rng_state,
    run_model,
    save_step_checkpoint,
    set_rng_state,
    write_weights,
)
from tokenmill.train.data import Position, TokenWindows, pack_shards, val_windows
from tokenmill.train.device import (
    Runtime,
    all_reduce_mean,
    barrier,
    cpu_threads,
    main_says,
    setup_runtime,
)
from tokenmill.train.eval import pairs, val_loss
from tokenmill.train.eval_step import score_model, tokenizer_mask_rule
from tokenmill.train.keys import TRAIN_STEP, EvalSet, load_eval_set, seed_params, train_key
from tokenmill.train.masking import MaskRule, batch_generator, eval_rule
from tokenmill.train.metrics import write_metrics
from tokenmill.train.model import (
    GPT,
    ModelConfig,
    count_params,
    flops_per_token,
    model_config,
)
from tokenmill.train.optim import lr_at, make_optimizer
from tokenmill.train.params import DEFAULT_STEPS, TrainParams
from tokenmill.train.progress import StepBar

WORK = ".work"


@dataclass
class Plan:
    """Derived figures of the run, printed and recorded so the manifest says what actually ran."""

    config: ModelConfig
    n_params: int
    accum: int
    tokens_per_step: int
    steps: int
    warmup: int
    flops_per_token: float


def make_plan(params: TrainParams, vocab_size: int, world: int) -> Plan:
    cfg = model_config(params.model, vocab_size, params.seq_len, params.dropout, params.objective == "causal",
                       n_layer=params.n_layer, n_head=params.n_head, d_model=params.d_model)
    micro = params.batch_size * params.seq_len * world
    accum = max(1, round(params.tokens_per_step / micro))
    per_step = micro * accum
    steps = math.ceil(params.tokens / per_step) if params.tokens else params.steps or DEFAULT_STEPS
    n = count_params(cfg)
    return Plan(cfg, n, accum, per_step, steps, min(params.warmup_steps, steps), flops_per_token(cfg, n))


@dataclass
class TrainState:
    step: int = 0
    tokens: int = 0
    position: Position = field(default_factory=Position)
    metrics: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """The model, its optimizer and where training stands; one `train_step` is one optimizer step."""

    def __init__(self, params: TrainParams, plan: Plan, runtime: Runtime, windows: TokenWindows,
                 rule: MaskRule | None = None):
        self.params, self.plan, self.runtime, self.windows, self.rule = params, plan, runtime, windows, rule
        torch.manual_seed(params.seed)
        self.raw = GPT(plan.config).to(runtime.device)
        self.optimizer = make_optimizer(self.raw, params.lr, (params.beta1, params.beta2), params.weight_decay,
                                        runtime.device.type)
        self.model: torch.nn.Module = torch.compile(self.raw) if params.compile else self.raw
        if runtime.ddp:
            from torch.nn.parallel import DistributedDataParallel

            devices = [runtime.local_rank] if runtime.is_cuda else None
            self.model = DistributedDataParallel(self.model, device_ids=devices)
        self.state = TrainState()

    def checkpoint(self) -> dict[str, Any]:
        s = self.state
        return {"model": self.raw.state_dict(), "optimizer": self.optimizer.state_dict(), "step": s.step,
                "tokens": s.tokens, "position": s.position.to_dict(), "metrics": s.metrics, "rng": rng_state(),
                "schedule": {"lr_step": s.step}}

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.raw.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = TrainState(ckpt["step"], ckpt["tokens"], Position(**ckpt["position"]), list(ckpt["metrics"]))
        set_rng_state(ckpt["rng"])

    def micro_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, targets) of each micro-batch on the device; masks drawn per (seed, step, micro-batch, rank)."""
        batches = []
        for i in range(self.plan.accum):
            batch, self.state.position = self.windows.batch(self.state.position, self.params.batch_size)
            generator = batch_generator(self.params.seed, self.state.step, i, self.runtime.rank) if self.rule else None
            inputs, targets = pairs(torch.from_numpy(batch), self.rule, generator)
            batches.append((inputs.to(self.runtime.device, non_blocking=True),
                            targets.to(self.runtime.device, non_blocking=True)))
        return batches

    def train_step(self) -> dict[str, Any]:
        """Accumulate, clip, step; the loss logged is the mean over micro-batches and ranks."""
        p, s = self.params, self.state
        started = time.perf_counter()
        self.model.train()
        lr = lr_at(s.step, self.plan.steps, p.lr, self.plan.warmup, p.min_lr_ratio, p.schedule, p.wsd_decay_frac)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = torch.zeros((), device=self.runtime.device)
        batches = self.micro_batches()
        for i, (inputs, targets) in enumerate(batches):
            last = i == len(batches) - 1
            sync = contextlib.nullcontext() if last or not self.runtime.ddp else self.model.no_sync()
            with sync, self.runtime.autocast():
                _, loss = self.model(inputs, targets)
            (loss / len(batches)).backward()
            total += loss.detach() / len(batches)
        norm = torch.nn.utils.clip_grad_norm_(self.raw.parameters(), p.grad_clip) if p.grad_clip else None
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss_value = float(all_reduce_mean(total, self.runtime))  # .item() waits for the GPU, so timing is true
        elapsed = time.perf_counter() - started
        s.step += 1
        s.tokens += self.plan.tokens_per_step
        tokens_per_s = self.plan.tokens_per_step / elapsed
        peak = self.runtime.peak_flops()
        row = {"step": s.step, "tokens": s.tokens, "loss": loss_value, "lr": lr,
               "grad_norm": float(norm) if norm is not None else None, "tokens_per_s": tokens_per_s,
               "mfu": self.plan.flops_per_token * tokens_per_s / (peak * self.runtime.world) if peak else None,
               "val_loss": None}
        s.metrics.append(row)
        return row

    def val_loss(self, val_shards: list[Shard]) -> float | None:
        self.raw.eval()
        windows = val_windows(val_shards, self.params.seq_len, self.params.eval_val_tokens)
        rule = self.rule and eval_rule(self.rule, self.params.mlm_eval_select_rate)
        return val_loss(self.raw, windows, self.params.eval_batch_size, self.runtime, rule)["val_loss"]


def fit(trainer: Trainer, val_shards: list[Shard], store: Store, work: str) -> None:
    """Step until the plan's step count, evaluating and checkpointing (rank 0) on schedule."""
    p, runtime, s = trainer.params, trainer.runtime, trainer.state
    with StepBar(trainer.plan.steps, s.step, p.progress and runtime.is_main, p.log_every) as bar:
        while s.step < trainer.plan.steps:
            row = trainer.train_step()
            if p.eval_every and s.step % p.eval_every == 0 and val_shards:
                row["val_loss"] = trainer.val_loss(val_shards)
            bar.update(row)
            if s.step % p.checkpoint_every == 0 and s.step < trainer.plan.steps and runtime.is_main:
                save_step_checkpoint(store.fs, work, s.step, trainer.checkpoint())
            if s.step % p.checkpoint_every == 0:
                barrier(runtime)


def check_init_from(store: Store, init_from: str, tokenizer_version: str) -> None:
    """A run continues another only with the same tokenizer: the same ids must mean the same pieces."""
    other = store.manifest(init_from)
    if other.step != TRAIN_STEP:
        raise ConfigError(f"train.init_from: '{init_from}' is a {other.step} version, not a training run")
    theirs = tokenizer_info(store, other.inputs[1]).model_sha256
    ours = tokenizer_info(store, tokenizer_version).model_sha256
    if theirs != ours:
        raise ConfigError(f"train.init_from: run '{init_from}' used tokenizer {other.inputs[1]}, this run uses "
                          f"{tokenizer_version}; their vocabularies differ, so its weights cannot be reused")


def start_from(trainer: Trainer, store: Store, params: TrainParams, work: str, force: bool) -> str:
    """Resume a killed attempt, else load `init_from`'s weights, else keep the fresh init; say which."""
    if force and trainer.runtime.is_main:
        for path in checkpoints(store.fs, work):
            store.fs.rm_file(path)
    ckpt = latest_checkpoint(store.fs, work) if params.resume and not force else None
    if ckpt is not None:
        trainer.restore(ckpt)
        return f"resumed at step {trainer.state.step}"
    if params.init_from:
        source = run_model(store, params.init_from, torch.device("cpu"))
        if source.cfg.model_dump(exclude={"dropout"}) != trainer.plan.config.model_dump(exclude={"dropout"}):
            raise ConfigError(f"train.init_from: run '{params.init_from}' has model {source.cfg.model_dump()}, "
                              f"this run asks for {trainer.plan.config.model_dump()}")
        trainer.raw.load_state_dict(source.state_dict())
        return f"initialized from {params.init_from}"
    return "fresh"


def run_train(store: Store, params: TrainParams, client: Any, *, force: bool = False, input_version: str,
              tokenizer_version: str) -> Version:
    """Commit a training run on pack `input_version` (or find it cached). The Dask client is unused:
    training runs in this process, or in the torchrun ranks this launches when `nproc_per_node` or
    `nnodes` asks for DDP, where torch owns the cores. With `seeds`, one run per seed, in order; the
    first seed's is returned (`registry.seed_siblings` finds the others)."""
    if params.seeds:
        runs = [run_train(store, p, client, force=force, input_version=input_version,
                          tokenizer_version=tokenizer_version) for p in seed_params(params)]
        return runs[0]
    pack = store.manifest(input_version)
    if pack.step != "pack":
        raise InputError(f"train: '{input_version}' is a {pack.step} version, not a pack")
    if pack.stats.get("tokenizer_sha256") != tokenizer_info(store, tokenizer_version).model_sha256:
        raise ConfigError(f"train: pack {input_version} was not encoded with tokenizer {tokenizer_version}")
    if params.init_from:
        check_init_from(store, params.init_from, tokenizer_version)
    rule = tokenizer_mask_rule(store, tokenizer_version, params.mask_select_rate, params.mask_replace_rate,
                               params.mask_random_rate) if params.objective == "masked" else None
    eval_set = load_eval_set(store, params)
    key = train_key(params, eval_set, input_version=input_version, tokenizer_version=tokenizer_version)
    cached = cached_version(store, key, force)
    if cached:
        return cached
    if wants_ranks(params):
        from tokenmill.train.launch import launch

        return launch(store, params, key.id, force=force, input_version=input_version,
                      tokenizer_version=tokenizer_version)
    with cpu_threads(params.cpu_threads):
        return _train(store, params, force, key, pack, eval_set, tokenizer_version, rule)


def wants_ranks(params: TrainParams) -> bool:
    """DDP asked for, and this process is not already one of torchrun's ranks."""
    return (params.nproc_per_node > 1 or params.nnodes > 1) and "WORLD_SIZE" not in os.environ


def _train(store: Store, params: TrainParams, force: bool, key: VersionKey, pack: Manifest, eval_set: EvalSet,
           tokenizer_version: str, rule: MaskRule | None) -> Version:
    vid = key.id
    runtime = setup_runtime(params.device, params.rank_timeout_s)
    # Rank 0 holds the run's writer lock from here to the commit: a second run of the same version
    # waits, then finds it committed, instead of sharing (and losing) the first one's checkpoints.
    guard = store.begin(TRAIN_STEP, vid) if runtime.is_main else None
    if main_says(guard is not None and not force and store.exists(vid), runtime):
        if guard:
            guard.abort()
        barrier(runtime)
        return Version(store.manifest(vid), cached=True)
    try:
        return _train_locked(store, params, force, key, pack, eval_set, tokenizer_version, runtime, rule)
    except BaseException:
        if guard:
            guard.abort()
        raise


def _train_locked(store: Store, params: TrainParams, force: bool, key: VersionKey, pack: Manifest,
                  eval_set: EvalSet, tokenizer_version: str, runtime: Runtime, rule: MaskRule | None) -> Version:
    input_version, vid = pack.id, key.id
    train_paths = pack_shards(store, input_version, "train")
    windows = TokenWindows(train_paths, params.seq_len, params.seed, runtime.rank, runtime.world)
    val_shards = [Shard(path) for path in pack_shards(store, input_version, "val")]
    plan = make_plan(params, int(pack.stats["vocab_size"]), runtime.world)
    trainer = Trainer(params, plan, runtime, windows, rule)
    work = f"{store.root}/{folder_of(TRAIN_STEP)}/{WORK}/{vid}"
    store.fs.makedirs(work, exist_ok=True)
    begun = start_from(trainer, store, params, work, force)
    if runtime.is_main:
        print(f"train {vid}: {params.objective} objective, {plan.n_params / 1e6:.2f} M params, "
              f"{plan.tokens_per_step} tokens/step "
              f"({params.batch_size} x {params.seq_len} x {runtime.world} ranks x {plan.accum} accum), "
              f"{plan.steps} steps on {runtime.device}; {begun}", file=sys.stderr)
    started = time.perf_counter()
    fit(trainer, val_shards, store, work)
    train_seconds = time.perf_counter() - started
    # Rank 0 alone scores the final model and commits the version; the other ranks wait at a second
    # barrier until the manifest exists, so every rank returns the committed version and none exits
    # (tearing down the process group) while rank 0 still works. `rank_timeout_s` bounds that wait:
    # a rank 0 that died or hangs fails the job instead of leaving the others blocked forever.
    barrier(runtime)
    if not runtime.is_main:
        barrier(runtime)
        return Version(store.manifest(vid), cached=False)

    scores = score_model(trainer.raw, tokenizer_model(store, tokenizer_version), int(pack.stats["boundary_id"]),
                         runtime, eval_set, val_shards, params, rule)
    metrics = trainer.state.metrics
    stats = {
        **scores,
        "final_loss": metrics[-1]["loss"] if metrics else None,
        "steps": trainer.state.step,
        "tokens": trainer.state.tokens,
        "train_seconds": round(train_seconds, 3),
        "tokens_per_s": sum(r["tokens_per_s"] for r in metrics[-10:]) / max(1, len(metrics[-10:])),
        "n_params": plan.n_params,
        "flops_per_token": plan.flops_per_token,
        "tokens_per_step": plan.tokens_per_step,
        "grad_accum": plan.accum,
        "model_config": plan.config.model_dump(),
        "seed": params.seed,
        "objective": params.objective,
        "device": str(runtime.device),
        "world_size": runtime.world,
        "torch_version": torch.__version__,
        "pack_version": input_version,
        "tokenizer_version": tokenizer_version,
        "init_from": params.init_from,
        "started_from": begun,
    }

    def write(attempt: Attempt) -> Written:
        files = [write_weights(store, attempt.path, {"model": trainer.raw.state_dict(),
                                                     "config": plan.config.model_dump()}),
                 write_metrics(store, attempt.path, metrics)]
        return Written(files, stats)

    version = commit_version(store, key, write, force=force)
    store.fs.rm(work, recursive=True)
    barrier(runtime)
    return version
