"""The pack step: shards equal the encoding of their docs, a stable split, and 13-gram decontamination."""

from __future__ import annotations

import random
import re

import numpy as np
import pyarrow.feather as feather
import pyarrow.parquet as pq
import sentencepiece as spm

from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.tokenize.decontam import eval_ngrams, word_chars
from tokenmill.tokenize.pack import PackParams, encode_with_boundaries, run_pack
from tokenmill.tokenize.sampling import id_keys, id_units
from tokenmill.tokenize.shards import Shard, shard_paths
from tokenmill.tokenize.trainer import TokenizerParams, run_tokenizer

WORDS = "the data model token shard corpus train value batch python import class return über café 42".split()
EVAL = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
        "quebec romeo sierra tango")


def docs(start: int, stop: int) -> list[dict]:
    out = []
    for i in range(start, stop):
        rng = random.Random(i)
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 60)))
        more = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 9)))
        out.append({"text": f"{text}.\n\n  {more}\n", "url": f"http://example.org/{i}"})
    return out


def tokenizer(store, client, vid: str) -> str:
    return run_tokenizer(store, TokenizerParams(vocab_size=400, heldout_fraction=0), client, input_version=vid).id


def model(store, tok: str) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_proto=store.fs.cat(f"{store.version_dir(tok)}/tokenizer.model"))


def listing(store, vid: str):
    return feather.read_table(f"{store.version_dir(vid)}/shard_docs.arrow").to_pylist()


def test_shards_hold_the_encoded_docs(store, client, docs_version):
    vid = docs_version(docs(0, 120))
    tok = tokenizer(store, client, vid)
    version = run_pack(store, PackParams(val_fraction=0.2, shard_tokens=600), client,
                       input_version=vid, tokenizer_version=tok)
    sp = model(store, tok)
    texts = {r["id"]: r["text"] for r in store.read_docs(vid, ["id", "text"]).compute().to_dict("records")}
    rows = listing(store, version.id)
    stats = version.manifest.stats
    for split in ("train", "val"):
        paths = shard_paths(store, version.id, split)
        assert len(paths) == len(stats["shard_tokens"][split]) >= 1
        for number, path in enumerate(paths):
            shard = Shard(path)
            placed = sorted((r for r in rows if r["split"] == split and r["shard"] == number),
                            key=lambda r: r["position"])
            assert shard.header.n_docs == len(placed)
            assert shard.header.n_tokens == stats["shard_tokens"][split][number]
            for i, row in enumerate(placed):
                assert shard.document(i).tolist() == sp.encode(texts[row["id"]]) + [sp.eos_id()]
    assert stats["docs_train"] + stats["docs_val"] == stats["docs_out"] == 120
    assert stats["tokens_train"] + stats["tokens_val"] == stats["tokens"]
    assert stats["docs_val"] > 0
    in_input_order = [r["id"] for r in store.read_docs(vid, ["id"]).compute().to_dict("records")]
    assert [r["id"] for r in rows if r["split"] == "train"] != [i for i in in_input_order if i in
                                                               {r["id"] for r in rows if r["split"] == "train"}]
    assert run_pack(store, PackParams(val_fraction=0.2, shard_tokens=600), client,
                    input_version=vid, tokenizer_version=tok).cached


def test_split_is_stable_across_versions(store, client, write_jsonl, tmp_path):
    shared_file = write_jsonl(tmp_path / "shared.jsonl", docs(0, 40))
    paths = [[shared_file, write_jsonl(tmp_path / "a.jsonl", docs(40, 80))],
             [write_jsonl(tmp_path / "b.jsonl", docs(80, 120)), shared_file]]
    first, second = (run_load(store, LoadParams(paths=[str(p) for p in group]), client).id for group in paths)
    tok = tokenizer(store, client, first)
    params = PackParams(val_fraction=0.3, boundary="bos")
    packs = [run_pack(store, params, client, input_version=v, tokenizer_version=tok) for v in (first, second)]
    splits = [{r["id"]: r["split"] for r in listing(store, p.id)} for p in packs]
    shared = splits[0].keys() & splits[1].keys()
    assert len(shared) == 40
    assert {i for i in shared if splits[0][i] == "val"} == {i for i in shared if splits[1][i] == "val"}
    assert any(splits[0][i] == "val" for i in shared)
    shard = Shard(shard_paths(store, packs[0].id, "train")[0])
    assert shard.header.boundary == "bos" and shard.document(0)[0] == 1


def test_batch_encoding_places_boundaries_and_newlines_as_per_doc_encoding(store, client, docs_version):
    tok = tokenizer(store, client, docs_version(docs(0, 60)))
    sp, newline = model(store, tok), model(store, tok).piece_to_id("\n")
    texts = ["über café 42\ntoken shard", "", "\n", "data", "\n\nthe model\n"]
    for boundary, marker, newline_id in (("eos", 2, newline), ("bos", 1, newline), ("eos", 2, None)):
        flat, lengths, empty = encode_with_boundaries(sp, texts, newline_id, 1, boundary, "<u2")
        expected = [sp.encode(t) for t in texts if sp.encode(t)]
        assert empty.tolist() == [False, True, False, False, False]
        docs_out = np.split(flat, np.cumsum(lengths)[:-1])
        assert [d.tolist() for d in docs_out] == [e + [marker] if boundary == "eos" else [marker] + e for e in expected]


def test_word_characters_are_those_of_python_regex_word():
    flags = word_chars()
    sample = [*range(0, 0x3000, 7), *range(0x3000, 0x110000, 997), ord("_"), ord("İ"), ord("²"), ord("́")]
    assert [bool(flags[c]) for c in sample] == [re.fullmatch(r"\w", chr(c)) is not None for c in sample]


def test_ngram_overlap_helper_checks_each_doc_of_a_batch_apart():
    eval_set = eval_ngrams([EVAL], 13)
    words = EVAL.split()
    batch = [
        "Prefix " + " ".join(words[3:16]).upper() + ", suffix",  # a 13-gram, case and punctuation aside
        "prefix " + " ".join(words[3:15]) + " suffix",  # only 12 words in a row
        None,
        " ".join(words[:7]),  # with the next doc, 13 words in a row: not an overlap
        " ".join(words[7:13]),
        "x " + " ".join(words[:13]),
    ]
    assert eval_set.overlapping_docs(batch).tolist() == [True, False, False, False, False, True]


def test_decontamination_drops_13_gram_keeps_12_gram(store, client, docs_version, tmp_path):
    words = EVAL.split()
    contaminated = {"text": "intro " + " ".join(words[2:15]) + " outro", "url": "http://example.org/dirty"}
    near = {"text": "intro " + " ".join(words[2:14]) + " outro", "url": "http://example.org/near"}
    vid = docs_version(docs(0, 60) + [contaminated, near])
    tok = tokenizer(store, client, vid)
    eval_file = tmp_path / "eval.txt"
    eval_file.write_text(EVAL)
    version = run_pack(store, PackParams(decontaminate=[str(eval_file)], val_fraction=0), client,
                       input_version=vid, tokenizer_version=tok)
    kept_ids = {r["id"] for r in listing(store, version.id)}
    rejected = pq.read_table(store.files(version.id, "rejected")).to_pylist()
    assert [(r["source"], r["reason"]) for r in rejected] == [("http://example.org/dirty", "pack:decontaminated")]
    assert len(kept_ids) == 61 and rejected[0]["id"] not in kept_ids
    stats = version.manifest.stats
    assert stats["docs_decontaminated"] == 1
    assert stats["docs_in"] == stats["docs_out"] + stats["docs_rejected"] == 62


def test_order_split_and_shards_follow_their_definition(store, client, write_jsonl, tmp_path):
    """The documented order (tokenize/shard_order.py), computed here from the ids alone: split by
    the lowest split units within the val budget, ascending order key, a shard per rank of
    `start // shard_tokens`; over several input parts and several merge ranges."""
    files = [write_jsonl(tmp_path / f"{k}.jsonl", docs(40 * k, 40 * k + 40)) for k in range(4)]
    vid = run_load(store, LoadParams(paths=[str(f) for f in files]), client).id
    tok = tokenizer(store, client, vid)
    params = PackParams(val_fraction=0.3, val_max_tokens=800, shard_tokens=300, seed=5, decontaminate=[])
    rows = listing(store, run_pack(store, params, client, input_version=vid, tokenizer_version=tok).id)
    tokens = {r["id"]: r["tokens"] for r in rows}
    ids = sorted(tokens)
    units = dict(zip(ids, id_units(ids, "pack-split")))
    cheapest = sorted((i for i in ids if units[i] < 0.3), key=units.get)
    val = {i for i, total in zip(cheapest, np.cumsum([tokens[i] for i in cheapest])) if total <= 800}
    assert 0 < len(val) < len(cheapest)
    keys = dict(zip(ids, id_keys(ids, "pack-order-5")))
    for split, members in (("train", [i for i in ids if i not in val]), ("val", sorted(val))):
        ordered = sorted(members, key=keys.get)
        lengths = np.array([tokens[i] for i in ordered])
        starts = np.cumsum(lengths) - lengths
        _, shard = np.unique(starts // 300, return_inverse=True)
        position = [int(np.sum(shard[:k] == shard[k])) for k in range(len(shard))]
        expected = [{"split": split, "shard": int(s), "position": p, "id": i, "tokens": int(n)}
                    for i, s, p, n in zip(ordered, shard, position, lengths)]
        assert [r for r in rows if r["split"] == split] == expected
    assert max(r["shard"] for r in rows if r["split"] == "train") >= 5
