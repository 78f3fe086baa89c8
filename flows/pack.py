"""Prefect flow `pack`: a thin wrapper over `tokenmill.tokenize.pack.run_pack`."""

from tokenmill.flows.common import tokenized_step_flow

pack = tokenized_step_flow("pack", "Encode a docs version with a tokenizer version into train/val token shards.")
