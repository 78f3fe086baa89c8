"""Training batches from a pack version's shards, read only through the shard reader.

A window is `seq_len + 1` tokens (inputs and their next-token targets); windows start every
`seq_len` tokens inside a shard, so each token is a target once per epoch, and they cross
document boundaries the way the model reads a stream. Each epoch visits the windows in a
permutation seeded by (seed, epoch), so one batch mixes documents from the whole corpus. The
reading position is two integers, which is all a checkpoint needs to resume exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tokenmill.corpus.store.errors import InputError
from tokenmill.tokenize.shards import Shard, shard_paths


@dataclass(frozen=True)
class Position:
    """Where the next batch starts: the epoch, and the index into that epoch's permutation."""

    epoch: int = 0
    index: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def window_starts(n_tokens: int, seq_len: int) -> np.ndarray:
    """Starts of the full windows of `seq_len + 1` tokens, every `seq_len` tokens."""
    count = max(0, (n_tokens - 1) // seq_len)
    return np.arange(count, dtype=np.int64) * seq_len


def epoch_order(n_windows: int, seed: int, epoch: int) -> np.ndarray:
    """The window order of one epoch: a permutation that depends only on (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n_windows)


def open_shards(paths: Sequence[str]) -> list[Shard]:
    """The shards, each validated by the reader; a shard of another vocabulary is refused."""
    shards = [Shard(p) for p in paths]
    vocabularies = {s.header.vocab_size for s in shards}
    if len(vocabularies) > 1:
        raise InputError(f"shards {paths[0]}…: mixed vocabulary sizes {sorted(vocabularies)}")
    return shards


class TokenWindows:
    """Random-order windows over a list of shards, sharded across `world` ranks in lockstep."""

    def __init__(self, paths: Sequence[str], seq_len: int, seed: int, rank: int = 0, world: int = 1):
        if not paths:
            raise InputError("train: the pack version has no train shards")
        self.shards = open_shards(paths)
        self.seq_len, self.seed, self.rank, self.world = seq_len, seed, rank, world
        starts = [window_starts(s.header.n_tokens, seq_len) for s in self.shards]
        self.shard_of = np.concatenate([np.full(len(x), i, dtype=np.int64) for i, x in enumerate(starts)])
        self.start_of = np.concatenate(starts)
        self._order: tuple[int, np.ndarray] | None = None

    @property
    def n_windows(self) -> int:
        return len(self.start_of)

    def order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_order(self.n_windows, self.seed, epoch))
        return self._order[1]

    def window(self, k: int) -> np.ndarray:
        start = self.start_of[k]
        return self.shards[self.shard_of[k]].tokens[start:start + self.seq_len + 1]

    def batch(self, position: Position, batch_size: int) -> tuple[np.ndarray, Position]:
        """This rank's `batch_size` windows (int64, shape batch x seq_len+1) and the position after the
        batch of all ranks; an epoch ends when a whole global batch no longer fits."""
        per_step = batch_size * self.world
        if per_step > self.n_windows:
            raise InputError(f"train: {self.n_windows} windows of {self.seq_len + 1} tokens cannot fill "
                             f"a batch of {per_step}; lower batch_size or seq_len, or pack more data")
        if position.index + per_step > self.n_windows:
            position = Position(position.epoch + 1, 0)
        mine = self.order(position.epoch)[position.index + self.rank * batch_size:][:batch_size]
        rows = np.stack([self.window(int(k)) for k in mine]).astype(np.int64)
        return rows, Position(position.epoch, position.index + per_step)


def val_windows(shards: Sequence[Shard], seq_len: int, max_tokens: int) -> Iterator[np.ndarray]:
    """Validation windows in shard order, stopping once `max_tokens` targets are covered."""
    covered = 0
    for shard in shards:
        for window in shard.windows(seq_len + 1, stride=seq_len):
            if covered >= max_tokens:
                return
            yield window.astype(np.int64)
            covered += seq_len


def pack_shards(store: Any, pack_version: str, split: str) -> list[str]:
    """The shard paths of one split of a pack version, refusing a version of another step."""
    manifest = store.manifest(pack_version)
    if manifest.step != "pack":
        raise InputError(f"train: '{pack_version}' is a {manifest.step} version, not a pack")
    return shard_paths(store, pack_version, split)
