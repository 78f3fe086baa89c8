"""The train step on a small real store: it learns, resumes exactly, refuses a foreign tokenizer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tokenmill.corpus.store.errors import ConfigError, InputError
from tokenmill.corpus.store.versions import Store
from tokenmill.tokenize.pack import PackParams, run_pack
from tokenmill.tokenize.shards import shard_paths
from tokenmill.tokenize.trainer import TokenizerParams, run_tokenizer
from tokenmill.train import loop
from tokenmill.train.device import resolve_device
from tokenmill.train.eval_step import run_eval
from tokenmill.train.loop import run_train
from tokenmill.train.params import EvalParams, TrainParams


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, client, make_pack) -> tuple[Store, str, str, Path]:
    """A store holding a load, tokenizer and pack version, and an eval text file."""
    store = Store(str(tmp_path_factory.mktemp("train") / "store"))
    return store, *make_pack(store)


def params(eval_file: Path, **overrides) -> TrainParams:
    base = {"seq_len": 32, "batch_size": 8, "steps": 12, "lr": 3e-3, "warmup_steps": 2, "eval_every": 4,
            "eval_val_tokens": 256, "checkpoint_every": 3, "eval_texts": [str(eval_file)], "cloze_min_words": 5,
            "progress": False, "cpu_threads": 1}
    return TrainParams(**{**base, **overrides})


def metrics(store: Store, vid: str) -> list[dict]:
    return pq.read_table(f"{store.version_dir(vid)}/metrics.parquet").to_pylist()


def test_tiny_model_learns_the_shard(prepared, client):
    store, pack, tok, eval_file = prepared
    run = run_train(store, params(eval_file, steps=150, eval_every=50, checkpoint_every=200), client,
                    input_version=pack, tokenizer_version=tok)
    rows = metrics(store, run.id)
    stats = run.manifest.stats
    assert rows[0]["loss"] > 4.0  # about ln(300) at the start
    assert stats["final_loss"] < 0.5
    assert stats["val_loss"] < 0.5
    assert stats["bpb"] < 0.6 and stats["eval_bytes"] == len(eval_file.read_text().encode())
    assert [r["step"] for r in rows] == list(range(1, 151))
    assert rows[-1]["lr"] == pytest.approx(3e-4, rel=0.05)  # cosine ends at 10 % of the peak
    assert run.manifest.inputs == [pack, tok]
    assert store.version_dir(run.id).split("/")[-2] == "runs"
    assert run_train(store, params(eval_file, steps=150, eval_every=50, checkpoint_every=200), client,
                     input_version=pack, tokenizer_version=tok).cached
    # scored as the run's end was: its scores taken over; scored otherwise (3 pieces a batch): the same figures
    rescored = run_eval(store, EvalParams(eval_texts=[str(eval_file)], cloze_min_words=5), client, run_version=run.id)
    assert rescored.manifest.inputs == [run.id] and rescored.manifest.stats["scores_from"] == run.id
    recomputed = run_eval(store, EvalParams(eval_texts=[str(eval_file)], cloze_min_words=5, eval_batch_size=3), client,
                          run_version=run.id)
    assert "scores_from" not in recomputed.manifest.stats
    for name in ("bpb", "val_loss", "cloze_acc", "cloze_loglik"):
        assert rescored.manifest.stats[name] == stats[name]
        assert recomputed.manifest.stats[name] == pytest.approx(stats[name], rel=1e-5)
    assert recomputed.manifest.stats["eval_sha256"] == stats["eval_sha256"]


class Killed(Exception):
    """Stands for the process dying mid-run."""


@pytest.mark.parametrize("objective", ["causal", "masked"])
def test_killed_run_resumes_to_the_same_losses(prepared, client, monkeypatch, objective):
    store, pack, tok, eval_file = prepared
    settings = params(eval_file, objective=objective)
    saves = []
    original = loop.save_step_checkpoint

    def dies_at_second_checkpoint(fs, work, step, state):
        saves.append(step)
        if len(saves) == 2:  # step 6: the checkpoint of step 3 is the last one on disk
            raise Killed
        return original(fs, work, step, state)

    monkeypatch.setattr(loop, "save_step_checkpoint", dies_at_second_checkpoint)
    with pytest.raises(Killed):
        run_train(store, settings, client, input_version=pack, tokenizer_version=tok)
    monkeypatch.setattr(loop, "save_step_checkpoint", original)
    resumed = run_train(store, settings, client, input_version=pack, tokenizer_version=tok)
    assert resumed.manifest.stats["started_from"] == "resumed at step 3"
    resumed_rows = metrics(store, resumed.id)
    fresh = run_train(store, settings, client, force=True, input_version=pack, tokenizer_version=tok)
    assert fresh.id == resumed.id and fresh.manifest.stats["started_from"] == "fresh"
    fresh_rows = metrics(store, fresh.id)
    for column in ("step", "tokens", "loss", "lr", "grad_norm", "val_loss"):
        assert [r[column] for r in resumed_rows] == [r[column] for r in fresh_rows]
    score = "bpb" if objective == "causal" else "mlm_loss"
    assert fresh.manifest.stats[score] == resumed.manifest.stats[score] is not None
    assert not store.fs.exists(f"{store.root}/runs/.work/{resumed.id}")


@pytest.mark.parametrize("damage", [b"", b"not a checkpoint at all"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(prepared, client, monkeypatch, caplog, damage):
    store, pack, tok, eval_file = prepared
    settings = params(eval_file, steps=9, seed=len(damage))
    original = loop.save_step_checkpoint

    def dies_after_second_checkpoint(fs, work, step, state):
        original(fs, work, step, state)
        if step == 6:
            raise Killed

    monkeypatch.setattr(loop, "save_step_checkpoint", dies_after_second_checkpoint)
    with pytest.raises(Killed):
        run_train(store, settings, client, input_version=pack, tokenizer_version=tok)
    monkeypatch.setattr(loop, "save_step_checkpoint", original)
    work = max((Path(store.root) / "runs" / ".work").iterdir(), key=lambda folder: folder.stat().st_mtime)
    latest, _ = sorted(work.glob("checkpoint-*.pt"), reverse=True)
    latest.write_bytes(damage)

    resumed = run_train(store, settings, client, input_version=pack, tokenizer_version=tok)
    assert resumed.manifest.stats["started_from"] == "resumed at step 3"
    assert f"checkpoint {latest}: cannot be read" in caplog.text

    other = params(eval_file, steps=9, seed=10 + len(damage))
    monkeypatch.setattr(loop, "save_step_checkpoint", dies_after_second_checkpoint)
    with pytest.raises(Killed):
        run_train(store, other, client, input_version=pack, tokenizer_version=tok)
    work = max((Path(store.root) / "runs" / ".work").iterdir(), key=lambda folder: folder.stat().st_mtime)
    for path in work.glob("checkpoint-*.pt"):
        path.write_bytes(damage)
    with pytest.raises(InputError, match="no readable checkpoint among 2 .* rerun with --force"):
        run_train(store, other, client, input_version=pack, tokenizer_version=tok)


TRAIN_SCRIPT = """
import json, sys
from tokenmill.corpus.store.versions import Store
from tokenmill.train.loop import run_train
from tokenmill.train.params import TrainParams

store, settings, pack, tok = Store(sys.argv[1]), TrainParams(**json.loads(sys.argv[2])), sys.argv[3], sys.argv[4]
version = run_train(store, settings, None, input_version=pack, tokenizer_version=tok)
print(version.id, "cached" if version.cached else "trained", version.manifest.stats["started_from"])
"""


def test_two_runs_of_one_version_at_once_train_it_once(prepared, tmp_path):
    """The second waits on the run's lock while the first trains, then finds the run committed."""
    store, pack, tok, eval_file = prepared
    script = tmp_path / "train_script.py"
    script.write_text(TRAIN_SCRIPT)
    settings = params(eval_file, steps=40, seed=7).model_dump_json()
    runs = [subprocess.Popen([sys.executable, str(script), store.root, settings, pack, tok],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    results = sorted(out.split()[-3:] for out, _ in outputs)
    assert results[0][0] == results[1][0]
    assert sorted(r[1] for r in results) == ["cached", "trained"]
    assert "fresh" in [r[2] for r in results if r[1] == "trained"][0]


def test_init_from_continues_a_run_and_refuses_another_tokenizer(prepared, client):
    store, pack, tok, eval_file = prepared
    first = run_train(store, params(eval_file, steps=4), client, input_version=pack, tokenizer_version=tok)
    second = run_train(store, params(eval_file, steps=4, init_from=first.id), client,
                       input_version=pack, tokenizer_version=tok)
    assert second.manifest.inputs == [pack, tok, first.id]
    assert metrics(store, second.id)[0]["loss"] < metrics(store, first.id)[0]["loss"]
    docs = store.manifest(pack).inputs[0]
    other_tok = run_tokenizer(store, TokenizerParams(vocab_size=320, heldout_fraction=0), client,
                              input_version=docs).id
    other_pack = run_pack(store, PackParams(val_fraction=0.1), client, input_version=docs,
                          tokenizer_version=other_tok).id
    with pytest.raises(ConfigError, match="vocabularies differ"):
        run_train(store, params(eval_file, steps=4, init_from=first.id), client,
                  input_version=other_pack, tokenizer_version=other_tok)
    with pytest.raises(ConfigError, match="was not encoded with tokenizer"):
        run_train(store, params(eval_file, steps=4), client, input_version=pack, tokenizer_version=other_tok)


def test_corrupted_shard_fails_clearly(prepared, client, tmp_path):
    store, pack, tok, eval_file = prepared
    shard = Path(shard_paths(store, pack, "train")[0])
    saved = shard.read_bytes()
    try:
        shard.write_bytes(saved[:-6])
        with pytest.raises(InputError, match="truncated or corrupt"):
            run_train(store, params(eval_file, steps=2, seed=7), client, input_version=pack, tokenizer_version=tok)
    finally:
        shard.write_bytes(saved)


def test_settings_are_checked(prepared, client):
    store, pack, tok, eval_file = prepared
    with pytest.raises(InputError, match="not a pack"):
        run_train(store, params(eval_file), client, input_version=tok, tokenizer_version=tok)
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("warp-drive")
    with pytest.raises(ValueError, match="not both"):
        TrainParams(steps=3, tokens=100)
    plan = loop.make_plan(TrainParams(seq_len=16, batch_size=2, tokens_per_step=128, tokens=1000), 300, world=1)
    assert (plan.accum, plan.tokens_per_step, plan.steps) == (4, 128, 8)
