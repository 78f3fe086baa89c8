"""Slow: the session's Prefect server, a process pool and worker; the `dedup` deployment from prefect.yaml
run through the API with parameters, committed once and then found cached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A child in its own process group, so stopping it stops what it started (worker → flow runs)."""
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_deployment(env: dict[str, str], params: dict[str, object]) -> tuple[float, str]:
    """`prefect deployment run … --watch`: seconds to a final state, and the CLI's output."""
    args = ["prefect", "deployment", "run", "dedup/dedup", "--watch", "--watch-timeout", "240"]
    for key, value in params.items():
        args += ["-p", f"{key}={json.dumps(value)}"]
    started = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return elapsed, done.stdout + done.stderr


def latest_artifact(env: dict[str, str], key: str) -> str:
    code = ("import asyncio, sys\nfrom prefect.client.orchestration import get_client\n"
            "from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey\n"
            "async def main():\n    async with get_client() as c:\n"
            f"        arts = await c.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[{key!r}])))\n"
            "        latest = max(arts, key=lambda a: a.created)\n"
            "        sys.stdout.write(str(latest.data))\nasyncio.run(main())\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


@pytest.mark.slow
def test_dedup_deployment_runs_then_completes_cached(tmp_path, store, client, docs_version, prefect_api):
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": prefect_api,  # the session's server: Prefect's own server app, as `prefect server start` runs
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    texts = [f"Report {i} on harbour traffic: ships, cranes and tides in week {i}." for i in range(12)]
    load = docs_version(texts + texts[:3])
    params = {"input_version": load,
              "overrides": {"store.root": store.url, "store.shared_filesystem": True,
                            "dask.address": client.scheduler.address}}
    processes = []
    try:
        deploy = subprocess.run(["tokenmill", "deploy", "dedup"], env=env, cwd=ROOT, capture_output=True, text=True,
                                timeout=180)
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        processes.append(start(["prefect", "worker", "start", "--pool", "tokenmill-local"], env,
                               tmp_path / "worker.log"))

        first_s, first_out = run_deployment(env, params)
        assert "Completed" in first_out
        versions = store.versions("dedup")
        assert [m.inputs for m in versions] == [[load]]
        assert versions[0].stats["docs_out"] == 12
        drops = latest_artifact(env, "dedup-drops")
        assert "kept" in drops and "dedup:exact" in drops

        cached_s, cached_out = run_deployment(env, params)
        assert "Completed" in cached_out
        assert [m.id for m in store.versions("dedup")] == [versions[0].id]
        assert "cached" in latest_artifact(env, "dedup-summary")
        print(f"\ndeployment run → COMPLETED: first {first_s:.1f} s, cached {cached_s:.1f} s")
    finally:
        for process in reversed(processes):
            stop(process)
