"""End to end through the `tokenmill` command: caching, errors, a crawl, SIGKILL, an external cluster, the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.store.versions import Store
from tokenmill.train.builtin_tasks import PACKAGES

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-c", "from tokenmill.flows.cli import main; main()"]
DEAD_API = "http://127.0.0.1:9/api"


def tokenmill(*args: str, cwd: Path, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"tokenmill {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def big_jsonl(path: Path, docs: int) -> Path:
    with path.open("w") as f:
        for i in range(docs):
            f.write(json.dumps({"text": f"document {i}: " + "lorem ipsum dolor sit amet " * 40}) + "\n")
    return path


def test_run_twice_is_cached_and_the_version_can_be_inspected(tmp_path, write_jsonl):
    data = write_jsonl(tmp_path / "in.jsonl", [{"body": f"text number {i}"} for i in range(50)])
    args = ["run", "load", "--store", str(tmp_path / "store"), "--set", f"load.paths=['{data}']", "--json"]
    first = tokenmill(*args, "--set", "load.text_field=body", cwd=tmp_path)
    vid = json.loads(first.stdout)["load"]
    assert f"load {vid} committed" in first.stderr
    # Every version committed: nothing runs, so no Prefect API is needed (this one answers nothing).
    second = tokenmill(*args, "--set", "load.text_field=body", cwd=tmp_path, env={"PREFECT_API_URL": DEAD_API})
    assert json.loads(second.stdout)["load"] == vid and f"load {vid} cached" in second.stderr
    assert "nothing to run" in second.stderr and (tmp_path / "store" / "reports" / f"{vid}.html").exists()
    forced = tokenmill(*args, "--set", "load.text_field=body", "--force", cwd=tmp_path)
    assert f"load {vid} committed" in forced.stderr

    listed = json.loads(tokenmill("versions", "--store", str(tmp_path / "store"), "--json", cwd=tmp_path).stdout)
    assert len(listed) == 1 and listed[0]["id"] == vid and listed[0]["docs_out"] == 50
    shown = json.loads(tokenmill("show", vid, "--store", str(tmp_path / "store"), "--json", cwd=tmp_path).stdout)
    assert shown["manifest"]["params"]["text_field"] == "body" and shown["lineage"] == [vid]
    stats = json.loads(tokenmill("stats", vid, "--store", str(tmp_path / "store"), "--json", cwd=tmp_path).stdout)
    assert stats["docs_out"] == 50


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--set", "load.chunk_mb=fast"], "load.chunk_mb: Input should be a valid number"),
        (["run", "--set", "load.paths=['/no/such/file.jsonl']"], "load.paths: '/no/such/file.jsonl' does not exist"),
        (["run", "--config", "missing.toml"], "config file missing.toml does not exist"),
        (["show", "load-0123456789ab"], "version 'load-0123456789ab' is not in the store"),
        (["run", "--from", "load-0123456789ab", "load"], "--from: version 'load-0123456789ab' is not in the store"),
        (["run", "clean", "--set", "pipeline.steps=['load']"],
         "step 'clean' is not in pipeline.steps; give --from VERSION to run it alone"),
        (["run", "load", "--dask-address", "tcp://127.0.0.1:1", "--set", "load.paths=['in.jsonl']"],
         "is a local path but the Dask cluster at tcp://127.0.0.1:1 is external"),
        (["run", "load", "pack", "--set", "load.paths=['in.jsonl']"],
         "step 'pack' needs a tokenizer version: give --from VERSION, or run an ingest step"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path, args, message, write_jsonl, monkeypatch):
    """In-process through the typer app (the errors are made one line inside it), as users get them."""
    from typer.testing import CliRunner

    from tokenmill.flows.cli import app

    write_jsonl(tmp_path / "in.jsonl", [{"text": f"a few words, number {i}"} for i in range(20)])
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.stderr


def test_a_step_failing_in_a_flow_is_one_line_and_exit_2_from_the_command(tmp_path, write_jsonl):
    """Through the real `tokenmill` process: a step that fails inside its Prefect flow."""
    write_jsonl(tmp_path / "in.jsonl", [{"text": f"a few words, number {i}"} for i in range(20)])
    result = tokenmill("run", "--set", "pipeline.steps=['load', 'tokenizer']", "--set", "load.paths=['in.jsonl']",
                       "--set", "tokenizer.vocab_size=100000", cwd=tmp_path, check=False)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "tokenizer: sentencepiece refused to train" in errors[0]
    assert "Traceback" not in result.stderr


def test_sigkill_before_the_manifest_leaves_nothing_committed_and_a_rerun_matches(tmp_path, client):
    data = big_jsonl(tmp_path / "in.jsonl", 20_000)
    store_path = tmp_path / "store"
    settings = ["--set", f"load.paths=['{data}']", "--set", "load.chunk_mb=0.1", "--store", str(store_path)]
    process = subprocess.Popen([*CLI, "run", "load", *settings], cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    staged: list[Path] = []
    while time.time() < deadline and not staged and process.poll() is None:
        staged = list(store_path.glob("load/.staging/*/part-*.parquet"))
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert staged, "the run ended before any part was written"

    store = Store(str(store_path))
    assert store.versions() == []
    params = LoadParams(paths=[str(data)], chunk_mb=0.1)
    resumed = run_load(store, params, client)
    assert not list(store_path.glob("load/.staging/*"))

    reference_store = Store(str(tmp_path / "reference"))
    reference = run_load(reference_store, params, client)
    assert resumed.id == reference.id
    a = store.read_docs(resumed.id).compute().sort_values("id")
    b = reference_store.read_docs(reference.id).compute().sort_values("id")
    assert len(a) == 20_000 and a.id.tolist() == b.id.tolist() and a.text.tolist() == b.text.tolist()
    checksums = lambda m: sorted((f.path, f.sha256) for f in m.files if f.path.endswith(".parquet"))  # noqa: E731
    assert checksums(resumed.manifest) == checksums(reference.manifest)


@pytest.fixture
def site() -> Iterator[str]:
    """Two linked pages on loopback; robots.txt is a 404, so both may be crawled."""
    words = "A page of plain words about crawling a small site from the command line. " * 3
    pages = {
        "/": f'<html><body><h1>Start</h1><p>{words}</p><a href="/next.html">next</a></body></html>',
        "/next.html": f"<html><body><h1>Next</h1><p>{words}</p></body></html>",
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_run_crawl_needs_no_from_alone_or_first_in_a_selection(tmp_path, site):
    settings = ["--set", f"crawl.seeds=['{site}/']", "--set", "crawl.allow_private=true", "--set", "crawl.delay_s=0",
                "--store", str(tmp_path / "store"), "--json"]
    alone = tokenmill("run", "crawl", *settings, cwd=tmp_path)
    vid = json.loads(alone.stdout)["crawl"]
    assert f"crawl {vid} committed" in alone.stderr
    store = Store(str(tmp_path / "store"))
    assert store.manifest(vid).stats["docs_out"] == 2

    chain = tokenmill("run", "crawl", "clean", *settings, cwd=tmp_path)
    versions = json.loads(chain.stdout)
    assert list(versions) == ["crawl", "clean"] and versions["crawl"] == vid
    assert f"crawl {vid} cached" in chain.stderr
    assert store.manifest(versions["clean"]).inputs == [vid]
    again = tokenmill("run", "crawl", "clean", *settings, cwd=tmp_path, env={"PREFECT_API_URL": DEAD_API})
    assert json.loads(again.stdout) == versions and "nothing to run" in again.stderr


def test_external_cluster_gives_the_same_version_as_the_local_cluster(tmp_path, client, external_cluster):
    from tokenmill.corpus.store.runtime import DaskSettings, dask_client

    data = big_jsonl(tmp_path / "in.jsonl", 3_000)
    params = LoadParams(paths=[str(data)], chunk_mb=0.2)
    local_store, remote_store = Store(str(tmp_path / "local")), Store(str(tmp_path / "remote"))
    local = run_load(local_store, params, client)
    with dask_client(DaskSettings(address=external_cluster)) as remote_client:
        remote_client.wait_for_workers(2, timeout=60)
        assert remote_client.scheduler.address == external_cluster
        assert len(remote_client.scheduler_info()["workers"]) == 2
        remote = run_load(remote_store, params, remote_client)
    assert remote.id == local.id
    sums = lambda m: sorted((f.path, f.sha256) for f in m.files if f.path.endswith(".parquet"))  # noqa: E731
    assert sums(remote.manifest) == sums(local.manifest)


def test_demo_run_with_no_config_runs_the_pipeline_on_python_documentation(tmp_path):
    # The embedded defaults, with 20 training steps (validated and checkpointed at 10), 100 KB of the
    # eval text scored (train's scores reused by eval) and 6 of the 20 MB of documentation: every
    # default code path runs, and the suite keeps inside its time budget (the 200 default steps add
    # two minutes and a half, scoring the whole eval text half a minute, the other 14 MB 40 s).
    demo = ("run", "--json", "--set", "train.steps=20", "--set", "train.eval_every=10",
            "--set", "train.checkpoint_every=10", "--set", "train.eval_max_bytes=100000",
            "--set", "eval.eval_max_bytes=100000", "--set", "load.python_docs_max_mb=6")
    result = tokenmill(*demo, cwd=tmp_path)
    versions = json.loads(result.stdout)
    assert list(versions) == ["load", "clean", "dedup", "filter", "tokenizer", "pack", "train", "eval"]
    vid = versions["load"]
    store = Store(str(tmp_path / "tokenmill-data"))
    manifest = store.manifest(vid)
    assert manifest.stats["docs_out"] > 1_000
    assert manifest.stats["bytes_out"] > 5 * 2**20
    sample = store.read_docs(vid, columns=["text"]).head(50)
    assert sample.text.str.split().str.len().mean() > 20, "real prose, not fragments"
    run = store.manifest(versions["train"])
    assert run.inputs[:2] == [versions["pack"], versions["tokenizer"]]
    assert 0 < run.stats["bpb"] < 8, "bits per byte of a model that learned something"
    assert (tmp_path / "tokenmill-data" / "reports" / f"{versions['eval']}.html").is_file()
    task = store.manifest(versions["eval"]).stats["tasks"]["stdlib-packages"]
    assert task["accuracy"] > 2 / PACKAGES and task["accuracy"] > task["majority_accuracy"], task  # chance: 1/8
    # every step, train and eval included, names its version up front: the rerun needs no Prefect API
    again = tokenmill(*demo, cwd=tmp_path, env={"PREFECT_API_URL": DEAD_API})
    assert json.loads(again.stdout) == versions and "nothing to run" in again.stderr
