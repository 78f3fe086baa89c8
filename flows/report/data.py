"""What a stats report shows (DESIGN §5), gathered from manifests and `stats.json` files only.

Reading no data file keeps a report of a billion-doc lineage as fast as a toy one: every
number here was reduced by the step that wrote it. `html.py` beside it renders the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenmill.corpus.store.stats import current_reasons
from tokenmill.corpus.store.versions import Manifest, Store
from tokenmill.train.registry import (
    FIGURES,
    downstream_text,
    flatten,
    lineage_settings,
    setting_differences,
)

STATS_FILE = "stats.json"
RUN_STEP = "train"
EVAL_STEP = "eval"
# Steps folded away in a report: per-filter signal columns, listed under the filter that used them.
SIDE_STEPS = ("signals",)
TOP_ITEMS = 15


@dataclass(frozen=True)
class Bin:
    """One histogram bar: values in [low, high); None is an open end."""

    low: float | None
    high: float | None
    count: int


@dataclass(frozen=True)
class Chart:
    """A bar chart; `markers` are (value, label) lines such as a filter threshold."""

    title: str
    bins: list[Bin]
    markers: list[tuple[float, str]] = field(default_factory=list)
    labels: list[str] | None = None


@dataclass(frozen=True)
class FunnelRow:
    step: str
    version: str
    docs_in: int
    docs_out: int
    bytes_in: int
    bytes_out: int
    rejected: dict[str, dict[str, int]]


@dataclass
class Section:
    """One version of the lineage: its settings, scalar figures, tables and charts."""

    manifest: Manifest
    stats: dict[str, Any]
    main: bool
    settings: dict[str, Any]
    figures: dict[str, Any]
    tables: dict[str, dict[str, Any]]
    charts: list[Chart]
    clusters: list[dict[str, Any]]


@dataclass
class Report:
    version: str
    lineage: list[Manifest]
    funnel: list[FunnelRow]
    sections: list[Section]
    langs: dict[str, int]
    domains: dict[str, int]
    runs: list[dict[str, Any]]
    vs: str | None = None
    vs_funnel: list[FunnelRow] = field(default_factory=list)
    differences: list[dict[str, Any]] = field(default_factory=list)


def read_stats(store: Store, manifest: Manifest) -> dict[str, Any]:
    """The version's `stats.json`, or the manifest's headline figures when it wrote none."""
    stats = store.read_json(manifest.id, STATS_FILE) if any(f.path == STATS_FILE for f in manifest.files) \
        else dict(manifest.stats)
    return current_reasons(stats)


def main_chain(lineage: Sequence[Manifest]) -> list[Manifest]:
    """The path the data took: each version's first input is the data it read (a pack's docs, a run's pack);
    the other inputs (tokenizer, filter signals, dedup `against`) are side inputs."""
    by_id = {m.id: m for m in lineage}
    chain = [lineage[-1]]
    while chain[-1].inputs and chain[-1].inputs[0] in by_id:
        chain.append(by_id[chain[-1].inputs[0]])
    return chain[::-1]


def funnel_rows(chain: Sequence[Manifest], stats: Mapping[str, Mapping[str, Any]]) -> list[FunnelRow]:
    """Docs and bytes in and out of each docs step on the chain, with the drops per reason."""
    rows = []
    for manifest in chain:
        figures = stats[manifest.id]
        if "docs_in" not in figures or "docs_out" not in figures:
            continue
        rows.append(FunnelRow(
            step=manifest.step,
            version=manifest.id,
            docs_in=int(figures["docs_in"]),
            docs_out=int(figures["docs_out"]),
            bytes_in=int(figures.get("bytes_in", 0)),
            bytes_out=int(figures.get("bytes_out", 0)),
            rejected={reason: dict(entry) for reason, entry in sorted((figures.get("rejected") or {}).items())},
        ))
    return rows


def drop_rows(stats: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Docs and bytes kept, then dropped per reason: the conservation of a docs step as table rows."""
    if "docs_out" not in stats:
        return []
    rows = [{"outcome": "kept", "docs": int(stats["docs_out"]), "bytes": int(stats.get("bytes_out", 0))}]
    for reason, entry in sorted((stats.get("rejected") or {}).items()):
        rows.append({"outcome": reason, "docs": int(entry.get("docs", 0)), "bytes": int(entry.get("bytes", 0))})
    return rows


def log2_bins(edges: Sequence[float], counts: Sequence[int]) -> list[Bin]:
    """DocStats' log2 histograms: bin k holds [edges[k], edges[k+1]), the last one is open."""
    return [Bin(edges[k], edges[k + 1] if k + 1 < len(edges) else None, int(c)) for k, c in enumerate(counts)]


def outer_bins(edges: Sequence[float], counts: Sequence[int]) -> list[Bin]:
    """Filter signal histograms: one count below the first edge, one per [edge, next), one at or above the last."""
    bounds: list[float | None] = [None, *edges, None]
    return [Bin(bounds[k], bounds[k + 1], int(c)) for k, c in enumerate(counts)]


def trim(bins: Sequence[Bin], keep: Sequence[float] = ()) -> list[Bin]:
    """Drop the empty bins at both ends, keeping any bin that holds one of the `keep` values."""
    wanted = [i for i, b in enumerate(bins) if b.count or any(holds(b, v) for v in keep)]
    if not wanted:
        return list(bins[:1])
    return list(bins[wanted[0] : wanted[-1] + 1])


def holds(b: Bin, value: float) -> bool:
    return (b.low is None or value >= b.low) and (b.high is None or value < b.high)


def thresholds(filter_params: Mapping[str, Any], signal: str) -> list[tuple[float, str]]:
    """A signal's thresholds are its `min_<signal>` / `max_<signal>` settings (STYLE: names give the direction)."""
    found = []
    for prefix in ("min", "max"):
        value = filter_params.get(f"{prefix}_{signal}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found.append((float(value), f"{prefix}_{signal}={value}"))
    return found


def length_charts(step: str, stats: Mapping[str, Any]) -> list[Chart]:
    hist = stats.get("histograms") or {}
    edges = hist.get("bin_edges")
    charts = []
    for key, label in (("chars_per_doc", "characters per doc"), ("words_per_doc", "words per doc")):
        if edges and hist.get(key) and any(hist[key]):
            charts.append(Chart(f"{step}: {label} (kept)", trim(log2_bins(edges, hist[key]))))
    tokens = stats.get("tokens_per_doc") or {}
    if tokens.get("bin_edges") and tokens.get("counts") and any(tokens["counts"]):
        charts.append(Chart(f"{step}: tokens per doc", trim(log2_bins(tokens["bin_edges"], tokens["counts"]))))
    return charts


def signal_charts(params: Mapping[str, Any], stats: Mapping[str, Any]) -> list[Chart]:
    """Each filter signal's histogram over the filter's input, with its thresholds drawn."""
    charts = []
    for column, hist in sorted(((stats.get("signals") or {}).get("histograms") or {}).items()):
        name, _, signal = column.partition("__")
        marks = thresholds(params.get(name) or {}, signal)
        bins = outer_bins(hist["edges"], hist["counts"])
        charts.append(Chart(f"filter signal {name}.{signal}", trim(bins, [v for v, _ in marks]), marks))
    return charts


def count_chart(title: str, counts: Mapping[str, int]) -> Chart:
    """Bars for categories (cluster sizes, shards), in the given order."""
    return Chart(title, [Bin(None, None, int(v)) for v in counts.values()], labels=[str(k) for k in counts])


def extra_charts(step: str, stats: Mapping[str, Any]) -> list[Chart]:
    charts = []
    sizes = stats.get("cluster_size_histogram") or {}
    if sizes:
        ordered = dict(sorted(sizes.items(), key=lambda item: int(item[0])))
        charts.append(count_chart(f"{step}: duplicate cluster sizes (clusters per size)", ordered))
    for split, tokens in sorted((stats.get("shard_tokens") or {}).items()):
        if tokens:
            charts.append(count_chart(f"{step}: tokens per {split} shard",
                                      {f"{split}-{i:05d}": t for i, t in enumerate(tokens)}))
    return charts


def scalar_figures(stats: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if not isinstance(v, (dict, list)) and v is not None}


def section(manifest: Manifest, stats: dict[str, Any], main: bool) -> Section:
    tables = {name: dict(stats[name]) for name in ("counters",) if stats.get(name)}
    if isinstance(stats.get("trainer_spec"), dict):
        tables["trainer_spec"] = stats["trainer_spec"]
    charts = length_charts(manifest.step, stats) + signal_charts(manifest.params, stats)
    return Section(
        manifest=manifest,
        stats=stats,
        main=main,
        settings=flatten(manifest.params),
        figures=scalar_figures(stats),
        tables=tables,
        charts=charts + extra_charts(manifest.step, stats),
        clusters=list(stats.get("largest_clusters") or []),
    )


def last_nonempty(chain: Sequence[Manifest], stats: Mapping[str, Mapping[str, Any]], key: str) -> dict[str, int]:
    """A mix (languages, domains) as the latest docs step on the chain that measured it saw it."""
    for manifest in reversed(chain):
        found = stats[manifest.id].get(key)
        if found:
            return dict(sorted(found.items(), key=lambda item: -item[1])[:TOP_ITEMS])
    return {}


def run_results(store: Store, version: Manifest) -> list[dict[str, Any]]:
    """Training runs made from the version (or the run itself), each with its scores and later evals."""
    if version.step == EVAL_STEP:
        runs = [store.manifest(version.inputs[0])]
    elif version.step == RUN_STEP:
        runs = [version]
    else:
        runs = [r for r in store.versions(RUN_STEP) if version.id in {m.id for m in store.lineage(r.id)}]
    if not runs:
        return []
    evals = store.versions(EVAL_STEP)
    results = []
    for run in runs:
        results.append({"version": run.id, "kind": "run", **{k: run.stats.get(k) for k in FIGURES}})
        for ev in evals:
            if ev.inputs and ev.inputs[0] == run.id:
                results.append({"version": ev.id, "kind": f"eval of {run.id}",
                                **{k: ev.stats.get(k) for k in FIGURES},
                                "downstream": downstream_text(ev.stats.get("tasks") or {})})
    return results


def without_side(lineage: Sequence[Manifest]) -> list[Manifest]:
    return [m for m in lineage if m.step not in SIDE_STEPS]


def report_data(store: Store, version: str, vs: str | None = None) -> Report:
    """Everything a report shows for `version` (and the comparison with `vs`), from manifests and stats only."""
    lineage = store.lineage(version)
    stats = {m.id: read_stats(store, m) for m in lineage}
    chain = main_chain(lineage)
    on_chain = {m.id for m in chain}
    report = Report(
        version=version,
        lineage=lineage,
        funnel=funnel_rows(chain, stats),
        sections=[section(m, stats[m.id], m.id in on_chain) for m in without_side(lineage)],
        langs=last_nonempty(chain, stats, "langs"),
        domains=last_nonempty(chain, stats, "top_domains"),
        runs=run_results(store, lineage[-1]),
    )
    if vs is not None:
        other = store.lineage(vs)
        other_chain = main_chain(other)
        report.vs = vs
        report.vs_funnel = funnel_rows(other_chain, {m.id: read_stats(store, m) for m in other_chain})
        report.differences = setting_differences({version: lineage_settings(without_side(lineage)),
                                                  vs: lineage_settings(without_side(other))})
    return report


def headline_tables(store: Store, version: str) -> list[tuple[str, list[str], list[list[Any]]]]:
    """The report's headline numbers as (title, columns, rows) tables, for `tokenmill stats`."""
    report = report_data(store, version)
    target = next((s for s in report.sections if s.manifest.id == version), None)
    tables = []
    if target is not None:
        tables.append((version, ["figure", "value"], [[k, v] for k, v in target.figures.items()]))
    tables.append(("funnel", ["step", "version", "docs in", "docs out", "dropped", "bytes in", "bytes out"],
                   [[r.step, r.version, r.docs_in, r.docs_out, r.docs_in - r.docs_out, r.bytes_in, r.bytes_out]
                    for r in report.funnel]))
    drops = [[r.step, reason, e.get("docs", 0), e.get("bytes", 0)]
             for r in report.funnel for reason, e in r.rejected.items()]
    if drops:
        tables.append(("drops per reason", ["step", "reason", "docs", "bytes"], drops))
    if target is not None:
        for name, values in target.tables.items():
            tables.append((name, ["key", "value"], [[k, v] for k, v in values.items()]))
    for title, mix in (("languages", report.langs), ("top domains", report.domains)):
        if mix:
            tables.append((title, ["value", "docs"], [[k, v] for k, v in mix.items()]))
    if report.runs:
        keys = ["version", "kind", *FIGURES, "downstream"]
        tables.append(("runs and evals", keys, [[r.get(k) for k in keys] for r in report.runs]))
    return tables
