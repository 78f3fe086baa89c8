"""The token shard format: the contract between the pack step and the training step.

A shard `<split>-NNNNN.bin` is a 1024-byte header of 256 little-endian int32 then the tokens,
little-endian uint16 (uint32 when the vocabulary exceeds 65,535). Beside it, `<split>-NNNNN.idx`
holds one little-endian uint64 per document: the token offset where it starts. The header is
fixed-size so a reader memory-maps the tokens at a known offset (as nanoGPT/llm.c shards do).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tokenmill.corpus.store.cache import cache_root
from tokenmill.corpus.store.errors import InputError
from tokenmill.corpus.store.parts import HashingFile
from tokenmill.corpus.store.versions import FileEntry

COPY_CHUNK = 8 * 2**20

MAGIC = 0x4B4F544D  # b"MTOK" read as a little-endian int32
FORMAT_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MAX_SHARD_TOKENS = 2**31 - 1  # the token count is an int32 header field
BOUNDARY_CODES = {"bos": 1, "eos": 2}

# Header fields, by int32 position.
H_MAGIC, H_VERSION, H_DTYPE, H_TOKENS, H_DOCS, H_VOCAB, H_BOUNDARY, H_BOUNDARY_ID = range(8)


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 holds ids below 65,536; larger vocabularies need uint32."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def header(n_tokens: int, n_docs: int, vocab_size: int, boundary: str, boundary_id: int) -> bytes:
    if n_tokens > MAX_SHARD_TOKENS:
        raise ValueError(f"a shard holds at most {MAX_SHARD_TOKENS} tokens, not {n_tokens}")
    values = np.zeros(HEADER_INTS, dtype="<i4")
    values[[H_MAGIC, H_VERSION, H_DTYPE, H_TOKENS, H_DOCS, H_VOCAB, H_BOUNDARY, H_BOUNDARY_ID]] = [
        MAGIC, FORMAT_VERSION, token_dtype(vocab_size).itemsize, n_tokens, n_docs, vocab_size,
        BOUNDARY_CODES[boundary], boundary_id,
    ]
    return values.tobytes()


def write_shard(
    fs: Any,
    path: str,
    name: str,
    docs: Iterable[np.ndarray],
    n_tokens: int,
    n_docs: int,
    vocab_size: int,
    boundary: str,
    boundary_id: int,
) -> list[FileEntry]:
    """Stream documents (token arrays) into `<path>/<name>.bin` and `.idx`; sizes are known up front."""
    dtype = token_dtype(vocab_size)
    offsets = np.zeros(n_docs, dtype="<u8")
    written = count = 0
    with fs.open(f"{path}/{name}.bin", "wb") as raw:
        out = HashingFile(raw)
        out.write(header(n_tokens, n_docs, vocab_size, boundary, boundary_id))
        for tokens in docs:
            offsets[count] = written
            out.write(np.ascontiguousarray(tokens, dtype=dtype).data)
            written += len(tokens)
            count += 1
    if written != n_tokens or count != n_docs:
        raise ValueError(f"shard {name}: planned {n_docs} docs / {n_tokens} tokens, wrote {count} / {written}")
    index = offsets.tobytes()
    with fs.open(f"{path}/{name}.idx", "wb") as raw:
        raw.write(index)
    return [
        FileEntry(path=f"{name}.bin", rows=n_tokens, bytes=out.size, sha256=out.sha.hexdigest()),
        FileEntry(path=f"{name}.idx", rows=n_docs, bytes=len(index), sha256=hashlib.sha256(index).hexdigest()),
    ]


@dataclass(frozen=True)
class ShardHeader:
    dtype: np.dtype
    n_tokens: int
    n_docs: int
    vocab_size: int
    boundary: str
    boundary_id: int


def read_header(raw: bytes, path: str) -> ShardHeader:
    """Parse and check a header; anything unexpected is an InputError naming the file."""
    if len(raw) < HEADER_BYTES:
        raise InputError(f"shard {path}: truncated header ({len(raw)} of {HEADER_BYTES} bytes)")
    values = np.frombuffer(raw[:HEADER_BYTES], dtype="<i4")
    if values[H_MAGIC] != MAGIC:
        raise InputError(f"shard {path}: not a tokenmill shard (magic {int(values[H_MAGIC]):#x})")
    if values[H_VERSION] != FORMAT_VERSION:
        raise InputError(f"shard {path}: format version {int(values[H_VERSION])}, this reader knows {FORMAT_VERSION}")
    if values[H_DTYPE] not in (2, 4):
        raise InputError(f"shard {path}: unknown token width {int(values[H_DTYPE])} bytes")
    boundary = {code: name for name, code in BOUNDARY_CODES.items()}.get(int(values[H_BOUNDARY]))
    if boundary is None:
        raise InputError(f"shard {path}: unknown boundary code {int(values[H_BOUNDARY])}")
    return ShardHeader(
        dtype=np.dtype("<u2") if values[H_DTYPE] == 2 else np.dtype("<u4"),
        n_tokens=int(values[H_TOKENS]),
        n_docs=int(values[H_DOCS]),
        vocab_size=int(values[H_VOCAB]),
        boundary=boundary,
        boundary_id=int(values[H_BOUNDARY_ID]),
    )


class Shard:
    """A memory-mapped shard on local disk, validated on open: header, file size, index."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        bin_path = Path(self.path)
        if not bin_path.exists():
            raise InputError(f"shard {self.path}: no such file")
        with bin_path.open("rb") as f:
            self.header = read_header(f.read(HEADER_BYTES), self.path)
        expected = HEADER_BYTES + self.header.n_tokens * self.header.dtype.itemsize
        actual = bin_path.stat().st_size
        if actual != expected:
            raise InputError(f"shard {self.path}: {actual} bytes, header says {expected} (truncated or corrupt)")
        idx_path = bin_path.with_suffix(".idx")
        if not idx_path.exists() or idx_path.stat().st_size != 8 * self.header.n_docs:
            raise InputError(f"shard {self.path}: index {idx_path.name} missing or not {self.header.n_docs} offsets")
        self.tokens = np.memmap(bin_path, dtype=self.header.dtype, mode="r", offset=HEADER_BYTES,
                                shape=(self.header.n_tokens,))
        self.offsets = np.fromfile(idx_path, dtype="<u8").astype(np.int64)
        if self.header.n_docs and (self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 0)
                                   or self.offsets[-1] > self.header.n_tokens):
            raise InputError(f"shard {self.path}: index offsets are not increasing within the shard")

    def __len__(self) -> int:
        return self.header.n_docs

    def document(self, i: int) -> np.ndarray:
        """Tokens of the i-th document, boundary token included."""
        end = self.offsets[i + 1] if i + 1 < len(self.offsets) else self.header.n_tokens
        return self.tokens[self.offsets[i]:end]

    def documents(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.document(i)

    def windows(self, length: int, stride: int | None = None) -> Iterator[np.ndarray]:
        """Fixed-length windows across document boundaries, the way a language model reads shards."""
        if length < 1:
            raise ValueError("window length must be positive")
        step = stride or length
        for start in range(0, self.header.n_tokens - length + 1, step):
            yield self.tokens[start:start + length]


def shard_paths(store: Any, pack_version: str, split: str) -> list[str]:
    """Local paths of a pack version's `.bin` shards of one split, in shard order, for memory-mapping:
    the store's own files on a local disk, else this node's cached copies (`local_copy`)."""
    manifest = store.manifest(pack_version)
    names = sorted(f.path for f in manifest.files if f.path.startswith(f"{split}-") and f.path.endswith(".bin"))
    if store.local:
        return [store.file_path(pack_version, name, manifest) for name in names]
    entries = {f.path: f for f in manifest.files}
    for name in names:
        local_copy(store, pack_version, entries[name[:-4] + ".idx"], manifest)
    return [local_copy(store, pack_version, entries[name], manifest) for name in names]


def local_copy(store: Any, vid: str, entry: FileEntry, manifest: Any) -> str:
    """A file of a committed version on this node's disk, downloaded once and checked against the
    manifest's sha256 (a mismatch is an error, never a silently wrong shard). Ranks of one node
    share the copy: each downloads to a private name and renames, so a reader never sees half a file."""
    target = cache_root() / "versions" / vid / entry.path
    marker = target.with_name(target.name + ".sha256")
    if target.exists() and marker.exists() and marker.read_text() == entry.sha256 \
            and target.stat().st_size == entry.bytes:
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    with store.fs.open(store.file_path(vid, entry.path, manifest), "rb") as src, partial.open("wb") as dst:
        while chunk := src.read(COPY_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
    if digest.hexdigest() != entry.sha256:
        partial.unlink()
        raise InputError(f"{vid}/{entry.path}: downloaded bytes do not match the manifest's sha256")
    os.replace(partial, target)
    marker.write_text(entry.sha256)
    return str(target)
