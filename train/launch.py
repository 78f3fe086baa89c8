"""DDP through torchrun: the train step starts its ranks itself, so no one hand-writes a torchrun line.

`run_train` calls `launch` when `nproc_per_node` or `nnodes` asks for more than one process. The
launcher writes what the ranks need (store settings, train settings, inputs) to a private spec
file, runs `python -m torch.distributed.run … -m tokenmill.train.rank SPEC`, and returns the
version rank 0 committed. Ranks open the store themselves and start no Dask cluster: torch owns
the cores. On several nodes each node runs the same command; they meet at `rdzv_endpoint`
under a rendezvous id that is the run's version id, the same on every node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from pydantic import BaseModel, ConfigDict

from tokenmill.corpus.store.errors import StoreIOError
from tokenmill.corpus.store.step import Version
from tokenmill.corpus.store.versions import Store, StoreSettings
from tokenmill.train.params import TrainParams


class RankSpec(BaseModel):
    """Everything one rank needs to run the train step, as the launcher passes it."""

    model_config = ConfigDict(extra="forbid")

    store: StoreSettings
    params: TrainParams
    input_version: str
    tokenizer_version: str
    force: bool = False


def torchrun_command(params: TrainParams, run_id: str, spec_path: str) -> list[str]:
    """The torchrun line of this node: a standalone rendezvous on one node, c10d at the endpoint on several."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={params.nproc_per_node}",
               f"--nnodes={params.nnodes}", "--max-restarts=0"]
    if params.nnodes == 1:
        command.append("--standalone")
    else:
        command += ["--rdzv-backend=c10d", f"--rdzv-endpoint={params.rdzv_endpoint}", f"--rdzv-id={run_id}"]
    return command + ["-m", "tokenmill.train.rank", spec_path]


def launch(store: Store, params: TrainParams, run_id: str, *, force: bool, input_version: str,
           tokenizer_version: str) -> Version:
    """Run the train step in torchrun's ranks and return the version they committed as `run_id`."""
    spec = RankSpec(store=store.settings(), params=params, input_version=input_version,
                    tokenizer_version=tokenizer_version, force=force)
    # A private file (mode 0600), not argv: the store options may hold credentials.
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="tokenmill-rank-", delete=False) as f:
        f.write(spec.model_dump_json())
    try:
        done = subprocess.run(torchrun_command(params, run_id, f.name), env=os.environ | {"PYTHONUNBUFFERED": "1"})
    finally:
        os.unlink(f.name)
    if done.returncode != 0:
        raise StoreIOError(f"train: the torchrun ranks failed (exit code {done.returncode}); their output is above")
    return Version(store.manifest(run_id), cached=False)
