"""The object store and an external cluster against the local disk and a LocalCluster.

1. Commit time of a version with `--parts` part files on S3: the commit is one manifest PUT
   beside the attempt's files, never a copy of them (target <= 2 s at 1,000 parts).
2. The steps load → clean → dedup → filter → tokenizer → pack, run from this process, once on a
   local store with a LocalCluster of two single-threaded workers and once on S3 with a
   `dask scheduler` and two single-threaded `dask worker` processes, each in its own directory
   and HOME: each step's wall time and the ratio (target <= 1.3x per step). The input is
   `bench/scale.py`'s synthetic corpus (`--docs`, in files of 20,000 docs; parts of the usual
   size), or with `--input demo` the python-docs demo (41 parts of ~140 docs: per-request costs
   dominate).

The S3 API is moto's server on loopback: a Python process on the same cores as the workers,
spending CPU on every request that a real object store spends elsewhere; the ratios are an
upper bound of what tokenmill's request pattern costs. Run: `python bench/scale_out.py
[--parts 1000] [--docs 120000 | --input demo]`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_s3() -> object:
    from moto.server import ThreadedMotoServer

    port = free_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server


def commit_seconds(bucket: str, parts: int) -> float:
    """Seconds from a finished attempt of `parts` files to its committed manifest."""
    from tokenmill.corpus.store.step import VersionKey, Written, commit_written
    from tokenmill.corpus.store.versions import Store

    store = Store(f"{bucket}/commit-bench")
    key = VersionKey("load", "bench", {"parts": parts}, ())
    attempt = store.begin(key.step, key.id)
    files = [attempt.write_bytes(f"part-{i:05d}.parquet", b"x" * 64, rows=1) for i in range(parts)]
    started = time.perf_counter()
    commit_written(attempt, key, Written(files, {"docs_out": parts}))
    return time.perf_counter() - started


def external_cluster(workdir: Path) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and two single-threaded workers, each in its own directory and HOME."""
    def env_for(name: str) -> tuple[Path, dict[str, str]]:
        home = workdir / name
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        return home, {**os.environ, "HOME": str(home), "TMPDIR": str(home / "tmp")}

    scheduler_file = workdir / "scheduler.json"
    cwd, env = env_for("scheduler")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                              cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    while not scheduler_file.exists():
        time.sleep(0.1)
    for k in range(2):
        cwd, env = env_for(f"worker-{k}")
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                       str(scheduler_file), "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                                       "--local-directory", str(cwd)],
                                      cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return json.loads(scheduler_file.read_text())["address"], procs


def step_walls(store: Any, client: Any, paths: list[str], label: str) -> dict[str, float]:
    """Each step's wall time, from this process, with the store options set up on the workers."""
    from scale import run_steps

    from tokenmill.corpus.store.workers import prepare_workers

    prepare_workers(client, store)
    return {row["step"]: row["wall_s"] for row in run_steps(store, client, paths, label)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=120_000, help="synthetic corpus size in docs")
    parser.add_argument("--input", choices=["synthetic", "demo"], default="synthetic")
    options = parser.parse_args()
    server = start_s3()
    import s3fs
    from distributed import Client
    from scale import write_corpus

    from tokenmill.corpus.store.runtime import DaskSettings, dask_client
    from tokenmill.corpus.store.versions import Store

    bucket = f"s3://bench-{int(time.time())}"
    s3 = s3fs.S3FileSystem()
    s3.mkdir(bucket)
    print(f"commit of a version with {options.parts} parts on S3: {commit_seconds(bucket, options.parts):.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if options.input == "demo":
            local_paths = remote_paths = ["python-docs://"]
        else:
            local_paths = write_corpus(workdir / "input", options.docs)
            s3.put(str(workdir / "input") + "/", f"{bucket}/input/", recursive=True)
            remote_paths = [f"{bucket}/input/{Path(p).name}" for p in local_paths]
        with dask_client(DaskSettings(n_workers=2, threads_per_worker=1)) as client:
            local = step_walls(Store(str(workdir / "local-store")), client, local_paths, "local")
        address, procs = external_cluster(workdir)
        try:
            with Client(address) as client:
                remote = step_walls(Store(f"{bucket}/store"), client, remote_paths, "s3+external")
        finally:
            for proc in procs:
                proc.terminate()
    rows = [{"step": s, "local_s": local[s], "s3_external_s": remote[s], "ratio": remote[s] / max(local[s], 1e-9)}
            for s in local]
    print(f"{'step':<10} {'local s':>9} {'S3+ext s':>9} {'ratio':>6}")
    for row in rows:
        print(f"{row['step']:<10} {row['local_s']:>9.2f} {row['s3_external_s']:>9.2f} {row['ratio']:>6.2f}")
    print(json.dumps(rows))
    server.stop()


if __name__ == "__main__":
    main()
