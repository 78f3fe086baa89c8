"""Filter throughput with every default filter (the paper preset): each filter's signals alone, in
this process, over the first parts (where the time goes; this also warms numba's cache, as any run
after the first finds it), then the step's first run (signals computed) and a threshold-only rerun
(signals reused), on real text (the installed Python's docstrings).

    python bench/bench_filter.py [--size-mb 45] [--workers 2]
    python bench/bench_filter.py --compare --datatrove-python .venv-datatrove/bin/python [--size-mb 45]

`--compare` times whole commands on one input: `tokenmill run filter` (every default filter, then
the four heuristic ones alone) beside datatrove's four (`filter_baselines.py run`, in a virtual
environment of its own, see there), each on `--workers` workers; then the agreement, doc by doc,
of each heuristic filter alone with datatrove's on 3,000 real docs, under both presets."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.corpus.filter.params import FilterParams
from tokenmill.corpus.filter.registry import FILTERS
from tokenmill.corpus.filter.spec import TextBatch, TransformSpec, as_numpy
from tokenmill.corpus.filter.step import run_filter
from tokenmill.corpus.ingest.load import LoadParams, run_load
from tokenmill.corpus.store.step import read_batches
from tokenmill.corpus.store.versions import Store

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from bench_clean import result_row, write_corpus  # noqa: E402  the same real-text corpus as the clean bench
from run import TOKENMILL, daemon_running, real_texts, timed  # noqa: E402


def timed_row(store: Store, client: Any, case: str, params: FilterParams, input_version: str) -> dict:
    """Wall time, and the CPU time the workers spent: on a shared machine the per-worker rate that load
    does not stretch (`mb_per_worker_cpu_s`, MB per CPU second of one worker)."""
    cpu = workers_cpu(client)
    start = time.perf_counter()
    version = run_filter(store, params, client, input_version=input_version)
    wall = time.perf_counter() - start
    cpu = workers_cpu(client) - cpu
    stats = store.read_json(version.id, "stats.json")
    row = result_row("filter", case, stats, wall, client)
    # stats' bytes_in counts the texts as the step wrote them (C4 rewrites): the input is the load's output
    mb = store.manifest(input_version).stats["bytes_out"] / 2**20
    workers = row["workers"]
    row.update(mb=round(mb, 2), mb_per_s=round(mb / wall, 2), mb_per_s_per_worker=round(mb / wall / workers, 2))
    row.update(worker_cpu_s=round(cpu, 2), mb_per_worker_cpu_s=round(mb / cpu, 2))
    row.update(load_1m=round(os.getloadavg()[0], 2), docs_out=stats["docs_out"])
    row["signals_computed"] = sum(stats["signals"]["computed_docs"].values())
    return row


def workers_cpu(client: Any) -> float:
    """CPU seconds the cluster's worker processes have spent so far, added up."""
    return sum(client.run(time.process_time).values())


def bench(size_mb: float, workdir: pathlib.Path, client: Any) -> list[dict]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "filter-input.jsonl"
    write_corpus(path, size_mb, mojibake_every=0)
    load = LoadParams(paths=[str(path)], chunk_mb=max(size_mb / 8, 1))
    store = Store(str(workdir / "store"))
    loaded = run_load(store, load, client)
    defaults = FilterParams()
    stricter = FilterParams(gopher_quality={"min_words": 100})
    per_filter = per_filter_rows(store.files(loaded.id, "kept"), defaults)
    first = timed_row(store, client, "all defaults, signals computed, first run on fresh workers", defaults, loaded.id)
    # The same input in a second store: every signal computed again, by workers that have imported the
    # filters and loaded the language model (what each part after a worker's first one costs).
    again = Store(str(workdir / "store-again"))
    warm = timed_row(again, client, "all defaults, signals computed, warm workers", defaults,
                     run_load(again, load, client).id)
    return [first, warm, timed_row(store, client, "threshold change, signals reused", stricter, loaded.id), *per_filter]


def per_filter_rows(parts: list[str], params: FilterParams, max_mb: float = 10) -> list[dict]:
    """Each default filter's signal computation alone, one process, on the first `max_mb` of the input,
    in the step's batches; one batch goes through untimed first (imports, the language model)."""
    batches: list[pa.Table] = []
    for url in parts:
        batches += read_batches(url, columns=["text", "source"])
        if sum(text_bytes(t) for t in batches) >= max_mb * 2**20:
            break
    seconds = {name: [0.0, 0.0] for name in params.filters}  # wall, CPU
    for measuring, tables in ((False, batches[:1]), (True, batches)):
        for table in tables:
            batch = TextBatch(table)
            for name in params.filters:
                spec, settings = FILTERS[name], getattr(params, name)
                start, cpu = time.perf_counter(), time.process_time()
                if isinstance(spec, TransformSpec):
                    texts = spec.apply(batch.texts, settings)[0]
                    batch = TextBatch(table.set_column(table.schema.get_field_index("text"), "text", texts))
                else:
                    batch = spec.signals_of(batch, settings)[1]
                if measuring:
                    seconds[name][0] += time.perf_counter() - start
                    seconds[name][1] += time.process_time() - cpu
    mb = sum(text_bytes(t) for t in batches) / 2**20
    rows = [one_process_row(f"{name} signals, one process", mb, *spent) for name, spent in seconds.items()]
    total = [sum(spent[k] for spent in seconds.values()) for k in (0, 1)]
    return rows + [one_process_row("all filters' signals, one process", mb, *total)]


def text_bytes(table: pa.Table) -> int:
    return int(pc.sum(pc.binary_length(table["text"])).as_py() or 0)


def one_process_row(case: str, mb: float, wall: float, cpu: float) -> dict:
    """Wall and CPU time: on a shared machine the CPU time is the figure that load does not stretch as much."""
    return {
        "step": "filter",
        "case": case,
        "mb": round(mb, 2),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "mb_per_s": round(mb / wall, 2),
        "mb_per_cpu_s": round(mb / cpu, 2),
        "workers": 1,
        "mb_per_s_per_worker": round(mb / wall, 2),
        "load_1m": round(os.getloadavg()[0], 2),
    }


HEURISTIC = ["gopher_repetition", "gopher_quality", "c4", "fineweb"]  # datatrove's four, in FineWeb's order


def sharded_input(size_mb: float, folder: pathlib.Path, shards: int = 8) -> int:
    """The bench corpus as `shards` JSONL files (datatrove gives each task whole files); returns docs."""
    whole = folder.parent / "whole.jsonl"
    docs = write_corpus(whole, size_mb, mojibake_every=0)
    folder.mkdir(parents=True)
    outs = [(folder / f"part-{k:02d}.jsonl").open("w", encoding="utf-8") for k in range(shards)]
    for n, line in enumerate(whole.open(encoding="utf-8")):
        outs[n % shards].write(line)
    for out in outs:
        out.close()
    return docs


def compare(size_mb: float, workers: int, workdir: pathlib.Path, datatrove_python: str) -> list[dict]:
    """Whole commands on one input, each timed from its start to its exit."""
    shards = workdir / "input"
    docs = sharded_input(size_mb, shards)
    mb = sum(f.stat().st_size for f in shards.iterdir()) / 2**20
    tokenmill = [sys.executable, "-c", "from tokenmill.flows.cli import main; main()"]
    warm_up()
    cases = {"tokenmill run filter (every default filter)": [],
             "tokenmill run filter (the four heuristic filters)": ["--set", f"filter.filters={HEURISTIC}"]}
    rows = []
    for case, settings in cases.items():
        store = ["--store", str(workdir / f"store-{len(rows)}"), "--set", f"dask.n_workers={workers}", "--json"]
        _, out = timed([*tokenmill, "run", "load", *store, "--set", f"load.paths=['{shards}/*.jsonl']"])
        wall, out = timed([*tokenmill, "run", "filter", "--from", json.loads(out)["load"], *store, *settings])
        rows.append({"tool": case, "docs": docs, "mb": round(mb, 1), "wall_s": round(wall, 2),
                     "load_1m": round(os.getloadavg()[0], 2)})
    with daemon_running(workers, workdir) as env:  # `tokenmill daemon start` before: the command, then a rerun
        store = ["--store", str(workdir / "store-daemon"), "--set", f"dask.n_workers={workers}", "--json"]
        _, out = timed([*TOKENMILL, "run", "load", *store, "--set", f"load.paths=['{shards}/*.jsonl']"], env)
        command = [*TOKENMILL, "run", "filter", "--from", json.loads(out)["load"], *store, "--force"]
        walls = [timed(command, env)[0] for _ in range(2)]
    rows.append({"tool": "tokenmill run filter (every default filter, daemon running)", "docs": docs,
                 "mb": round(mb, 1), "wall_s": round(walls[0], 2), "rerun_wall_s": round(walls[1], 2),
                 "load_1m": round(os.getloadavg()[0], 2)})
    wall, _ = timed([datatrove_python, str(pathlib.Path(__file__).parent / "filter_baselines.py"), "run",
                     str(shards), str(workdir / "datatrove"), "--workers", str(workers)])
    rows.append({"tool": "datatrove 0.10.1, the four heuristic filters", "docs": docs, "mb": round(mb, 1),
                 "wall_s": round(wall, 2), "load_1m": round(os.getloadavg()[0], 2)})
    for row in rows:
        row["mb_per_s"] = round(mb / row["wall_s"], 2)
        row["x_faster_than_datatrove"] = round(rows[-1]["wall_s"] / row["wall_s"], 1)
    return rows + agreement(workdir, datatrove_python)


def warm_up() -> None:
    """Every default filter once on a few docs: numba compiles its kernels into the cache beside the
    code, as any run after the first finds them."""
    params = FilterParams()
    table = pa.table({"text": pa.array(real_texts(max_mb=0.1), pa.large_string())})
    table = table.append_column("source", pa.array(["https://docs.example.org/"] * table.num_rows))
    batch = TextBatch(table)
    for name in params.filters:
        spec = FILTERS[name]
        if not isinstance(spec, TransformSpec):
            batch = spec.signals_of(batch, getattr(params, name))[1]


def agreement(workdir: pathlib.Path, datatrove_python: str, docs: int = 3000) -> list[dict]:
    """Per heuristic filter alone: the share of real docs tokenmill and datatrove both keep or both drop."""
    texts = [text for text in real_texts(max_mb=24) if text][:docs]
    sample = workdir / "sample.jsonl"
    sample.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    decisions = workdir / "datatrove-decisions.json"
    timed([datatrove_python, str(pathlib.Path(__file__).parent / "filter_baselines.py"), "decide", str(sample),
           str(decisions)])
    theirs = json.loads(decisions.read_text())
    rows = []
    for preset in ("paper", "datatrove"):
        params = FilterParams(preset=preset)
        for name in HEURISTIC:
            ours = kept(name, texts, getattr(params, name))
            same = sum(a == b for a, b in zip(ours, theirs[name]))
            rows.append({"agreement": name, "preset": preset, "docs": len(texts), "same": round(same / len(texts), 3),
                         "kept_tokenmill": sum(ours), "kept_datatrove": sum(theirs[name])})
    return rows


def kept(name: str, texts: list[str], settings: Any) -> list[bool]:
    """Whether the filter alone keeps each text."""
    spec = FILTERS[name]
    values, _ = spec.signals_of(TextBatch(pa.table({"text": pa.array(texts, pa.large_string())})), settings)
    columns = {s.name: as_numpy(pa.array(values[s.name], s.type)) for s in spec.signals}
    dropped = np.zeros(len(texts), dtype=bool)
    for _, fails in spec.decide(columns, settings):
        dropped |= fails
    return (~dropped).tolist()


if __name__ == "__main__":
    import argparse
    import tempfile

    from tokenmill.corpus.store.runtime import DaskSettings, dask_client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=45)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compare", action="store_true", help="whole commands beside datatrove's four filters")
    parser.add_argument("--datatrove-python", default=".venv-datatrove/bin/python", help="--compare: its Python")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.compare:
            results = compare(args.size_mb, args.workers, pathlib.Path(tmp), args.datatrove_python)
        else:
            with dask_client(DaskSettings(n_workers=args.workers)) as dask:
                results = bench(args.size_mb, pathlib.Path(tmp), dask)
        for result in results:
            print(json.dumps(result))
