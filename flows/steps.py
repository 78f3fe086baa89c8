"""The steps the pipeline knows: name, settings model, plain run function, and what it consumes.

A step's `run` takes `(store, params, client, force=..., **inputs)` where each input keyword
names the kind of version it reads (`input_version` a docs version, `tokenizer_version` …);
`preflight`, when given, checks the step's inputs before any flow starts; `version_id`, when
given, names the version a run would commit without doing the work, so a run whose versions
are all committed needs neither Prefect nor Dask. The three are `module:function` references,
imported on use: the settings models are light, the code behind them (numba, torch, datasketch,
scipy) takes seconds to import and most commands never run most steps. Adding a step is one
entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tokenmill.corpus.clean.step import CleanParams
from tokenmill.corpus.crawl.params import CrawlParams
from tokenmill.corpus.dedup.params import DedupParams
from tokenmill.corpus.filter.params import FilterParams
from tokenmill.corpus.ingest.load import LoadParams
from tokenmill.tokenize.pack import PackParams
from tokenmill.tokenize.trainer import TokenizerParams
from tokenmill.train.params import EvalParams, TrainParams


def function(reference: str) -> Callable[..., Any]:
    """The function a `module:name` reference names, its module imported now."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class StepSpec:
    name: str
    params: type[BaseModel]
    runner: str
    inputs: Mapping[str, str]
    produces: str
    summary: str
    preflight: str | None = None
    namer: str | None = None

    @property
    def module(self) -> str:
        """The module of the step's code (its runner's), which a process imports before running it."""
        return self.runner.partition(":")[0]

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return function(self.runner)(*args, **kwargs)

    def check(self, params: BaseModel) -> None:
        """The step's preflight on its settings, where it has one."""
        if self.preflight is not None:
            function(self.preflight)(params)

    def version_id(self, store: Any, params: BaseModel, **inputs: str) -> str | None:
        """The id a run would commit, when the step can name it before the work; None when it cannot.
        A namer gives the version's key, or the id its step recorded (a finished crawl), or None."""
        if self.namer is None:
            return None
        named = function(self.namer)(store, params, **inputs)
        return named if named is None or isinstance(named, str) else named.id


STEPS: dict[str, StepSpec] = {
    spec.name: spec
    for spec in [
        StepSpec(
            "load", LoadParams, "tokenmill.corpus.ingest.load:run_load", {}, "docs",
            "load local or fsspec files into a docs version", "tokenmill.corpus.ingest.load:check_paths",
            "tokenmill.corpus.ingest.load:version_key",
        ),
        StepSpec(
            "crawl", CrawlParams, "tokenmill.corpus.crawl.step:run_crawl", {}, "docs",
            "polite, bounded, resumable web crawl from seed URLs into a docs version",
            "tokenmill.corpus.crawl.step:check_crawl", "tokenmill.corpus.crawl.step:committed_id",
        ),
        StepSpec(
            "clean", CleanParams, "tokenmill.corpus.clean.step:run_clean", {"input_version": "docs"}, "docs",
            "ftfy, NFC, invisible characters, whitespace and C4 line rules",
            namer="tokenmill.corpus.clean.step:version_key",
        ),
        StepSpec(
            "dedup", DedupParams, "tokenmill.corpus.dedup.step:run_dedup", {"input_version": "docs"}, "docs",
            "exact and MinHash near-duplicate removal on Dask; one deterministic survivor per cluster",
            namer="tokenmill.corpus.dedup.params:version_key",
        ),
        StepSpec(
            "filter", FilterParams, "tokenmill.corpus.filter.step:run_filter", {"input_version": "docs"}, "docs",
            "ordered quality, language, PII and URL filters; every drop names its rule",
            "tokenmill.corpus.filter.step:check_filter", "tokenmill.corpus.filter.step:version_key",
        ),
        StepSpec(
            "tokenizer", TokenizerParams, "tokenmill.tokenize.trainer:run_tokenizer", {"input_version": "docs"},
            "tokenizer", "train a sentencepiece BPE tokenizer on a deterministic sample of a docs version",
            namer="tokenmill.tokenize.trainer:version_key",
        ),
        StepSpec(
            "pack", PackParams, "tokenmill.tokenize.pack:run_pack",
            {"input_version": "docs", "tokenizer_version": "tokenizer"}, "pack",
            "encode docs into token shards: train/val split, decontamination, seeded order",
            namer="tokenmill.tokenize.pack:version_key",
        ),
        StepSpec(
            "train", TrainParams, "tokenmill.train.loop:run_train",
            {"input_version": "pack", "tokenizer_version": "tokenizer"}, "run",
            "pretrain a Transformer (causal or masked objective) on the pack's shards; scored on the eval set",
            namer="tokenmill.train.keys:train_version_id",
        ),
        StepSpec(
            "eval", EvalParams, "tokenmill.train.eval_step:run_eval", {"run_version": "run"}, "eval",
            "re-score a committed run on an eval text set, its pack's val split and the downstream tasks",
            namer="tokenmill.train.keys:eval_version_id",
        ),
    ]
}

DEFAULT_PIPELINE = ["load", "clean", "dedup", "filter", "tokenizer", "pack", "train", "eval"]
