"""The filter step: an ordered list of named filters, signals kept apart from decisions.

Outline (after dolma's documents/attributes split):
1. each filter's signals over every input row are a version of their own, `signals-<hash>`,
   whose id hashes the input, the signal code version and only the settings the signals
   depend on; one Dask pass computes the ones not yet in the store, so a run that changes
   only thresholds finds them all and computes nothing;
2. the decision pass reads text and signal parts side by side, applies transforms (PII) in
   their place in the order, and drops each row at the first failing rule, as
   `filter:<filter>.<rule>`, keeping every signal as a typed column on kept and rejected rows.
An input whose parts already carry a filter's signal columns with the same signal key (a
filter version filtered again) is read as is.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tokenmill.corpus.filter.gopher import (
    GOPHER_QUALITY,
    GOPHER_REPETITION,
    GopherQualityParams,
    GopherRepetitionParams,
)
from tokenmill.corpus.filter.lang import LANGUAGE, LanguageParams, check_dependency
from tokenmill.corpus.filter.pii import PII, PiiParams
from tokenmill.corpus.filter.spec import (
    FilterSpec,
    TextBatch,
    TransformSpec,
    as_numpy,
    histogram,
)
from tokenmill.corpus.filter.url import URL_BLOCKLIST, UrlBlocklistParams
from tokenmill.corpus.filter.web import (
    C4,
    FINEWEB,
    LENGTH,
    C4Params,
    FineWebParams,
    LengthParams,
)
from tokenmill.corpus.store.parts import Batch, PartWriter
from tokenmill.corpus.store.progress import track
from tokenmill.corpus.store.schema import DOC_SCHEMA
from tokenmill.corpus.store.step import (
    Version,
    find_cached,
    input_parts,
    params_json,
    read_batches,
    run_docs_step,
)
from tokenmill.corpus.store.versions import Store, version_id

STEP = "filter"
CODE_VERSION = "filter-v1"
SIGNALS_STEP = "signals"
SIGNALS_META = b"tokenmill.signals"

FILTERS: dict[str, FilterSpec | TransformSpec] = {
    spec.name: spec for spec in (LENGTH, URL_BLOCKLIST, LANGUAGE, GOPHER_QUALITY, GOPHER_REPETITION, C4, FINEWEB, PII)
}
FilterName = Literal["length", "url_blocklist", "language", "gopher_quality", "gopher_repetition", "c4", "fineweb", "pii"]


class FilterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filters: list[FilterName] = Field(
        default_factory=lambda: [
            "length", "url_blocklist", "language", "gopher_quality", "gopher_repetition", "c4", "fineweb", "pii"
        ],
        description="the filters to apply, in order; a doc is dropped by the first rule it fails",
    )
    length: LengthParams = Field(default_factory=LengthParams, description="min/max characters and words")
    url_blocklist: UrlBlocklistParams = Field(default_factory=UrlBlocklistParams, description="blocked domains, URLs")
    language: LanguageParams = Field(default_factory=LanguageParams, description="fastText lid.176 language ID")
    gopher_quality: GopherQualityParams = Field(default_factory=GopherQualityParams, description="Gopher quality")
    gopher_repetition: GopherRepetitionParams = Field(
        default_factory=GopherRepetitionParams, description="Gopher repetition"
    )
    c4: C4Params = Field(default_factory=C4Params, description="C4 page-level rules")
    fineweb: FineWebParams = Field(default_factory=FineWebParams, description="FineWeb line rules")
    pii: PiiParams = Field(default_factory=PiiParams, description="PII redaction (a transform, not a drop)")

    @field_validator("filters")
    @classmethod
    def _unique(cls, filters: list[str]) -> list[str]:
        repeated = sorted({f for f in filters if filters.count(f) > 1})
        if repeated:
            raise ValueError(f"filters listed twice: {repeated}")
        return filters


def signal_keys(params: FilterParams) -> dict[str, tuple[str, dict[str, Any]]]:
    """Per signal filter: (key, identity). The identity is all the signals depend on, whatever the input."""
    keys = {}
    transforms: list[dict[str, Any]] = []
    for name in params.filters:
        spec, settings = FILTERS[name], getattr(params, name)
        if isinstance(spec, TransformSpec):
            transforms.append({"transform": name, "params": settings.model_dump(mode="json")})
            continue
        identity = {"filter": name, "settings": spec.signal_settings(settings), "transforms_before": list(transforms)}
        keys[name] = (version_id(SIGNALS_STEP, identity, [], spec.signal_version), identity)
    return keys


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


def signals_part(index: int, url: str, outputs: dict[str, str], params: FilterParams) -> dict[str, Any]:
    """Phase 1 task: the signals of the filters in `outputs` for one input part, one file each, and
    the histograms of the values written (so no later pass rereads them)."""
    writers = {
        name: PartWriter(f"{uri}/part-{index:05d}.parquet", f"part-{index:05d}.parquet", pa.schema(FILTERS[name].fields()))
        for name, uri in outputs.items()
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
                values = spec.compute(batch, getattr(params, name))
                columns = [pa.array(values[s.name], s.type) for s in spec.signals]
                written = pa.Table.from_arrays(columns, schema=writers[name].schema)
                writers[name].write(written)
                histograms[name].append(table_histograms(written, signal_bins(spec)))
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


def compute_signals(store: Store, client: Any, input_version: str, params: FilterParams, missing: dict) -> dict:
    """Phase 1: one pass over the input computing every missing signals version; docs computed per filter."""
    attempts = {name: store.begin(SIGNALS_STEP, entry[0]) for name, entry in missing.items()}
    outputs = {name: attempt.uri for name, attempt in attempts.items()}
    parts = input_parts(store, input_version)
    futures = [client.submit(signals_part, i, url, outputs, params, pure=False) for i, url in enumerate(parts)]
    results = list(track(futures, "filter: signals"))
    computed = {}
    for name, attempt in attempts.items():
        files = sorted((result[name][0] for result in results), key=lambda entry: entry.path)
        docs = sum(entry.rows for entry in files)
        spec = FILTERS[name]
        counts = summed_counts(spec, [result[name][1] for result in results])
        stats = {"docs": docs, "columns": [f.name for f in spec.fields()], "histograms": histogram_stats(spec, counts)}
        files.append(attempt.write_json("stats.json", stats))
        identity = missing[name][1]
        attempt.commit({**identity, "key": missing[name][2]}, [input_version], spec.signal_version, files, stats)
        computed[name] = docs
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
    signal_keys(params)


def run_filter(store: Store, params: FilterParams, client: Any, *, force: bool = False, input_version: str) -> Version:
    """Commit the filtered version of `input_version`, computing only the signals not yet stored."""
    check_filter(params)
    keys = signal_keys(params)
    parts = input_parts(store, input_version)
    schema = input_schema(parts)
    carried = carried_keys(schema)
    from_input = {name for name, (key, _) in keys.items() if carried.get(name) == key}
    signal_vids = {
        name: version_id(SIGNALS_STEP, identity, [input_version], FILTERS[name].signal_version)
        for name, (_, identity) in keys.items()
        if name not in from_input
    }
    inputs = [input_version, *signal_vids.values()]
    cached = find_cached(store, version_id(STEP, params_json(params), inputs, CODE_VERSION), force)
    if cached:
        return cached
    missing = {
        name: (vid, keys[name][1], keys[name][0])
        for name, vid in signal_vids.items()
        if force or not store.exists(vid)
    }
    computed = compute_signals(store, client, input_version, params, missing) if missing else {}
    signal_files = {name: store.files(vid) for name, vid in signal_vids.items()}
    tasks = [(url, {name: files[i] for name, files in signal_files.items()}) for i, url in enumerate(parts)]
    extra = {
        "signals": {
            "computed_docs": {name: computed.get(name, 0) for name in keys},
            "versions": {name: signal_vids.get(name, "input columns") for name in keys},
            "histograms": signal_histograms(store, client, signal_vids, {name: parts for name in from_input}),
        }
    }
    return run_docs_step(
        store,
        client,
        step=STEP,
        code_version=CODE_VERSION,
        params=params,
        inputs=inputs,
        tasks=tasks,
        process=functools.partial(decide_part, params=params),
        kept_schema=output_schema(schema, params, {name: key for name, (key, _) in keys.items()}),
        force=force,
        extra_stats=extra,
    )
