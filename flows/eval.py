"""Prefect flow `eval`: a thin wrapper over `tokenmill.train.eval_step.run_eval`."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tokenmill.corpus.store.versions import Store
from tokenmill.flows.common import run_step
from tokenmill.flows.config import load_config


@flow(name="eval", description="Score a training run: bits per byte and cloze on the eval set, val loss on its pack, "
      "and the downstream tasks (fine-tuning on the classification ones).")
def eval(
    run_version: str | None = None,
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> str:
    """Returns the eval version id of `run_version` (committed now, or found cached). The runs that
    `train.seeds` made beside it (the same run but for the seed) are scored too, so each score has its
    spread over seeds."""
    version = run_step("eval", config_path, overrides, force, {"run_version": run_version})
    config = load_config(config_path, overrides or {})
    if config.train.seeds:
        from tokenmill.train.registry import seed_siblings

        for sibling in seed_siblings(Store.from_settings(config.store), run_version, config.train.seeds):
            run_step("eval", config_path, overrides, force, {"run_version": sibling})
    return version
