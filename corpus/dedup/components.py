"""Connected components of the duplicate graph: scipy in one task, or large-star/small-star on Dask.

Both label every node in an edge with the smallest node of its component, so they give the
same answer and the caller picks by edge count: one task while the edge list fits one
worker's memory, otherwise the distributed alternation of Kiveris et al., "Connected
Components in MapReduce and Beyond" (SoCC 2014), which converges in O(log^2 n) rounds of
Dask joins and never holds the graph in one process.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

MAX_ROUNDS = 200
LABELS_META = pd.DataFrame({"node": pd.Series(dtype="int64"), "comp": pd.Series(dtype="int64")})
EDGES_META = pd.DataFrame({"hi": pd.Series(dtype="int64"), "lo": pd.Series(dtype="int64")})


def single_task_components(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, component minimum) for every node of the undirected edges (lo[i], hi[i]), by scipy's
    compiled connected components (13x a Python union-find on the same edges, identical labels)."""
    nodes, index = np.unique(np.concatenate([lo, hi]), return_inverse=True)
    n = len(nodes)
    graph = coo_matrix((np.ones(len(lo), dtype=np.int8), (index[: len(lo)], index[len(lo) :])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # `nodes` is sorted, so a component's first node in it is its minimum.
    _, first = np.unique(component, return_index=True)
    return nodes, nodes[first[component]]


def single_task_labels(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The one-task path: all edge partitions concatenated, labelled by `single_task_components`."""
    edges = pd.concat(list(frames), ignore_index=True) if frames else EDGES_META
    nodes, labels = single_task_components(edges["lo"].to_numpy(np.int64), edges["hi"].to_numpy(np.int64))
    return pd.DataFrame({"node": nodes, "comp": labels})


def _oriented(hi: pd.Series, lo: pd.Series) -> pd.DataFrame:
    """Edges as (larger, smaller) endpoint, without self-loops or repeats."""
    a, b = hi.to_numpy(np.int64), lo.to_numpy(np.int64)
    frame = pd.DataFrame({"hi": np.maximum(a, b), "lo": np.minimum(a, b)})
    return frame[frame["hi"] != frame["lo"]]


def _oriented_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return _oriented(frame["hi"], frame["lo"])


def _large_star_part(both: pd.DataFrame) -> pd.DataFrame:
    """Per node u: link each larger neighbour to the minimum of u's closed neighbourhood."""
    both = both.drop_duplicates()
    m = both.groupby("u")["v"].transform("min").to_numpy(np.int64)
    m = np.minimum(m, both["u"].to_numpy(np.int64))
    larger = both["v"].to_numpy(np.int64) > both["u"].to_numpy(np.int64)
    return _oriented(both["v"][larger], pd.Series(m[larger]))


def _small_star_part(edges: pd.DataFrame) -> pd.DataFrame:
    """Per node u: link u and its smaller neighbours to the minimum of them."""
    edges = edges.drop_duplicates()
    m = edges.groupby("hi")["lo"].transform("min")
    linked = _oriented(edges["lo"], m)
    centres = _oriented(edges["hi"], m)
    return pd.concat([linked, centres], ignore_index=True)


def _large_star(edges, npartitions: int):
    import dask.dataframe as dd

    both = dd.concat(
        [edges.rename(columns={"hi": "u", "lo": "v"}), edges.rename(columns={"lo": "u", "hi": "v"})]
    ).shuffle(on="u", npartitions=npartitions)
    return both.map_partitions(_large_star_part, meta=EDGES_META)


def _small_star(edges, npartitions: int):
    return edges.shuffle(on="hi", npartitions=npartitions).map_partitions(_small_star_part, meta=EDGES_META)


def _is_star_forest(edges) -> bool:
    """Every node has at most one smaller neighbour and no centre is itself a leaf (repeats allowed)."""
    import dask

    multi = (edges.groupby("hi")["lo"].nunique() > 1).sum()
    leaves = edges[["hi"]].drop_duplicates()
    centres = edges[["lo"]].drop_duplicates()
    overlap = centres.merge(leaves, left_on="lo", right_on="hi", how="inner")
    multi_count, overlap_count = dask.compute(multi, overlap.shape[0])
    return int(multi_count) == 0 and int(overlap_count) == 0


def distributed_labels(edges, npartitions: int) -> tuple[object, int]:
    """(labels frame, rounds): large-star then small-star until the graph is a forest of stars.

    `edges` is a Dask frame of (hi, lo); each round's result is persisted so the task graph
    stays one round deep.
    """
    current = edges.map_partitions(_oriented_frame, meta=EDGES_META).persist()
    for rounds in range(1, MAX_ROUNDS + 1):
        current = _small_star(_large_star(current, npartitions), npartitions).persist()
        if _is_star_forest(current):
            return _star_labels(current), rounds
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


def _star_labels(stars):
    import dask.dataframe as dd

    leaves = stars.drop_duplicates(split_out=stars.npartitions).rename(columns={"hi": "node", "lo": "comp"})
    centres = stars[["lo"]].drop_duplicates().rename(columns={"lo": "node"})
    centres = centres.assign(comp=centres["node"])
    return dd.concat([leaves[["node", "comp"]], centres[["node", "comp"]]])
