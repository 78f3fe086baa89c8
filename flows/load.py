"""Prefect flow `load`: a thin wrapper over `tokenmill.corpus.ingest.load.run_load`."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tokenmill.flows.common import run_step


@flow(name="load", description="Load local or fsspec files (or the python-docs:// demo) into a docs version.")
def load(config_path: str | None = None, overrides: dict[str, Any] | None = None, force: bool = False) -> str:
    """Returns the version id (committed now, or found cached)."""
    return run_step("load", config_path, overrides, force, {})
