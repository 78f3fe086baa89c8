"""A record's own id is the doc id from load through dedup and pack to the report."""

from __future__ import annotations

import random

import pyarrow.feather as feather

from tokenmill.corpus.dedup.step import DedupParams, run_dedup
from tokenmill.flows.report.html import build_report
from tokenmill.tokenize.pack import PackParams, run_pack
from tokenmill.tokenize.trainer import TokenizerParams, run_tokenizer

WORDS = "the data model token shard corpus train value batch python import class return".split()


def records() -> list[dict]:
    out = []
    for i in range(60):
        rng = random.Random(i)
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 80)))
        out.append({"id": f"rp-{i:04d}", "text": text, "url": f"http://example.org/{i}"})
    out.append({"id": "rp-copy", "text": out[7]["text"], "url": "http://mirror.example.org/7"})
    return out


def test_input_ids_survive_dedup_pack_and_report(store, client, docs_version):
    loaded = docs_version(records())
    assert set(store.read_docs(loaded, ["id"]).compute()["id"]) == {r["id"] for r in records()}
    dedup = run_dedup(store, DedupParams(), client, input_version=loaded)
    rejected = store.read_docs(dedup.id, ["id", "duplicate_of"], kind="rejected").compute()
    assert rejected.to_dict("records") == [{"id": "rp-copy", "duplicate_of": "rp-0007"}]
    tokenizer = run_tokenizer(store, TokenizerParams(vocab_size=300, heldout_fraction=0), client,
                              input_version=dedup.id)
    pack = run_pack(store, PackParams(val_fraction=0.1, decontaminate=[]), client, input_version=dedup.id,
                    tokenizer_version=tokenizer.id)
    listed = feather.read_table(f"{store.version_dir(pack.id)}/shard_docs.arrow")["id"].to_pylist()
    assert sorted(listed) == sorted(f"rp-{i:04d}" for i in range(60))
    assert "rp-0007" in build_report(store, dedup.id)
