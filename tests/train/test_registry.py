"""The run registry: runs under runs/, linked to their data, compared by the settings that differ."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tokenmill.corpus.dedup.step import DedupParams, run_dedup
from tokenmill.corpus.store.errors import InputError
from tokenmill.flows.cli import app
from tokenmill.flows.steps import STEPS
from tokenmill.tokenize.pack import PackParams, run_pack
from tokenmill.tokenize.trainer import TokenizerParams, run_tokenizer
from tokenmill.train.eval_step import run_eval
from tokenmill.train.loop import run_train
from tokenmill.train.params import EvalParams, TaskSpec, TrainParams
from tokenmill.train.registry import compare_runs, list_runs, seed_siblings

WORDS = "the cat dog sat ran on a mat log and then slept by fire".split()


def texts(n: int) -> list[dict]:
    return [{"text": " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 25)) + f" {i}.", "url": f"http://r/{i}"}
            for i in range(n)]


def test_runs_link_data_versions_and_compare_names_the_dedup_setting(store, client, docs_version, tmp_path):
    docs = docs_version(texts(40))
    deduped = [run_dedup(store, DedupParams(minhash=False, exact_strip_punctuation=strip), client,
                         input_version=docs).id for strip in (True, False)]
    tok = run_tokenizer(store, TokenizerParams(vocab_size=300, heldout_fraction=0), client, input_version=deduped[0]).id
    packs = [run_pack(store, PackParams(val_fraction=0.1), client, input_version=d, tokenizer_version=tok).id
             for d in deduped]
    eval_file = tmp_path / "eval.txt"
    eval_file.write_text(texts(1)[0]["text"])
    settings = TrainParams(seq_len=16, batch_size=4, steps=3, eval_every=0, eval_texts=[str(eval_file)],
                           progress=False, cpu_threads=1)
    runs = [run_train(store, settings, client, input_version=p, tokenizer_version=tok).id for p in packs]

    assert all(store.version_dir(r).startswith(f"{store.root}/runs/") for r in runs)
    assert store.version_dir(docs).startswith(f"{store.root}/load/")
    assert {m.id for m in store.versions("train")} == set(runs)
    assert set(runs) <= {m.id for m in store.versions()}

    listed = {row["run"]: row for row in list_runs(store)}
    assert set(listed) == set(runs)
    for run, pack, data in zip(runs, packs, deduped):
        row = listed[run]
        assert (row["data_version"], row["pack_version"], row["tokenizer_version"]) == (data, pack, tok)
        assert row["bpb"] > 0 and row["model_config"]["d_model"] == 64 and row["tokens"] == 3 * 4 * 16

    compared = compare_runs(store, runs)
    assert [row["run"] for row in compared["runs"]] == runs
    differing = {(d["step"], d["setting"]) for d in compared["data_differences"]}
    assert differing == {("dedup", "exact_strip_punctuation")}
    assert compared["data_differences"][0]["values"] == dict(zip(runs, (True, False)))
    assert compared["train_differences"] == []
    with pytest.raises(InputError, match="not a training run"):
        compare_runs(store, [runs[0], docs])


def copy_items(n: int, flip: bool = False) -> list[dict]:
    """Two-way items whose right answer repeats the context's last word; `flip` makes another file of the task."""
    words = "fox dog bird worm owl light gold time".split()
    return [{"context": f"the {words[i % 8]} and the {words[(i + 1) % 8]}",
             "choices": [f" {words[(i + 1) % 8]}", f" {words[(i + 3) % 8]}"], "gold": int(flip and i == 0)}
            for i in range(n)]


def test_compare_shows_downstream_scores_with_their_spread_over_seeds_and_not_across_task_files(
        tiny_runs, client, tmp_path):
    store, runs, eval_file = tiny_runs
    pack, tok = store.manifest(runs["causal"]).inputs[:2]
    base = {"seq_len": 32, "batch_size": 4, "steps": 3, "eval_every": 0, "eval_texts": [str(eval_file)],
            "cloze_min_words": 5, "progress": False, "cpu_threads": 1}
    first = run_train(store, TrainParams(**base, seeds=[1, 2]), client, input_version=pack, tokenizer_version=tok)
    assert first.manifest.params["seed"] == 1
    (second,) = seed_siblings(store, first.id, [1, 2])
    assert store.manifest(second).params["seed"] == 2
    other = run_train(store, TrainParams(**base, lr=3e-3), client, input_version=pack, tokenizer_version=tok).id
    files = []
    for name, flip in (("a", False), ("b", True)):
        (tmp_path / name).mkdir()
        files.append(tmp_path / name / "copy.jsonl")
        files[-1].write_text("".join(json.dumps(item) + "\n" for item in copy_items(12, flip)))
    scored = {}
    for run, path in ((first.id, files[0]), (second, files[0]), (other, files[1])):
        task = TaskSpec(path=str(path), kind="multiple_choice")
        params = EvalParams(eval_texts=[str(eval_file)], cloze_min_words=5, cpu_threads=1, tasks=[task])
        scored[run] = (params, run_eval(store, params, client, run_version=run).id)

    # named before any work, so a cached `tokenmill run` needs neither Prefect nor torch
    train_id = STEPS["train"].version_id
    assert train_id(store, TrainParams(**base, seeds=[1, 2]), input_version=pack, tokenizer_version=tok) == first.id
    assert train_id(store, TrainParams(**base, seeds=[1, 3]), input_version=pack, tokenizer_version=tok) is None
    assert train_id(store, TrainParams(**base, lr=3e-3), input_version=pack, tokenizer_version=tok) == other
    for run, (params, eval_version) in scored.items():
        assert STEPS["eval"].version_id(store, params, run_version=run) == eval_version
    lone = EvalParams(eval_texts=[str(eval_file)], cloze_min_words=6, cpu_threads=1)
    run_eval(store, lone, client, run_version=first.id)
    assert STEPS["eval"].version_id(store, lone, run_version=first.id) is None  # seed 2's run not scored so

    compared = compare_runs(store, [first.id, other])
    mine, theirs = compared["runs"]
    assert mine["seeds"] == [1, 2] and theirs["seeds"] == [0]
    assert mine["spread"]["bpb"]["n"] == 2 and mine["spread"]["copy.accuracy"]["n"] == 2
    assert theirs["spread"]["copy.accuracy"]["n"] == 1
    assert compared["mismatches"] == [{"what": "task copy", "differ": "files",
                                       "values": {first.id: mine["downstream"]["copy"]["sha256"],
                                                  other: theirs["downstream"]["copy"]["sha256"]}}]
    lines = [line for line in compared["tasks"] if line["score"] == "accuracy"]
    assert len(lines) == 2 and all(line["several"] for line in lines)
    assert [sum(v is not None for v in line["values"].values()) for line in lines] == [1, 1]
    wide = {"COLUMNS": "400"}  # rich reads the width from the environment; a table too narrow cuts its cells
    shown = CliRunner().invoke(app, ["compare", first.id, other, "--store", store.root], env=wide)
    assert shown.exit_code == 0, shown.output
    assert "not compared: task copy scored on different files" in shown.output
    assert "not on this file" in shown.output and "2 seeds" in shown.output
    listed = {row["run"]: row for row in list_runs(store)}
    assert listed[second]["seeds"] == [1, 2] and listed[second]["spread"]["copy.accuracy"]["n"] == 2
    shown = CliRunner().invoke(app, ["runs", "--store", store.root], env=wide)
    assert shown.exit_code == 0 and "over 2 seeds" in shown.output, shown.output

    # the same file, scored another way (each choice's summed log-likelihood): still not one line
    task = TaskSpec(path=str(files[0]), kind="multiple_choice", normalize="none")
    run_eval(store, EvalParams(eval_texts=[str(eval_file)], cloze_min_words=5, cpu_threads=1, tasks=[task]),
             client, run_version=other)
    again = compare_runs(store, [first.id, other])
    assert [(m["what"], m["differ"]) for m in again["mismatches"]] == [("task copy", "settings")]
    assert len([line for line in again["tasks"] if line["score"] == "accuracy"]) == 2
