"""Windows from shards: every target once per epoch, seeded order, exact resume, rank sharding, bad shards."""

from __future__ import annotations

import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem

from tokenmill.corpus.store.errors import InputError
from tokenmill.tokenize.shards import write_shard
from tokenmill.train.data import Position, TokenWindows, val_windows
from tokenmill.train.optim import lr_at


def shard(tmp_path, name: str, docs: list[list[int]]) -> str:
    arrays = [np.array(d, dtype=np.uint16) for d in docs]
    write_shard(LocalFileSystem(), str(tmp_path), name, arrays, sum(map(len, docs)), len(docs), 1000, "eos", 2)
    return str(tmp_path / f"{name}.bin")


def test_each_target_once_per_epoch_in_seeded_order(tmp_path):
    paths = [shard(tmp_path, "train-00000", [list(range(10, 51))]),
             shard(tmp_path, "train-00001", [list(range(100, 125))])]
    windows = TokenWindows(paths, seq_len=4, seed=3)
    assert windows.n_windows == 10 + 6
    rows, position = windows.batch(Position(), 16)
    targets = sorted(rows[:, 1:].ravel().tolist())
    assert targets == sorted(list(range(11, 51)) + list(range(101, 125)))
    assert position == Position(0, 16)
    again, _ = TokenWindows(paths, seq_len=4, seed=3).batch(Position(), 16)
    other, _ = TokenWindows(paths, seq_len=4, seed=4).batch(Position(), 16)
    assert np.array_equal(rows, again) and not np.array_equal(rows, other)
    next_epoch, position = windows.batch(position, 4)
    assert position == Position(1, 4) and not np.array_equal(next_epoch, rows[:4])


def test_resume_from_a_position_and_rank_shards(tmp_path):
    paths = [shard(tmp_path, "train-00000", [list(range(10, 300))])]
    one = TokenWindows(paths, seq_len=8, seed=0)
    position, seen = Position(), []
    for _ in range(5):
        rows, position = one.batch(position, 3)
        seen.append(rows)
    resumed, saved = [], Position(**Position(0, 6).to_dict())
    for _ in range(3):
        rows, saved = TokenWindows(paths, seq_len=8, seed=0).batch(saved, 3)
        resumed.append(rows)
    assert all(np.array_equal(a, b) for a, b in zip(seen[2:], resumed))
    ranks = [TokenWindows(paths, seq_len=8, seed=0, rank=r, world=2).batch(Position(), 3) for r in (0, 1)]
    assert ranks[0][1] == ranks[1][1] == Position(0, 6)
    assert np.array_equal(np.concatenate([ranks[0][0], ranks[1][0]]), np.concatenate(seen[:2]))


def test_val_windows_stop_at_the_token_cap(tmp_path):
    from tokenmill.tokenize.shards import Shard

    windows = list(val_windows([Shard(shard(tmp_path, "val-00000", [list(range(100))]))], 10, 35))
    assert len(windows) == 4 and windows[0].tolist() == list(range(11))


def test_bad_shards_fail_clearly(tmp_path):
    path = shard(tmp_path, "train-00000", [list(range(50))])
    with open(path, "r+b") as f:
        f.write(b"JUNK")
    with pytest.raises(InputError, match="not a tokenmill shard"):
        TokenWindows([path], seq_len=4, seed=0)
    small = shard(tmp_path, "train-00001", [list(range(9))])
    with pytest.raises(InputError, match="cannot fill a batch of 4"):
        TokenWindows([small], seq_len=4, seed=0).batch(Position(), 4)
    with pytest.raises(InputError, match="no train shards"):
        TokenWindows([], seq_len=4, seed=0)


def test_schedule_warms_up_then_decays_to_the_floor():
    rates = [lr_at(s, 100, 1.0, 10, 0.1, "cosine", 0.2) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == 1.0 and rates[10] == 1.0
    assert rates[-1] == pytest.approx(0.1, abs=1e-3) and all(a >= b for a, b in zip(rates[10:], rates[11:]))
    wsd = [lr_at(s, 100, 1.0, 10, 0.1, "wsd", 0.2) for s in range(101)]
    assert wsd[50] == wsd[80] == 1.0 and wsd[90] == pytest.approx(0.55) and wsd[100] == pytest.approx(0.1)
