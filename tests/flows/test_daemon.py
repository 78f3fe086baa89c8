"""The daemon: commands run in processes it forks, on its cluster, with the caller's terminal and exit code."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tokenmill.corpus.store.runtime import DAEMON_CLUSTER_ENV, DaskSettings, daemon_cluster
from tokenmill.flows.daemon.server import changed_sources

ENTRY = [sys.executable, "-c", "from tokenmill.flows.entry import main; main()"]


def tokenmill(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*ENTRY, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[dict[str, str], dict]]:
    """A daemon with one worker, on a socket of this test's; yields the callers' environment and its status.
    The socket is in a short folder of /tmp: a Unix socket's path may not pass 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="tm-", dir="/tmp"))
    env = {**os.environ, "TOKENMILL_DAEMON_SOCKET": str(folder / "daemon.sock")}
    env.pop("TOKENMILL_DAEMON", None)  # the test session turns the daemon off for every other test
    started = tokenmill("daemon", "start", "--set", "dask.n_workers=1", "--json", env=env, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    try:
        yield env, json.loads(started.stdout)
    finally:
        tokenmill("daemon", "stop", env=env, cwd=tmp_path)
        shutil.rmtree(folder, ignore_errors=True)


def served(env: dict[str, str], cwd: Path) -> int:
    return json.loads(tokenmill("daemon", "status", "--json", env=env, cwd=cwd).stdout)["served"]


@pytest.mark.slow
def test_commands_run_in_the_daemon_on_its_cluster_with_their_exit_codes_and_signals(daemon, tmp_path, write_jsonl):
    env, status = daemon
    data = write_jsonl(tmp_path / "in.jsonl", [{"text": f"text number {i}"} for i in range(20)])
    ran = tokenmill("run", "load", "--store", "store", "--set", f"load.paths=['{data}']", "--set", "dask.n_workers=1",
                    "--json", env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    vid = json.loads(ran.stdout)["load"]
    assert f"load {vid} committed" in ran.stderr
    assert f"dask dashboard {status['dask_dashboard']}" in ran.stderr  # the daemon's cluster, not a new one
    assert (tmp_path / "store" / "load" / vid / "_manifest.json").exists()  # the caller's folder
    assert served(env, tmp_path) == 1

    wrong = tokenmill("run", "dedup", "--from", "nope", "--store", "store", env=env, cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: --from: 'nope' is not a version id")
    assert "Traceback" not in wrong.stderr and served(env, tmp_path) == 2

    # Dask reads DASK_* when imported: a caller with other values runs in its own process, the same command.
    other = {**env, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "31s"}
    listed = tokenmill("versions", "--store", "store", "--json", env=other, cwd=tmp_path)
    assert listed.returncode == 0 and [v["id"] for v in json.loads(listed.stdout)] == [vid]
    assert "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT differ from the daemon's" in listed.stderr
    assert served(env, tmp_path) == 2

    interrupted = interrupted_crawl(env, tmp_path)
    assert interrupted.returncode not in (0, None) and served(env, tmp_path) == 3
    assert tokenmill("versions", "--store", "store", env=env, cwd=tmp_path).returncode == 0  # it serves on
    assert served(env, tmp_path) == 4

    stopped = tokenmill("daemon", "stop", env=env, cwd=tmp_path)
    assert f"daemon pid {status['pid']} stopped" in stopped.stderr
    assert tokenmill("daemon", "status", env=env, cwd=tmp_path).returncode == 1
    assert not Path(env["TOKENMILL_DAEMON_SOCKET"]).exists()
    assert not psutil.pid_exists(status["pid"]) or psutil.Process(status["pid"]).wait(timeout=10) is None


def interrupted_crawl(env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """A crawl of a server that never answers, sent SIGINT (Ctrl-C) once its flow runs; it must end within 30 s."""
    silent = socket.socket()  # accepts connections and never answers: the crawl waits on its first request
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    seed = f"http://127.0.0.1:{silent.getsockname()[1]}/"
    command = [*ENTRY, "run", "crawl", "--store", "store", "--set", f"crawl.seeds=['{seed}']",
               "--set", "crawl.allow_private=true", "--set", "dask.n_workers=1"]
    with silent:
        process = subprocess.Popen(command, env=env, cwd=cwd, stderr=subprocess.PIPE, text=True)
        for line in process.stderr:  # type: ignore[union-attr]
            if "dask dashboard" in line:
                break
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    return process


def test_a_changed_source_file_is_named(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("x = 1\n")
    sources = {str(source): source.stat().st_mtime_ns}
    assert changed_sources(sources) is None
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 1_000_000))
    assert changed_sources(sources) == str(source)


def test_a_run_takes_the_daemons_cluster_only_with_the_same_dask_settings(monkeypatch):
    held = {"address": "tcp://127.0.0.1:8786", "settings": DaskSettings(n_workers=2).model_dump()}
    monkeypatch.setenv(DAEMON_CLUSTER_ENV, json.dumps(held))
    assert daemon_cluster(DaskSettings(n_workers=2)) == "tcp://127.0.0.1:8786"
    assert daemon_cluster(DaskSettings(n_workers=1)) is None
    assert daemon_cluster(DaskSettings(n_workers=2, profile=True)) is None
    monkeypatch.delenv(DAEMON_CLUSTER_ENV)
    assert daemon_cluster(DaskSettings(n_workers=2)) is None
