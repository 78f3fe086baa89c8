"""Prefect flow `clean`: a thin wrapper over `tokenmill.corpus.clean.step.run_clean`."""

from tokenmill.flows.common import docs_step_flow

clean = docs_step_flow("clean", "Clean a docs version: ftfy, Unicode NFC, invisible characters, whitespace, C4 line rules.")
