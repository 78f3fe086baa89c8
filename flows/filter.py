"""Prefect flow `filter`: a thin wrapper over `tokenmill.corpus.filter.step.run_filter`."""

from tokenmill.flows.common import docs_step_flow

filter = docs_step_flow("filter", "Apply the configured quality, language, PII and URL filters to a docs version.")
