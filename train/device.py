"""Where training runs: the device, DDP under torchrun, bf16 autocast, and the peak FLOPs for MFU.

Everything CUDA-specific lives here so the loop reads the same on a laptop and on a GPU node.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from tokenmill.corpus.store.errors import ConfigError

# Dense bf16 peak of one device, from the vendors' datasheets (SXM parts; PCIe H100 is 756 TFLOPS).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12, "4090": 165e12}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes checkpoints, metrics and the version."""
        return self.rank == 0

    @property
    def ddp(self) -> bool:
        return self.world > 1

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA (no loss scaling needed, unlike fp16); full fp32 on the CPU."""
        if self.is_cuda:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def peak_flops(self) -> float | None:
        if not self.is_cuda:
            return None
        name = torch.cuda.get_device_name(self.device)
        return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


def resolve_device(setting: str) -> torch.device:
    """`auto` is CUDA when present, else the CPU; an explicit `cuda` without a GPU is a config error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' was asked for but torch sees no CUDA device")
    try:
        return torch.device(setting)
    except RuntimeError:
        raise ConfigError(f"train.device: '{setting}' is not a device (auto, cpu, cuda or cuda:N)") from None


def setup_runtime(setting: str, rank_timeout_s: float = 1800.0) -> Runtime:
    """The runtime of this process: a DDP rank when torchrun set WORLD_SIZE > 1, else a single device.
    A rank that waits longer than `rank_timeout_s` at a collective fails rather than hangs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(setting)
    if world == 1:
        runtime = Runtime(device)
    else:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                                 timeout=timedelta(seconds=rank_timeout_s))
        runtime = Runtime(device, rank, world, local_rank)
    if runtime.is_cuda:
        # TF32 matmuls for whatever autocast leaves in fp32: ~8x the fp32 rate on Ampere and later.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return runtime


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op CPU threads for the duration of a run, restored after; on a shared or busy
    machine one thread per process avoids the oversubscription that made a tiny step 20x slower."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def barrier(runtime: Runtime) -> None:
    if runtime.ddp:
        torch.distributed.barrier()


def main_says(flag: bool, runtime: Runtime) -> bool:
    """Rank 0's `flag`, on every rank."""
    if not runtime.ddp:
        return flag
    value = torch.tensor([int(flag)], device=runtime.device)
    torch.distributed.broadcast(value, src=0)
    return bool(value.item())


def all_reduce_mean(value: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """The mean over ranks of a scalar (the logged loss), a no-op on one process."""
    if runtime.ddp:
        value = value.clone()
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)  # gloo has no AVG
        value /= runtime.world
    return value
