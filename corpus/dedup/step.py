"""The dedup step: exact then MinHash near-duplicates, on Dask, one deterministic survivor per cluster.

The outline (DESIGN §4):
1. sign: each input part becomes `signatures/part-NNNNN.pq` (exact key, datasketch-compatible
   MinHash signature, rank attributes) in one Dask task, streaming in batches;
2. cluster: exact groups, band buckets, star edges, connected components and survivors, all
   by Dask shuffles (`clusters.py`), written as `clusters/part=N/*.pq`: one row per doc in a
   cluster of two or more;
3. write: each input part is joined with its own slice of that table and written as kept and
   rejected rows (`reason` dedup:exact / dedup:minhash, `duplicate_of` the survivor's id).
The signatures and clusters stay with the version, so `against` reuses them without
recomputing.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenmill.corpus.dedup import minhash
from tokenmill.corpus.dedup.clusters import (
    REASON_EXACT,
    REASON_MINHASH,
    ClusterSettings,
    InOneTask,
    OnDask,
    assign_clusters,
    assign_clusters_in_one_task,
    cluster_report,
    with_nodes,
)
from tokenmill.corpus.dedup.jaccard import shingle_sets
from tokenmill.corpus.dedup.lsh import s_curve
from tokenmill.corpus.dedup.params import CODE_VERSION, STEP, WITH_SHINGLE_SETS, DedupParams, version_key
from tokenmill.corpus.store.errors import ConfigError
from tokenmill.corpus.store.parts import Batch, PartWriter, run_parts
from tokenmill.corpus.store.schema import DOC_FIELDS, rejected_schema
from tokenmill.corpus.store.stats import DocStats
from tokenmill.corpus.store.step import Version, Written, commit_version, input_parts, read_batches
from tokenmill.corpus.store.versions import Attempt, FileEntry, Store

SIGNATURES = "signatures"
CLUSTERS = "clusters"
CLUSTER_FILE = "clusters.pq"
FIRST_LINE_CHARS = 120
# Inputs of fewer parts are signed one row group per task (of up to 20,000 docs, see `parts.py`).
SIGN_BY_ROW_GROUP_BELOW = 16
# Settings that change a signature: `against` versions must have been signed with the same.
SIGNATURE_SETTINGS = ("ngram", "normalize_digits", "num_perm", "seed", "scheme", "exact_strip_punctuation")

KEPT_SCHEMA = pa.schema(
    [*DOC_FIELDS, pa.field("dup_cluster", pa.string()), pa.field("dup_cluster_size", pa.int64())]
)
# A removed doc's row names its survivor (`duplicate_of`) and their exact Jaccard (1.0 for a copy).
REJECTED_SCHEMA = pa.schema([*rejected_schema(KEPT_SCHEMA), pa.field("duplicate_jaccard", pa.float32())])
SIGNATURE_SCHEMA = pa.schema(
    [
        pa.field("part", pa.int64()),
        pa.field("row", pa.int64()),
        pa.field("id", pa.string()),
        pa.field("key", pa.int64()),
        pa.field("length", pa.int64()),
        pa.field("fetched_at", pa.timestamp("us", tz="UTC")),
        pa.field("first_line", pa.string()),
        pa.field("shingles", pa.int64()),
        pa.field("sig", pa.binary()),
        pa.field("shingle_set", pa.large_binary()),
    ]
)


def first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.split("\n", 1)[0][:FIRST_LINE_CHARS] if stripped else ""


def signature_table(table: pa.Table, part: int, first_row: int, params: DedupParams) -> pa.Table:
    """Signature rows of one batch of docs: keys, signatures and the attributes `keep` ranks by."""
    texts = [t or "" for t in table["text"].to_pylist()]
    exact_texts = minhash.doc_bytes(*minhash.normalized_batch(texts, params.exact_strip_punctuation, False))
    keys = [minhash.text_key(t) for t in exact_texts]
    buffer, ends = minhash.normalized_batch(texts, True, params.normalize_digits)
    starts, stops, counts = minhash.shingle_spans(buffer, ends, params.ngram)
    hashes = minhash.hash_spans(buffer, starts, stops, minhash.width_of(params.scheme))
    sigs = minhash.signatures(hashes, counts, params.num_perm, params.seed, params.scheme)
    return pa.table(
        {
            "part": pa.array(np.full(len(texts), part, dtype=np.int64)),
            "row": pa.array(np.arange(first_row, first_row + len(texts), dtype=np.int64)),
            "id": table["id"],
            "key": pa.array(keys, pa.int64()),
            "length": pa.array([len(t.encode("utf-8", "surrogatepass")) for t in texts], pa.int64()),
            "fetched_at": table["fetched_at"],
            "first_line": pa.array([first_line(t) for t in texts], pa.string()),
            "shingles": pa.array(counts),
            "sig": pa.array([sigs[i].tobytes() for i in range(len(texts))], pa.binary()),
            "shingle_set": shingle_sets(hashes, counts),
        },
        schema=SIGNATURE_SCHEMA,
    )


def sign_part(index: int, url: str, out_url: str, params: DedupParams, group: int | None = None,
              first_row: int = 0) -> tuple[FileEntry, dict[str, int]]:
    """Stream one input part (or one row group of it, whose first row is `first_row`) into its
    signature file; returns the file entry and counts."""
    name = f"{SIGNATURES}/part-{index:05d}{'' if group is None else f'-{group:05d}'}.pq"
    writer = PartWriter(f"{out_url}/{name}", name, SIGNATURE_SCHEMA)
    rows = shingles = 0
    groups = None if group is None else [group]
    for batch in read_batches(url, columns=["id", "text", "fetched_at"], row_groups=groups):
        table = signature_table(batch, index, first_row + rows, params)
        writer.write(table)
        rows += table.num_rows
        shingles += int(pc.sum(table["shingles"]).as_py() or 0)
    return writer.close(keep_empty=True), {"signed_docs": rows, "shingles": shingles}


def sign_tasks(parts: list[str]) -> list[tuple[int, str, int | None, int]]:
    """(part, url, row group or None for the whole part, its first row) of each signing task: one per
    part, or, for an input of fewer than `SIGN_BY_ROW_GROUP_BELOW` parts, one per row group (read
    from those few parts' footers), so a small corpus keeps every worker busy to the end. A constant,
    not the cluster's size, decides, so a version's files are the same on any cluster."""
    if len(parts) >= SIGN_BY_ROW_GROUP_BELOW:
        return [(index, url, None, 0) for index, url in enumerate(parts)]
    tasks: list[tuple[int, str, int | None, int]] = []
    for index, url in enumerate(parts):
        with fsspec.open(url, "rb") as f:
            metadata = pq.ParquetFile(f).metadata
        starts = np.cumsum([0] + [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)])
        tasks += [(index, url, g, int(starts[g])) for g in range(metadata.num_row_groups)] or [(index, url, None, 0)]
    return tasks


def check_against(store: Store, params: DedupParams) -> None:
    """Each `against` version must be a dedup version signed with the same settings."""
    for vid in params.against:
        manifest = store.manifest(vid)
        if manifest.step != STEP:
            raise ConfigError(f"dedup.against: '{vid}' is a {manifest.step} version, not a dedup version")
        if manifest.code_version not in WITH_SHINGLE_SETS:
            raise ConfigError(f"dedup.against: '{vid}' was made by {manifest.code_version}, without the shingle "
                              f"sets {CODE_VERSION} decides by; rerun dedup on its input and use that version")
        differing = [k for k in SIGNATURE_SETTINGS if manifest.params.get(k) != getattr(params, k)]
        if differing:
            raise ConfigError(f"dedup.against: '{vid}' was signed with other {', '.join(differing)}")


def version_folder_files(store: Store, vid: str, folder: str) -> list[str]:
    manifest = store.manifest(vid)
    base = store.data_dir(vid, manifest)
    return [store.uri(f"{base}/{f.path}") for f in manifest.files if f.path.startswith(f"{folder}/")]


def signature_frame(files: list[str], src: int):
    import dask.dataframe as dd

    frame = dd.read_parquet(files, split_row_groups=False)
    return frame.map_partitions(with_nodes, src, meta=with_nodes(frame._meta, src))


def against_frame(store: Store, vid: str, src: int):
    """Signature rows of an earlier version's kept docs (its rejected ones are anti-joined away)."""
    import dask.dataframe as dd

    frame = signature_frame(version_folder_files(store, vid, SIGNATURES), src)
    cluster_files = version_folder_files(store, vid, CLUSTERS)
    if not cluster_files:
        return frame
    dropped = dd.read_parquet(cluster_files, columns=["part", "row", "reason"])
    dropped = dropped[dropped["reason"].notna()][["part", "row"]].assign(dropped=True)
    joined = frame.merge(dropped.astype({"part": "int64", "row": "int64"}), on=["part", "row"], how="left")
    return joined[joined["dropped"].isna()].drop(columns="dropped")


CLUSTER_COLUMNS = ["part", "row", "reason", "duplicate_of", "dup_cluster", "dup_cluster_size", "duplicate_jaccard"]
# Signature rows per shuffle partition by default: ~60 MB of rows, and few enough tasks that a
# small corpus does not pay the shuffles' per-partition costs many times over.
DOCS_PER_SHUFFLE_PARTITION = 100_000


def write_part_clusters(frame: pd.DataFrame, url: str) -> list[FileEntry]:
    """The cluster rows of the input parts this partition holds, one `part=P/clusters.pq` each, sorted
    by row so reruns write the same bytes; described (rows, bytes, sha256) here on the worker."""
    entries = []
    for part, rows in frame[CLUSTER_COLUMNS].groupby("part", sort=True):
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(rows.sort_values("row"), preserve_index=False), sink)
        data = sink.getvalue()
        path = f"part={part}/{CLUSTER_FILE}"
        with fsspec.open(f"{url}/{path}", "wb", auto_mkdir=True) as f:
            f.write(data)
        entries.append(FileEntry(path=f"{CLUSTERS}/{path}", rows=len(rows), bytes=len(data),
                                 sha256=hashlib.sha256(data).hexdigest()))
    return entries


def write_clusters(mapping: Any, url: str, npartitions: int) -> list[FileEntry]:
    """This version's cluster rows, one file per input part: the mapping shuffled by part, so the
    files number the parts, not parts x shuffle partitions, and the driver reads none of them."""
    import dask

    ours = mapping[mapping["src"] == 0].shuffle(on="part", npartitions=npartitions)
    written = dask.compute(*[dask.delayed(write_part_clusters)(d, url) for d in ours.to_delayed()])
    return sorted((entry for entries in written for entry in entries), key=lambda entry: entry.path)


def part_clusters(clusters_url: str, index: int) -> pd.DataFrame:
    """This part's slice of the cluster table, indexed by row (empty when none of its docs clusters)."""
    fs, path = fsspec.core.url_to_fs(f"{clusters_url}/part={index}")
    if not fs.exists(path):
        return pd.DataFrame(columns=CLUSTER_COLUMNS[2:])
    table = pq.read_table(path, filesystem=fs, columns=CLUSTER_COLUMNS[1:])
    return table.to_pandas().set_index("row")


def write_part_docs(task: tuple[int, str], clusters_url: str) -> Iterator[Batch]:
    """The partition function of the write phase: one input part joined with its cluster rows."""
    index, url = task
    mapping = part_clusters(clusters_url, index)
    first = 0
    for table in read_batches(url):
        rows = mapping.reindex(np.arange(first, first + table.num_rows))
        first += table.num_rows
        ids = np.asarray(table["id"].to_pylist(), dtype=object)
        cluster = rows["dup_cluster"].to_numpy(dtype=object, na_value=None)
        cluster = np.where(pd.isna(cluster), ids, cluster)
        size = rows["dup_cluster_size"].fillna(1).to_numpy(np.int64)
        table = table.append_column("dup_cluster", pa.array(cluster, pa.string()))
        table = table.append_column("dup_cluster_size", pa.array(size, pa.int64()))
        reason = rows["reason"].to_numpy(dtype=object, na_value=None)
        dropped = ~pd.isna(reason)
        rejected = table.filter(pa.array(dropped))
        rejected = rejected.append_column("reason", pa.array(reason[dropped], pa.string()))
        duplicate_of = rows["duplicate_of"].to_numpy(dtype=object, na_value=None)[dropped]
        rejected = rejected.append_column("duplicate_of", pa.array(duplicate_of, pa.string()))
        jaccard = rows["duplicate_jaccard"].to_numpy(np.float64, na_value=np.nan)[dropped]
        rejected = rejected.append_column("duplicate_jaccard", pa.array(jaccard, pa.float32(), from_pandas=True))
        yield Batch(kept=table.filter(pa.array(~dropped)), rejected=rejected)


def cluster_settings(params: DedupParams, npartitions: int) -> ClusterSettings:
    return ClusterSettings(
        exact=params.exact,
        minhash=params.minhash,
        bands=params.bands,
        rows=params.rows,
        threshold=params.threshold,
        verify=params.verify,
        keep=params.keep,
        max_union_find_edges=params.max_union_find_edges,
        npartitions=params.shuffle_partitions or npartitions,
        sig_dtype="uint64" if params.scheme in ("affine64", "legacy") else "uint32",
        set_dtype="uint64" if minhash.width_of(params.scheme) == 64 else "uint32",
    )


@dataclass(frozen=True)
class Signed:
    """What the signing stage wrote: signature files (one per input part or row group), and its counts."""

    files: list[FileEntry]
    docs: int
    shingles: int


def sign(client: Any, parts: list[str], attempt: Attempt, params: DedupParams) -> Signed:
    """Stage 1: every input part (or row group, see `sign_tasks`) signed in its own Dask task, into
    `signatures/`."""
    tasks = sign_tasks(parts)
    signed = client.gather([client.submit(sign_part, i, url, attempt.uri, params, group, first, pure=False)
                            for i, url, group, first in tasks])
    return Signed([entry for entry, _ in signed], sum(c["signed_docs"] for _, c in signed),
                  sum(c["shingles"] for _, c in signed))


@dataclass(frozen=True)
class Clustering:
    """What the clustering stage wrote (`clusters/`, one file per input part) and its figures."""

    files: list[FileEntry]
    figures: dict[str, Any]


def cluster(store: Store, signed: Signed, attempt: Attempt, params: DedupParams) -> Clustering:
    """Stage 2: clusters of this version's docs (and of the `against` versions') written to `clusters/`,
    with the clustering's counts and cluster-size report. Up to `single_task_docs` docs and no
    `against`, in one task; else by Dask shuffles."""
    import dask
    import dask.dataframe as dd

    files = [f"{attempt.uri}/{e.path}" for e in signed.files]
    url = f"{attempt.uri}/{CLUSTERS}"
    if signed.docs <= params.single_task_docs and not params.against:
        return dask.delayed(cluster_in_one_task)(files, cluster_settings(params, 1), url).compute()
    frames = [signature_frame(files, 0)]
    frames += [against_frame(store, v, src) for src, v in enumerate(params.against, start=1)]
    docs = dd.concat(frames) if len(frames) > 1 else frames[0]
    default_partitions = min(docs.npartitions, -(-signed.docs // DOCS_PER_SHUFFLE_PARTITION))
    settings = cluster_settings(params, max(default_partitions, 1))
    ops = OnDask(settings)
    mapping, counts = assign_clusters(docs, settings, ops)
    files_written = write_clusters(mapping, url, settings.npartitions)
    return Clustering(files_written, {**counts, **cluster_report(mapping, ops)})


def cluster_in_one_task(files: list[str], settings: ClusterSettings, url: str) -> Clustering:
    """Stage 2 for a corpus that fits one worker, in one task: clusters, their files and their report,
    with none of the fixed costs of Dask shuffles and reductions (seconds each on a small corpus)."""
    mapping, counts = assign_clusters_in_one_task(files, settings)
    files_written = sorted(write_part_clusters(mapping[mapping["src"] == 0], url), key=lambda entry: entry.path)
    return Clustering(files_written, {**counts, **cluster_report(mapping, InOneTask())})


def dedup_figures(stats: DocStats, params: DedupParams, signed: Signed) -> dict[str, Any]:
    """The step's own figures beside the shared doc stats."""
    return {
        "exact_removed": stats.rejected.get(REASON_EXACT, {}).get("docs", 0),
        "near_removed": stats.rejected.get(REASON_MINHASH, {}).get("docs", 0),
        "bands": params.bands,
        "rows": params.rows,
        "threshold": params.threshold,
        "s_curve_at_threshold": round(s_curve(params.threshold, params.bands, params.rows), 6),
        "candidate_threshold": params.candidate_threshold,
        "expected_recall": {f"{low:.2f}-{high:.2f}": round(r, 4) for low, high, r in params.expected_recall()},
        "signed_docs": signed.docs,
        "shingles": signed.shingles,
    }


def run_dedup(store: Store, params: DedupParams, client: Any, *, force: bool = False, input_version: str) -> Version:
    """Commit the deduplicated version of `input_version` (or find it cached): sign, cluster, write."""
    check_against(store, params)
    key = version_key(store, params, input_version=input_version)

    def write(attempt: Attempt) -> Written:
        parts = input_parts(store, input_version)
        signed = sign(client, parts, attempt, params)
        clustering = cluster(store, signed, attempt, params)
        files, stats = run_parts(client, list(enumerate(parts)),
                                 partial(write_part_docs, clusters_url=f"{attempt.uri}/{CLUSTERS}"),
                                 attempt.uri, KEPT_SCHEMA, REJECTED_SCHEMA, f"{STEP} {key.id}")
        figures = dedup_figures(stats, params, signed)
        headline = {**stats.headline(), "exact_removed": figures["exact_removed"],
                    "near_removed": figures["near_removed"]}
        files += signed.files + clustering.files
        return Written(files, {**stats.to_json(), **figures, **clustering.figures}, headline)

    return commit_version(store, key, write, force=force)
