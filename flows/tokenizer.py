"""Prefect flow `tokenizer`: a thin wrapper over `tokenmill.tokenize.trainer.run_tokenizer`."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tokenmill.flows.common import run_step


@flow(name="tokenizer", description="Train a sentencepiece tokenizer on a deterministic sample of a docs version.")
def tokenizer(
    input_version: str | None = None,
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> str:
    """Returns the tokenizer version id (committed now, or found cached)."""
    return run_step("tokenizer", config_path, overrides, force, {"input_version": input_version})
