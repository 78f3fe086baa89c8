"""`train.compile = true` on the CPU: TorchInductor compiles the training step, which then gives the eager
step's losses and gradients, so the GPU path's compile is not first exercised on a GPU."""

from __future__ import annotations

import pytest
import torch

from tokenmill.corpus.store.versions import Store
from tokenmill.tokenize.shards import shard_paths
from tokenmill.train.data import TokenWindows
from tokenmill.train.device import Runtime, cpu_threads
from tokenmill.train.loop import Trainer, make_plan
from tokenmill.train.params import TrainParams


@pytest.mark.slow  # a cold Inductor compile of forward and backward: ~1 min on two idle cores, cached after
@pytest.mark.timeout(900)
def test_a_compiled_step_trains_as_the_eager_one(tmp_path, make_pack):
    store = Store(str(tmp_path / "store"))
    pack, _, _ = make_pack(store)
    paths = shard_paths(store, pack, "train")
    losses = {}
    with cpu_threads(1):
        for compiled in (False, True):
            params = TrainParams(n_layer=1, seq_len=32, batch_size=4, steps=3, warmup_steps=0, compile=compiled,
                                 progress=False)
            trainer = Trainer(params, make_plan(params, 300, world=1), Runtime(torch.device("cpu")),
                              TokenWindows(paths, params.seq_len, seed=0))
            losses[compiled] = [trainer.train_step()["loss"] for _ in range(params.steps)]
            if compiled:
                assert type(trainer.model).__name__ == "OptimizedModule"
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
    assert losses[True][-1] < losses[True][0]
