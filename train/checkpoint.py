"""Checkpoints written atomically and loaded with `weights_only=True`, with every RNG state.

The file is written under a temporary name and renamed over the old one (one PUT on an object
store), so a run killed while saving still has its previous checkpoint.
"""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import torch
from fsspec.implementations.local import LocalFileSystem

from tokenmill.corpus.store.errors import InputError


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
    temporary name and a rename, on an object store as one PUT (which replaces an object whole)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)
        return len(data)
    tmp = f"{path}.tmp"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)
    return len(data)


def load_checkpoint(fs: Any, path: str) -> dict[str, Any]:
    """A checkpoint's state, tensors on the CPU; a damaged file is an InputError naming it."""
    try:
        with fs.open(path, "rb") as f:
            return torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError) as error:
        raise InputError(f"checkpoint {path}: cannot be read ({str(error).splitlines()[0]})") from None
