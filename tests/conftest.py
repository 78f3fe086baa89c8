"""Shared fixtures: one real two-worker LocalCluster per test session, stores in temp dirs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# A developer's running `tokenmill daemon` would serve the tests' commands with its own code and
# cluster: every test runs without one, but those of the daemon, which start their own.
os.environ["TOKENMILL_DAEMON"] = "off"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A real S3 API (moto's server) on loopback for the object-store tests. The standard AWS
# environment points at it from the start, so every process the tests spawn (LocalCluster and
# `dask worker` processes, CLI runs) reaches it with no store options, as users' would.
S3_ENDPOINT = f"http://127.0.0.1:{_free_port()}"
os.environ.update(AWS_ENDPOINT_URL=S3_ENDPOINT, AWS_ACCESS_KEY_ID="tokenmill-test",
                  AWS_SECRET_ACCESS_KEY="tokenmill-test", AWS_DEFAULT_REGION="us-east-1")


@pytest.fixture(scope="session")
def client() -> Iterator[Any]:
    from tokenmill.corpus.store.runtime import DaskSettings, dask_client

    with dask_client(DaskSettings(n_workers=2, memory_limit_gb=4)) as dask:
        yield dask


_SESSION_API: Any = None


def pytest_configure(config: pytest.Config) -> None:
    """Start the session's Prefect server before collection, so it boots while the test modules import."""
    global _SESSION_API
    if os.environ.get("PREFECT_API_URL"):
        return
    from tokenmill.flows.api import EarlyAPI

    # Prefect's own temporary-server command, on a free port, with a database of its own
    _SESSION_API = EarlyAPI(env={"PREFECT_HOME": tempfile.mkdtemp(prefix="prefect-server-")}).__enter__()


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[str]:
    """One real Prefect server for every `tokenmill` process the tests start: without it each CLI
    run starts Prefect's temporary server of its own, seconds each on two cores."""
    if _SESSION_API is None:  # the user's own, named by PREFECT_API_URL
        yield os.environ["PREFECT_API_URL"]
        return
    _SESSION_API.wait_until_answering()
    os.environ["PREFECT_API_URL"] = _SESSION_API.url
    try:
        yield _SESSION_API.url
    finally:
        os.environ.pop("PREFECT_API_URL", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the session's Prefect server, also when no test ran (`--collect-only`, a collection
    error): a server left running holds the pipe of whoever reads pytest's output open."""
    if _SESSION_API is not None:
        _SESSION_API.__exit__(None, None, None)


@pytest.fixture
def prefect_in_process(prefect_api: str) -> Iterator[str]:
    """Flows run in this process report to the session's Prefect server: Prefect read its settings when
    first imported, before that server was named, so they are set here for the test."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        yield prefect_api


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


def _parquet_bytes(texts: list[str]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}), sink)
    return sink.getvalue()


def _commit_parts(store: Any, name: str, parts: int = 2) -> str:
    from tokenmill.corpus.store.versions import version_id

    vid = version_id("load", {"name": name}, [], "load-v1")
    attempt = store.begin("load", vid)
    files = [attempt.write_bytes(f"part-{i:05d}.parquet", _parquet_bytes([f"{name} doc {i}"] * 3), rows=3)
             for i in range(parts)]
    attempt.commit({"name": name}, [], "load-v1", files, {"docs_out": 3 * parts})
    return vid


@pytest.fixture
def commit_parts():
    """Factory: `commit_parts(store, name, parts=2)` commits a load version of small Parquet parts
    through the store API (no Dask) and returns its id."""
    return _commit_parts


@pytest.fixture
def docs_version(store: Any, client: Any, tmp_path: Path):
    """Factory: commit a load version of the given texts (or dicts) and return its id."""
    from tokenmill.corpus.ingest.load import LoadParams, run_load

    def make(docs: Iterable[str | dict[str, Any]], name: str = "docs") -> str:
        records = [{"text": d} if isinstance(d, str) else d for d in docs]
        path = _write_jsonl(tmp_path / f"{name}.jsonl", records)
        return run_load(store, LoadParams(paths=[str(path)], source_field="url"), client).id

    return make


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on the port the environment names; yields its endpoint."""
    from moto.server import ThreadedMotoServer

    port = int(S3_ENDPOINT.rsplit(":", 1)[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield S3_ENDPOINT
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A fresh, empty bucket: `s3://<name>`."""
    import s3fs

    name = f"tm-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir(name)
    return f"s3://{name}"


def host_dir(tmp_path: Path, name: str) -> tuple[Path, dict[str, str]]:
    """A process's own working directory, HOME and TMPDIR, as on another host."""
    home = tmp_path / name
    (home / "tmp").mkdir(parents=True)
    return home, {**os.environ, "HOME": str(home), "TMPDIR": str(home / "tmp")}


@pytest.fixture
def external_cluster(tmp_path):
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1, each in its own directory."""
    scheduler_file = tmp_path / "scheduler.json"
    cwd, env = host_dir(tmp_path, "scheduler")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                              cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        for k in range(2):
            cwd, env = host_dir(tmp_path, f"worker-{k}")
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                           "--scheduler-file", str(scheduler_file), "--nworkers", "1",
                                           "--nthreads", "1", "--no-dashboard", "--local-directory", str(cwd)],
                                          cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = json.loads(scheduler_file.read_text())["address"]
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
