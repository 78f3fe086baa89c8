"""Filter throughput with every default filter: the first run (signals computed) and a
threshold-only rerun (signals reused), on real text (the installed Python's docstrings);
then each filter's signals alone, in this process, over the first parts (where the time goes)."""

from __future__ import annotations

import pathlib
import sys
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.corpus.filter.params import FilterParams
from tokenmill.corpus.filter.registry import FILTERS
from tokenmill.corpus.filter.spec import TextBatch, TransformSpec
from tokenmill.corpus.filter.step import run_filter
from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.store.step import read_batches
from tokenmill.corpus.store.versions import Store

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from bench_clean import result_row, write_corpus  # noqa: E402  the same real-text corpus as the clean bench


def timed_row(store: Store, client: Any, case: str, params: FilterParams, input_version: str) -> dict:
    start = time.perf_counter()
    version = run_filter(store, params, client, input_version=input_version)
    wall = time.perf_counter() - start
    stats = store.read_json(version.id, "stats.json")
    row = result_row("filter", case, stats, wall, client)
    row["docs_out"] = stats["docs_out"]
    row["signals_computed"] = sum(stats["signals"]["computed_docs"].values())
    return row


def bench(size_mb: float, workdir: pathlib.Path, client: Any) -> list[dict]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "filter-input.jsonl"
    write_corpus(path, size_mb, mojibake_every=0)
    store = Store(str(workdir / "store"))
    loaded = run_load(store, LoadParams(paths=[str(path)], chunk_mb=max(size_mb / 8, 1)), client)
    defaults = FilterParams()
    stricter = FilterParams(gopher_quality={"min_words": 100})
    return [
        timed_row(store, client, "all defaults, signals computed", defaults, loaded.id),
        timed_row(store, client, "threshold change, signals reused", stricter, loaded.id),
        *per_filter_rows(store.files(loaded.id, "kept"), defaults),
    ]


def per_filter_rows(parts: list[str], params: FilterParams, max_mb: float = 10) -> list[dict]:
    """Each default filter's signal computation alone, one process, on the first `max_mb` of the input,
    in the step's batches; one batch goes through untimed first (imports, the language model)."""
    batches: list[pa.Table] = []
    for url in parts:
        batches += read_batches(url, columns=["text", "source"])
        if sum(text_bytes(t) for t in batches) >= max_mb * 2**20:
            break
    seconds = dict.fromkeys(params.filters, 0.0)
    for timed, tables in ((False, batches[:1]), (True, batches)):
        for table in tables:
            batch = TextBatch(table)
            for name in params.filters:
                spec, settings = FILTERS[name], getattr(params, name)
                start = time.perf_counter()
                if isinstance(spec, TransformSpec):
                    texts = spec.apply(batch.texts, settings)[0]
                    batch = TextBatch(table.set_column(table.schema.get_field_index("text"), "text", texts))
                else:
                    batch = spec.signals_of(batch, settings)[1]
                if timed:
                    seconds[name] += time.perf_counter() - start
    mb = sum(text_bytes(t) for t in batches) / 2**20
    rows = [one_process_row(f"{name} signals, one process", mb, wall) for name, wall in seconds.items()]
    return rows + [one_process_row("all filters' signals, one process", mb, sum(seconds.values()))]


def text_bytes(table: pa.Table) -> int:
    return int(pc.sum(pc.binary_length(table["text"])).as_py() or 0)


def one_process_row(case: str, mb: float, wall: float) -> dict:
    return {
        "step": "filter",
        "case": case,
        "mb": round(mb, 2),
        "wall_s": round(wall, 3),
        "mb_per_s": round(mb / wall, 2),
        "workers": 1,
        "mb_per_s_per_worker": round(mb / wall, 2),
    }
