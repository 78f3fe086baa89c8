"""Prefect flow `dedup`: a thin wrapper over `tokenmill.corpus.dedup.step.run_dedup`."""

from tokenmill.flows.common import docs_step_flow

dedup = docs_step_flow("dedup", "Remove exact and MinHash near-duplicates from a docs version; one survivor per cluster.")
