"""Phase 1 of the filter step: each filter's signals over every input row, stored as a version
of their own (`signals-<hash>`) whose id hashes the input, the signal code version and only
the settings the signals depend on, so a run that changes only thresholds computes nothing.
One Dask pass computes all the signals versions not yet in the store, with the histograms of
their values, so no later pass rereads them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenmill.corpus.filter.params import FilterParams
from tokenmill.corpus.filter.registry import FILTERS
from tokenmill.corpus.filter.spec import FilterSpec, TextBatch, TransformSpec, as_numpy, histogram
from tokenmill.corpus.store.parts import PartWriter
from tokenmill.corpus.store.progress import track
from tokenmill.corpus.store.schema import DOC_SCHEMA
from tokenmill.corpus.store.step import VersionKey, Written, commit_written, input_parts, read_batches
from tokenmill.corpus.store.versions import Store, version_id

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


def signals_part(
    index: int, url: str, outputs: dict[str, str], params: FilterParams, carried: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Phase 1 task: the signals of the filters in `outputs` for one input part, one file each, and
    the histograms of the values written (so no later pass rereads them). A filter in `carried`
    rewrote this input already: the text is what its rewrite made."""
    part = f"part-{index:05d}.parquet"
    writers = {
        name: PartWriter(f"{uri}/{part}", part, pa.schema(FILTERS[name].fields())) for name, uri in outputs.items()
    }
    histograms: dict[str, list[dict[str, list[int]]]] = {name: [] for name in outputs}  # per batch
    counters: Counter = Counter()
    order = params.filters
    last = max((order.index(name) for name in outputs), default=-1)  # transforms after it change no signal
    for table in read_batches(url, columns=["text", "source"]):
        batch = TextBatch(table)
        for name in order[: last + 1]:
            spec = FILTERS[name]
            if isinstance(spec, TransformSpec):
                batch = TextBatch(apply_transforms(batch.table, name, params, counters))
            elif name in writers:
                values, batch = spec.signals_of(batch, getattr(params, name))
                columns = [pa.array(values[s.name], s.type) for s in spec.signals]
                written = pa.Table.from_arrays(columns, schema=writers[name].schema)
                writers[name].write(written)
                histograms[name].append(table_histograms(written, signal_bins(spec)))
            elif spec.rewrite is not None and name not in carried:
                batch = batch.rewritten(spec.rewrite(batch.texts, getattr(params, name)))
    return {
        name: (writer.close(keep_empty=True), summed_counts(FILTERS[name], histograms[name]))
        for name, writer in writers.items()
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


def compute_signals(store: Store, client: Any, input_version: str, params: FilterParams,
                    missing: list[SignalPlan], carried: frozenset[str]) -> dict[str, int]:
    """One pass over the input computing every missing signals version; returns docs computed per filter.
    `carried`: the filters whose signals (and rewrite) the input carries already."""
    attempts = {plan.name: store.begin(SIGNALS_STEP, plan.version(input_version).id) for plan in missing}
    outputs = {name: attempt.uri for name, attempt in attempts.items()}
    parts = input_parts(store, input_version)
    futures = [
        client.submit(signals_part, i, url, outputs, params, carried, pure=False) for i, url in enumerate(parts)
    ]
    results = list(track(futures, "filter: signals"))
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
