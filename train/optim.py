"""AdamW with decay on matrices only, and the learning-rate schedule as a pure function of the step.

Because the rate depends on nothing but the step, a checkpoint's step restores the scheduler exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on >= 2-D weights (matmuls, embeddings), none on norm gains (as nanoGPT does)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, lr: float, betas: tuple[float, float], weight_decay: float,
                   device_type: str) -> torch.optim.AdamW:
    """AdamW; the fused CUDA kernel updates all parameters in one launch on a GPU."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas,
                             fused=device_type == "cuda")


def lr_at(step: int, total: int, peak: float, warmup: int, min_ratio: float, schedule: str,
          decay_frac: float) -> float:
    """Learning rate of 0-based `step`: linear warmup, then cosine to `min_ratio * peak`, or WSD
    (warmup, stable, then linear decay over the last `decay_frac` of the steps; Hu et al. 2024)."""
    floor = min_ratio * peak
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "wsd":
        decay_steps = max(1, round(decay_frac * total))
        decay_start = max(warmup, total - decay_steps)
        if step < decay_start:
            return peak
        progress = min(1.0, (step - decay_start) / max(1, total - decay_start))
        return peak - (peak - floor) * progress
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))
