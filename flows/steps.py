"""The steps the pipeline knows: name, settings model, plain run function, and what it consumes.

A step's `run` takes `(store, params, client, force=..., **inputs)` where each input keyword
names the kind of version it reads (`input_version` a docs version, `tokenizer_version` …);
`preflight`, when given, checks the step's inputs before any flow starts. Adding a step is
one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tokenmill.corpus.clean.step import CleanParams, run_clean
from tokenmill.corpus.crawl.step import CrawlParams, check_crawl, run_crawl
from tokenmill.corpus.dedup.step import DedupParams, run_dedup
from tokenmill.corpus.filter.step import FilterParams, check_filter, run_filter
from tokenmill.corpus.ingest.load import LoadParams, check_paths, run_load
from tokenmill.tokenize.pack import PackParams, run_pack
from tokenmill.tokenize.trainer import TokenizerParams, run_tokenizer
from tokenmill.train.params import EvalParams, TrainParams


@dataclass(frozen=True)
class StepSpec:
    name: str
    params: type[BaseModel]
    run: Callable[..., object]
    inputs: Mapping[str, str]
    produces: str
    summary: str
    preflight: Callable[[BaseModel], None] | None = None


def run_train(*args: Any, **kwargs: Any) -> object:
    """The train step, imported on use: torch takes seconds to import and most commands never train."""
    from tokenmill.train.loop import run_train as run

    return run(*args, **kwargs)


def run_eval(*args: Any, **kwargs: Any) -> object:
    """The eval step, imported on use (see `run_train`)."""
    from tokenmill.train.eval_step import run_eval as run

    return run(*args, **kwargs)


STEPS: dict[str, StepSpec] = {
    spec.name: spec
    for spec in [
        StepSpec(
            "load", LoadParams, run_load, {}, "docs", "load local or fsspec files into a docs version", check_paths
        ),
        StepSpec(
            "crawl", CrawlParams, run_crawl, {}, "docs",
            "polite, bounded, resumable web crawl from seed URLs into a docs version", check_crawl,
        ),
        StepSpec(
            "clean", CleanParams, run_clean, {"input_version": "docs"}, "docs",
            "ftfy, NFC, invisible characters, whitespace and C4 line rules",
        ),
        StepSpec(
            "dedup", DedupParams, run_dedup, {"input_version": "docs"}, "docs",
            "exact and MinHash near-duplicate removal on Dask; one deterministic survivor per cluster",
        ),
        StepSpec(
            "filter", FilterParams, run_filter, {"input_version": "docs"}, "docs",
            "ordered quality, language, PII and URL filters; every drop names its rule", check_filter,
        ),
        StepSpec(
            "tokenizer", TokenizerParams, run_tokenizer, {"input_version": "docs"}, "tokenizer",
            "train a sentencepiece BPE tokenizer on a deterministic sample of a docs version",
        ),
        StepSpec(
            "pack", PackParams, run_pack, {"input_version": "docs", "tokenizer_version": "tokenizer"}, "pack",
            "encode docs into token shards: train/val split, decontamination, seeded order",
        ),
        StepSpec(
            "train", TrainParams, run_train, {"input_version": "pack", "tokenizer_version": "tokenizer"}, "run",
            "pretrain a decoder-only Transformer on the pack's shards; scored in bits per byte at the end",
        ),
        StepSpec(
            "eval", EvalParams, run_eval, {"run_version": "run"}, "eval",
            "re-score a committed run: bits per byte and cloze on an eval text set, val loss on its pack",
        ),
    ]
}

DEFAULT_PIPELINE = ["load", "clean", "dedup", "filter", "tokenizer", "pack", "train", "eval"]
