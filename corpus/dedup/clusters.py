"""From per-doc signatures to a cluster assignment, with Dask shuffles and never a collect.

The outline: exact groups by a shuffle on the text key; MinHash band buckets of the exact
representatives by a shuffle on the (band, bucket) key; candidate pairs from each bucket
(all pairs in a small bucket, the star around its minimum in a large one), each decided by
the exact Jaccard of the two shingle sets; connected components; one survivor per component
by a shuffle on the component; then every member checked against its survivor by exact
Jaccard, and a member that does not reach the threshold leaves the cluster (it is kept): no
doc is removed for a survivor it does not resemble, whatever chain of pairs linked them.
The result is a small distributed table with one row per doc that is in a cluster of two or
more, which the writer joins part by part.

Docs are named by a 64-bit `node` = source << 56 | part << 32 | row, unique across the input
and the `against` versions. Survivors are chosen by the `keep` order over doc attributes, never
by node, so the same docs give the same survivors however they are partitioned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tokenmill.corpus.dedup.components import (
    EDGES_META,
    distributed_labels,
    single_task_labels,
)
from tokenmill.corpus.dedup.jaccard import exact_jaccard
from tokenmill.corpus.dedup.minhash import band_keys

REASON_EXACT = "dedup:exact"
REASON_MINHASH = "dedup:minhash"
TOP_CLUSTERS = 10
SAMPLES_PER_CLUSTER = 3
# Buckets of up to this many docs give all their pairs as candidates; larger ones (boilerplate
# shared by thousands) give each member paired with the bucket's minimum, so pairs stay linear.
PAIRS_BUCKET_MAX = 16

# Sort orders of `keep`: docs of earlier (`against`) versions first, then the rule, then ties
# broken by attributes that do not depend on partitioning.
KEEP_ORDERS: dict[str, list[tuple[str, bool]]] = {
    "min_id": [("new", True), ("id", True), ("key", True), ("node", True)],
    "longest": [("new", True), ("length", False), ("id", True), ("key", True), ("node", True)],
    "first_seen": [("new", True), ("fetched_at", True), ("id", True), ("key", True), ("node", True)],
}
RANK_COLUMNS = ["new", "id", "key", "length", "fetched_at"]


@dataclass(frozen=True)
class ClusterSettings:
    """What the cluster stages need from the dedup params, resolved."""

    exact: bool
    minhash: bool
    bands: int
    rows: int
    threshold: float
    verify: bool
    keep: str
    max_union_find_edges: int
    npartitions: int
    sig_dtype: str
    set_dtype: str


def with_nodes(frame: pd.DataFrame, src: int) -> pd.DataFrame:
    """Add the node id and `new` (0 for docs of `against` versions, which win ties) to signature rows."""
    part = frame["part"].to_numpy(np.int64)
    row = frame["row"].to_numpy(np.int64)
    node = (np.int64(src) << np.int64(56)) | (part << np.int64(32)) | row
    return frame.assign(src=np.int64(src), node=node, new=np.int8(1 if src == 0 else 0))


def _sorted(frame: pd.DataFrame, group: str, keep: str) -> pd.DataFrame:
    order = KEEP_ORDERS[keep]
    return frame.sort_values([group, *[c for c, _ in order]], ascending=[True, *[a for _, a in order]])


def local_exact_groups(frame: pd.DataFrame, keep: str) -> pd.DataFrame:
    """Rows of one input partition with their copies' first doc (in `keep` order) here, and how many."""
    frame = _sorted(frame, "key", keep)
    grouped = frame.groupby("key", sort=False)["node"]
    return frame.assign(local_rep=grouped.transform("first"), local_size=grouped.transform("size").astype("int64"))


def global_reps(frame: pd.DataFrame, keep: str) -> pd.DataFrame:
    """Per key, across partitions: each partition's first copy mapped to the first of them all, and the
    copies counted. One row per partition and key reaches here, however many copies a text has."""
    frame = _sorted(frame, "key", keep)
    grouped = frame.groupby("key", sort=False)
    return pd.DataFrame({"local_rep": frame["node"].to_numpy(np.int64),
                         "rep": grouped["node"].transform("first").to_numpy(np.int64),
                         "exact_size": grouped["local_size"].transform("sum").to_numpy(np.int64)})


def signature_matrix(values: pd.Series, dtype: str) -> np.ndarray:
    """The binary signature column as a (docs x num_perm) array."""
    items = values.tolist()
    if not items:
        return np.empty((0, 0), dtype=dtype)
    return np.frombuffer(b"".join(items), dtype=dtype).reshape(len(items), -1)


def bucket_rows(frame: pd.DataFrame, bands: int, rows: int, dtype: str) -> pd.DataFrame:
    """One row per (doc, band): the 64-bit (band, bucket) key and the node."""
    frame = frame[frame["shingles"] > 0]
    keys = band_keys(signature_matrix(frame["sig"], dtype), bands, rows)
    return pd.DataFrame(
        {"bucket": keys.reshape(-1).view(np.int64), "node": np.repeat(frame["node"].to_numpy(np.int64), bands)}
    )


def bucket_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """Candidate pairs (hi > lo) of every bucket with two or more docs: all pairs of a bucket of up
    to PAIRS_BUCKET_MAX docs, each member with the minimum in a larger one."""
    frame = frame[frame.duplicated("bucket", keep=False)].sort_values(["bucket", "node"])
    buckets, nodes = frame["bucket"].to_numpy(), frame["node"].to_numpy(np.int64)
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]]) if len(nodes) else np.empty(0, np.int64)
    sizes = np.diff(np.r_[starts, len(nodes)])
    his, los = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for size in np.unique(sizes).tolist():
        first = starts[sizes == size][:, None]
        if size <= PAIRS_BUCKET_MAX:
            lo, hi = np.triu_indices(size, 1)
            his.append(nodes[first + hi].ravel())
            los.append(nodes[first + lo].ravel())
        else:
            his.append(nodes[first + np.arange(1, size)].ravel())
            los.append(np.repeat(nodes[first.ravel()], size - 1))
    return pd.DataFrame({"hi": np.concatenate(his), "lo": np.concatenate(los)})


def pair_jaccard(frame: pd.DataFrame, left: str, right: str, dtype: str) -> np.ndarray:
    """The exact Jaccard of each row's two shingle sets (columns `left`, `right`)."""
    return exact_jaccard(frame[left].tolist(), frame[right].tolist(), dtype)


def passing_edges(frame: pd.DataFrame, dtype: str, threshold: float) -> pd.DataFrame:
    """The candidate pairs whose exact Jaccard reaches the threshold."""
    passed = frame[pair_jaccard(frame, "set_hi", "set_lo", dtype) >= threshold]
    return pd.DataFrame({"hi": passed["hi"].to_numpy(np.int64), "lo": passed["lo"].to_numpy(np.int64)})


def with_sets(frame: Any, sets: Any, columns: dict[str, str]) -> Any:
    """`frame` joined with the shingle set of the node in each of `columns` (column -> set column)."""
    for column, name in columns.items():
        frame = frame.merge(sets.rename(columns={"node": column, "shingle_set": name}), on=column)
    return frame


def in_clusters(frame: pd.DataFrame) -> pd.DataFrame:
    """Representatives with a near-duplicate component or exact copies; a lone one is its own component."""
    frame = frame[frame["comp"].notna().to_numpy() | (frame["exact_size"].to_numpy() > 1)]
    return frame.assign(comp=frame["comp"].fillna(frame["node"]).astype("int64"))


def pick_survivors(frame: pd.DataFrame, keep: str) -> pd.DataFrame:
    """Per component: the first doc in `keep` order survives; the size counts exact copies too.
    A component left with one doc and no copies (its members split off) is no cluster."""
    frame = _sorted(frame, "comp", keep)
    grouped = frame.groupby("comp", sort=False)
    picked = pd.DataFrame(
        {
            "rep": frame["node"].to_numpy(np.int64),
            "survivor": grouped["node"].transform("first").to_numpy(np.int64),
            "survivor_id": grouped["id"].transform("first").to_numpy(dtype=object),
            "cluster_size": grouped["exact_size"].transform("sum").to_numpy(np.int64),
            "jaccard": frame["jaccard"].to_numpy(np.float64),
        }
    )
    return picked[picked["cluster_size"].to_numpy() > 1]


def survivor_jaccard(frame: pd.DataFrame, dtype: str) -> pd.DataFrame:
    """(node, jaccard) of each member with its survivor's shingle sets joined."""
    return pd.DataFrame({"node": frame["rep"].to_numpy(np.int64),
                         "jaccard": pair_jaccard(frame, "set_rep", "set_survivor", dtype)})


def split_off(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Members below the threshold with their survivor become components of their own, labelled
    -1 - node: a label no component has (components are labelled by their least node, which may be
    the very member that splits off, so `node` itself would put it back in its old component)."""
    failed = frame["jaccard"].to_numpy() < threshold
    comp = np.where(failed, -1 - frame["node"].to_numpy(np.int64), frame["comp"].to_numpy(np.int64))
    return frame.assign(comp=comp, jaccard=np.where(failed, np.nan, frame["jaccard"].to_numpy()))


def decide(frame: pd.DataFrame) -> pd.DataFrame:
    """The mapping row of each clustered doc: why it is dropped (if it is), its survivor and cluster."""
    survivor = frame["node"].to_numpy() == frame["survivor"].to_numpy()
    exact = frame["node"].to_numpy() != frame["rep"].to_numpy()
    reason = np.where(survivor, None, np.where(exact, REASON_EXACT, REASON_MINHASH))
    # An exact copy is the text of its representative: 1.0 with it, the representative's with the survivor.
    jaccard = np.where(survivor, np.nan, np.where(frame["rep"].to_numpy() == frame["survivor"].to_numpy(), 1.0,
                                                  frame["jaccard"].to_numpy(np.float64)))
    return pd.DataFrame(
        {
            "part": frame["part"].to_numpy(np.int64),
            "row": frame["row"].to_numpy(np.int64),
            "src": frame["src"].to_numpy(np.int64),
            "reason": pd.array(reason, dtype="string"),
            "duplicate_of": pd.array(np.where(survivor, None, frame["survivor_id"].to_numpy(dtype=object)),
                                     dtype="string"),
            "dup_cluster": pd.array(frame["survivor_id"].to_numpy(dtype=object), dtype="string"),
            "dup_cluster_size": frame["cluster_size"].to_numpy(np.int64),
            "duplicate_jaccard": jaccard.astype(np.float32),
            "survivor": frame["survivor"].to_numpy(np.int64),
            "first_line": pd.array(frame["first_line"].to_numpy(dtype=object), dtype="string"),
        }
    )


BUCKETS_META = pd.DataFrame({"bucket": pd.Series(dtype="int64"), "node": pd.Series(dtype="int64")})


class InOneTask:
    """The cluster stages' frame operations on one pandas frame: a corpus whose signatures fit one
    worker is clustered in one task, without the fixed cost of a dozen shuffles."""

    def each(self, frame: pd.DataFrame, fn: Any, *args: Any, meta: Any = None) -> pd.DataFrame:
        return fn(frame, *args)

    def by(self, frame: pd.DataFrame, column: str, fn: Any, *args: Any, meta: Any = None) -> pd.DataFrame:
        return fn(frame, *args)

    def merge(self, left: pd.DataFrame, right: pd.DataFrame, **how: Any) -> pd.DataFrame:
        return left.merge(right, **how)

    def distinct(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop_duplicates()

    def persist(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame

    def sizes(self, *frames: pd.DataFrame) -> list[int]:
        return [len(frame) for frame in frames]

    def collect(self, *frames: Any) -> tuple[Any, ...]:
        return frames

    def labels(self, edges: pd.DataFrame, n_edges: int) -> tuple[pd.DataFrame, dict[str, Any]]:
        return single_task_labels([edges]), {"components_method": "single_task", "components_rounds": 0}


class OnDask:
    """The same operations on Dask frames: `by` is a shuffle on the column, then the function per partition."""

    def __init__(self, settings: ClusterSettings):
        self.npartitions, self.max_edges = settings.npartitions, settings.max_union_find_edges

    def each(self, frame: Any, fn: Any, *args: Any, meta: Any = None) -> Any:
        return frame.map_partitions(fn, *args, meta=fn(frame._meta, *args) if meta is None else meta)

    def by(self, frame: Any, column: str, fn: Any, *args: Any, meta: Any = None) -> Any:
        return self.each(frame.shuffle(on=column, npartitions=self.npartitions), fn, *args, meta=meta)

    def merge(self, left: Any, right: Any, **how: Any) -> Any:
        return left.merge(right, npartitions=self.npartitions, **how)

    def distinct(self, frame: Any) -> Any:
        return frame.drop_duplicates(split_out=self.npartitions)

    def persist(self, frame: Any) -> Any:
        return frame.persist()

    def sizes(self, *frames: Any) -> list[int]:
        import dask

        return [int(n) for n in dask.compute(*(frame.shape[0] for frame in frames))]

    def collect(self, *frames: Any) -> tuple[Any, ...]:
        import dask

        return dask.compute(*frames)

    def labels(self, edges: Any, n_edges: int) -> tuple[Any, dict[str, Any]]:
        """One task while the edges fit one worker (scipy), else large-star/small-star rounds."""
        import dask.dataframe as dd
        from dask import delayed
        from distributed import wait

        if n_edges <= self.max_edges:
            labels = dd.from_delayed([delayed(single_task_labels)(edges.to_delayed())], meta=single_task_labels([]))
            counts = {"components_method": "single_task", "components_rounds": 0}
        else:
            labels, rounds = distributed_labels(edges, self.npartitions)
            counts = {"components_method": "distributed", "components_rounds": rounds}
        # Persisted and waited for while `edges` is still referenced: the delayed path holds only its keys.
        labels = labels.persist()
        wait(labels)
        return labels, counts


def exact_groups(docs: Any, settings: ClusterSettings, ops: Any) -> Any:
    """Every doc with its exact group's representative (first in `keep` order) and size. Copies are
    grouped within each input partition first, so the shuffle by text key carries one row per
    partition and key: a boilerplate text with millions of copies never lands whole on one worker."""
    local = ops.each(docs, local_exact_groups, settings.keep)
    heads = local[local["node"] == local["local_rep"]][["node", "local_size", *RANK_COLUMNS]]
    reps = ops.by(heads, "key", global_reps, settings.keep)
    return ops.merge(local, reps, on="local_rep", how="inner").drop(columns=["local_rep", "local_size"])


def near_duplicate_labels(reps: Any, settings: ClusterSettings, ops: Any) -> tuple[Any, dict[str, Any]]:
    """(labels frame of node -> component minimum, counts) from the exact representatives' signatures."""
    buckets = ops.each(reps, bucket_rows, settings.bands, settings.rows, settings.sig_dtype, meta=BUCKETS_META)
    # Buckets carry nodes only; the few candidate pairs fetch their shingle sets by two joins
    # afterwards, instead of every doc's set travelling once per band through the shuffle.
    candidates = ops.persist(ops.distinct(ops.by(buckets, "bucket", bucket_pairs, meta=EDGES_META)))
    edges = candidates
    if settings.verify:
        pairs = with_sets(candidates, reps[["node", "shingle_set"]], {"hi": "set_hi", "lo": "set_lo"})
        edges = ops.each(pairs, passing_edges, settings.set_dtype, settings.threshold, meta=EDGES_META)
    edges = ops.persist(edges)
    n_candidates, n_edges = ops.sizes(candidates, edges)
    labels, how = ops.labels(edges, n_edges)
    return labels, {"candidate_edges": n_candidates, "edges": n_edges, **how}


def assign_clusters(docs: Any, settings: ClusterSettings, ops: Any) -> tuple[Any, dict[str, Any]]:
    """(mapping frame of every doc in a cluster of two or more, counts) for the docs frame: one
    pandas frame with `InOneTask`, a Dask frame with `OnDask`; the same stages either way.

    `docs` holds the signature rows of all sources with `with_nodes` applied.
    """
    if settings.exact:
        docs = exact_groups(docs, settings, ops)
    else:
        docs = docs.assign(rep=docs["node"], exact_size=np.int64(1))
    docs = ops.persist(docs)
    reps = docs[docs["node"] == docs["rep"]]
    counts: dict[str, Any] = {"candidate_edges": 0, "edges": 0, "components_method": "none", "components_rounds": 0}
    rank = reps[["node", "exact_size", *RANK_COLUMNS]].assign(jaccard=np.float64(np.nan))
    if settings.minhash:
        labels, counts = near_duplicate_labels(reps, settings, ops)
        rank = ops.each(rank.merge(labels.astype({"comp": "Int64"}), on="node", how="left"), in_clusters)
    else:
        rank = rank[rank["exact_size"] > 1]
        rank = rank.assign(comp=rank["node"])
    survivors = ops.by(rank, "comp", pick_survivors, settings.keep)
    split = 0
    if settings.minhash and settings.verify:
        members = survivors[survivors["rep"] != survivors["survivor"]][["rep", "survivor"]]
        joined = with_sets(members, reps[["node", "shingle_set"]], {"rep": "set_rep", "survivor": "set_survivor"})
        measured = ops.persist(ops.each(joined, survivor_jaccard, settings.set_dtype))
        rank = ops.each(rank.drop(columns="jaccard").merge(measured, on="node", how="left"), split_off,
                        settings.threshold)
        survivors = ops.by(rank, "comp", pick_survivors, settings.keep)
        (split,) = ops.sizes(measured[measured["jaccard"] < settings.threshold])
    clustered = docs[["node", "rep", "src", "part", "row", "first_line"]].merge(survivors, on="rep", how="inner")
    mapping = ops.persist(ops.each(clustered, decide))
    return mapping, {**counts, "split_off": split}


def assign_clusters_in_one_task(files: list[str], settings: ClusterSettings) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`assign_clusters` of this version's signature files, read whole into this task."""
    import fsspec
    import pyarrow.parquet as pq

    frames = []
    for url in files:
        with fsspec.open(url, "rb") as f:
            frames.append(pq.read_table(f).to_pandas())
    docs = with_nodes(pd.concat(frames, ignore_index=True), 0)
    return assign_clusters(docs, settings, InOneTask())


def first_members(frame: pd.DataFrame) -> pd.DataFrame:
    """The first `SAMPLES_PER_CLUSTER` rows of each cluster in one partition, in partition order."""
    return frame.groupby("survivor", sort=False).head(SAMPLES_PER_CLUSTER)


def cluster_report(mapping: Any, ops: Any) -> dict[str, Any]:
    """Cluster-size histogram and the largest clusters with their docs' first lines (`ops` as for
    `assign_clusters`: reductions on Dask, or plain pandas in the clustering task)."""
    heads = mapping[mapping["reason"].isna()]
    histogram, top = ops.collect(
        heads["dup_cluster_size"].value_counts(), heads.nlargest(TOP_CLUSTERS, "dup_cluster_size")
    )
    top_ids = top["survivor"].tolist()
    chosen = mapping[mapping["survivor"].isin(top_ids)][["survivor", "first_line", "src"]]
    # A few members per cluster and partition come back, never a whole boilerplate cluster of millions.
    (members,) = ops.collect(ops.each(chosen, first_members))
    largest = []
    for row in top.sort_values(["dup_cluster_size", "dup_cluster"], ascending=[False, True]).itertuples():
        lines = members[members["survivor"] == row.survivor]["first_line"].head(SAMPLES_PER_CLUSTER).tolist()
        largest.append({"cluster": row.dup_cluster, "size": int(row.dup_cluster_size), "first_lines": lines})
    return {
        "cluster_size_histogram": {int(k): int(v) for k, v in sorted(histogram.items())},
        "largest_clusters": largest,
    }
