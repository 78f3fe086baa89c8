"""Benchmark of the tokenizer and pack steps on real text: the installed Python's docstrings, then its sources.

Rows: tokenizer training (wall, peak driver memory), pack end to end beside plain
sentencepiece on the same text in the same run, in one process (the issue's target: pack at
>= 80 % of that speed times the worker count) and in as many processes as workers with no Dask
(what this machine's cores give together: sentencepiece is bound by memory, and two processes
measured each at half speed here), and shard writing alone.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from fsspec.implementations.local import LocalFileSystem

from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.store.step import read_batches
from tokenmill.corpus.store.versions import Store
from tokenmill.tokenize.pack import PackParams, run_pack
from tokenmill.tokenize.shards import write_shard
from tokenmill.tokenize.trainer import TokenizerParams, run_tokenizer

BENCH_VOCAB = 16_000


class PeakRSS:
    """Peak resident memory of this process while the block runs, sampled every 50 ms."""

    def __enter__(self) -> PeakRSS:
        self.process, self.peak, self.stop = psutil.Process(), 0, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.stop.wait(0.05)

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


def row(case: str, mb: float, docs: int, wall: float, **extra: Any) -> dict[str, Any]:
    return {"step": "tokenize", "case": case, "mb": round(mb, 2), "docs": docs, "wall_s": round(wall, 3),
            "mb_per_s": round(mb / wall, 3) if wall else None, "docs_per_s": round(docs / wall, 1) if wall else None,
            **extra}


def plain_encode(model: bytes, urls: list[str], start_together: Any = None) -> tuple[float, int, int, float, float]:
    """(MB, docs, tokens, start, stop) of plain sentencepiece encoding these parts in this process,
    timed from `start_together` (a barrier the processes of a parallel run wait at) on."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=model)
    texts = [t for url in urls for table in read_batches(url, ["text"]) for t in table["text"].to_pylist() if t]
    if start_together is not None:
        start_together.wait()
    started = time.monotonic()
    tokens = sum(len(x) for i in range(0, len(texts), 256) for x in sp.encode(texts[i:i + 256]))
    stopped = time.monotonic()
    return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 2**20, len(texts), tokens, started, stopped


_BARRIER: Any = None


def _join_barrier(barrier: Any) -> None:
    global _BARRIER
    _BARRIER = barrier


def _plain_encode_at_barrier(model: bytes, urls: list[str]) -> tuple[float, int, int, float, float]:
    return plain_encode(model, urls, _BARRIER)


def parallel_plain_encode(model: bytes, urls: list[str], processes: int) -> tuple[float, int, int, float]:
    """(MB, docs, tokens, seconds) of `processes` plain sentencepiece processes encoding the parts
    together, no Dask: the machine's own ceiling for parallel encoding, which pack is held to."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    with context.Pool(processes, initializer=_join_barrier, initargs=(barrier,)) as pool:
        results = pool.starmap(_plain_encode_at_barrier, [(model, urls[k::processes]) for k in range(processes)])
    wall = max(r[4] for r in results) - min(r[3] for r in results)
    return sum(r[0] for r in results), sum(r[1] for r in results), sum(r[2] for r in results), wall


def write_text_corpus(path: Path, size_mb: float) -> None:
    """JSONL of real text up to `size_mb`: the installed Python's docstrings (about 40 MB here),
    then its source files whole, so the 100 MB tokenizer figure needs no download."""
    import orjson

    from tokenmill.corpus.ingest import pydocs

    budget = int(size_mb * 2**20)
    files = pydocs.module_files()
    docstrings = (text for _, text, _ in pydocs.iter_module_docs(files, budget) if text)
    sources = (Path(f.path).read_text(encoding="utf-8", errors="replace") for f in files)
    with path.open("wb") as out:
        for text in itertools.chain(docstrings, sources):
            if budget <= 0:
                break
            out.write(orjson.dumps({"text": text}) + b"\n")
            budget -= len(text.encode("utf-8", "surrogatepass"))


def bench(size_mb: float, workdir: Path, client: Any) -> list[dict[str, Any]]:
    store = Store(str(workdir / "bench-tokenize-store"))
    corpus = workdir / "bench-tokenize.jsonl"
    write_text_corpus(corpus, size_mb)
    docs = run_load(store, LoadParams(paths=[str(corpus)], chunk_mb=max(size_mb / 32, 1)), client, force=True)
    mb = docs.manifest.stats["bytes_out"] / 2**20
    n_docs = docs.manifest.stats["docs_out"]
    workers = len(client.scheduler_info()["workers"])
    rows = []

    base = psutil.Process().memory_info().rss
    with PeakRSS() as peak:
        started = time.perf_counter()
        tok = run_tokenizer(store, TokenizerParams(vocab_size=BENCH_VOCAB, sample_max_chars=int(size_mb * 2**20)),
                            client, force=True, input_version=docs.id)
        wall = time.perf_counter() - started
    stats = tok.manifest.stats
    rows.append(row("tokenizer_train", stats["sample_chars"] / 2**20, stats["sample_docs"], wall,
                    trainer_s=stats["train_seconds"], vocab_size=stats["vocab_size"],
                    peak_rss_mb=round(peak.peak / 2**20, 1), peak_rss_growth_mb=round((peak.peak - base) / 2**20, 1),
                    chars_per_token=stats["chars_per_token"], bytes_per_token=stats["bytes_per_token"],
                    byte_fallback_share=stats["byte_fallback_share"]))

    model = store.fs.cat(store.file_path(tok.id, "tokenizer.model"))
    single_mb, single_docs, single_tokens, started_at, stopped_at = plain_encode(model, store.files(docs.id))
    single_wall = stopped_at - started_at
    rows.append(row("spm_single_process", single_mb, single_docs, single_wall,
                    tokens_per_s=round(single_tokens / single_wall)))
    par_mb, par_docs, par_tokens, par_wall = parallel_plain_encode(model, store.files(docs.id), workers)
    rows.append(row(f"spm_{workers}_processes_no_dask", par_mb, par_docs, par_wall,
                    tokens_per_s=round(par_tokens / par_wall), scaling_vs_single=round(single_wall / par_wall, 3)))

    started = time.perf_counter()
    pack = run_pack(store, PackParams(), client, force=True, input_version=docs.id, tokenizer_version=tok.id)
    wall = time.perf_counter() - started
    tokens = pack.manifest.stats["tokens"]
    target = 0.8 * workers * single_mb / single_wall
    rows.append(row("pack", mb, n_docs, wall, tokens_per_s=round(tokens / wall), workers=workers,
                    mb_per_s_per_worker=round(mb / wall / workers, 3), target_mb_per_s=round(target, 3),
                    share_of_target=round(mb / wall / target, 3),
                    share_of_plain_processes=round(mb / wall / (par_mb / par_wall), 3)))

    tokens_array = np.random.default_rng(0).integers(0, BENCH_VOCAB, size=max(tokens, 1_000_000), dtype=np.uint16)
    doc_arrays = np.array_split(tokens_array, max(n_docs, 1))
    out = workdir / "bench-tokenize-shard"
    os.makedirs(out, exist_ok=True)
    started = time.perf_counter()
    write_shard(LocalFileSystem(), str(out), "train-00000", doc_arrays, len(tokens_array), len(doc_arrays),
                BENCH_VOCAB, "eos", 2)
    wall = time.perf_counter() - started
    rows.append(row("shard_write", tokens_array.nbytes / 2**20, len(doc_arrays), wall,
                    tokens_per_s=round(len(tokens_array) / wall)))
    return rows


if __name__ == "__main__":
    import json
    import sys
    import tempfile

    from tokenmill.corpus.store.runtime import DaskSettings, dask_client

    size = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    with tempfile.TemporaryDirectory() as tmp, dask_client(DaskSettings(n_workers=2)) as dask_client_:
        for result in bench(size, Path(tmp), dask_client_):
            print(json.dumps(result))
