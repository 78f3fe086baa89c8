"""The object store and an external cluster against the local disk and a LocalCluster.

1. Commit time of a version with `--parts` part files on S3: the commit is one manifest PUT
   beside the attempt's files, never a copy of them (target <= 2 s at 1,000 parts).
2. The demo pipeline (`tokenmill run` on its embedded defaults, or `--input topics` for a
   small real corpus) once on a local store with a LocalCluster and once on S3 with a
   `dask scheduler` and two `dask worker` processes: each step's wall time (its manifest's
   `wall_seconds`, attempt to commit) and the ratio (target <= 1.3x per step).

The S3 API is moto's server on loopback, so the figures measure tokenmill's protocol and
request pattern, not a network. Run: `python bench/bench_scale_out.py [--parts 1000] [--input demo|topics]`.
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

CLI = [sys.executable, "-c", "from tokenmill.flows.cli import main; main()"]
STEPS = ["load", "clean", "dedup", "filter", "tokenizer", "pack", "train", "eval"]


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


def topics_input(workdir: Path, bucket: str) -> tuple[str, str]:
    """The pydoc topics as JSONL docs, locally and on S3: (local path, S3 URL)."""
    from pydoc_data.topics import topics

    import s3fs

    lines = "".join(json.dumps({"id": name, "text": text}) + "\n" for name, text in sorted(topics.items()))
    local = workdir / "topics.jsonl"
    local.write_text(lines)
    s3fs.S3FileSystem().pipe_file(f"{bucket}/input/topics.jsonl", lines.encode())
    return str(local), f"{bucket}/input/topics.jsonl"


def pipeline_walls(args: list[str], root: str, cwd: Path) -> dict[str, float]:
    """Run the pipeline; each step's manifest wall time."""
    from tokenmill.corpus.store.versions import Store

    result = subprocess.run([*CLI, "run", "--store", root, "--json", *args], cwd=cwd, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise SystemExit(f"tokenmill run failed:\n{result.stderr[-3000:]}")
    versions = json.loads(result.stdout)
    store = Store(root)
    return {step: store.manifest(vid).wall_seconds for step, vid in versions.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=1000)
    parser.add_argument("--input", choices=["demo", "topics"], default="demo")
    options = parser.parse_args()
    server = start_s3()
    import s3fs

    bucket = f"s3://bench-{int(time.time())}"
    s3fs.S3FileSystem().mkdir(bucket)
    print(f"commit of a version with {options.parts} parts on S3: {commit_seconds(bucket, options.parts):.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        extra = ["--set", "train.progress=false"]
        local_args, remote_args = list(extra), list(extra)
        if options.input == "topics":
            local_path, remote_url = topics_input(workdir, bucket)
            local_args += ["--set", f"load.paths=['{local_path}']", "--set", "tokenizer.vocab_size=2000"]
            remote_args += ["--set", f"load.paths=['{remote_url}']", "--set", "tokenizer.vocab_size=2000"]
        local = pipeline_walls(local_args, str(workdir / "local-store"), workdir)
        address, procs = external_cluster(workdir)
        try:
            remote = pipeline_walls([*remote_args, "--dask-address", address], f"{bucket}/store", workdir)
        finally:
            for proc in procs:
                proc.terminate()
    rows = [{"step": s, "local_s": local[s], "s3_external_s": remote[s], "ratio": remote[s] / max(local[s], 1e-9)}
            for s in STEPS if s in local and s in remote]
    print(f"{'step':<10} {'local s':>9} {'S3+ext s':>9} {'ratio':>6}")
    for row in rows:
        print(f"{row['step']:<10} {row['local_s']:>9.2f} {row['s3_external_s']:>9.2f} {row['ratio']:>6.2f}")
    print(json.dumps(rows))
    server.stop()


if __name__ == "__main__":
    main()
