"""Phase 1 of the filter step: each filter's signals over every input row, stored as a version
of their own (`signals-<hash>`) whose id hashes the input, the signal code version and only
the settings the signals depend on, so a run that changes only thresholds computes nothing.
The pass that decides a part computes its missing signals (`batch_signals`) and writes them
with the histograms of their values (`SignalParts`), so no later pass rereads them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenmill.corpus.filter.params import FilterParams
from tokenmill.corpus.filter.registry import FILTERS
from tokenmill.corpus.filter.spec import FilterSpec, Rewrite, TextBatch, TransformSpec, as_numpy, histogram
from tokenmill.corpus.store.parts import PartWriter
from tokenmill.corpus.store.schema import DOC_SCHEMA
from tokenmill.corpus.store.step import VersionKey, Written, commit_written
from tokenmill.corpus.store.versions import Attempt, Store, version_id

SIGNALS_STEP = "signals"
SIGNALS_META = b"tokenmill.signals"


@dataclass(frozen=True)
class SignalPlan:
    """One signal filter's signals as this run's settings define them.

    `identity` is all the signals depend on (the filter, its signal settings, the transforms
    before it); `key` hashes it alone, whatever the input, and tags the signal columns a
    filtered version carries, so filtering that version again can read them as they are.
    """

    name: str
    identity: dict[str, Any]

    @property
    def spec(self) -> FilterSpec:
        return FILTERS[self.name]

    @property
    def key(self) -> str:
        return version_id(SIGNALS_STEP, self.identity, [], self.spec.signal_version)

    def version(self, input_version: str) -> VersionKey:
        """The signals version of this filter over `input_version`."""
        return VersionKey(SIGNALS_STEP, self.spec.signal_version, {**self.identity, "key": self.key},
                          (input_version,), self.identity)


def signal_plans(params: FilterParams) -> dict[str, SignalPlan]:
    """Per signal filter in the configured order, its plan; transforms and rewrites before a filter
    change its input."""
    plans = {}
    transforms: list[dict[str, Any]] = []
    for name in params.filters:
        spec, settings = FILTERS[name], getattr(params, name)
        if isinstance(spec, TransformSpec):
            transforms.append({"transform": name, "params": settings.model_dump(mode="json")})
            continue
        identity = {"filter": name, "settings": spec.signal_settings(settings), "transforms_before": list(transforms)}
        plans[name] = SignalPlan(name, identity)
        if spec.rewrite is not None:
            transforms.append({"rewrite": name, "version": spec.signal_version, "settings": identity["settings"]})
    return plans


def input_schema(parts: list[str]) -> pa.Schema:
    if not parts:
        return DOC_SCHEMA
    with fsspec.open(parts[0], "rb") as f:
        return pq.read_schema(f)


def carried_keys(schema: pa.Schema) -> dict[str, str]:
    """The signal keys an input's columns were computed with (empty for versions of other steps)."""
    raw = (schema.metadata or {}).get(SIGNALS_META)
    return json.loads(raw) if raw else {}


def apply_transforms(table: pa.Table, name: str, params: FilterParams, counters: Counter) -> pa.Table:
    text, counts = FILTERS[name].apply(table["text"].combine_chunks(), getattr(params, name))
    counters.update(counts)
    return table.set_column(table.schema.get_field_index("text"), "text", text)


def batch_signals(
    table: pa.Table, params: FilterParams, names: Collection[str], carried: frozenset[str] = frozenset()
) -> tuple[dict[str, pa.Table], dict[str, Rewrite]]:
    """The signals of the filters in `names` for one batch, each read from the text the filters and
    transforms before it leave, and the rewrites made on the way (every row rewritten), so a caller
    deciding this batch at once need not rewrite again. A filter in `carried` rewrote the input already."""
    batch = TextBatch(table)
    tables, rewrites = {}, {}
    order = params.filters
    last = max((order.index(name) for name in names), default=-1)  # transforms after it change no signal
    for name in order[: last + 1]:
        spec = FILTERS[name]
        if isinstance(spec, TransformSpec):
            batch = TextBatch(apply_transforms(batch.table, name, params, Counter()))
            continue
        if name in names:
            values, batch = spec.signals_of(batch, getattr(params, name))
            columns = [pa.array(values[s.name], s.type) for s in spec.signals]
            tables[name] = pa.Table.from_arrays(columns, schema=pa.schema(spec.fields()))
        elif spec.rewrite is not None and name not in carried:
            batch = batch.rewritten(spec.rewrite(batch.texts, getattr(params, name)))
        if spec.rewrite is not None and name not in carried:
            rewrites[name] = batch.rewrite
    return tables, rewrites


class SignalParts:
    """One input part's signals files, one per filter in `outputs`, with the histograms of the values
    written (so no later pass rereads them)."""

    def __init__(self, index: int, outputs: Mapping[str, str]) -> None:
        part = f"part-{index:05d}.parquet"
        self.writers = {
            name: PartWriter(f"{uri}/{part}", part, pa.schema(FILTERS[name].fields())) for name, uri in outputs.items()
        }
        self.histograms: dict[str, list[dict[str, list[int]]]] = {name: [] for name in outputs}  # per batch

    def write(self, tables: Mapping[str, pa.Table]) -> None:
        for name, writer in self.writers.items():
            writer.write(tables[name])
            self.histograms[name].append(table_histograms(tables[name], signal_bins(FILTERS[name])))

    def close(self) -> dict[str, Any]:
        return {
            name: (writer.close(keep_empty=True), summed_counts(FILTERS[name], self.histograms[name]))
            for name, writer in self.writers.items()
        }


def signal_bins(spec: FilterSpec) -> dict[str, tuple[float, ...]]:
    """Histogram edges per signal column that has them."""
    return {spec.column(s.name): s.bins for s in spec.signals if s.bins}


def summed_counts(spec: FilterSpec, parts: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Per signal column, the histogram counts of all `parts` (column -> counts) added up."""
    counts = {column: np.zeros(len(bins) + 1, dtype=np.int64) for column, bins in signal_bins(spec).items()}
    for part in parts:
        for column, values in part.items():
            counts[column] += values
    return counts


def histogram_stats(spec: FilterSpec, counts: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The stats form of signal histograms: per column, its edges and counts."""
    edges = signal_bins(spec)
    return {column: {"edges": list(edges[column]), "counts": values.tolist()} for column, values in counts.items()}


def begin_signals(store: Store, input_version: str, missing: list[SignalPlan]) -> dict[str, Attempt]:
    return {plan.name: store.begin(SIGNALS_STEP, plan.version(input_version).id) for plan in missing}


def commit_signals(attempts: Mapping[str, Attempt], input_version: str, missing: list[SignalPlan],
                   results: list[Mapping[str, Any]]) -> dict[str, int]:
    """Commit each missing signals version from its parts (`SignalParts.close` per part); returns docs per filter."""
    computed = {}
    for plan in missing:
        files = sorted((result[plan.name][0] for result in results), key=lambda entry: entry.path)
        counts = summed_counts(plan.spec, [result[plan.name][1] for result in results])
        docs = sum(entry.rows for entry in files)
        stats = {"docs": docs, "columns": [f.name for f in plan.spec.fields()],
                 "histograms": histogram_stats(plan.spec, counts)}
        commit_written(attempts[plan.name], plan.version(input_version), Written(files, stats))
        computed[plan.name] = docs
    return computed


def table_histograms(table: pa.Table, columns: Mapping[str, tuple[float, ...]]) -> dict[str, list[int]]:
    return {column: histogram(as_numpy(table[column]), bins) for column, bins in columns.items()}


def part_histograms(url: str, columns: Mapping[str, tuple[float, ...]]) -> dict[str, list[int]]:
    with fsspec.open(url, "rb") as f:
        return table_histograms(pq.read_table(f, columns=list(columns)), columns)


def signal_histograms(store: Store, client: Any, signal_vids: dict[str, str], carried: dict[str, list[str]]) -> dict:
    """Per signal column: histogram edges and counts over every input row. A signals version keeps
    them in its stats; signals carried in the input's columns (or stored without them) are read
    and counted by Dask."""
    out: dict[str, Any] = {}
    sources = dict(carried)
    for name, vid in signal_vids.items():
        stored = store.read_json(vid, "stats.json").get("histograms")
        if stored is None:
            sources[name] = store.files(vid)
        else:
            out.update(stored)
    for name, urls in sources.items():
        spec = FILTERS[name]
        parts = client.gather([client.submit(part_histograms, url, signal_bins(spec), pure=False) for url in urls])
        out.update(histogram_stats(spec, summed_counts(spec, parts)))
    return out
