"""The `tokenmill` command: run steps as Prefect flows; inspect versions, reports and runs.

Config, input paths, version ids and `--from` versions are checked before Prefect starts, so a
mistake is one line and exit code 2, never a traceback; damaged data is exit code 1 (`verify`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from tokenmill.corpus.store.errors import (
    BrokenManifestError,
    ConfigError,
    InputError,
    StoreIOError,
    TokenmillError,
)
from tokenmill.corpus.store.layout import MANIFEST, check_step, step_of
from tokenmill.flows.env import configure_prefect_env

out = Console()
err = Console(stderr=True)


def fresh_consoles() -> None:
    """Consoles made anew for this process's terminal: rich settles colours when a Console is made,
    and the daemon's runs are forked from a process that made these without one."""
    global out, err
    out, err = Console(), Console(stderr=True)


class OneLineErrors(TyperGroup):
    """Typed errors become one line on stderr and exit code 2 (fix) or 1 (retry), here rather than in
    `main`, so in-process callers (typer's CliRunner) see what users see. Anything else is a bug and
    keeps its traceback; usage errors are typer's own, with exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TokenmillError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2 if isinstance(exc, (ConfigError, InputError)) else 1) from None


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    help="tokenmill: versioned pretraining corpora, from raw text to trained-model results.",
)
ConfigOption = typer.Option(None, "--config", "-c", help="TOML config file (every setting has a default).")
StoreOption = typer.Option(None, "--store", help="store root (overrides store.root), a path or fsspec URL.")
JsonOption = typer.Option(False, "--json", help="machine-readable JSON output.")


def _overrides(sets: list[str], store: str | None, dask_address: str | None = None) -> dict[str, Any]:
    """`--set` pairs and the shortcut flags as one {dotted key: value} mapping for the flows."""
    from tokenmill.flows.config import parse_overrides

    flat = parse_overrides(sets)
    if store:
        flat["store.root"] = store
    if dask_address:
        flat["dask.address"] = dask_address
    return flat


def quiet_flow_failures() -> None:
    """A failed flow run is reported once, by `main`, as one line; Prefect's own log of it
    would add a traceback. Workers running deployments keep Prefect's logging."""
    import logging

    logging.getLogger("prefect.flow_runs").setLevel(logging.CRITICAL)


def _store(config: str | None, store: str | None):
    from tokenmill.corpus.store.versions import Store
    from tokenmill.flows.config import load_config

    return Store.from_settings(load_config(config, _overrides([], store)).store)


@app.command()
def run(
    steps: Optional[list[str]] = typer.Argument(None, help="steps to run (default: pipeline.steps)."),
    config: Optional[str] = ConfigOption,
    from_version: Optional[str] = typer.Option(None, "--from", help="input version for the first step run."),
    sets: list[str] = typer.Option([], "--set", "-s", help="override a setting: step.key=value (repeatable)."),
    force: bool = typer.Option(False, "--force", help="recompute versions even if committed."),
    store: Optional[str] = StoreOption,
    dask_address: Optional[str] = typer.Option(None, "--dask-address", help="scheduler of an existing Dask cluster."),
    as_json: bool = JsonOption,
) -> None:
    """Run the pipeline, or chosen steps, and print each version committed or found cached."""
    if from_version is not None:
        step_of(from_version, "--from")
    from tokenmill.corpus.store.runtime import check_store_reach, early_cluster
    from tokenmill.corpus.store.versions import Store
    from tokenmill.flows.api import EarlyAPI
    from tokenmill.flows.config import load_config
    from tokenmill.flows.plan import check_inputs, committed_versions, initial_state, plan_steps
    from tokenmill.flows.steps import STEPS

    overrides = _overrides(sets, store, dask_address)
    cfg = load_config(config, overrides)
    check_store_reach(cfg.store, cfg.dask)
    the_store = Store.from_settings(cfg.store)
    order = plan_steps(cfg.pipeline.steps, list(steps or []), from_version)
    state = initial_state(the_store, from_version)
    check_inputs(order, state)
    results = None if force else committed_versions(the_store, cfg, order, state)
    if results is not None:
        report_committed(the_store, results)
    else:
        for name in order:
            STEPS[name].check(getattr(cfg, name))
        first_module = [STEPS[order[0]].module] if order else []
        with EarlyAPI() as api, early_cluster(cfg.dask, first_module):
            from tokenmill.flows.pipeline import pipeline

            quiet_flow_failures()
            with api.serving():
                results = pipeline(config_path=config, overrides=overrides, steps=list(steps or []),
                                   from_version=from_version, force=force)
    if as_json:
        out.print_json(json.dumps(results))


def report_committed(store: Any, results: dict[str, str]) -> None:
    """What a run whose versions are all committed says: each version, cached, and the report of the
    last, written as a flow would; no flow run is recorded, as nothing ran."""
    from tokenmill.flows.report.html import write_report

    for name, vid in results.items():
        err.print(f"{name} {vid} cached", highlight=False)
    if results:
        err.print(f"report {write_report(store, list(results.values())[-1])}", highlight=False)
    err.print("nothing to run: every version is committed (no flow run, no cluster; --force recomputes)",
              highlight=False, soft_wrap=True, style="dim")


@app.command()
def train(
    from_version: str = typer.Option(..., "--from", help="the pack version to train on (its tokenizer comes with it)."),
    config: Optional[str] = ConfigOption,
    sets: list[str] = typer.Option([], "--set", "-s", help="override a setting: train.key=value (repeatable)."),
    force: bool = typer.Option(False, "--force", help="train again even if this run is committed."),
    store: Optional[str] = StoreOption,
    nproc_per_node: Optional[int] = typer.Option(None, "--nproc-per-node", min=1,
                                                 help="DDP processes on this node (train.nproc_per_node)."),
    nnodes: Optional[int] = typer.Option(None, "--nnodes", min=1, help="nodes in the job (train.nnodes)."),
    rdzv_endpoint: Optional[str] = typer.Option(None, "--rdzv-endpoint",
                                                help="host:port where the nodes meet (train.rdzv_endpoint)."),
    as_json: bool = JsonOption,
) -> None:
    """Train on a pack version here, without Prefect or Dask: one process, or torchrun ranks on this node.
    For several nodes, run the same command on each with --nnodes and --rdzv-endpoint."""
    step_of(from_version, "--from")
    from tokenmill.corpus.store.versions import Store
    from tokenmill.flows.config import load_config
    from tokenmill.train.keys import seed_params
    from tokenmill.train.loop import run_train

    launch = {"train.nproc_per_node": nproc_per_node, "train.nnodes": nnodes, "train.rdzv_endpoint": rdzv_endpoint}
    overrides = _overrides(sets, store) | {key: value for key, value in launch.items() if value is not None}
    cfg = load_config(config, overrides)
    st = Store.from_settings(cfg.store)
    if not st.exists(from_version):
        raise InputError(f"--from: version '{from_version}' is not in the store {st.url}")
    pack = st.manifest(from_version)
    if pack.step != "pack":
        raise InputError(f"--from: '{from_version}' is a {pack.step} version; train reads a pack version")
    for vid in (pack.id, pack.inputs[1]):  # what training reads: the shards and their tokenizer
        st.check_files(vid)
    runs = [run_train(st, each, None, force=force, input_version=pack.id, tokenizer_version=pack.inputs[1])
            for each in seed_params(cfg.train)]  # one run per seed of train.seeds, in order
    if as_json:
        seeds = {"seeds": {str(each.manifest.params["seed"]): each.id for each in runs}} if cfg.train.seeds else {}
        out.print_json(json.dumps({"train": runs[0].id, **seeds}))
        return
    for version in runs:
        figures = version.manifest.stats
        seed = f" (seed {version.manifest.params['seed']})" if cfg.train.seeds else ""
        out.print(f"train {version.id}{seed} {'cached' if version.cached else 'committed'}: "
                  f"bpb {_figure(figures.get('bpb'))}, {figures.get('world_size')} rank(s), "
                  f"{_fmt(figures.get('tokens'))} tokens")


@app.command()
def versions(
    step: Optional[str] = typer.Option(None, "--step", help="only versions of this step."),
    config: Optional[str] = ConfigOption,
    store: Optional[str] = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """List committed versions, oldest first; a version whose manifest is unreadable is listed as broken."""
    if step is not None:
        check_step(step, "--step")
    listing = _store(config, store).scan(step)
    broken = [{"id": vid, "step": step_of(vid), "broken": f"manifest {problem}"}
              for vid, problem in sorted(listing.broken.items())]
    if as_json:
        out.print_json(json.dumps([_version_row(m) for m in listing.manifests] + broken))
        return
    table = Table("version", "created", "docs in", "kept", "rejected", "inputs")
    for m in listing.manifests:
        row = _version_row(m)
        table.add_row(row["id"], row["created"], *(_fmt(row[k]) for k in ("docs_in", "docs_out", "docs_rejected")),
                      ", ".join(m.inputs))
    for row in broken:
        table.add_row(row["id"], "[red]broken[/red]", "", "", "", "")
    out.print(table)
    for row in broken:
        out.print(f"[red]broken[/red] {row['id']}: {row['broken']}", highlight=False, soft_wrap=True)


def _version_row(manifest: Any) -> dict[str, Any]:
    return {
        "id": manifest.id,
        "step": manifest.step,
        "created": manifest.created.isoformat(timespec="seconds"),
        "inputs": manifest.inputs,
        "docs_in": manifest.stats.get("docs_in"),
        "docs_out": manifest.stats.get("docs_out"),
        "docs_rejected": manifest.stats.get("docs_rejected"),
    }


def _fmt(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else ("" if value is None else str(value))


@app.command()
def show(
    version: str = typer.Argument(..., help="a version id, e.g. load-0123456789ab."),
    config: Optional[str] = ConfigOption,
    store: Optional[str] = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a version's manifest and its lineage back to the ingest step. Its files are checked against
    the manifest's sizes (one listing): a missing or resized file is listed, and the exit code is 1."""
    step_of(version, "VERSION")
    st = _store(config, store)
    manifest = st.manifest(version)
    lineage = st.lineage(version)
    damage = {d.path: d.problem for d in st.damage(version, manifest)}
    if as_json:
        payload = {"manifest": manifest.model_dump(mode="json"), "lineage": [m.id for m in lineage],
                   "damaged": [{"file": path, "problem": problem} for path, problem in damage.items()]}
        out.print_json(json.dumps(payload))
        _exit_if_damaged(version, damage)
        return
    out.print(f"[bold]{manifest.id}[/bold]  step={manifest.step}  code={manifest.code_version}  "
              f"created={manifest.created.isoformat(timespec='seconds')}  wall={manifest.wall_seconds}s")
    out.print("lineage: " + " → ".join(m.id for m in lineage))
    table = Table("setting", "value")
    for key, value in sorted(manifest.params.items()):
        table.add_row(key, json.dumps(value))
    out.print(table)
    files = Table("file", "rows", "bytes", "sha256", "state")
    for f in manifest.files:
        files.add_row(f.path, _fmt(f.rows), _fmt(f.bytes), f.sha256[:16],
                      "[red]damaged[/red]" if f.path in damage else "ok")
    out.print(files)
    _exit_if_damaged(version, damage)


def _exit_if_damaged(version: str, damage: dict[str, str]) -> None:
    """One line per damaged file on stderr, then exit code 1 (the data, not the command, needs fixing)."""
    for path, problem in damage.items():
        err.print(f"[red]damaged[/red] {version}/{path}: {problem}", highlight=False, soft_wrap=True)
    if damage:
        raise typer.Exit(1)


@app.command()
def verify(
    version: Optional[str] = typer.Argument(None, help="a version id (or --all)."),
    all_versions: bool = typer.Option(False, "--all", help="every committed version of the store."),
    config: Optional[str] = ConfigOption,
    store: Optional[str] = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """Check the sha256 of every file of a version, or of every version: exit code 1 and one line per
    damaged file (missing, resized, altered, or an unreadable manifest); 0 and a summary when all are intact."""
    from tokenmill.corpus.store.integrity import Damage

    if (version is None) == (not all_versions):
        raise InputError("verify: give one VERSION or --all")
    st = _store(config, store)
    if all_versions:
        listing = st.scan()
        manifests, broken = listing.manifests, listing.broken
    else:
        step_of(version, "VERSION")
        try:
            manifests, broken = [st.manifest(version)], {}
        except BrokenManifestError as exc:
            manifests, broken = [], {version: exc.problem}
    damage = [Damage(vid, MANIFEST, problem) for vid, problem in sorted(broken.items())]
    for manifest in manifests:
        damage += st.damage(manifest.id, manifest, checksums=True)
    files = sum(len(m.files) for m in manifests)
    size = sum(f.bytes for m in manifests for f in m.files)
    if as_json:
        out.print_json(json.dumps({"versions": len(manifests) + len(broken), "files": files, "bytes": size,
                                   "damaged": [{"version": d.version, "file": d.path, "problem": d.problem}
                                               for d in damage]}))
    else:
        for d in damage:
            out.print(f"damaged {d}", highlight=False, soft_wrap=True)
        summary = f"{len(manifests) + len(broken)} version(s), {files:,} files, {size:,} bytes"
        out.print(f"{summary}: {len(damage)} damaged" if damage else f"{summary}: all intact", highlight=False)
    if damage:
        raise typer.Exit(1)


@app.command()
def stats(
    version: str = typer.Argument(..., help="a version id."),
    config: Optional[str] = ConfigOption,
    store: Optional[str] = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """Print a version's headline figures, the funnel of its lineage, drops per reason, languages, domains, runs."""
    from tokenmill.flows.report.data import headline_tables, read_stats

    step_of(version, "VERSION")
    st = _store(config, store)
    if as_json:
        out.print_json(json.dumps(read_stats(st, st.manifest(version)), default=str))
        return
    for title, columns, rows in headline_tables(st, version):
        table = Table(*columns, title=title)
        for row in rows:
            table.add_row(*(_fmt(v) if not isinstance(v, (dict, list)) else json.dumps(v) for v in row))
        out.print(table)


@app.command()
def report(
    version: str = typer.Argument(..., help="a version id."),
    output: str = typer.Option("report.html", "--output", "-o", help="HTML file to write."),
    vs: Optional[str] = typer.Option(None, "--vs",
                                     help="a second version: funnels side by side, settings that differ."),
    config: Optional[str] = ConfigOption,
    store: Optional[str] = StoreOption,
) -> None:
    """Write one self-contained HTML report of a version and its whole lineage (no network needed to view)."""
    from pathlib import Path

    from tokenmill.flows.report.html import build_report

    step_of(version, "VERSION")
    if vs is not None:
        step_of(vs, "--vs")
    html = build_report(_store(config, store), version, vs)
    Path(output).write_text(html, encoding="utf-8")
    err.print(f"report {version} → {output}")


@app.command()
def deploy(
    names: Optional[list[str]] = typer.Argument(None, help="deployments to register (default: all in prefect.yaml)."),
    pool: str = typer.Option("tokenmill-local", "--pool", help="process work pool, created when missing."),
) -> None:
    """Register the Prefect deployments of prefect.yaml (one per step and `pipeline`) on a process work pool.

    Needs a Prefect API (PREFECT_API_URL, e.g. a `prefect server start`); then start a worker with
    `prefect worker start --pool tokenmill-local`."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "prefect.yaml").is_file():
        raise ConfigError(f"no prefect.yaml in {root}: deploy from a source checkout of tokenmill")
    inspect = subprocess.run(["prefect", "work-pool", "inspect", pool], cwd=root, capture_output=True, text=True)
    if inspect.returncode != 0:
        subprocess.run(["prefect", "work-pool", "create", pool, "--type", "process"], cwd=root, check=True)
    selection = [arg for name in names for arg in ("--name", name)] if names else ["--all"]
    done = subprocess.run(["prefect", "--no-prompt", "deploy", *selection, "--pool", pool], cwd=root,
                          env={**os.environ, "PWD": str(root)})
    if done.returncode != 0:
        raise StoreIOError(f"prefect deploy failed (exit {done.returncode}); is the Prefect API at PREFECT_API_URL up?")


@app.command()
def runs(
    config: Optional[str] = ConfigOption,
    store: Optional[str] = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """List training runs with their data version and final scores (bits per byte first)."""
    from tokenmill.train.registry import downstream_text, list_runs

    rows = list_runs(_store(config, store))
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = Table("run", "data version", "tokenizer", "model", "objective", "seed", "bpb", "mlm acc", "val loss",
                  "cloze", "downstream (accuracy / macro-F1)", "train s")
    for row in rows:
        table.add_row(row["run"], row["data_version"], row["tokenizer_version"], row["model"], row["objective"],
                      _fmt(row["seed"]), *(_with_spread(row[k], row["spread"].get(k)) for k in ("bpb", "mlm_acc")),
                      *(_figure(row[k]) for k in ("val_loss", "cloze_acc")),
                      downstream_text(row["downstream"], row["spread"]), _figure(row["train_seconds"]))
    out.print(table)


def _figure(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else _fmt(value)


def _with_spread(value: Any, spread: dict[str, Any] | None) -> str:
    """A run's score, and over its seeds the mean and range when there are several."""
    if not spread or spread["n"] < 2:
        return _figure(value)
    return f"{_figure(value)} (mean {spread['mean']:.4f}, {spread['min']:.4f}-{spread['max']:.4f}, {spread['n']} seeds)"


@app.command()
def compare(
    run_ids: list[str] = typer.Argument(..., help="two or more run ids."),
    config: Optional[str] = ConfigOption,
    store: Optional[str] = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """Runs side by side, with downstream scores, each score's spread over the run's seeds, and the data
    settings that differ along their lineages. Scores on different task files (or eval texts), or scored
    with other settings, are not put on one line: each way of scoring has its own, and a note says why."""
    from tokenmill.train.registry import FIGURES, SCORES, compare_runs

    for run_id in run_ids:
        step_of(run_id, "RUN_IDS")
    result = compare_runs(_store(config, store), run_ids)
    if as_json:
        out.print_json(json.dumps(result, default=str))
        return
    table = Table("figure", *(row["run"] for row in result["runs"]))
    for name in ("data_version", "tokenizer_version", "model", "objective", "seeds", *FIGURES):
        table.add_row(name, *(_with_spread(row.get(name), row["spread"].get(name)) if name in SCORES
                              else _figure(row.get(name)) for row in result["runs"]))
    for line in result["tasks"]:
        label = f"{line['task']} {line['score']}" + (f" [scored {line['scoring']}]" if line["several"] else "")
        table.add_row(label, *("not on this file" if v is None else _with_spread(*v) for v in line["values"].values()))
    out.print(table)
    for mismatch in result["mismatches"]:
        values = ", ".join(f"{run} {value[:12] if value else 'none'}" for run, value in mismatch["values"].items())
        what = "sha256" if mismatch["differ"] == "files" else "scoring"
        out.print(f"not compared: {mismatch['what']} scored on different {mismatch['differ']} ({what} {values})",
                  highlight=False)
    for title in ("data_differences", "train_differences"):
        differences = Table("step", "setting", *(row["run"] for row in result["runs"]), title=title)
        for diff in result[title]:
            differences.add_row(diff["step"], diff["setting"], *(json.dumps(v) for v in diff["values"].values()))
        out.print(differences if result[title] else f"{title}: none")


@app.command()
def settings(
    section: Optional[str] = typer.Argument(None, help="one section (a step name, store, dask, pipeline)."),
) -> None:
    """List every setting with its default and what it does: a commented TOML config."""
    from tokenmill.flows.config import Config, settings_toml

    sections = list(Config.model_fields)
    if section is not None and section not in sections:
        raise ConfigError(f"no config section '{section}'; sections: {', '.join(sections)}")
    typer.echo(settings_toml([section] if section else sections))


daemon_app = typer.Typer(help="A daemon that keeps Prefect, a Prefect server and a Dask cluster warm, so each "
                         "`tokenmill` command starts in milliseconds rather than seconds.", no_args_is_help=True)
app.add_typer(daemon_app, name="daemon")


def _say_daemon(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(answer))
        return
    running = ", ".join(" ".join(r["argv"]) for r in answer["running"]) or "none"
    err.print(f"daemon pid {answer['pid']}: Prefect API {answer['prefect_api']}, Dask {answer['dask']}, "
              f"{answer['served']} commands served, running: {running}", highlight=False, soft_wrap=True)


@daemon_app.command("start")
def daemon_start(
    config: Optional[str] = ConfigOption,
    sets: list[str] = typer.Option([], "--set", "-s", help="override a dask setting: dask.key=value."),
    foreground: bool = typer.Option(False, "--foreground", help="run in this terminal until Ctrl-C."),
    as_json: bool = JsonOption,
) -> None:
    """Start the daemon, its cluster sized by the config's dask settings; later commands run in it, on
    its cluster when their dask settings are the same (else on one of their own, as usual)."""
    from tokenmill.flows.config import load_config
    from tokenmill.flows.daemon import control

    cfg = load_config(config, _overrides(sets, None))
    if cfg.dask.resolved_address():
        raise ConfigError("dask.address names a cluster already: the daemon keeps a LocalCluster of its own")
    _say_daemon(control.start(cfg.dask, foreground), as_json)


@daemon_app.command("status")
def daemon_status(as_json: bool = JsonOption) -> None:
    """Say whether a daemon runs, with its Prefect API, cluster settings and running commands (exit 1 if none)."""
    from tokenmill.flows.daemon import control, wire

    answer = control.status()
    if answer is None:
        err.print(f"no tokenmill daemon answers at {wire.socket_path()}", highlight=False)
        raise typer.Exit(1)
    _say_daemon(answer, as_json)


@daemon_app.command("stop")
def daemon_stop() -> None:
    """Stop the daemon, its Prefect server and cluster (commands running in it are stopped)."""
    from tokenmill.flows.daemon import control

    answer = control.stop()
    err.print("no tokenmill daemon was running" if answer is None else f"daemon pid {answer['pid']} stopped",
              highlight=False)


def main() -> None:
    """Entry point; `OneLineErrors` turns typed errors into one line and an exit code."""
    configure_prefect_env()
    app()
