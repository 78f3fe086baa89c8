"""The run registry: runs under runs/, linked to their data, compared by the settings that differ."""

from __future__ import annotations

import pytest

from tokenmill.corpus.dedup.step import DedupParams, run_dedup
from tokenmill.corpus.store.errors import InputError
from tokenmill.tokenize.pack import PackParams, run_pack
from tokenmill.tokenize.trainer import TokenizerParams, run_tokenizer
from tokenmill.train.loop import run_train
from tokenmill.train.params import TrainParams
from tokenmill.train.registry import compare_runs, list_runs

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
