"""The crawl step: seed URLs to a docs version, politely, within limits, and resumably.

Outline: check the seeds (private addresses refused before any request), replay the journal
of an interrupted crawl with the same settings, crawl breadth-first (`loop`), spooling every
discovered URL as a kept doc or a rejected row the moment it is decided (`spool`), then merge
the spool into parts in URL order and commit. The version id hashes
the settings plus a content hash of what was fetched (DESIGN §2, ingest steps).
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tokenmill.corpus.crawl.journal import BODIES, JOURNAL, JournalMirror, load_journal
from tokenmill.corpus.crawl.loop import CrawlTimes, Outcome, crawl
from tokenmill.corpus.crawl.params import RUN_CONTROL, CrawlParams
from tokenmill.corpus.crawl.spool import SPOOL, Spool, merged
from tokenmill.corpus.crawl.urls import (
    Scope,
    host_of,
    normalize_url,
    private_addresses,
    resolve,
)
from tokenmill.corpus.ingest.readers import doc_id
from tokenmill.corpus.store.ahead import read_ahead
from tokenmill.corpus.store.cache import cache_root
from tokenmill.corpus.store.errors import ConfigError, InputError
from tokenmill.corpus.store.parts import ROW_GROUP_ROWS, Batch, write_part
from tokenmill.corpus.store.schema import DOC_SCHEMA, REJECTED_SCHEMA
from tokenmill.corpus.store.stats import DocStats
from tokenmill.corpus.store.step import Version, Written, commit_version
from tokenmill.corpus.store.versions import Attempt, Store, VersionKey, canonical_json, params_json

STEP = "crawl"
# v2: `max_pages` takes the first pages in discovery order, not in (depth, URL) order.
CODE_VERSION = "crawl-v2"
PART_ROWS = 50_000
WRITE_BYTES = 64 << 20
KEPT_HEADERS = ("content-type", "content-language", "last-modified", "etag", "location", "retry-after")
COMMITTED = "committed.json"


def crawl_seeds(params: CrawlParams) -> list[str]:
    """The normalized seeds of `seeds` and `seeds_file`; a seed that is not an http(s) URL is a ConfigError."""
    raw = list(params.seeds)
    if params.seeds_file:
        try:
            with fsspec.open(params.seeds_file, "rt", encoding="utf-8") as f:
                raw += [line.strip() for line in f if line.strip() and not line.startswith("#")]
        except FileNotFoundError:
            raise InputError(f"crawl.seeds_file: '{params.seeds_file}' does not exist") from None
    if not raw:
        raise ConfigError("crawl.seeds: no seed URL given (set crawl.seeds or crawl.seeds_file)")
    seeds = []
    for seed in raw:
        url = normalize_url(seed, params.strip_query_params)
        if url is None:
            raise ConfigError(f"crawl.seeds: '{seed}' is not an http(s) URL")
        seeds.append(url)
    return sorted(set(seeds))


def crawl_scope(params: CrawlParams, seeds: list[str]) -> Scope:
    domains = params.allowed_domains or sorted({urlsplit(s).hostname or "" for s in seeds})
    try:
        return Scope.build(domains, params.include_patterns, params.exclude_patterns)
    except re.error as e:
        raise ConfigError(f"crawl.include_patterns/exclude_patterns: bad regex '{e.pattern}': {e}") from None


def check_crawl(params: CrawlParams) -> None:
    """Refuse bad seeds before any request: not http(s), out of scope, or a private address."""
    seeds = crawl_seeds(params)
    scope = crawl_scope(params, seeds)
    for seed in seeds:
        if not scope.allows(seed):
            raise ConfigError(f"crawl.seeds: '{seed}' is outside crawl.allowed_domains / patterns")
        if params.allow_private:
            continue
        host = urlsplit(seed).hostname or ""
        try:
            private = private_addresses(resolve(host))
        except OSError as e:
            raise InputError(f"crawl.seeds: cannot resolve '{host}': {e}") from None
        if private:
            raise ConfigError(
                f"crawl.seeds: '{seed}' resolves to private address {private[0]}; "
                "set crawl.allow_private = true to crawl private networks"
            )


def state_folders(store: Store, params: CrawlParams, seeds: list[str]) -> tuple[str, Path, JournalMirror | None]:
    """Where an unfinished crawl keeps its state: its folder in the store (the commit marker, and on
    object stores the journal's copy), the local folder its journal is appended in (the store's own
    on a local store, else this node's cache) and the mirror between the two on object stores."""
    identity = {k: v for k, v in params_json(params).items() if k not in RUN_CONTROL}
    key = hashlib.sha256(canonical_json({"settings": identity, "seeds": seeds, "code": CODE_VERSION})).hexdigest()
    in_store = f"{store.root}/{STEP}/.state/{key[:16]}"
    if store.local:
        return in_store, Path(in_store), None
    return in_store, cache_root() / STEP / key[:16], JournalMirror(store.fs, in_store, params.journal_sync_s)


@functools.cache
def unfetched_meta(depth: int) -> str:
    """The `meta` of a URL decided without a request (out of scope, past a limit): one per depth."""
    return orjson.dumps({"depth": depth, "status": None, "final_url": None, "headers": {}}).decode()


def outcome_row(o: Outcome, default_time: datetime) -> dict[str, Any]:
    """The spool row of one outcome: its doc columns, why it was rejected (None if kept) and its fetch."""
    if not o.fetch:  # most of a crawl's URLs: links met past `max_pages` or out of scope
        return {"id": doc_id(o.url), "text": "", "source": o.url, "fetched_at": default_time,
                "meta": unfetched_meta(o.depth), "reason": o.reason, "status": None, "sha256": None, "fetch": None}
    fetch = o.fetch
    headers = {k: v for k, v in (fetch.get("headers") or {}).items() if k in KEPT_HEADERS}
    meta = {"depth": o.depth, "status": fetch.get("status"), "final_url": fetch.get("final_url"), "headers": headers}
    return {"id": doc_id(o.url), "text": o.text if o.reason is None else "", "source": o.url,
            "fetched_at": datetime.fromisoformat(fetch["fetched_at"]), "meta": orjson.dumps(meta).decode(),
            "reason": o.reason, "status": fetch.get("status"), "sha256": fetch.get("sha256"),
            "fetch": orjson.dumps(fetch).decode()}


class CrawlOutput:
    """Where the crawl's outcomes go: rows to the spool, figures to counters (hosts are few)."""

    def __init__(self, folder: Path, started: datetime):
        self.spool = Spool(folder)
        self.started = started
        self.counts: Counter = Counter()
        self.statuses: Counter = Counter()
        self.hosts: dict[str, dict[str, int]] = {}

    def __call__(self, o: Outcome) -> None:
        self.spool.add(outcome_row(o, self.started))
        self.counts["urls_discovered"] += 1
        name = host_of(o.url)
        host = self.hosts.get(name) or self.hosts.setdefault(name, {"urls": 0, "docs": 0, "requests": 0})
        host["urls"] += 1
        fetch = o.fetch
        if not fetch:
            return
        host["docs"] += o.reason is None
        host["requests"] += fetch["requests"]
        self.counts["extract_seconds"] += o.extract_seconds
        self.counts["requests"] += fetch["requests"]
        if fetch["status"] is not None:
            self.counts["pages_fetched"] += 1
            self.statuses[str(fetch["status"])] += 1
        if fetch["body"]:
            self.counts["bytes_fetched"] += fetch["body"][1]

    def summary(self, robots_hosts: int, ended: datetime, times: CrawlTimes) -> dict[str, Any]:
        """What the manifest records of the crawl itself: time (per stage too), pages, bytes, statuses, hosts."""
        return {
            "started_at": self.started.isoformat(),
            "ended_at": ended.isoformat(),
            "urls_discovered": self.counts["urls_discovered"],
            "pages_fetched": self.counts["pages_fetched"],
            "requests": self.counts["requests"] + robots_hosts,
            "bytes_fetched": self.counts["bytes_fetched"],
            "extract_seconds": round(self.counts["extract_seconds"], 3),
            "fetch_seconds": round(times.fetch_seconds, 3),
            "crawl_seconds": round(times.wall_seconds, 3),
            "pages_per_second": round(self.counts["pages_fetched"] / max(times.wall_seconds, 1e-9), 1),
            "stages": times.stages,
            "status_codes": dict(sorted(self.statuses.items())),
            "hosts": dict(sorted(self.hosts.items())),
        }


def fingerprint(segments: list[Path]) -> str:
    """A content hash of what was fetched: each URL's status, decision and body checksum, in URL order,
    one `canonical_json` line each (for a list of strings and ints, orjson writes the same bytes 15
    times faster)."""
    digest = hashlib.sha256()
    for table in merged(segments, ["source", "reason", "status", "sha256"]):
        for row in zip(*(table[c].to_pylist() for c in table.column_names)):
            digest.update(orjson.dumps(row) + b"\n")
    return digest.hexdigest()


def coalesced(tables: Iterator[pa.Table], max_rows: int = ROW_GROUP_ROWS,
              max_bytes: int = WRITE_BYTES) -> Iterator[pa.Table]:
    """The merge's small tables joined up to `max_rows` rows or `max_bytes` bytes, so a part is
    written (and counted) in row groups of thousands of rows rather than one per merge read."""
    held: list[pa.Table] = []
    rows = nbytes = 0
    for table in tables:
        held.append(table)
        rows, nbytes = rows + table.num_rows, nbytes + table.nbytes
        if rows >= max_rows or nbytes >= max_bytes:
            yield pa.concat_tables(held)
            held, rows, nbytes = [], 0, 0
    if held:
        yield pa.concat_tables(held)


def part_pieces(tables: Iterator[pa.Table]) -> Iterator[tuple[int, Batch]]:
    """The merged rows as kept and rejected batches, each tagged with its part: PART_ROWS rows a part."""
    row = 0
    for table in coalesced(tables):
        while table.num_rows:
            take = min(table.num_rows, PART_ROWS - row % PART_ROWS)
            piece, table = table.slice(0, take), table.slice(take)
            rejected = pc.is_valid(piece["reason"])
            yield row // PART_ROWS, Batch(piece.filter(pc.invert(rejected)), piece.filter(rejected))
            row += take


def marked_version(store: Store, marker: str) -> str | None:
    """The version id a finished crawl wrote in its commit marker, if it finished."""
    return orjson.loads(store.fs.cat_file(marker))["id"] if store.fs.exists(marker) else None


def committed_id(store: Store, params: CrawlParams) -> str | None:
    """The version the crawl of these settings and seeds committed when it finished, if it did: a crawl's
    id hashes what it fetched, so no crawl can name its version before the work (see `flows.steps`)."""
    in_store, _, _ = state_folders(store, params, crawl_seeds(params))
    return marked_version(store, f"{in_store}/{COMMITTED}")


def run_crawl(store: Store, params: CrawlParams, client: Any, *, force: bool = False) -> Version:
    """Crawl from the seeds and commit a docs version; a rerun after a kill resumes the journal."""
    check_crawl(params)
    seeds = crawl_seeds(params)
    in_store, folder, mirror = state_folders(store, params, seeds)
    committed = f"{in_store}/{COMMITTED}"
    if force:
        shutil.rmtree(folder, ignore_errors=True)
        if mirror:
            mirror.clear()
    elif (vid := marked_version(store, committed)) and store.exists(vid):
        return Version(store.manifest(vid), cached=True)
    if mirror:
        mirror.restore(folder)
    state = load_journal(folder)
    output = CrawlOutput(folder, datetime.now(timezone.utc))
    times = crawl(params, seeds, crawl_scope(params, seeds), client, folder, state, output, mirror)
    summary = output.summary(len(state.robots), datetime.now(timezone.utc), times)
    version = commit_crawl(store, params, output.spool.close(), summary, folder, force)
    store.fs.pipe_file(committed, orjson.dumps({"id": version.id}))
    for name in (JOURNAL, BODIES):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / SPOOL, ignore_errors=True)
    if mirror:
        mirror.clear()
    return version


def commit_crawl(store: Store, params: CrawlParams, segments: list[Path], summary: dict[str, Any],
                 folder: Path, force: bool) -> Version:
    """Write the rows (and WARC) of a finished crawl as parts in URL order and commit them, unless
    that version exists."""
    key = VersionKey.of(STEP, CODE_VERSION, params, fingerprint=fingerprint(segments), run_control=RUN_CONTROL)

    def write(attempt: Attempt) -> Written:
        files, stats = [], DocStats()
        # The merge's takes run on a thread ahead of the Parquet writes and stats (3,000 pages: 0.4 s
        # against 0.55-0.8 s in turn).
        for index, pieces in groupby(read_ahead(part_pieces(merged(segments))), key=itemgetter(0)):
            part = write_part(attempt.uri, index, (batch for _, batch in pieces), DOC_SCHEMA, REJECTED_SCHEMA)
            files += part.files
            stats.merge(part.stats)
        if params.warc:
            from tokenmill.corpus.crawl.warc import write_warc

            files.append(write_warc(attempt, merged(segments, ["source", "fetch"]), folder))
        return Written(files, {**stats.to_json(), "crawl": summary}, {**stats.headline(), **summary})

    return commit_version(store, key, write, force=force)
