"""Shared fixtures: one real two-worker LocalCluster per test session, stores in temp dirs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@pytest.fixture(scope="session")
def client() -> Iterator[Any]:
    from tokenmill.corpus.store.runtime import DaskSettings, dask_client

    with dask_client(DaskSettings(n_workers=2, memory_limit_gb=4)) as dask:
        yield dask


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API and database for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def store(tmp_path: Path) -> Any:
    from tokenmill.corpus.store.versions import Store

    return Store(str(tmp_path / "store"))


def _write_jsonl(path: Path, records: Iterable[dict[str, Any] | str]) -> Path:
    """JSONL from dicts; a str is written verbatim as a (possibly malformed) line."""
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(record if isinstance(record, str) else json.dumps(record, ensure_ascii=False))
            f.write("\n")
    return path


@pytest.fixture
def write_jsonl():
    """The JSONL writer: `write_jsonl(path, records)`."""
    return _write_jsonl


@pytest.fixture
def docs_version(store: Any, client: Any, tmp_path: Path):
    """Factory: commit a load version of the given texts (or dicts) and return its id."""
    from tokenmill.corpus.ingest.load import LoadParams, run_load

    def make(docs: Iterable[str | dict[str, Any]], name: str = "docs") -> str:
        records = [{"text": d} if isinstance(d, str) else d for d in docs]
        path = _write_jsonl(tmp_path / f"{name}.jsonl", records)
        return run_load(store, LoadParams(paths=[str(path)], source_field="url"), client).id

    return make
