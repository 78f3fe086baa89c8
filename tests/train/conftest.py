"""A small real pack to train on: docs a tiny model learns by heart in a few hundred steps."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.store.versions import Store
from tokenmill.tokenize.pack import PackParams, run_pack
from tokenmill.tokenize.trainer import TokenizerParams, run_tokenizer
from tokenmill.train.loop import run_train
from tokenmill.train.params import TrainParams

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a stitch in time saves nine and a penny saved is a penny earned",
    "all that glitters is not gold but it shines in the morning light",
    "the early bird catches the worm while the night owl sleeps late",
]


def texts(n: int) -> list[dict]:
    """Docs built from four sentences: small enough for a tiny model to learn by heart."""
    return [{"text": f"{SENTENCES[i % 4]}.\n{SENTENCES[(i + 1) % 4]}.", "url": f"http://t/{i}"} for i in range(n)]


@pytest.fixture(scope="session")
def pack_sentences() -> list[str]:
    """The four sentences the small pack's docs are made of."""
    return list(SENTENCES)


def build_pack(store: Store, root: Path, client) -> tuple[str, str, Path]:
    """A load, tokenizer and pack version of the sentence docs in `store`, and an eval text file in `root`."""
    source = root / "docs.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in texts(60)))
    docs = run_load(store, LoadParams(paths=[str(source)], source_field="url"), client).id
    tok = run_tokenizer(store, TokenizerParams(vocab_size=300, heldout_fraction=0), client, input_version=docs).id
    pack = run_pack(store, PackParams(val_fraction=0.1), client, input_version=docs, tokenizer_version=tok).id
    eval_file = root / "eval.txt"
    eval_file.write_text(f"{SENTENCES[0]}.\n\n{SENTENCES[2]}.\n")
    return pack, tok, eval_file


@pytest.fixture(scope="module")
def make_pack(tmp_path_factory, client) -> Callable[[Store], tuple[str, str, Path]]:
    """Fills a store with a load, tokenizer and pack version; returns (pack, tokenizer, eval text file)."""
    return lambda store: build_pack(store, tmp_path_factory.mktemp("pack-inputs"), client)


@pytest.fixture(scope="session")
def demo_pack(tmp_path_factory, client) -> tuple[Store, str, str]:
    """A store with a pack of a slice of the demo text (the installed Python's docstrings), the
    same source as `tokenmill run`, small enough to train a tiny model on in seconds."""
    store = Store(str(tmp_path_factory.mktemp("demo") / "store"))
    docs = run_load(store, LoadParams(python_docs_max_mb=0.4), client).id
    tok = run_tokenizer(store, TokenizerParams(vocab_size=512, heldout_fraction=0), client, input_version=docs).id
    pack = run_pack(store, PackParams(val_fraction=0.05), client, input_version=docs, tokenizer_version=tok).id
    return store, pack, tok


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, client) -> tuple[Store, dict[str, str], Path]:
    """A causal and a masked tiny model trained on the four sentences of a small pack:
    (store, {objective: run id}, eval text file)."""
    store = Store(str(tmp_path_factory.mktemp("tiny-runs") / "store"))
    pack, tok, eval_file = build_pack(store, tmp_path_factory.mktemp("tiny-runs-inputs"), client)
    runs = {}
    for objective in ("causal", "masked"):
        settings = TrainParams(objective=objective, seq_len=64, batch_size=8, steps=100, lr=3e-3, warmup_steps=5,
                               eval_every=0, eval_texts=[str(eval_file)], cloze_min_words=5, progress=False,
                               cpu_threads=1)
        runs[objective] = run_train(store, settings, client, input_version=pack, tokenizer_version=tok).id
    return store, runs, eval_file
