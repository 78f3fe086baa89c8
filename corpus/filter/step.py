"""The filter step: an ordered list of named filters, signals kept apart from decisions.

Outline (after dolma's documents/attributes split):
1. each filter's signals over every input row are a version of their own, `signals-<hash>`,
   whose id hashes the input, the signal code version and only the settings the signals
   depend on; one Dask pass computes the ones not yet in the store, so a run that changes
   only thresholds finds them all and computes nothing;
2. the decision pass reads text and signal parts side by side, applies transforms (PII) in
   their place in the order, and drops each row at the first failing rule, as
   `filter:<filter>.<rule>`, keeping every signal as a typed column on kept and rejected rows;
   a filter that rewrites (C4's line cleaning) rewrites the rows it keeps, so a rejected row
   holds the text the filter that dropped it judged.
An input whose parts already carry a filter's signal columns with the same signal key (a
filter version filtered again) is read as is.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenmill.corpus.filter.lang import LANGUAGE, check_dependency
from tokenmill.corpus.filter.params import FilterParams
from tokenmill.corpus.filter.registry import FILTERS
from tokenmill.corpus.filter.signals import (
    SIGNALS_META,
    SignalPlan,
    apply_transforms,
    carried_keys,
    compute_signals,
    input_schema,
    signal_histograms,
    signal_plans,
)
from tokenmill.corpus.filter.spec import FilterSpec, TransformSpec, as_numpy
from tokenmill.corpus.store.parts import Batch
from tokenmill.corpus.store.schema import DOC_SCHEMA
from tokenmill.corpus.store.step import Version, VersionKey, cached_version, input_parts, read_batches, run_docs_step
from tokenmill.corpus.store.versions import Store

STEP = "filter"
# v2: the language filter's drop reason says what happened, `filter:language.not_kept` (was `.keep`).
# v3: each filter follows its paper (issue 20): C4 rewrites the pages it keeps to their retained lines,
# Gopher's '#' and ellipsis ratios apart, distinct stop words, every occurrence of a repeated n-gram,
# FineWeb's lines as its release code reads them, whole-word bad words in any script.
CODE_VERSION = "filter-v3"


def decide_batch(table: pa.Table, signals: dict[str, pa.Table], params: FilterParams, counters: Counter) -> Batch:
    """Transforms in place, then the first failing rule of each row; signal columns set on every row."""
    n = table.num_rows
    reasons = np.full(n, None, dtype=object)
    for name in params.filters:
        spec = FILTERS[name]
        if isinstance(spec, TransformSpec):
            table = apply_transforms(table, name, params, counters)
            continue
        sig = signals[name] if name in signals else table.select([f.name for f in spec.fields()])
        columns = {s.name: as_numpy(sig[spec.column(s.name)]) for s in spec.signals}
        for rule_name, fails in spec.decide(columns, getattr(params, name)):
            reasons[fails & (reasons == None)] = f"filter:{name}.{rule_name}"  # noqa: E711
        if spec.rewrite is not None and name in signals:  # carried signals: the input is rewritten already
            table = rewrite_kept(table, reasons == None, spec, getattr(params, name), counters)  # noqa: E711
        for field in spec.fields():
            table = set_column(table, field, sig[field.name])
    if "language" in params.filters:
        table = set_column(table, DOC_SCHEMA.field("lang"), table[LANGUAGE.column("lang")])
        table = set_column(table, DOC_SCHEMA.field("lang_score"), table[LANGUAGE.column("score")])
    dropped = pa.array(reasons != None)  # noqa: E711
    rejected = table.filter(dropped).append_column("reason", pa.array(reasons[reasons != None], pa.string()))  # noqa: E711
    chars = pc.utf8_length(rejected["text"]).to_numpy(zero_copy_only=False)
    for reason, size in zip(rejected["reason"].to_pylist(), chars):
        counters[f"chars_dropped.{reason}"] += int(size)
    return Batch(kept=table.filter(pc.invert(dropped)), rejected=rejected, counters=dict(counters))


def rewrite_kept(
    table: pa.Table, kept: np.ndarray, spec: FilterSpec, settings: Any, counters: Counter
) -> pa.Table:
    """The table with the `kept` rows' texts rewritten by `spec`, what it removed added to `counters`."""
    texts = table["text"].combine_chunks().cast(pa.large_string())
    mask = pa.array(kept)
    rewrite = spec.rewrite(texts.filter(mask), settings)
    counters.update(rewrite.counts)
    return set_column(table, DOC_SCHEMA.field("text"), pc.replace_with_mask(texts, mask, rewrite.texts))


def set_column(table: pa.Table, field: pa.Field, values: Any) -> pa.Table:
    values = values.cast(field.type) if hasattr(values, "cast") else pa.array(values, field.type)
    index = table.schema.get_field_index(field.name)
    if index < 0:
        return table.append_column(field, values)
    return table.set_column(index, field, values)


def decide_part(task: tuple[str, dict[str, str]], params: FilterParams) -> Iterator[Batch]:
    """Phase 2 partition function: an input part and, per filter, its signals part (read whole: a few numbers a row)."""
    url, signal_urls = task
    signals = {}
    for name, signal_url in signal_urls.items():
        with fsspec.open(signal_url, "rb") as f:
            signals[name] = pq.read_table(f)
    offset = 0
    for table in read_batches(url):
        batch_signals = {name: t.slice(offset, table.num_rows) for name, t in signals.items()}
        offset += table.num_rows
        yield decide_batch(table, batch_signals, params, Counter())


def output_schema(schema: pa.Schema, params: FilterParams, keys: dict[str, str]) -> pa.Schema:
    """The input's columns (signals of this run replaced) plus this run's signals, tagged with their keys."""
    fields = {f.name: f for f in schema.remove_metadata()}
    for name in params.filters:
        if isinstance(FILTERS[name], FilterSpec):
            fields.update({f.name: f for f in FILTERS[name].fields()})
    return pa.schema(list(fields.values()), metadata={SIGNALS_META: json.dumps(keys, sort_keys=True).encode()})


def check_filter(params: FilterParams) -> None:
    """Before any work: the language model's package is installed and list files are readable."""
    if "language" in params.filters:
        check_dependency()
    signal_plans(params)


class FilterPlan(NamedTuple):
    """What a filter run reads and computes, and the key of the version it makes."""

    plans: dict[str, SignalPlan]
    parts: list[str]
    schema: pa.Schema
    stored: dict[str, SignalPlan]  # the signals kept as versions of their own (not carried as columns)
    signal_vids: dict[str, str]
    key: VersionKey


def filter_plan(store: Store, params: FilterParams, input_version: str) -> FilterPlan:
    """The signals these settings need, which of them the input already carries as columns, and the
    version that follows: named by the settings, the input and the signal versions it reads."""
    plans = signal_plans(params)
    parts = input_parts(store, input_version)
    schema = input_schema(parts)
    carried = carried_keys(schema)
    stored = {name: plan for name, plan in plans.items() if carried.get(name) != plan.key}
    signal_vids = {name: plan.version(input_version).id for name, plan in stored.items()}
    key = VersionKey.of(STEP, CODE_VERSION, params, [input_version, *signal_vids.values()])
    return FilterPlan(plans, parts, schema, stored, signal_vids, key)


def version_key(store: Store, params: FilterParams, *, input_version: str) -> VersionKey:
    """The key of the filtered version of `input_version` (see `flows.steps`)."""
    return filter_plan(store, params, input_version).key


def run_filter(store: Store, params: FilterParams, client: Any, *, force: bool = False, input_version: str) -> Version:
    """Commit the filtered version of `input_version`, computing only the signals not yet stored."""
    check_filter(params)
    plans, parts, schema, stored, signal_vids, key = filter_plan(store, params, input_version)
    cached = cached_version(store, key, force)
    if cached:
        return cached
    missing = [plan for name, plan in stored.items() if force or not store.exists(signal_vids[name])]
    carried_names = frozenset(plans) - frozenset(stored)
    computed = compute_signals(store, client, input_version, params, missing, carried_names) if missing else {}
    signal_files = {name: store.files(vid) for name, vid in signal_vids.items()}
    tasks = [(url, {name: files[i] for name, files in signal_files.items()}) for i, url in enumerate(parts)]
    carried_parts = {name: parts for name in carried_names}
    extra = {
        "signals": {
            "computed_docs": {name: computed.get(name, 0) for name in plans},
            "versions": {name: signal_vids.get(name, "input columns") for name in plans},
            "readings": {name: plan.identity["settings"] for name, plan in plans.items()},
            "histograms": signal_histograms(store, client, signal_vids, carried_parts),
        }
    }
    kept_schema = output_schema(schema, params, {name: plan.key for name, plan in plans.items()})
    return run_docs_step(store, client, key, tasks, functools.partial(decide_part, params=params),
                         kept_schema=kept_schema, force=force, extra_stats=extra)
