"""Prefect flow `tokenizer`: a thin wrapper over `tokenmill.tokenize.trainer.run_tokenizer`."""

from tokenmill.flows.common import docs_step_flow

tokenizer = docs_step_flow("tokenizer", "Train a sentencepiece tokenizer on a deterministic sample of a docs version.")
