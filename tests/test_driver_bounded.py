"""The driver holds partition-level results only: what any task returns to it does not grow with
the documents in a part. Every result the client gathers is measured (its pickled size) while
each step runs on a corpus, then on one with four times the docs per part."""

from __future__ import annotations

import json
import pickle
import random
from collections import defaultdict
from pathlib import Path

import pytest
from distributed import Client

from tokenmill.corpus.clean.step import CleanParams, run_clean
from tokenmill.corpus.dedup.step import DedupParams, run_dedup
from tokenmill.corpus.filter.params import FilterParams
from tokenmill.corpus.filter.step import run_filter
from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.store.versions import Store
from tokenmill.tokenize.pack import PackParams, run_pack
from tokenmill.tokenize.trainer import TokenizerParams, run_tokenizer

pytestmark = pytest.mark.slow
PARTS = 8
WORDS = ("river stone engine garden window market letter shadow silver morning harbour signal winter "
         "orchard lantern meadow").split()


def write_parts(folder: Path, docs_per_part: int) -> list[str]:
    """`PARTS` JSONL files of short docs on many hosts, a few exact and near copies among them."""
    rng = random.Random(docs_per_part)
    folder.mkdir()
    paths = []
    for p in range(PARTS):
        lines = []
        for n in range(docs_per_part):
            sentences = [" ".join(rng.choices(WORDS, k=rng.randint(8, 16))).capitalize() + "."
                         for _ in range(rng.randint(3, 8))]
            text = " ".join(sentences) if n % 25 else lines[-1]["text"] if lines else " ".join(sentences)
            lines.append({"id": f"p{p}-{n}", "text": text, "url": f"https://host{rng.randrange(5000)}.example/{n}"})
        path = folder / f"part-{p}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        paths.append(str(path))
    return paths


@pytest.fixture
def gathered(monkeypatch):
    """{step: largest result gathered to the driver} while `current[0]` names the step running."""
    largest: dict[str, int] = defaultdict(int)
    current = ["setup"]
    original = Client._gather

    async def measuring(self, futures, *args, **kwargs):
        result = await original(self, futures, *args, **kwargs)
        leaves = result if isinstance(result, (list, tuple)) else [result]
        for leaf in leaves:
            largest[current[0]] = max(largest[current[0]], len(pickle.dumps(leaf, protocol=5)))
        return result

    monkeypatch.setattr(Client, "_gather", measuring)
    return largest, current


def run_all(store: Store, client, paths: list[str], current: list[str]) -> None:
    steps = [
        ("load", lambda v: run_load(store, LoadParams(paths=paths, source_field="url"), client)),
        ("clean", lambda v: run_clean(store, CleanParams(), client, input_version=v)),
        ("dedup", lambda v: run_dedup(store, DedupParams(), client, input_version=v)),
        ("filter", lambda v: run_filter(store, FilterParams(filters=["length", "gopher_repetition"]), client,
                                        input_version=v)),
    ]
    version = None
    for name, call in steps:
        current[0] = name
        version = call(version).id
    current[0] = "tokenizer"
    small_sample = TokenizerParams(vocab_size=300, sample_max_chars=30_000, heldout_max_chars=2_000)
    tokenizer = run_tokenizer(store, small_sample, client, input_version=version).id
    current[0] = "pack"
    run_pack(store, PackParams(decontaminate=[], val_max_tokens=500), client, input_version=version,
             tokenizer_version=tokenizer)


def test_no_task_returns_per_document_state(tmp_path, client, gathered):
    largest, current = gathered
    sizes = {}
    for docs_per_part in (250, 1000):
        largest.clear()
        paths = write_parts(tmp_path / f"in-{docs_per_part}", docs_per_part)
        run_all(Store(str(tmp_path / f"store-{docs_per_part}")), client, paths, current)
        sizes[docs_per_part] = dict(largest)
    for step in ("load", "clean", "dedup", "filter", "tokenizer", "pack"):
        small, large = sizes[250][step], sizes[1000][step]
        assert large <= 1.5 * small + 4096, f"{step}: a task returned {large} bytes at 4x the docs, {small} before"
