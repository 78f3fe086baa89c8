"""DDP through the launcher: torchrun ranks on the CPU (gloo) train like one process with the same
global batch, and a job killed mid-run on an S3 store resumes from the checkpoint it left there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import psutil
import pyarrow.parquet as pq
import pytest

from tokenmill.corpus.store.versions import Store
from tokenmill.train.launch import torchrun_command
from tokenmill.train.loop import run_train
from tokenmill.train.params import TrainParams

pytestmark = pytest.mark.slow

BASE = {"seq_len": 32, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2, "eval_every": 0, "eval_val_tokens": 256,
        "cloze_min_words": 5, "progress": False, "cpu_threads": 1}


def losses(store: Store, vid: str) -> list[float]:
    return [row["loss"] for row in pq.read_table(store.file_path(vid, "metrics.parquet"), filesystem=store.fs)
            .to_pylist()]


def rank_processes() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if "tokenmill.train.rank" in (p.info["cmdline"] or [])]


def wait_for_no_ranks(seconds: float) -> bool:
    deadline = time.time() + seconds
    while rank_processes() and time.time() < deadline:
        time.sleep(0.2)
    return not rank_processes()


def test_torchrun_command_per_node_count():
    one = torchrun_command(TrainParams(nproc_per_node=4), "runs-abc", "/tmp/spec.json")
    assert one[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in one
    assert one[-3:] == ["-m", "tokenmill.train.rank", "/tmp/spec.json"]
    many = torchrun_command(TrainParams(nproc_per_node=8, nnodes=2, rdzv_endpoint="head:29500"), "runs-abc", "s")
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=head:29500", "--rdzv-id=runs-abc"} <= set(many)
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        TrainParams(nnodes=2)


def test_two_ranks_follow_one_process_with_the_same_global_batch(tmp_path, client, make_pack):
    store = Store(str(tmp_path / "store"))
    pack, tok, eval_file = make_pack(store)
    settings = {**BASE, "steps": 12, "tokens_per_step": 2 * 8 * 32, "eval_texts": [str(eval_file)]}
    single = run_train(store, TrainParams(**settings), client, input_version=pack, tokenizer_version=tok)
    assert single.manifest.stats["grad_accum"] == 2 and single.manifest.stats["world_size"] == 1
    single_losses = losses(store, single.id)
    ranks = run_train(store, TrainParams(**settings, nproc_per_node=2), client, force=True, input_version=pack,
                      tokenizer_version=tok)
    stats = ranks.manifest.stats
    assert ranks.id == single.id  # world size is how the run ran, not what it trained
    assert stats["world_size"] == 2 and stats["grad_accum"] == 1 and stats["tokens"] == 12 * 512
    ranks_losses = losses(store, ranks.id)
    assert ranks_losses[0] == pytest.approx(single_losses[0], abs=1e-4)  # same init, same global batch
    assert ranks_losses == pytest.approx(single_losses, rel=1e-2)  # summation order drifts a little after
    assert single_losses[-1] < single_losses[0] - 1.0
    assert stats["bpb"] == pytest.approx(single.manifest.stats["bpb"], rel=0.02)


def test_killed_job_on_s3_resumes_from_the_checkpoint_there(s3_bucket, client, make_pack, tmp_path):
    store = Store(f"{s3_bucket}/store")
    pack, _, eval_file = make_pack(store)
    sets = {**BASE, "steps": 60, "checkpoint_every": 10, "eval_texts": [str(eval_file)]}
    command = ["tokenmill", "train", "--from", pack, "--store", store.url,
               "--nproc-per-node", "2", "--json", "--set", "store.lease_seconds=5"]
    for key, value in sets.items():
        command += ["--set", f"train.{key}={json.dumps(value)}"]
    job = subprocess.Popen(command, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    checkpoints: list[str] = []
    deadline = time.time() + 240
    while not checkpoints and job.poll() is None and time.time() < deadline:
        time.sleep(0.5)
        checkpoints = store.fs.glob(f"{store.root}/runs/.work/*/checkpoint-*.pt", refresh=True)
    assert checkpoints, job.communicate()[1][-2000:] if job.poll() is not None else "no checkpoint in time"
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert wait_for_no_ranks(5.0), "a rank outlived its killed launcher"
    assert not store.fs.glob(f"{store.root}/runs/*/_manifest.json", refresh=True)

    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = json.loads(done.stdout)["train"]
    stats = store.manifest(run_id).stats
    resumed_at = int(stats["started_from"].removeprefix("resumed at step "))
    assert resumed_at >= 10 and resumed_at % 10 == 0
    assert "resumed at step" in done.stderr
    assert stats["steps"] == 60 and stats["world_size"] == 2
    assert [row["step"] for row in pq.read_table(store.file_path(run_id, "metrics.parquet"), filesystem=store.fs)
            .to_pylist()] == list(range(1, 61))
    assert not store.fs.glob(f"{store.root}/runs/.work/*/checkpoint-*.pt", refresh=True)
    assert not list(tmp_path.iterdir())  # the driver's directory holds no store files


def test_the_train_command_trains_and_reports_one_run_per_seed(store, make_pack, tmp_path):
    pack, _, eval_file = make_pack(store)
    sets = {**BASE, "steps": 2, "eval_texts": [str(eval_file)], "seeds": [1, 2]}
    command = ["tokenmill", "train", "--from", pack, "--store", store.url]
    for key, value in sets.items():
        command += ["--set", f"train.{key}={json.dumps(value)}"]
    done = subprocess.run([*command, "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    said = json.loads(done.stdout)
    assert set(said["seeds"]) == {"1", "2"} and said["train"] == said["seeds"]["1"]
    for seed, run_id in said["seeds"].items():
        assert store.manifest(run_id).params["seed"] == int(seed)
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    lines = [line for line in again.stdout.splitlines() if line.startswith("train ")]
    assert len(lines) == 2, again.stdout
    for line, seed in zip(lines, ["1", "2"]):
        assert line.startswith(f"train {said['seeds'][seed]} (seed {seed}) cached: bpb "), line
