"""Prefect flow `eval`: a thin wrapper over `tokenmill.train.eval_step.run_eval`."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tokenmill.flows.common import run_step


@flow(name="eval", description="Score a training run: bits per byte and cloze on the eval set, val loss on its pack.")
def eval(
    run_version: str | None = None,
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> str:
    """Returns the eval version id (committed now, or found cached)."""
    return run_step("eval", config_path, overrides, force, {"run_version": run_version})
