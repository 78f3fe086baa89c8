"""Where each doc of a pack goes — split, place in order, shard — decided on the workers.

The order is defined per doc, never by a global sort on the driver:

- **Order key**: blake2b of the id salted with the seed (`sampling.id_keys`); a split holds its
  docs by ascending key, ties (repeated ids) by input part, then by row in the part.
- **Split**: a doc is validation when its split unit (`sampling.id_units`, salt "pack-split") is
  below `val_fraction`, lowest units first while the tokens fit `val_max_tokens`; ties as above.
- **Shard**: a doc starts in the shard whose number ranks `start // shard_tokens` among those of
  its split, where `start` is its first token's offset in the split; so a shard ends after the
  doc that reaches `shard_tokens`, as before.

Stage 1 (`write_part_order`, in each encode task): the part's docs sorted by key go to
`<scratch>/part-NNNNN.tok`, their key, unit, length, row and id to `part-NNNNN.meta` (Arrow IPC,
one record batch per key bucket: the top `BUCKET_BITS` bits of the key). The task returns only
per-bucket totals and its few validation candidates. Stage 2 (`sort_range`): one task per range
of buckets reads that bucket range from every part (one ranged read each), merges it in order,
splits it and writes its docs' tokens, lengths and listing rows per split, returning per-shard
totals. Stage 3 (`write_shard_pieces`): each shard is read back sequentially from the one or few
ranges it spans. The driver holds per-bucket and per-shard figures, never a per-doc array.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa

from tokenmill.corpus.store.parts import HashingFile
from tokenmill.corpus.store.versions import FileEntry
from tokenmill.tokenize.sampling import id_keys, id_units
from tokenmill.tokenize.shards import write_shard

SPLIT_SALT = "pack-split"
BUCKET_BITS = 10
BUCKETS = 1 << BUCKET_BITS
RANGE_TOKENS = 32_000_000  # at most this many tokens sorted by one stage-2 task (bar one bucket)
META_SCHEMA = pa.schema([("key", pa.uint64()), ("unit", pa.float64()), ("length", pa.int64()),
                         ("row", pa.int64()), ("id", pa.string())])
LISTING_SCHEMA = pa.schema([("split", pa.string()), ("shard", pa.int32()), ("position", pa.int32()),
                            ("id", pa.string()), ("tokens", pa.int64())])
PIECE_SCHEMA = pa.schema([("id", pa.string()), ("tokens", pa.int64()), ("value", pa.int64())])
SPLITS = ("train", "val")


def order_keys(ids: list[str], seed: int) -> np.ndarray:
    return id_keys(ids, f"pack-order-{seed}")


def buckets_of(keys: np.ndarray) -> np.ndarray:
    return (keys >> np.uint64(64 - BUCKET_BITS)).astype(np.int64)


@dataclass
class PartOrder:
    """What one encode task reports of its part: per-bucket totals and its validation candidates."""

    index: int
    docs: int
    bucket_tokens: np.ndarray
    candidates: pa.Table  # unit, part, row, key, length: the part's lowest units that fit the val budget
    lengths_hist: list[int] = field(default_factory=list)


def candidate_table(units: np.ndarray, part: int, rows: np.ndarray, keys: np.ndarray,
                    lengths: np.ndarray) -> pa.Table:
    return pa.table({"unit": units, "part": np.full(len(rows), part, np.int64), "row": rows,
                     "key": keys.astype(np.uint64), "length": lengths.astype(np.int64)})


def no_candidates() -> pa.Table:
    """The empty candidate table (made on use: building a table at import pulls pandas in through pyarrow)."""
    return candidate_table(np.zeros(0), 0, np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.int64))


def cheapest_first(candidates: pa.Table, max_tokens: int) -> pa.Table:
    """Candidates by (unit, part, row), cut where their tokens pass `max_tokens`: the validation set
    of these docs, and a superset of what any part contributes to the global one."""
    if candidates.num_rows == 0:
        return candidates
    order = np.lexsort((candidates["row"].to_numpy(), candidates["part"].to_numpy(), candidates["unit"].to_numpy()))
    ranked = candidates.take(order)
    fits = np.cumsum(ranked["length"].to_numpy()) <= max_tokens
    return ranked.slice(0, int(fits.sum()))


def write_part_order(fs: Any, scratch_path: str, index: int, tokens: np.ndarray, lengths: np.ndarray,
                     ids: list[str], seed: int, val_fraction: float, val_max_tokens: int) -> PartOrder:
    """Stage 1: the part's docs (token runs of `lengths` in `tokens`) in key order, bucketed."""
    keys = order_keys(ids, seed)
    units = id_units(ids, SPLIT_SALT)
    rows = np.arange(len(ids), dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    starts = np.cumsum(lengths) - lengths
    runs = [tokens[s:s + n] for s, n in zip(starts[order].tolist(), lengths[order].tolist())]
    sorted_tokens = np.concatenate(runs) if runs else tokens[:0]
    bucket = buckets_of(keys[order])
    bounds = np.searchsorted(bucket, np.arange(BUCKETS + 1))
    token_bounds = np.concatenate([[0], np.cumsum(lengths[order])])[bounds]
    schema = META_SCHEMA.with_metadata({"token_bounds": json.dumps(token_bounds.tolist())})
    meta = pa.record_batch({"key": keys[order], "unit": units[order], "length": lengths[order],
                            "row": order.astype(np.int64), "id": pa.array(ids, pa.string()).take(pa.array(order))},
                           schema=schema)
    fs.makedirs(scratch_path, exist_ok=True)
    with fs.open(f"{scratch_path}/part-{index:05d}.meta", "wb") as f, pa.ipc.new_file(f, schema) as writer:
        for b in range(BUCKETS):
            writer.write_batch(meta.slice(bounds[b], bounds[b + 1] - bounds[b]))
    with fs.open(f"{scratch_path}/part-{index:05d}.tok", "wb") as f:
        f.write(sorted_tokens.tobytes())
    candidate = units < val_fraction
    candidates = cheapest_first(candidate_table(units[candidate], index, rows[candidate], keys[candidate],
                                                lengths[candidate]), val_max_tokens)
    return PartOrder(index, len(ids), np.diff(token_bounds), candidates)


@dataclass(frozen=True)
class ValRule:
    """A doc is validation when its unit is below `fraction` and (unit, part, row) is at most `last`."""

    fraction: float
    last: tuple[float, int, int] | None

    @classmethod
    def of(cls, fraction: float, chosen: pa.Table) -> ValRule:
        if chosen.num_rows == 0:
            return cls(fraction, None)
        tail = chosen.slice(chosen.num_rows - 1).to_pylist()[0]
        return cls(fraction, (tail["unit"], tail["part"], tail["row"]))

    def mask(self, units: np.ndarray, parts: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.last is None:
            return np.zeros(len(units), dtype=bool)
        unit, part, row = self.last
        below = (units < unit) | ((units == unit) & ((parts < part) | ((parts == part) & (rows <= row))))
        return (units < self.fraction) & below


def bucket_ranges(bucket_tokens: np.ndarray, target: int) -> list[tuple[int, int]]:
    """Consecutive buckets grouped into ranges of about `target` tokens (a bucket is never split)."""
    ranges, start, held = [], 0, 0
    for b, tokens in enumerate(bucket_tokens.tolist()):
        if held and held + tokens > target:
            ranges.append((start, b))
            start, held = b, 0
        held += tokens
    ranges.append((start, len(bucket_tokens)))
    return ranges


@dataclass(frozen=True)
class RangeJob:
    scratch_url: str
    parts: tuple[int, ...]  # the parts with docs
    dtype: str
    shard_tokens: int
    val: ValRule


@dataclass
class RangeResult:
    """Per split: (value, docs, tokens) of each run of docs sharing a shard value, in order."""

    index: int
    groups: dict[str, list[tuple[int, int, int]]]


def read_bucket_range(url: str, tok_url: str, first: int, last: int, dtype: str) -> tuple[pa.Table, np.ndarray]:
    """Buckets [first, last) of one part: its meta rows and their tokens (one ranged read each)."""
    with fsspec.open(url, "rb") as f:
        reader = pa.ipc.open_file(f)
        bounds = json.loads(reader.schema.metadata[b"token_bounds"])
        batches = [reader.get_batch(b) for b in range(first, last)]
        table = pa.Table.from_batches(batches, schema=reader.schema).replace_schema_metadata(None)
    width = np.dtype(dtype).itemsize
    if bounds[last] == bounds[first]:
        return table, np.zeros(0, dtype)
    with fsspec.open(tok_url, "rb") as f:
        f.seek(bounds[first] * width)
        tokens = np.frombuffer(f.read((bounds[last] - bounds[first]) * width), dtype=dtype)
    return table, tokens


def sort_range(index: int, first: int, last: int, offsets: dict[str, int], job: RangeJob) -> RangeResult:
    """Stage 2: buckets [first, last) of every part merged in order, split, and written per split as
    tokens (`range-K-<split>.tok`), lengths (`.len`) and listing rows (`.arrow`)."""
    tables, token_runs, part_of = [], [], []
    for part in job.parts:
        url = f"{job.scratch_url}/part-{part:05d}"
        table, tokens = read_bucket_range(f"{url}.meta", f"{url}.tok", first, last, job.dtype)
        if table.num_rows:
            tables.append(table)
            token_runs.append(tokens)
            part_of.append(np.full(table.num_rows, part, np.int64))
    merged = pa.concat_tables(tables) if tables else META_SCHEMA.empty_table()
    tokens = np.concatenate(token_runs) if token_runs else np.zeros(0, job.dtype)
    parts = np.concatenate(part_of) if part_of else np.zeros(0, np.int64)
    keys, rows = merged["key"].to_numpy(), merged["row"].to_numpy()
    lengths = merged["length"].to_numpy()
    starts = np.cumsum(lengths) - lengths
    order = np.lexsort((rows, parts, keys))
    is_val = job.val.mask(merged["unit"].to_numpy(), parts, rows)[order]
    result = RangeResult(index, {})
    fs, root = fsspec.core.url_to_fs(job.scratch_url)
    for split, chosen in (("train", order[~is_val]), ("val", order[is_val])):
        n = lengths[chosen]
        values = (offsets[split] + np.cumsum(n) - n) // job.shard_tokens
        name = f"{root}/range-{index:05d}-{split}"
        with fs.open(f"{name}.tok", "wb") as f:
            for s, k in zip(starts[chosen].tolist(), n.tolist()):
                f.write(tokens[s:s + k].tobytes())
        with fs.open(f"{name}.len", "wb") as f:
            f.write(n.astype("<i8").tobytes())
        piece = pa.table({"id": merged["id"].take(pa.array(chosen)), "tokens": n, "value": values},
                         schema=PIECE_SCHEMA)
        with fs.open(f"{name}.arrow", "wb") as f, pa.ipc.new_file(f, PIECE_SCHEMA) as writer:
            writer.write_table(piece)
        distinct, first_at, counts = np.unique(values, return_index=True, return_counts=True)
        token_sums = np.add.reduceat(n, first_at) if len(n) else n
        result.groups[split] = list(zip(distinct.tolist(), counts.tolist(), token_sums.tolist()))
    return result


@dataclass
class ShardPlan:
    """One shard: its name, totals, and the runs of range files it is read from
    (range, first doc, docs, first token, tokens)."""

    split: str
    number: int
    docs: int = 0
    tokens: int = 0
    pieces: list[tuple[int, int, int, int, int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.split}-{self.number:05d}"


def plan_shards(results: list[RangeResult]) -> tuple[list[ShardPlan], dict[str, dict[int, int]]]:
    """Shards of each split from the ranges' runs, in order; and per split, shard value -> number."""
    plans, numbers = [], {}
    for split in SPLITS:
        numbers[split] = {}
        for result in sorted(results, key=lambda r: r.index):
            doc_at = token_at = 0
            for value, docs, tokens in result.groups.get(split, []):
                if value not in numbers[split]:
                    numbers[split][value] = len(numbers[split])
                    plans.append(ShardPlan(split, numbers[split][value]))
                plan = plans[-1]
                plan.pieces.append((result.index, doc_at, docs, token_at, tokens))
                plan.docs += docs
                plan.tokens += tokens
                doc_at += docs
                token_at += tokens
    return plans, numbers


def write_shard_pieces(fs: Any, path: str, scratch_url: str, plan: ShardPlan, dtype: str, vocab_size: int,
                       boundary: str, marker: int) -> list[FileEntry]:
    """Stage 3: one shard, its docs read in order from the range files it spans."""
    width = np.dtype(dtype).itemsize

    def docs() -> Any:
        for index, doc_at, n_docs, token_at, n_tokens in plan.pieces:
            name = f"{scratch_url}/range-{index:05d}-{plan.split}"
            with fsspec.open(f"{name}.len", "rb") as f:
                f.seek(doc_at * 8)
                lengths = np.frombuffer(f.read(n_docs * 8), dtype="<i8")
            with fsspec.open(f"{name}.tok", "rb") as f:
                f.seek(token_at * width)
                tokens = np.frombuffer(f.read(n_tokens * width), dtype=dtype)
            yield from np.split(tokens, np.cumsum(lengths)[:-1])

    return write_shard(fs, path, plan.name, docs(), plan.tokens, plan.docs, vocab_size, boundary, marker)


def write_listing(fs: Any, path: str, scratch_url: str, ranges: int, numbers: dict[str, dict[int, int]]) -> FileEntry:
    """Which doc sits where (split, shard, position), streamed range by range into one Arrow IPC
    (Feather) file, so it is never taken for a docs part and never held whole in memory."""
    rows = 0
    with fs.open(path, "wb") as raw:
        out = HashingFile(raw)
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with pa.ipc.new_file(out, LISTING_SCHEMA, options=options) as writer:
            for split in SPLITS:
                position, current = 0, None
                for index in range(ranges):
                    with fsspec.open(f"{scratch_url}/range-{index:05d}-{split}.arrow", "rb") as f:
                        piece = pa.ipc.open_file(f).read_all()
                    if piece.num_rows == 0:
                        continue
                    values = piece["value"].to_numpy()
                    shard = np.array([numbers[split][v] for v in values.tolist()], dtype=np.int32)
                    first_of_run = np.r_[True, shard[1:] != shard[:-1]]
                    run = np.cumsum(first_of_run) - 1
                    positions = np.arange(len(shard)) - np.flatnonzero(first_of_run)[run]
                    if shard[0] == current:  # the shard goes on from the previous range
                        positions[run == 0] += position
                    writer.write_table(pa.table({
                        "split": pa.array([split] * len(shard)), "shard": shard, "position": positions.astype(np.int32),
                        "id": piece["id"], "tokens": piece["tokens"]}, schema=LISTING_SCHEMA))
                    rows += len(shard)
                    current, position = int(shard[-1]), int(positions[-1]) + 1
    return FileEntry(path=path.rsplit("/", 1)[-1], rows=rows, bytes=out.size, sha256=out.sha.hexdigest())
