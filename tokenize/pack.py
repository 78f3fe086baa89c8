"""The pack step: encode a docs version with a tokenizer version into token shards for training.

Outline: (1) every input part is encoded on a Dask worker (the model loaded once per worker
process), training docs overlapping the eval texts and docs with no tokens are dropped to
`rejected/`, and tokens go to a scratch file; only per-doc lengths and hashes come back.
(2) The driver splits train/val by a hash of the doc id, orders each split by a seeded hash
(a permutation independent of partitioning) and cuts it into shards. (3) Workers gather each
shard's docs from the scratch files and write `<split>-NNNNN.bin` / `.idx`.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
from pydantic import BaseModel, ConfigDict, Field

from tokenmill.corpus.ingest.pydocs import PYTHON_TOPICS_URL
from tokenmill.corpus.store.parts import PartWriter, rejected_rows
from tokenmill.corpus.store.schema import REJECTED_SCHEMA
from tokenmill.corpus.store.stats import DocStats, length_bin_edges, log2_histogram
from tokenmill.corpus.store.step import (
    Version,
    VersionKey,
    Written,
    commit_version,
    input_parts,
    read_batches,
)
from tokenmill.corpus.store.versions import Attempt, FileEntry, Store
from tokenmill.tokenize.decontam import EvalNgrams, eval_ngrams
from tokenmill.tokenize.evalset import eval_texts
from tokenmill.tokenize.model import BOS_ID, EOS_ID, TokenizerInfo, load_model, tokenizer_info
from tokenmill.tokenize.sampling import id_keys, id_units
from tokenmill.tokenize.shards import (
    BOUNDARY_CODES,
    MAX_SHARD_TOKENS,
    token_dtype,
    write_shard,
)

STEP = "pack"
CODE_VERSION = "pack-v2"
SPLIT_SALT = "pack-split"
SCRATCH = "_encoded"
REASON_DECONTAMINATED = "pack:decontaminated"
REASON_EMPTY = "pack:empty"


class PackParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    boundary: Literal["eos", "bos"] = Field(
        default="eos", description="document boundary token: EOS after each doc, or BOS before it"
    )
    val_fraction: float = Field(default=0.005, ge=0, lt=1, description="share of docs (by id hash) in validation")
    val_max_tokens: int = Field(
        default=10_000_000, ge=0, description="cap on validation tokens; docs past it (by hash order) go to train"
    )
    decontaminate: list[str] = Field(
        default_factory=lambda: [PYTHON_TOPICS_URL],
        description="eval texts (files, globs, docs version ids, python-docs://topics) whose n-grams docs must "
        "not share; the default is the eval step's default eval set",
    )
    decontaminate_ngram_words: int = Field(
        default=13, ge=1, description="words per n-gram for decontamination (13, as in GPT-3)"
    )
    shard_tokens: int = Field(
        default=100_000_000, ge=1, le=MAX_SHARD_TOKENS,
        description="tokens per shard (a shard ends after the doc that reaches it)",
    )
    seed: int = Field(default=0, description="seed of the document order inside each split")
    encode_batch_docs: int = Field(default=256, ge=1, description="docs per sentencepiece encode call")
    encode_threads: int = Field(
        default=1, ge=1, description="threads per encode call; measured no gain, parallelism comes from Dask workers"
    )


@dataclass(frozen=True)
class EncodeJob:
    """What every encode task needs, bound once with functools-style arguments."""

    model_url: str
    model_sha256: str
    scratch_url: str
    out_url: str
    dtype: str
    boundary: str
    batch_docs: int
    threads: int
    newline_id: int | None


@dataclass
class EncodedPart:
    tokens_url: str
    ids: list[str]
    lengths: np.ndarray
    offsets: np.ndarray
    files: list[FileEntry] = field(default_factory=list)
    stats: DocStats = field(default_factory=DocStats)


def encode_with_boundaries(sp: Any, texts: list[str], newline_id: int | None, threads: int, boundary: str,
                           dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kept docs' tokens, each with its BOS before or EOS after, flattened; each kept doc's length; and
    which docs encode to nothing (dropped).

    When newline is a user-defined piece no merge crosses it, so lines are encoded apart and
    joined with it: the same ids, about twice as fast on long docs (BPE merging cost grows
    faster than the length of the span it merges). Every line then adds its tokens and one
    separator (newline, or the doc's marker at its edge), which numpy places in bulk."""
    lines = [t.split("\n") for t in texts] if newline_id is not None else [[t] for t in texts]
    lines_per_doc = np.fromiter(map(len, lines), np.int64, len(lines))
    pieces = sp.encode([line for doc in lines for line in doc], num_threads=threads)
    line_tokens = np.fromiter(map(len, pieces), np.int64, len(pieces))
    first_line = np.cumsum(lines_per_doc) - lines_per_doc
    doc_tokens = (np.add.reduceat(line_tokens, first_line) if len(texts) else line_tokens) + lines_per_doc - 1
    empty = doc_tokens == 0
    kept_line = ~np.repeat(empty, lines_per_doc)
    line_out = line_tokens[kept_line] + 1
    line_start = np.cumsum(line_out) - line_out
    edge = np.zeros(len(pieces), dtype=bool)
    edge[first_line if boundary == "bos" else first_line + lines_per_doc - 1] = True
    separator = line_start if boundary == "bos" else line_start + line_out - 1
    flat = np.empty(int(line_out.sum()), dtype=dtype)
    is_token = np.ones(len(flat), dtype=bool)
    is_token[separator] = False
    flat[is_token] = np.fromiter(itertools.chain.from_iterable(pieces), dtype, int(line_tokens.sum()))
    flat[separator] = np.where(edge[kept_line], BOS_ID if boundary == "bos" else EOS_ID, newline_id or 0)
    return flat, doc_tokens[~empty] + 1, empty


def encode_part(index: int, url: str, job: EncodeJob, eval_set: EvalNgrams) -> EncodedPart:
    """Encode one input part into a scratch token file; drop overlapping and empty docs with reasons."""
    sp = load_model(job.model_url, job.model_sha256)
    name = f"part-{index:05d}.parquet"
    rejected = PartWriter(f"{job.out_url}/rejected/{name}", f"rejected/{name}", REJECTED_SCHEMA)
    out = EncodedPart(tokens_url=f"{job.scratch_url}/part-{index:05d}.tok", ids=[], lengths=np.zeros(0, np.int64),
                      offsets=np.zeros(0, np.int64))
    lengths, written = [], 0
    with fsspec.open(out.tokens_url, "wb", auto_mkdir=True) as tokens_file:
        for table in read_batches(url, batch_rows=job.batch_docs):
            texts = table["text"].to_pylist()
            dirty = eval_set.overlapping_docs(texts)
            flat, doc_lengths, empty_clean = encode_with_boundaries(
                sp, [t or "" for t, d in zip(texts, dirty) if not d], job.newline_id, job.threads, job.boundary,
                job.dtype)
            empty = np.zeros(len(texts), dtype=bool)
            empty[np.flatnonzero(~dirty)] = empty_clean
            for mask, reason in ((dirty, REASON_DECONTAMINATED), (empty, REASON_EMPTY)):
                if mask.any():
                    dropped = rejected_rows(table, mask, reason)
                    rejected.write(dropped)
                    out.stats.add_rejected(dropped)
            kept = table.filter(pa.array(~dirty & ~empty))
            out.stats.add_kept(kept)
            tokens_file.write(flat.tobytes())
            out.ids.extend(kept["id"].to_pylist())
            lengths.append(doc_lengths)
            written += len(flat)
    out.lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    out.offsets = np.cumsum(out.lengths) - out.lengths
    entry = rejected.close(keep_empty=False)
    out.files = [entry] if entry else []
    out.stats.counters["tokens"] += written
    return out


def split_val(ids: list[str], lengths: np.ndarray, fraction: float, max_tokens: int) -> np.ndarray:
    """Which docs are validation: hash of id below `fraction`, the lowest hashes first up to `max_tokens`."""
    units = id_units(ids, SPLIT_SALT)
    candidates = np.flatnonzero(units < fraction)
    candidates = candidates[np.argsort(units[candidates], kind="stable")]
    within = candidates[np.cumsum(lengths[candidates]) <= max_tokens]
    val = np.zeros(len(ids), dtype=bool)
    val[within] = True
    return val


def shard_plan(order: np.ndarray, lengths: np.ndarray, shard_tokens: int) -> list[np.ndarray]:
    """Docs (in `order`) grouped into shards by where each starts, so a shard passes the size by one doc at most."""
    if len(order) == 0:
        return []
    starts = np.cumsum(lengths[order]) - lengths[order]
    _, shard_of = np.unique(starts // shard_tokens, return_inverse=True)
    bounds = np.flatnonzero(np.diff(shard_of)) + 1
    return np.split(order, bounds)


def shard_docs(token_urls: list[str], parts: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
               dtype: str) -> Iterator[np.ndarray]:
    """Read the shard's docs from the scratch files, keeping one open handle per file."""
    width = np.dtype(dtype).itemsize
    handles: dict[int, Any] = {}
    try:
        for part, offset, n in zip(parts.tolist(), offsets.tolist(), lengths.tolist()):
            if part not in handles:
                handles[part] = fsspec.open(token_urls[part], "rb").open()
            handle = handles[part]
            handle.seek(offset * width)
            yield np.frombuffer(handle.read(n * width), dtype=dtype)
    finally:
        for handle in handles.values():
            handle.close()


def write_split_shard(fs: Any, path: str, name: str, token_urls: list[str], parts: np.ndarray, offsets: np.ndarray,
                      lengths: np.ndarray, dtype: str, vocab_size: int, boundary: str) -> list[FileEntry]:
    docs = shard_docs(token_urls, parts, offsets, lengths, dtype)
    marker = BOS_ID if boundary == "bos" else EOS_ID
    return write_shard(fs, path, name, docs, int(lengths.sum()), len(lengths), vocab_size, boundary, marker)


LISTING = "shard_docs.arrow"
LISTING_SCHEMA = pa.schema([("split", pa.string()), ("shard", pa.int32()), ("position", pa.int32()),
                            ("id", pa.string()), ("tokens", pa.int64())])


def docs_listing(rows: list[dict[str, Any]]) -> bytes:
    """Which doc sits where (split, shard, position): Arrow IPC, so it is never taken for a docs part."""
    sink = io.BytesIO()
    feather.write_feather(pa.Table.from_pylist(rows, schema=LISTING_SCHEMA), sink, compression="zstd")
    return sink.getvalue()


@dataclass
class Encoded:
    """Every doc of the input, encoded into scratch files: ids, token counts, and where each
    doc's tokens sit (which part's file, at which offset)."""

    parts: list[EncodedPart]
    ids: list[str]
    lengths: np.ndarray
    offsets: np.ndarray
    part_of: np.ndarray

    @classmethod
    def of(cls, parts: list[EncodedPart]) -> Encoded:
        return cls(parts, [i for part in parts for i in part.ids], np.concatenate([p.lengths for p in parts]),
                   np.concatenate([p.offsets for p in parts]),
                   np.concatenate([np.full(len(p.lengths), k) for k, p in enumerate(parts)]))


@dataclass
class Shards:
    """The written shards: their files, the listing of which doc sits where, and tokens per shard."""

    files: list[FileEntry]
    listing: list[dict[str, Any]]
    tokens: dict[str, list[int]]


def encode(client: Any, parts: list[str], attempt: Attempt, tokenizer: TokenizerInfo, dtype: str,
           params: PackParams, eval_set: EvalNgrams) -> Encoded:
    """Stage 1: each input part encoded in its own task, decontaminated against the broadcast eval n-grams."""
    job = EncodeJob(tokenizer.model_url, tokenizer.model_sha256, f"{attempt.uri}/{SCRATCH}", attempt.uri, dtype,
                    params.boundary, params.encode_batch_docs, params.encode_threads, tokenizer.newline_id)
    broadcast = client.scatter(eval_set, broadcast=True, hash=False)
    return Encoded.of(client.gather(
        [client.submit(encode_part, i, url, job, broadcast, pure=False) for i, url in enumerate(parts)]))


def write_shards(client: Any, store: Store, attempt: Attempt, encoded: Encoded, val: np.ndarray, dtype: str,
                 vocab_size: int, params: PackParams) -> Shards:
    """Stage 2: per split, docs in seeded hash order cut into shards of about `shard_tokens`, each
    shard gathered from the scratch files by its own task."""
    keys = id_keys(encoded.ids, f"pack-order-{params.seed}")
    token_urls = [p.tokens_url for p in encoded.parts]
    futures, listing, shard_tokens = [], [], {"train": [], "val": []}
    for split, members in (("train", ~val), ("val", val)):
        chosen = np.flatnonzero(members)
        order = chosen[np.argsort(keys[chosen], kind="stable")]
        for number, docs in enumerate(shard_plan(order, encoded.lengths, params.shard_tokens)):
            futures.append(client.submit(
                write_split_shard, store.fs, attempt.path, f"{split}-{number:05d}", token_urls,
                encoded.part_of[docs], encoded.offsets[docs], encoded.lengths[docs], dtype, vocab_size,
                params.boundary, pure=False))
            shard_tokens[split].append(int(encoded.lengths[docs].sum()))
            listing.extend({"split": split, "shard": number, "position": pos, "id": encoded.ids[d],
                            "tokens": int(encoded.lengths[d])} for pos, d in enumerate(docs.tolist()))
    files = [entry for entries in client.gather(futures) for entry in entries]
    return Shards(files, listing, shard_tokens)


def pack_headline(doc_stats: DocStats, encoded: Encoded, val: np.ndarray, shards: Shards, dtype: str,
                  tokenizer: TokenizerInfo, tokenizer_version: str, params: PackParams,
                  eval_set: EvalNgrams) -> dict[str, Any]:
    """The pack's figures, as the manifest carries them and training reads them."""
    return {
        **doc_stats.headline(),
        "tokens": int(encoded.lengths.sum()),
        "tokens_train": sum(shards.tokens["train"]),
        "tokens_val": sum(shards.tokens["val"]),
        "docs_train": int((~val).sum()),
        "docs_val": int(val.sum()),
        "docs_decontaminated": doc_stats.rejected.get(REASON_DECONTAMINATED, {}).get("docs", 0),
        "shard_tokens": shards.tokens,
        "dtype": np.dtype(dtype).name,
        "boundary": params.boundary,
        "boundary_id": BOS_ID if params.boundary == "bos" else EOS_ID,
        "boundary_code": BOUNDARY_CODES[params.boundary],
        "vocab_size": tokenizer.vocab_size,
        "tokenizer_version": tokenizer_version,
        "tokenizer_sha256": tokenizer.model_sha256,
        "decontaminate_ngrams": int(len(eval_set.hashes)),
    }


def run_pack(store: Store, params: PackParams, client: Any, *, force: bool = False, input_version: str,
             tokenizer_version: str) -> Version:
    """Commit a pack version of `input_version` encoded with `tokenizer_version` (or find it cached):
    encode, split, shard, list."""
    key = VersionKey.of(STEP, CODE_VERSION, params, [input_version, tokenizer_version])

    def write(attempt: Attempt) -> Written:
        tokenizer = tokenizer_info(store, tokenizer_version)
        eval_set = eval_ngrams(eval_texts(store, params.decontaminate), params.decontaminate_ngram_words)
        dtype = token_dtype(tokenizer.vocab_size).str
        encoded = encode(client, input_parts(store, input_version), attempt, tokenizer, dtype, params, eval_set)
        val = split_val(encoded.ids, encoded.lengths, params.val_fraction, params.val_max_tokens)
        shards = write_shards(client, store, attempt, encoded, val, dtype, tokenizer.vocab_size, params)
        store.fs.rm(f"{attempt.path}/{SCRATCH}", recursive=True)
        files = [entry for part in encoded.parts for entry in part.files] + shards.files
        files.append(attempt.write_bytes(LISTING, docs_listing(shards.listing), rows=len(shards.listing)))
        doc_stats = DocStats()
        for part in encoded.parts:
            doc_stats = doc_stats.merge(part.stats)
        headline = pack_headline(doc_stats, encoded, val, shards, dtype, tokenizer, tokenizer_version, params,
                                 eval_set)
        lengths_histogram = {"bin_edges": length_bin_edges(), "counts": log2_histogram(pa.array(encoded.lengths))}
        return Written(files, {**doc_stats.to_json(), **headline, "tokens_per_doc": lengths_histogram}, headline)

    return commit_version(store, key, write, force=force)
