"""The whole pipeline on an object store and an external Dask cluster: a real S3 API (moto's
server) and a `dask scheduler` with two `dask worker` processes on loopback, each in its own
directory with its own HOME, none of them able to see the driver's store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.feather as feather
import pytest

from tokenmill.corpus.store.versions import Store

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-c", "from tokenmill.flows.cli import main; main()"]
STEPS = ["load", "clean", "dedup", "filter", "tokenizer", "pack", "train", "eval"]
CONFIG = """
[load]
source_field = "url"
[tokenizer]
vocab_size = 600
[pack]
decontaminate = []
[train]
steps = 8
seq_len = 64
batch_size = 4
eval_every = 0
checkpoint_every = 4
eval_max_bytes = 40000
cloze_max_items = 20
cpu_threads = 1
progress = false
[eval]
eval_max_bytes = 40000
cloze_max_items = 20
"""


def corpus() -> list[dict]:
    """Real prose: sections of about 150 words from the pydoc topics that ship with Python, a few twice."""
    from pydoc_data.topics import topics

    docs = []
    for name, text in sorted(topics.items()):
        words = text.split()
        for start in range(0, len(words) - 100, 150):
            docs.append({"id": f"{name}-{start}", "text": " ".join(words[start:start + 150]),
                         "url": f"https://docs.python.org/3/reference/{name}.html#{start}"})
    return docs + [{**doc, "id": f"{doc['id']}-copy"} for doc in docs[:10]]


def tokenmill(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"tokenmill {' '.join(args)}:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result


def results(store: Store, versions: dict[str, str]) -> dict:
    """What must not depend on where the pipeline ran: kept ids, shard checksums, scores."""
    kept = sorted(store.read_docs(versions["filter"], ["id"]).compute()["id"])
    pack = store.manifest(versions["pack"])
    shards = sorted((f.path, f.sha256) for f in pack.files if f.path.endswith((".bin", ".idx")))
    run, scored = store.manifest(versions["train"]), store.manifest(versions["eval"])
    return {"kept": kept, "shards": shards, "bpb": run.stats["bpb"], "eval_bpb": scored.stats["bpb"]}


def test_the_pipeline_on_s3_and_an_external_cluster_equals_the_local_run_and_runs_twice_at_once(
        tmp_path, s3_bucket, external_cluster):
    import s3fs

    docs = corpus()
    lines = "".join(json.dumps(doc) + "\n" for doc in docs)
    (tmp_path / "local-input.jsonl").write_text(lines)
    s3fs.S3FileSystem(skip_instance_cache=True).pipe_file(f"{s3_bucket}/input/docs.jsonl", lines.encode())
    (tmp_path / "tokenmill.toml").write_text(CONFIG)
    driver = tmp_path / "driver"
    driver.mkdir()
    env = {**os.environ, "TOKENMILL_CACHE": str(tmp_path / "driver-cache")}
    config = ["--config", str(tmp_path / "tokenmill.toml")]

    local_root = tmp_path / "local-store"
    local = json.loads(tokenmill("run", *config, "--store", str(local_root), "--set",
                                 f"load.paths=['{tmp_path / 'local-input.jsonl'}']", "--json",
                                 cwd=driver, env=env).stdout)
    remote_root = f"{s3_bucket}/store"
    # Two pipelines started at the same moment on the same settings: both succeed with the same
    # versions, each committed once (one attempt folder per version: the other writer waited).
    twin = driver.parent / "twin-driver"
    twin.mkdir()
    args = [*CLI, "run", *config, "--store", remote_root, "--dask-address", external_cluster,
            "--set", f"load.paths=['{s3_bucket}/input/*.jsonl']", "--json"]
    runs = [subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for cwd in (driver, twin)]
    outputs = [run.communicate(timeout=900) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(err[-3000:] for _, err in outputs)
    remote, twin_versions = (json.loads(out) for out, _ in outputs)
    assert remote == twin_versions and list(remote) == STEPS
    assert list(driver.iterdir()) == [], "the driver's working directory holds no store files"
    store = Store(remote_root)
    for vid in remote.values():
        attempts = store.fs.ls(f"{store.version_dir(vid)}/attempts", refresh=True)
        assert len(attempts) == 1, f"{vid}: {attempts}"

    local_results, remote_results = results(Store(str(local_root)), local), results(Store(remote_root), remote)
    assert remote_results["kept"] == local_results["kept"] and len(remote_results["kept"]) > 20
    assert remote_results["shards"] == local_results["shards"]
    for score in ("bpb", "eval_bpb"):
        assert remote_results[score] == pytest.approx(local_results[score], rel=1e-4)

    listed = json.loads(tokenmill("versions", "--store", remote_root, "--json", cwd=driver, env=env).stdout)
    assert {row["id"] for row in listed} >= set(remote.values())
    shown = json.loads(tokenmill("show", remote["pack"], "--store", remote_root, "--json", cwd=driver,
                                 env=env).stdout)
    assert shown["lineage"][0] == remote["load"] and shown["lineage"][-1] == remote["pack"]
    report = tmp_path / "report.html"
    tokenmill("report", remote["dedup"], "--store", remote_root, "-o", str(report), cwd=driver, env=env)
    assert remote["dedup"] in report.read_text()
    listing = feather.read_table(store.fs.open(store.file_path(remote["pack"], "shard_docs.arrow"), "rb"))
    assert set(listing["id"].to_pylist()) <= {doc["id"] for doc in docs}

