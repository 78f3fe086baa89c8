"""Prefect flow `pack`: a thin wrapper over `tokenmill.tokenize.pack.run_pack`."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tokenmill.flows.common import run_step


@flow(name="pack", description="Encode a docs version with a tokenizer version into train/val token shards.")
def pack(
    input_version: str | None = None,
    tokenizer_version: str | None = None,
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> str:
    """Returns the pack version id (committed now, or found cached)."""
    inputs = {"input_version": input_version, "tokenizer_version": tokenizer_version}
    return run_step("pack", config_path, overrides, force, inputs)
