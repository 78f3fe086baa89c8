"""From per-doc signatures to a cluster assignment, with Dask shuffles and never a collect.

The outline: exact groups by a shuffle on the text key; MinHash band buckets of the exact
representatives by a shuffle on the (band, bucket) key; star edges from each bucket's
minimum (optionally verified by estimated Jaccard); connected components; one survivor per
component by a shuffle on the component. The result is a small distributed table with one
row per doc that is in a cluster of two or more, which the writer joins part by part.

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
from tokenmill.corpus.dedup.minhash import band_keys, estimated_jaccard

REASON_EXACT = "dedup:exact"
REASON_MINHASH = "dedup:minhash"
TOP_CLUSTERS = 10
SAMPLES_PER_CLUSTER = 3

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
    verify_threshold: float | None
    keep: str
    max_union_find_edges: int
    npartitions: int
    sig_dtype: str


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


def exact_groups(docs: Any, settings: ClusterSettings) -> Any:
    """Every doc with its exact group's representative (first in `keep` order) and size. Copies are
    grouped within each input partition first, so the shuffle by text key carries one row per
    partition and key: a boilerplate text with millions of copies never lands whole on one worker."""
    local = docs.map_partitions(local_exact_groups, settings.keep, meta=local_exact_groups(docs._meta, settings.keep))
    heads = local[local["node"] == local["local_rep"]][["node", "local_size", *RANK_COLUMNS]]
    reps = heads.shuffle(on="key", npartitions=settings.npartitions).map_partitions(
        global_reps, settings.keep, meta=global_reps(heads._meta, settings.keep))
    grouped = local.merge(reps, on="local_rep", how="inner", npartitions=settings.npartitions)
    return grouped.drop(columns=["local_rep", "local_size"])


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


def star_edges(frame: pd.DataFrame) -> pd.DataFrame:
    """Edges (member, bucket minimum) of every bucket with two or more docs."""
    frame = frame[frame.duplicated("bucket", keep=False)]
    frame = frame.sort_values(["bucket", "node"])
    lo = frame.groupby("bucket", sort=False)["node"].transform("first").to_numpy(np.int64)
    node = frame["node"].to_numpy(np.int64)
    member = node != lo
    return pd.DataFrame({"hi": node[member], "lo": lo[member]})


def passing_edges(frame: pd.DataFrame, dtype: str, threshold: float) -> pd.DataFrame:
    """The candidate edges whose two signatures' estimated Jaccard reaches the threshold."""
    similar = estimated_jaccard(signature_matrix(frame["sig_hi"], dtype), signature_matrix(frame["sig_lo"], dtype))
    passed = frame[similar >= threshold]
    return pd.DataFrame({"hi": passed["hi"].to_numpy(np.int64), "lo": passed["lo"].to_numpy(np.int64)})


def in_clusters(frame: pd.DataFrame) -> pd.DataFrame:
    """Representatives with a near-duplicate component or exact copies; a lone one is its own component."""
    frame = frame[frame["comp"].notna().to_numpy() | (frame["exact_size"].to_numpy() > 1)]
    return frame.assign(comp=frame["comp"].fillna(frame["node"]).astype("int64"))


def pick_survivors(frame: pd.DataFrame, keep: str) -> pd.DataFrame:
    """Per component: the first doc in `keep` order survives; the size counts exact copies too."""
    frame = _sorted(frame, "comp", keep)
    grouped = frame.groupby("comp", sort=False)
    return pd.DataFrame(
        {
            "rep": frame["node"].to_numpy(np.int64),
            "survivor": grouped["node"].transform("first").to_numpy(np.int64),
            "survivor_id": grouped["id"].transform("first").to_numpy(dtype=object),
            "cluster_size": grouped["exact_size"].transform("sum").to_numpy(np.int64),
        }
    )


def decide(frame: pd.DataFrame) -> pd.DataFrame:
    """The mapping row of each clustered doc: why it is dropped (if it is), its survivor and cluster."""
    survivor = frame["node"].to_numpy() == frame["survivor"].to_numpy()
    exact = frame["node"].to_numpy() != frame["rep"].to_numpy()
    reason = np.where(survivor, None, np.where(exact, REASON_EXACT, REASON_MINHASH))
    return pd.DataFrame(
        {
            "part": frame["part"].to_numpy(np.int64),
            "row": frame["row"].to_numpy(np.int64),
            "src": frame["src"].to_numpy(np.int64),
            "reason": pd.array(reason, dtype="string"),
            "duplicate_of": pd.array(np.where(survivor, None, frame["survivor_id"].to_numpy(dtype=object)), dtype="string"),
            "dup_cluster": pd.array(frame["survivor_id"].to_numpy(dtype=object), dtype="string"),
            "dup_cluster_size": frame["cluster_size"].to_numpy(np.int64),
            "survivor": frame["survivor"].to_numpy(np.int64),
            "first_line": pd.array(frame["first_line"].to_numpy(dtype=object), dtype="string"),
        }
    )


def near_duplicate_labels(reps: Any, settings: ClusterSettings) -> tuple[Any, dict[str, Any]]:
    """(labels frame of node -> component minimum, counts) from the exact representatives' signatures."""
    import dask
    import dask.dataframe as dd
    from dask import delayed
    from distributed import wait

    meta = pd.DataFrame({"bucket": pd.Series(dtype="int64"), "node": pd.Series(dtype="int64")})
    buckets = reps.map_partitions(bucket_rows, settings.bands, settings.rows, settings.sig_dtype, meta=meta)
    # Buckets carry nodes only; the few candidate pairs fetch their signatures by two joins
    # afterwards, instead of every doc's signature travelling once per band through the shuffle.
    candidates = buckets.shuffle(on="bucket", npartitions=settings.npartitions).map_partitions(
        star_edges, meta=EDGES_META
    ).drop_duplicates(split_out=settings.npartitions).persist()
    edges = candidates
    if settings.verify_threshold is not None:
        sigs = reps[["node", "sig"]]
        pairs = candidates.merge(sigs.rename(columns={"node": "hi", "sig": "sig_hi"}), on="hi").merge(
            sigs.rename(columns={"node": "lo", "sig": "sig_lo"}), on="lo"
        )
        edges = pairs.map_partitions(passing_edges, settings.sig_dtype, settings.verify_threshold, meta=EDGES_META)
    edges = edges.persist()
    n_candidates, n_edges = dask.compute(candidates.shape[0], edges.shape[0])
    counts = {"candidate_edges": int(n_candidates), "edges": int(n_edges), "components_rounds": 0}
    if n_edges <= settings.max_union_find_edges:
        counts["components_method"] = "single_task"
        labels = dd.from_delayed([delayed(single_task_labels)(edges.to_delayed())], meta=single_task_labels([]))
    else:
        counts["components_method"] = "distributed"
        labels, counts["components_rounds"] = distributed_labels(edges, settings.npartitions)
    # Persisted and waited for while `edges` is still referenced: the delayed path holds only its keys.
    labels = labels.persist()
    wait(labels)
    return labels, counts


def assign_clusters(docs: Any, settings: ClusterSettings) -> tuple[Any, dict[str, Any]]:
    """(mapping frame of every doc in a cluster of two or more, counts) for the docs frame.

    `docs` holds the signature rows of all sources with `with_nodes` applied.
    """
    if settings.exact:
        docs = exact_groups(docs, settings)
    else:
        docs = docs.assign(rep=docs["node"], exact_size=np.int64(1))
    docs = docs.persist()
    reps = docs[docs["node"] == docs["rep"]]
    counts: dict[str, Any] = {"candidate_edges": 0, "edges": 0, "components_method": "none", "components_rounds": 0}
    rank = reps[["node", "exact_size", *RANK_COLUMNS]]
    if settings.minhash:
        labels, counts = near_duplicate_labels(reps, settings)
        rank = rank.merge(labels.astype({"comp": "Int64"}), on="node", how="left")
        rank = rank.map_partitions(in_clusters, meta=in_clusters(rank._meta))
    else:
        rank = rank[rank["exact_size"] > 1]
        rank = rank.assign(comp=rank["node"])
    survivors = rank.shuffle(on="comp", npartitions=settings.npartitions).map_partitions(
        pick_survivors, settings.keep, meta=pick_survivors(rank._meta, settings.keep)
    )
    clustered = docs[["node", "rep", "src", "part", "row", "first_line"]].merge(survivors, on="rep", how="inner")
    mapping = clustered.map_partitions(decide, meta=decide(clustered._meta))
    return mapping.persist(), counts


def first_members(frame: pd.DataFrame) -> pd.DataFrame:
    """The first `SAMPLES_PER_CLUSTER` rows of each cluster in one partition, in partition order."""
    return frame.groupby("survivor", sort=False).head(SAMPLES_PER_CLUSTER)


def cluster_report(mapping: Any) -> dict[str, Any]:
    """Cluster-size histogram and the largest clusters with their docs' first lines, by Dask reductions."""
    import dask

    heads = mapping[mapping["reason"].isna()]
    histogram, top = dask.compute(
        heads["dup_cluster_size"].value_counts(), heads.nlargest(TOP_CLUSTERS, "dup_cluster_size")
    )
    top_ids = top["survivor"].tolist()
    chosen = mapping[mapping["survivor"].isin(top_ids)][["survivor", "first_line", "src"]]
    # A few members per cluster and partition come back, never a whole boilerplate cluster of millions.
    members = chosen.map_partitions(first_members, meta=chosen._meta).compute()
    largest = []
    for row in top.sort_values(["dup_cluster_size", "dup_cluster"], ascending=[False, True]).itertuples():
        lines = members[members["survivor"] == row.survivor]["first_line"].head(SAMPLES_PER_CLUSTER).tolist()
        largest.append({"cluster": row.dup_cluster, "size": int(row.dup_cluster_size), "first_lines": lines})
    return {
        "cluster_size_histogram": {int(k): int(v) for k, v in sorted(histogram.items())},
        "largest_clusters": largest,
    }
