"""Benchmark of training throughput on the CPU: the real loop (`Trainer.train_step`) over a synthetic
shard written with the shard writer, for the `tiny` and `small` models (causal, and tiny masked: the
head runs at the 15% selected positions only), plus the gpt2 FLOP plan.

Figures are CPU tokens/s (forward, backward, clipping and the AdamW step, fp32) after one warm-up
step; `mb` counts the token bytes trained on (2 bytes per uint16 token), `docs` the windows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fsspec.implementations.local import LocalFileSystem

from tokenmill.tokenize.shards import write_shard
from tokenmill.train.data import TokenWindows
from tokenmill.train.device import PEAK_BF16_FLOPS, Runtime, cpu_threads
from tokenmill.train.loop import Trainer, make_plan
from tokenmill.train.masking import mask_rule
from tokenmill.train.model import count_params, flops_per_token, model_config
from tokenmill.train.params import TrainParams

VOCAB = 32_000
CASES = {"tiny": {"seq_len": 256, "batch_size": 8, "steps": 20}, "small": {"seq_len": 256, "batch_size": 8, "steps": 4},
         "tiny-masked": {"seq_len": 256, "batch_size": 8, "steps": 20}}
SPECIAL = [0, 1, 2, 3]  # unk, bos, eos and a mask piece, as a tokenizer version reserves them


def synthetic_shard(workdir: Path, n_tokens: int) -> str:
    """Zipf-distributed token ids: the model's cost does not depend on the text, only on the shapes."""
    rng = np.random.default_rng(0)
    tokens = np.minimum(rng.zipf(1.2, n_tokens), VOCAB - 1).astype(np.uint16)
    docs = np.array_split(tokens, max(1, n_tokens // 1000))
    write_shard(LocalFileSystem(), str(workdir), "train-00000", docs, n_tokens, len(docs), VOCAB, "eos", 2)
    return str(workdir / "train-00000.bin")


def measure(case: str, path: str, seq_len: int, batch_size: int, steps: int) -> dict[str, Any]:
    size, _, objective = case.partition("-")
    params = TrainParams(model=size, objective=objective or "causal", seq_len=seq_len, batch_size=batch_size,
                         steps=steps + 1, progress=False)
    plan = make_plan(params, VOCAB, world=1)
    rule = mask_rule(params.mask_select_rate, params.mask_replace_rate, params.mask_random_rate, 3, VOCAB,
                     SPECIAL) if objective else None
    trainer = Trainer(params, plan, Runtime(torch.device("cpu")), TokenWindows([path], seq_len, seed=0), rule)
    trainer.train_step()  # warm-up: allocator and first-call costs
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    wall = time.perf_counter() - started
    tokens = steps * plan.tokens_per_step
    mb = tokens * 2 / 1e6
    return {"step": "train", "case": f"cpu-{case}", "mb": round(mb, 3), "docs": steps * batch_size,
            "wall_s": round(wall, 3), "mb_per_s": round(mb / wall, 4),
            "docs_per_s": round(steps * batch_size / wall, 2),
            "tokens_per_s": round(tokens / wall, 1), "n_params": plan.n_params, "threads": torch.get_num_threads(),
            "achieved_gflops": round(plan.flops_per_token * tokens / wall / 1e9, 2)}


def gpu_plan(mfu: float = 0.40) -> dict[str, Any]:
    """What gpt2 (GPT-2 vocabulary, 1024 context) needs per token and the H100 throughput at `mfu`."""
    cfg = model_config("gpt2", 50_257, 1024)
    n = count_params(cfg)
    per_token = flops_per_token(cfg, n)
    peak = PEAK_BF16_FLOPS["H100"]
    return {"step": "train", "case": "plan-gpt2-h100", "mb": 0, "docs": 0, "wall_s": 0, "mb_per_s": None,
            "docs_per_s": None, "n_params": n, "flops_per_token": per_token, "peak_flops": peak, "mfu": mfu,
            "tokens_per_s": round(mfu * peak / per_token)}


def bench(size_mb: float, workdir: Path, client: Any, threads: int = 1) -> list[dict]:
    """The client is unused: training runs in this process. One torch thread by default: on this
    shared 2-core machine two threads ran a tiny step 20x slower than one (oversubscription)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = synthetic_shard(workdir, max(200_000, int(size_mb * 1e6 / 2)))
    with cpu_threads(threads):
        rows = [measure(name, path, **case) for name, case in CASES.items()]
    return rows + [gpu_plan()]


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for result in bench(1, Path(tmp), None):
            print(json.dumps(result))
