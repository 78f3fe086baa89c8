"""The pack step: encode a docs version with a tokenizer version into token shards for training.

Outline: (1) every input part is encoded on a Dask worker (the model loaded once per worker
process); training docs overlapping the eval texts and docs with no tokens are dropped to
`rejected/`; the kept docs' tokens go to a scratch file in their seeded order, bucketed, and
only per-bucket totals and the part's few validation candidates come back. (2) The driver
picks the validation docs among the candidates and groups buckets into ranges; a task per
range merges that range of every part, splits it and cuts it into shard runs. (3) A task per
shard writes `<split>-NNNNN.bin` / `.idx` from the one or few ranges it spans, and one task
writes the listing of which doc sits where. `shard_order` defines the order and the split.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

import fsspec
import numpy as np
import pyarrow as pa
from pydantic import Field

from tokenmill.corpus.ingest.pydocs import PYTHON_TOPICS_URL
from tokenmill.corpus.store.parts import PartWriter, rejected_rows
from tokenmill.corpus.store.schema import REJECTED_SCHEMA
from tokenmill.corpus.store.settings import Settings
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
from tokenmill.tokenize.shard_order import (
    BUCKETS,
    RANGE_TOKENS,
    SPLITS,
    PartOrder,
    RangeJob,
    ValRule,
    bucket_ranges,
    buckets_of,
    cheapest_first,
    no_candidates,
    plan_shards,
    sort_range,
    write_listing,
    write_part_order,
    write_shard_pieces,
)
from tokenmill.tokenize.shards import (
    BOUNDARY_CODES,
    MAX_SHARD_TOKENS,
    token_dtype,
)

STEP = "pack"
CODE_VERSION = "pack-v2"
SCRATCH = "_encoded"
REASON_DECONTAMINATED = "pack:decontaminated"
REASON_EMPTY = "pack:empty"


class PackParams(Settings):
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
    seed: int
    val_fraction: float
    val_max_tokens: int


@dataclass
class EncodedPart:
    """What one encode task returns: its rejected file, its stats and its order summary."""

    files: list[FileEntry]
    stats: DocStats
    order: PartOrder


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
    """Encode one input part into its ordered scratch files; drop overlapping and empty docs with reasons."""
    sp = load_model(job.model_url, job.model_sha256)
    name = f"part-{index:05d}.parquet"
    rejected = PartWriter(f"{job.out_url}/rejected/{name}", f"rejected/{name}", REJECTED_SCHEMA)
    stats = DocStats()
    runs, lengths, ids = [], [], []
    for table in read_batches(url, batch_rows=job.batch_docs):
        texts = table["text"].to_pylist()
        dirty = eval_set.overlapping_docs(texts)
        flat, doc_lengths, empty_clean = encode_with_boundaries(
            sp, [t or "" for t, d in zip(texts, dirty) if not d], job.newline_id, job.threads, job.boundary, job.dtype)
        empty = np.zeros(len(texts), dtype=bool)
        empty[np.flatnonzero(~dirty)] = empty_clean
        for mask, reason in ((dirty, REASON_DECONTAMINATED), (empty, REASON_EMPTY)):
            if mask.any():
                dropped = rejected_rows(table, mask, reason)
                rejected.write(dropped)
                stats.add_rejected(dropped)
        kept = table.filter(pa.array(~dirty & ~empty))
        stats.add_kept(kept)
        runs.append(flat)
        lengths.append(doc_lengths)
        ids.extend(kept["id"].to_pylist())
    tokens = np.concatenate(runs) if runs else np.zeros(0, job.dtype)
    doc_lengths = np.concatenate(lengths).astype(np.int64) if lengths else np.zeros(0, np.int64)
    fs, scratch = fsspec.core.url_to_fs(job.scratch_url)
    order = write_part_order(fs, scratch, index, tokens, doc_lengths, ids, job.seed, job.val_fraction,
                             job.val_max_tokens)
    order.lengths_hist = log2_histogram(pa.array(doc_lengths))
    stats.counters["tokens"] += len(tokens)
    entry = rejected.close(keep_empty=False)
    return EncodedPart([entry] if entry else [], stats, order)


LISTING = "shard_docs.arrow"


@dataclass
class Encoded:
    """The encode stage as the driver keeps it: per-bucket totals summed over parts, the validation
    docs chosen so far, the rejected files and stats; nothing per doc of the training split."""

    files: list[FileEntry] = field(default_factory=list)
    stats: DocStats = field(default_factory=DocStats)
    parts_with_docs: list[int] = field(default_factory=list)
    bucket_tokens: np.ndarray = field(default_factory=lambda: np.zeros(BUCKETS, np.int64))
    docs: int = 0
    val: pa.Table = field(default_factory=no_candidates)
    lengths_hist: list[int] = field(default_factory=list)

    def add(self, part: EncodedPart, val_max_tokens: int) -> None:
        order = part.order
        self.files.extend(part.files)
        self.stats = self.stats.merge(part.stats)
        if order.docs:
            self.parts_with_docs.append(order.index)
        self.bucket_tokens += order.bucket_tokens
        self.docs += order.docs
        self.val = cheapest_first(pa.concat_tables([self.val, order.candidates]), val_max_tokens)
        self.lengths_hist = [a + b for a, b in zip(self.lengths_hist, order.lengths_hist)] or order.lengths_hist

    @property
    def tokens(self) -> int:
        return int(self.bucket_tokens.sum())


@dataclass
class Shards:
    """The written shards and listing, and tokens per shard of each split."""

    files: list[FileEntry]
    tokens: dict[str, list[int]]


def encode(client: Any, parts: list[str], attempt: Attempt, tokenizer: TokenizerInfo, dtype: str,
           params: PackParams, eval_set: EvalNgrams) -> Encoded:
    """Stage 1: each input part encoded in its own task, decontaminated against the broadcast eval
    n-grams; results folded in part order (so the stats are the same on every run), one part's
    summary on the driver at a time while the rest wait on the workers."""
    job = EncodeJob(tokenizer.model_url, tokenizer.model_sha256, f"{attempt.uri}/{SCRATCH}", attempt.uri, dtype,
                    params.boundary, params.encode_batch_docs, params.encode_threads, tokenizer.newline_id,
                    params.seed, params.val_fraction, params.val_max_tokens)
    broadcast = client.scatter(eval_set, broadcast=True, hash=False)
    encoded = Encoded()
    futures = [client.submit(encode_part, i, url, job, broadcast, pure=False) for i, url in enumerate(parts)]
    for future in futures:
        encoded.add(future.result(), params.val_max_tokens)
        future.release()
    return encoded


def write_shards(client: Any, store: Store, attempt: Attempt, encoded: Encoded, dtype: str, vocab_size: int,
                 params: PackParams) -> Shards:
    """Stages 2 and 3: ranges of buckets merged and split on the workers, then each shard and the
    listing written from them (`shard_order`)."""
    scratch = f"{attempt.uri}/{SCRATCH}"
    val = encoded.val
    val_tokens = np.bincount(buckets_of(val["key"].to_numpy()), weights=val["length"].to_numpy(),
                             minlength=BUCKETS).astype(np.int64)
    cumulative = {"train": np.concatenate([[0], np.cumsum(encoded.bucket_tokens - val_tokens)]),
                  "val": np.concatenate([[0], np.cumsum(val_tokens)])}
    ranges = bucket_ranges(encoded.bucket_tokens, max(1, min(RANGE_TOKENS, encoded.tokens // 8)))
    job = RangeJob(scratch, tuple(encoded.parts_with_docs), dtype, params.shard_tokens,
                   ValRule.of(params.val_fraction, val))
    results = client.gather([
        client.submit(sort_range, k, first, last, {s: int(c[first]) for s, c in cumulative.items()}, job, pure=False)
        for k, (first, last) in enumerate(ranges)])
    plans, numbers = plan_shards(results)
    marker = BOS_ID if params.boundary == "bos" else EOS_ID
    futures = [client.submit(write_shard_pieces, store.fs, attempt.path, scratch, plan, dtype, vocab_size,
                             params.boundary, marker, pure=False) for plan in plans]
    listing = client.submit(write_listing, store.fs, f"{attempt.path}/{LISTING}", scratch, len(ranges), numbers,
                            pure=False)
    files = [entry for entries in client.gather(futures) for entry in entries] + [listing.result()]
    tokens = {split: [plan.tokens for plan in plans if plan.split == split] for split in SPLITS}
    return Shards(files, tokens)


def pack_headline(encoded: Encoded, shards: Shards, dtype: str, tokenizer: TokenizerInfo, tokenizer_version: str,
                  params: PackParams, eval_set: EvalNgrams) -> dict[str, Any]:
    """The pack's figures, as the manifest carries them and training reads them."""
    docs_val = encoded.val.num_rows
    return {
        **encoded.stats.headline(),
        "tokens": encoded.tokens,
        "tokens_train": sum(shards.tokens["train"]),
        "tokens_val": sum(shards.tokens["val"]),
        "docs_train": encoded.docs - docs_val,
        "docs_val": docs_val,
        "docs_decontaminated": encoded.stats.rejected.get(REASON_DECONTAMINATED, {}).get("docs", 0),
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


def version_key(store: Store, params: PackParams, *, input_version: str, tokenizer_version: str) -> VersionKey:
    """What names a pack: its settings, its docs and its tokenizer (`store` unused, see `flows.steps`)."""
    return VersionKey.of(STEP, CODE_VERSION, params, [input_version, tokenizer_version])


def run_pack(store: Store, params: PackParams, client: Any, *, force: bool = False, input_version: str,
             tokenizer_version: str) -> Version:
    """Commit a pack version of `input_version` encoded with `tokenizer_version` (or find it cached):
    encode, split, shard, list."""
    key = version_key(store, params, input_version=input_version, tokenizer_version=tokenizer_version)

    def write(attempt: Attempt) -> Written:
        tokenizer = tokenizer_info(store, tokenizer_version)
        eval_set = eval_ngrams(eval_texts(store, params.decontaminate), params.decontaminate_ngram_words)
        dtype = token_dtype(tokenizer.vocab_size).str
        encoded = encode(client, input_parts(store, input_version), attempt, tokenizer, dtype, params, eval_set)
        shards = write_shards(client, store, attempt, encoded, dtype, tokenizer.vocab_size, params)
        store.fs.rm(f"{attempt.path}/{SCRATCH}", recursive=True)
        headline = pack_headline(encoded, shards, dtype, tokenizer, tokenizer_version, params, eval_set)
        lengths_histogram = {"bin_edges": length_bin_edges(), "counts": encoded.lengths_hist}
        return Written(encoded.files + shards.files, {**encoded.stats.to_json(), **headline,
                                                      "tokens_per_doc": lengths_histogram}, headline)

    return commit_version(store, key, write, force=force)
