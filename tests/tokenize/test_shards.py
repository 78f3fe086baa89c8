"""The shard format: header fields, documents and windows read back, and damaged shards refused."""

from __future__ import annotations

import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem

from tokenmill.corpus.store.errors import InputError
from tokenmill.tokenize.shards import HEADER_BYTES, MAGIC, Shard, write_shard


def make_shard(tmp_path, docs, vocab_size=1000, boundary="eos"):
    entries = write_shard(LocalFileSystem(), str(tmp_path), "train-00000", docs, sum(map(len, docs)), len(docs),
                          vocab_size, boundary, 2)
    return tmp_path / "train-00000.bin", entries


def test_header_documents_and_windows(tmp_path):
    docs = [np.array([5, 6, 2]), np.array([7, 2]), np.array([9, 9, 9, 9, 2])]
    path, entries = make_shard(tmp_path, docs)
    header = np.fromfile(path, dtype="<i4", count=8)
    assert header.tolist() == [MAGIC, 1, 2, 10, 3, 1000, 2, 2]
    assert path.stat().st_size == HEADER_BYTES + 10 * 2
    assert np.fromfile(tmp_path / "train-00000.idx", dtype="<u8").tolist() == [0, 3, 5]
    assert [(e.path, e.rows) for e in entries] == [("train-00000.bin", 10), ("train-00000.idx", 3)]
    shard = Shard(path)
    assert shard.tokens.dtype == np.uint16
    assert [d.tolist() for d in shard.documents()] == [d.tolist() for d in docs]
    assert [w.tolist() for w in shard.windows(4)] == [[5, 6, 2, 7], [2, 9, 9, 9]]


def test_large_vocab_uses_uint32(tmp_path):
    docs = [np.array([70_000, 65_536, 2]), np.array([1, 99_999])]
    path, _ = make_shard(tmp_path, docs, vocab_size=100_000, boundary="bos")
    shard = Shard(path)
    assert shard.tokens.dtype == np.uint32
    assert shard.header.boundary == "bos"
    assert shard.document(0).tolist() == [70_000, 65_536, 2]
    assert path.stat().st_size == HEADER_BYTES + 5 * 4


def test_truncated_shard_is_refused(tmp_path):
    path, _ = make_shard(tmp_path, [np.arange(100)])
    data = path.read_bytes()
    path.write_bytes(data[:-6])
    with pytest.raises(InputError, match="truncated"):
        Shard(path)
    path.write_bytes(data[:500])
    with pytest.raises(InputError, match="truncated header"):
        Shard(path)


def test_wrong_magic_is_refused(tmp_path):
    path, _ = make_shard(tmp_path, [np.arange(10)])
    data = bytearray(path.read_bytes())
    data[0:4] = b"GPT2"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="not a tokenmill shard"):
        Shard(path)
