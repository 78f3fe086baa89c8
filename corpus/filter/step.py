"""The filter step: an ordered list of named filters, signals kept apart from decisions.

Outline (after dolma's documents/attributes split):
1. each filter's signals over every input row are a version of their own, `signals-<hash>`,
   whose id hashes the input, the signal code version and only the settings the signals
   depend on, so a run that changes only thresholds finds them all and computes nothing;
2. the decision pass reads text and signal parts side by side, applies transforms (PII) in
   their place in the order, and drops each row at the first failing rule, as
   `filter:<filter>.<rule>`, keeping every signal as a typed column on kept and rejected rows;
   a filter that rewrites (C4's line cleaning) rewrites the rows it keeps, so a rejected row
   holds the text the filter that dropped it judged.
When signals are missing (a first run), one Dask pass does both per part: the signals not yet
stored are computed and written, and each batch decided at once (`computing_part`).
An input whose parts already carry a filter's signal columns with the same signal key (a
filter version filtered again) is read as is.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
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
    SignalParts,
    SignalPlan,
    apply_transforms,
    batch_signals,
    begin_signals,
    carried_keys,
    commit_signals,
    input_schema,
    signal_histograms,
    signal_plans,
)
from tokenmill.corpus.filter.spec import FilterSpec, Rewrite, TransformSpec, as_numpy
from tokenmill.corpus.store.parts import Batch, PartResult, write_part
from tokenmill.corpus.store.progress import track
from tokenmill.corpus.store.schema import DOC_SCHEMA, rejected_schema
from tokenmill.corpus.store.stats import DocStats
from tokenmill.corpus.store.step import (
    Version,
    VersionKey,
    Written,
    cached_version,
    check_inputs,
    commit_written,
    input_parts,
    read_batches,
    run_docs_step,
)
from tokenmill.corpus.store.versions import Store

STEP = "filter"
# v2: the language filter's drop reason says what happened, `filter:language.not_kept` (was `.keep`).
# v3: each filter follows its paper (issue 20): C4 rewrites the pages it keeps to their retained lines,
# Gopher's '#' and ellipsis ratios apart, distinct stop words, every occurrence of a repeated n-gram,
# FineWeb's lines as its release code reads them, whole-word bad words in any script.
CODE_VERSION = "filter-v3"


def decide_batch(
    table: pa.Table, signals: dict[str, pa.Table], params: FilterParams, counters: Counter,
    rewrites: Mapping[str, Rewrite] | None = None,
) -> Batch:
    """Transforms in place, then the first failing rule of each row; signal columns set on every row.
    `rewrites`: rewrites of every row made while computing the signals, used for the kept rows as they are."""
    n = table.num_rows
    reasons = np.full(n, None, dtype=object)
    added: dict[str, tuple[pa.Field, Any]] = {}
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
            done = (rewrites or {}).get(name)
            table = rewrite_kept(table, reasons == None, spec, getattr(params, name), counters, done)  # noqa: E711
        added.update({field.name: (field, sig[field.name]) for field in spec.fields()})
    if "language" in params.filters:
        added["lang"] = (DOC_SCHEMA.field("lang"), added[LANGUAGE.column("lang")][1])
        added["lang_score"] = (DOC_SCHEMA.field("lang_score"), added[LANGUAGE.column("score")][1])
    table = with_columns(table, added.values())
    dropped = reasons != None  # noqa: E711
    rejected = table.filter(pa.array(dropped)).append_column("reason", pa.array(reasons[dropped], pa.string()))
    chars = pc.utf8_length(rejected["text"]).to_numpy(zero_copy_only=False)
    for reason in dict.fromkeys(reasons[dropped]):
        counters[f"chars_dropped.{reason}"] += int(chars[reasons[dropped] == reason].sum())
    return Batch(kept=table.filter(pa.array(~dropped)), rejected=rejected, counters=dict(counters))


def rewrite_kept(
    table: pa.Table, kept: np.ndarray, spec: FilterSpec, settings: Any, counters: Counter, done: Rewrite | None = None
) -> pa.Table:
    """The table with the `kept` rows' texts rewritten by `spec` (or taken from `done`, a rewrite of every row),
    what it removed from them added to `counters`."""
    texts = table["text"].combine_chunks().cast(pa.large_string())
    mask = pa.array(kept)
    if done is None:
        rewrite = spec.rewrite(texts.filter(mask), settings)
        counters.update(rewrite.totals())
        new_texts = rewrite.texts
    else:
        counters.update(done.totals(kept))
        new_texts = done.texts.filter(mask)
    return set_column(table, DOC_SCHEMA.field("text"), pc.replace_with_mask(texts, mask, new_texts))


def with_columns(table: pa.Table, columns: Iterable[tuple[pa.Field, Any]]) -> pa.Table:
    """`table` with each (field, values) set in place, or appended where it has no such column, built once:
    one `set_column` per signal column rebuilt the table 50 times a batch."""
    fields, arrays = list(table.schema), list(table.columns)
    index = {field.name: i for i, field in enumerate(fields)}
    for field, values in columns:
        values = values.cast(field.type)
        if field.name in index:
            fields[index[field.name]], arrays[index[field.name]] = field, values
        else:
            index[field.name] = len(fields)
            fields.append(field)
            arrays.append(values)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=table.schema.metadata))


def set_column(table: pa.Table, field: pa.Field, values: Any) -> pa.Table:
    values = values.cast(field.type) if hasattr(values, "cast") else pa.array(values, field.type)
    index = table.schema.get_field_index(field.name)
    if index < 0:
        return table.append_column(field, values)
    return table.set_column(index, field, values)


def decide_part(task: tuple[str, dict[str, str]], params: FilterParams) -> Iterator[Batch]:
    """Phase 2 partition function: an input part and, per filter, its signals part (read whole: a few numbers a row)."""
    url, signal_urls = task
    signals = read_signals(signal_urls)
    offset = 0
    for table in read_batches(url):
        batch_signals = {name: t.slice(offset, table.num_rows) for name, t in signals.items()}
        offset += table.num_rows
        yield decide_batch(table, batch_signals, params, Counter())


def read_signals(signal_urls: Mapping[str, str]) -> dict[str, pa.Table]:
    signals = {}
    for name, signal_url in signal_urls.items():
        with fsspec.open(signal_url, "rb") as f:
            signals[name] = pq.read_table(f)
    return signals


def computing_part(
    index: int, task: tuple[str, dict[str, str]], outputs: dict[str, str], params: FilterParams,
    carried: frozenset[str], out_url: str, kept_schema: pa.Schema,
) -> tuple[PartResult, dict[str, Any]]:
    """Both phases on one part in one read: the signals in `outputs` computed and written (`SignalParts`),
    the stored ones read, each batch decided at once with the rewrites its signals made; returns the
    part's kept and rejected files and its signals files."""
    url, signal_urls = task
    stored = read_signals(signal_urls)
    parts = SignalParts(index, outputs)

    def batches() -> Iterator[Batch]:
        offset = 0
        for table in read_batches(url):
            computed, rewrites = batch_signals(table, params, outputs, carried)
            parts.write(computed)
            signals = {name: t.slice(offset, table.num_rows) for name, t in stored.items()} | computed
            offset += table.num_rows
            yield decide_batch(table, signals, params, Counter(), rewrites)

    result = write_part(out_url, index, batches(), kept_schema, rejected_schema(kept_schema))
    return result, parts.close()


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
    plan = filter_plan(store, params, input_version)
    cached = cached_version(store, plan.key, force)
    if cached:
        return cached
    missing = [signals for name, signals in plan.stored.items() if force or not store.exists(plan.signal_vids[name])]
    if missing:
        return compute_and_decide(store, client, params, plan, missing, input_version, force)
    signal_files = {name: store.files(vid) for name, vid in plan.signal_vids.items()}
    tasks = [(url, {name: files[i] for name, files in signal_files.items()}) for i, url in enumerate(plan.parts)]
    return run_docs_step(store, client, plan.key, tasks, functools.partial(decide_part, params=params),
                         kept_schema=kept_schema(plan, params), force=force,
                         extra_stats=signal_stats(store, client, plan))


def kept_schema(plan: FilterPlan, params: FilterParams) -> pa.Schema:
    return output_schema(plan.schema, params, {name: signals.key for name, signals in plan.plans.items()})


def signal_stats(store: Store, client: Any, plan: FilterPlan, computed: Mapping[str, int] | None = None) -> dict:
    """The stats' `signals` section: docs computed, the versions read, the readings, the histograms."""
    carried = {name: plan.parts for name in frozenset(plan.plans) - frozenset(plan.stored)}
    return {"signals": {
        "computed_docs": {name: (computed or {}).get(name, 0) for name in plan.plans},
        "versions": {name: plan.signal_vids.get(name, "input columns") for name in plan.plans},
        "readings": {name: signals.identity["settings"] for name, signals in plan.plans.items()},
        "histograms": signal_histograms(store, client, plan.signal_vids, carried),
    }}


def compute_and_decide(store: Store, client: Any, params: FilterParams, plan: FilterPlan, missing: list[SignalPlan],
                       input_version: str, force: bool) -> Version:
    """Both phases in one Dask pass when signals are missing (a first run): each part is read once, its
    C4 rewrite made once, no signals file read back. The outline of `commit_version`, with the signals
    versions committed before the filter version, which names them among its inputs."""
    check_inputs(store, [input_version])
    missing_names = {signals.name for signals in missing}
    stored_files = {name: store.files(vid) for name, vid in plan.signal_vids.items() if name not in missing_names}
    signal_attempts = begin_signals(store, input_version, missing)
    attempt = store.begin(STEP, plan.key.id)
    attempts = [attempt, *signal_attempts.values()]
    if not force and store.exists(plan.key.id):  # another writer held the lock and committed it meanwhile
        for each in attempts:
            each.abort()
        return Version(store.manifest(plan.key.id), cached=True)
    try:
        outputs = {name: signal_attempt.uri for name, signal_attempt in signal_attempts.items()}
        carried = frozenset(plan.plans) - frozenset(plan.stored)
        schema = kept_schema(plan, params)
        futures = [
            client.submit(computing_part, i, (url, {name: files[i] for name, files in stored_files.items()}),
                          outputs, params, carried, attempt.uri, schema, pure=False)
            for i, url in enumerate(plan.parts)
        ]
        results = list(track(futures, f"{STEP} {plan.key.id}"))
    except BaseException:
        for each in attempts:
            each.abort()
        raise
    try:  # a committed signals version stays (aborting it would remove it on object stores)
        computed = commit_signals(signal_attempts, input_version, missing, [signals for _, signals in results])
    except BaseException:
        attempt.abort()
        raise
    files = [entry for part, _ in results for entry in part.files]
    docs = functools.reduce(DocStats.merge, (part.stats for part, _ in results), DocStats())
    stats = {**docs.to_json(), **signal_stats(store, client, plan, computed)}
    return commit_written(attempt, plan.key, Written(files, stats, docs.headline()), force)
