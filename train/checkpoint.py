"""Checkpoints written atomically and loaded with `weights_only=True`, with every RNG state.

A run's checkpoints are a series `checkpoint-<step>.pt` in its work folder. Each is written under
a temporary name, fsynced and renamed (one PUT on an object store), and the one before it is
deleted only once it is complete: a run killed while saving, or a latest checkpoint damaged
afterwards, still resumes from the previous one (with a warning).
"""

from __future__ import annotations

import io
import logging
import os
import random
from typing import Any

import numpy as np
import torch
from fsspec.implementations.local import LocalFileSystem

from tokenmill.corpus.store.errors import InputError
from tokenmill.corpus.store.versions import FileEntry, Store
from tokenmill.train.metrics import file_sha256
from tokenmill.train.model import GPT, ModelConfig

log = logging.getLogger(__name__)
KEPT = 2
WEIGHTS = "model.pt"  # a committed run's final weights and model config


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states in types `weights_only` loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(fs: Any, path: str, state: dict[str, Any]) -> int:
    """Write `state` to `path` atomically and return the bytes written: on a local disk through a
    temporary name, fsync and a rename, on an object store as one PUT (which replaces an object whole)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)
        return len(data)
    local = LocalFileSystem._strip_protocol(path)
    tmp = f"{local}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, local)
    folder = os.open(os.path.dirname(local), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return len(data)


def load_checkpoint(fs: Any, path: str) -> dict[str, Any]:
    """A checkpoint's state, tensors on the CPU; a damaged file is an InputError naming it."""
    try:
        with fs.open(path, "rb") as f:
            return torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"checkpoint {path}: missing") from None
    except Exception as error:  # torch.load of damaged bytes raises any of a dozen types
        raise InputError(f"checkpoint {path}: cannot be read ({type(error).__name__})") from None


def checkpoints(fs: Any, work: str) -> list[str]:
    """The run's checkpoints, newest first."""
    return sorted(fs.glob(f"{work}/checkpoint-*.pt"), reverse=True)


def save_step_checkpoint(fs: Any, work: str, step: int, state: dict[str, Any]) -> None:
    """Add the checkpoint of `step` to the series, then drop all but the last KEPT."""
    save_checkpoint(fs, f"{work}/checkpoint-{step:09d}.pt", state)
    for old in checkpoints(fs, work)[KEPT:]:
        fs.rm_file(old)


def latest_checkpoint(fs: Any, work: str) -> dict[str, Any] | None:
    """The newest readable checkpoint of the run (None if it has none); a damaged one is skipped
    with a warning; only damaged ones is one clear error."""
    found = checkpoints(fs, work)
    for path in found:
        try:
            return load_checkpoint(fs, path)
        except InputError as error:
            log.warning("%s; resuming from the checkpoint before it", error)
    if found:
        raise InputError(f"train: no readable checkpoint among {len(found)} in {work}; "
                         "rerun with --force to start the run afresh")
    return None


def write_weights(store: Store, folder: str, state: dict[str, Any]) -> FileEntry:
    """A version's weights file (`state` holds "model" and "config") and its manifest entry."""
    path = f"{folder}/{WEIGHTS}"
    size = save_checkpoint(store.fs, path, state)
    return FileEntry(path=WEIGHTS, bytes=size, sha256=file_sha256(store, path))


def run_model(store: Store, run_id: str, device: torch.device) -> GPT:
    """A committed run's final model, rebuilt from its recorded config."""
    manifest = store.manifest(run_id)
    if manifest.step != "train":
        raise InputError(f"'{run_id}' is a {manifest.step} version, not a training run")
    state = load_checkpoint(store.fs, store.file_path(run_id, WEIGHTS, manifest))
    model = GPT(ModelConfig(**state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device)
