"""The body every step flow shares: config, store, cluster, the plain step function, artifacts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from tokenmill.corpus.store.errors import InputError
from tokenmill.corpus.store.progress import progress_listener
from tokenmill.corpus.store.runtime import DaskSettings, check_store_reach, dask_client, shared_client
from tokenmill.corpus.store.step import Version, check_inputs
from tokenmill.corpus.store.versions import Store, step_of
from tokenmill.corpus.store.workers import prepare_workers
from tokenmill.flows.config import load_config
from tokenmill.flows.report.data import drop_rows, read_stats
from tokenmill.flows.report.html import write_report
from tokenmill.flows.steps import STEPS

if TYPE_CHECKING:
    from distributed import Client

# What the flows say (versions, report, dashboard) goes to a child of Prefect's run logger: its
# API handler puts the lines in the flow-run logs and Prefect's console handler on stderr, and its
# own INFO level lets them through where the CLI holds Prefect's chatter at WARNING (env.py) and
# its flow failures at CRITICAL (cli.py). Set after `import prefect` configured logging, which
# resets the levels of loggers under its own.
FLOW_LOG = logging.getLogger("prefect.flow_runs.tokenmill")
FLOW_LOG.setLevel(logging.INFO)


def say(message: str) -> None:
    """One line in the current flow run's logs (and on the terminal)."""
    FLOW_LOG.info(message, extra=get_run_logger().extra)


@contextmanager
def flow_cluster(settings: DaskSettings, store: Store) -> Iterator[Client]:
    """The flow's Dask client, its workers set up for `store`. A cluster opened here gets its dashboard
    linked; a step inside a pipeline shares the pipeline's, already linked, so each cluster is linked once."""
    opened = shared_client(settings) is None
    with dask_client(settings) as client:
        if opened:
            prepare_workers(client, store)
            say(f"dask dashboard {client.dashboard_link}")
            create_link_artifact(link=client.dashboard_link, link_text="Dask dashboard", key="dask-dashboard",
                                 description="the Dask cluster's live dashboard (while the flow runs)")
        yield client


def run_step(
    name: str,
    config_path: str | None,
    overrides: dict[str, Any] | None,
    force: bool,
    inputs: dict[str, str | None],
) -> str:
    """Run one step as configured and return its version id, committed or cached. Its input versions
    (the flow's parameters, as a deployment run receives them) are checked first: each a version id,
    committed, with all its files at their recorded sizes."""
    spec = STEPS[name]
    missing = [key for key, value in inputs.items() if not value]
    if missing:
        raise InputError(f"step '{name}' needs {', '.join(missing)} (give --from VERSION)")
    for key, vid in inputs.items():
        step_of(vid, key)
    config = load_config(config_path, overrides or {})
    check_store_reach(config.store, config.dask)
    store = Store.from_settings(config.store)
    check_inputs(store, list(inputs.values()))
    token = progress_listener.set(ProgressArtifact(name))
    try:
        with flow_cluster(config.dask, store) as client:
            version: Version = spec.run(store, getattr(config, name), client, force=force, **inputs)
    finally:
        progress_listener.reset(token)
    say(f"{name} {version.id} {'cached' if version.cached else 'committed'}")
    publish_summary(version, store)
    return version.id


class ProgressArtifact:
    """The step's task progress as a Prefect progress artifact, created on the first finished
    task. It is updated at most once per percent, and for a new description (the crawl's rates,
    said once a second) at most every DESCRIPTION_EVERY_S or once at 100%, so the API is not flooded."""

    DESCRIPTION_EVERY_S = 5.0

    def __init__(self, step: str, clock: Callable[[], float] = time.monotonic):
        self.step, self.clock, self.artifact_id, self.shown, self.said, self.said_at = step, clock, None, -1.0, "", 0.0

    def __call__(self, description: str, done: int, total: int) -> None:
        percent = round(100.0 * done / max(total, 1))
        now = self.clock()
        new_words = description != self.said and (now - self.said_at >= self.DESCRIPTION_EVERY_S or percent >= 100)
        if percent <= self.shown and not new_words:
            return
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(
                progress=percent, key=f"{self.step}-progress", description=description
            )
        else:
            update_progress_artifact(self.artifact_id, progress=percent, description=description)
        self.shown, self.said, self.said_at = max(percent, self.shown), description, now


def summary_markdown(version: Version) -> str:
    """The headline figures and drops per reason, as a Prefect artifact shows them."""
    manifest = version.manifest
    lines = [
        f"# {manifest.step} `{manifest.id}`",
        "",
        f"{'cached' if version.cached else 'committed'} · inputs: {', '.join(manifest.inputs) or 'none'}",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value:,} |" if isinstance(value, int) else f"| {key} | {value} |"
              for key, value in manifest.stats.items()]
    return "\n".join(lines)


def publish_summary(version: Version, store: Store) -> None:
    """A markdown summary, and for docs steps a table of kept and dropped docs per reason."""
    step = version.manifest.step
    create_markdown_artifact(
        markdown=summary_markdown(version),
        key=f"{step}-summary",
        description=f"{step} {version.id}",
    )
    rows = drop_rows(read_stats(store, version.manifest))
    if rows:
        create_table_artifact(table=rows, key=f"{step}-drops", description=f"{step} {version.id}: kept and dropped")


def publish_report(store: Store, vid: str) -> str:
    """Write the HTML report of `vid` (`write_report`) and publish its path as a link artifact."""
    url = write_report(store, vid)
    create_link_artifact(link=url, link_text=f"report {vid}", key="pipeline-report",
                         description=f"HTML report of {vid}")
    say(f"report {url}")
    return url


def docs_step_flow(name: str, description: str):
    """The flow of a step that reads one docs version: the same typed parameters for each,
    so every deployment shows `input_version`, `config_path`, `overrides` and `force`."""
    from prefect import flow

    @flow(name=name, description=description)
    def step_flow(
        input_version: str | None = None,
        config_path: str | None = None,
        overrides: dict[str, Any] | None = None,
        force: bool = False,
    ) -> str:
        """Returns the version id (committed now, or found cached)."""
        return run_step(name, config_path, overrides, force, {"input_version": input_version})

    return step_flow


def tokenized_step_flow(name: str, description: str):
    """The flow of a step that reads a version and the tokenizer it was made with (pack, train)."""
    from prefect import flow

    @flow(name=name, description=description)
    def step_flow(
        input_version: str | None = None,
        tokenizer_version: str | None = None,
        config_path: str | None = None,
        overrides: dict[str, Any] | None = None,
        force: bool = False,
    ) -> str:
        """Returns the version id (committed now, or found cached)."""
        inputs = {"input_version": input_version, "tokenizer_version": tokenizer_version}
        return run_step(name, config_path, overrides, force, inputs)

    return step_flow
