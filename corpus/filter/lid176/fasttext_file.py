"""Reading a fastText model file (`.bin` / `.ftz`, format version 12): fields, matrices, the label tree.

Follows facebookresearch/fastText's `Args::save`, `QuantMatrix::save`, `ProductQuantizer::save`
and `HierarchicalSoftmaxLoss::buildTree`, so `lid176` can run the model without the C++ library.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Args:
    """The model's training arguments, in the order `Args::save` writes them."""

    dim: int
    ws: int
    epoch: int
    min_count: int
    neg: int
    word_ngrams: int
    loss: int
    model: int
    bucket: int
    minn: int
    maxn: int
    lr_update_rate: int
    t: float


class Reader:
    """Little-endian fields read one after another from a model file's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def fields(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += values.nbytes
        return values

    def cstring(self) -> bytes:
        end = self.data.index(b"\0", self.pos)
        value, self.pos = self.data[self.pos : end], end + 1
        return value


def read_quantized(r: Reader) -> np.ndarray:
    """A `QuantMatrix`, dequantized once: each row is its product-quantizer centroids times its quantized norm."""
    qnorm, m, n, codesize = r.fields("?qqi")
    codes = r.array("u1", codesize).reshape(m, -1)
    dim, nsubq, dsub, lastdsub = r.fields("iiii")
    centroids = r.array("<f4", dim * 256)
    parts = []
    for q in range(nsubq):
        d = lastdsub if q == nsubq - 1 else dsub
        parts.append(centroids[q * 256 * dsub : q * 256 * dsub + 256 * d].reshape(256, d)[codes[:, q]])
    rows = np.concatenate(parts, axis=1)
    if qnorm:
        norm_codes = r.array("u1", m)
        r.fields("iiii")
        rows = rows * r.array("<f4", 256)[norm_codes][:, None]
    return np.ascontiguousarray(rows, dtype=np.float32).reshape(m, n)


def read_dense(r: Reader) -> np.ndarray:
    m, n = r.fields("qq")
    return r.array("<f4", m * n).reshape(m, n).astype(np.float32)


def huffman_paths(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0/1 matrices [internal node, leaf] of where each leaf's path to the root goes left and right,
    in the tree `HierarchicalSoftmaxLoss::buildTree` builds from the label counts."""
    osz = len(counts)
    count = np.full(2 * osz - 1, 1e15)
    count[:osz] = counts
    parent, binary = np.full(2 * osz - 1, -1), np.zeros(2 * osz - 1, dtype=bool)
    leaf, node = osz - 1, osz
    for i in range(osz, 2 * osz - 1):
        mini = []
        for _ in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                mini.append(leaf)
                leaf -= 1
            else:
                mini.append(node)
                node += 1
        count[i] = count[mini[0]] + count[mini[1]]
        parent[mini] = i
        binary[mini[1]] = True
    left, right = np.zeros((osz - 1, osz), dtype=np.float32), np.zeros((osz - 1, osz), dtype=np.float32)
    for label in range(osz):
        j = label
        while parent[j] != -1:
            (right if binary[j] else left)[parent[j] - osz, label] = 1
            j = parent[j]
    return left, right
