"""The crawl step: seed URLs to a docs version, politely, within limits, and resumably.

Outline: check the seeds (private addresses refused before any request), replay the journal
of an interrupted crawl with the same settings, crawl breadth-first (`crawl_loop`), then
write every discovered URL as a kept doc or a rejected row and commit. The version id hashes
the settings plus a content hash of what was fetched (DESIGN §2, ingest steps).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec
import orjson
import pyarrow as pa

from tokenmill.corpus.crawl.journal import BODIES, JOURNAL, JournalMirror, load_journal
from tokenmill.corpus.crawl.loop import Outcome, crawl
from tokenmill.corpus.crawl.params import RUN_CONTROL, CrawlParams
from tokenmill.corpus.crawl.urls import (
    Scope,
    host_of,
    normalize_url,
    private_addresses,
    resolve,
)
from tokenmill.corpus.ingest.readers import doc_id
from tokenmill.corpus.store.cache import cache_root
from tokenmill.corpus.store.errors import ConfigError, InputError
from tokenmill.corpus.store.parts import Batch, write_part
from tokenmill.corpus.store.schema import DOC_SCHEMA, REJECTED_SCHEMA
from tokenmill.corpus.store.step import Version, VersionKey, Written, commit_version, params_json
from tokenmill.corpus.store.versions import Attempt, Store, canonical_json

STEP = "crawl"
CODE_VERSION = "crawl-v1"
BATCH_ROWS = 2_000
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


def fingerprint(outcomes: dict[str, Outcome]) -> str:
    """A content hash of what was fetched: each URL's status, decision and body checksum."""
    digest = hashlib.sha256()
    for url in sorted(outcomes):
        o = outcomes[url]
        fetch = o.fetch or {}
        digest.update(canonical_json([url, o.reason, fetch.get("status"), fetch.get("sha256")]) + b"\n")
    return digest.hexdigest()


def outcome_row(o: Outcome, default_time: datetime) -> dict[str, Any]:
    fetch = o.fetch or {}
    headers = {k: v for k, v in (fetch.get("headers") or {}).items() if k in KEPT_HEADERS}
    meta = {"depth": o.depth, "status": fetch.get("status"), "final_url": fetch.get("final_url"), "headers": headers}
    fetched_at = datetime.fromisoformat(fetch["fetched_at"]) if fetch else default_time
    row = {"id": doc_id(o.url), "text": o.text, "source": o.url, "fetched_at": fetched_at,
           "meta": orjson.dumps(meta).decode()}
    return row if o.reason is None else {**row, "text": "", "reason": o.reason}


def outcome_batches(outcomes: dict[str, Outcome], default_time: datetime) -> Iterator[Batch]:
    """Kept and rejected rows in URL order, so reruns write the same rows in the same order."""
    urls = sorted(outcomes)
    for start in range(0, len(urls), BATCH_ROWS):
        rows = [outcome_row(outcomes[u], default_time) for u in urls[start : start + BATCH_ROWS]]
        kept = [r for r in rows if "reason" not in r]
        rejected = [r for r in rows if "reason" in r]
        yield Batch(pa.Table.from_pylist(kept, schema=DOC_SCHEMA), pa.Table.from_pylist(rejected, schema=REJECTED_SCHEMA))


def crawl_stats(outcomes: dict[str, Outcome], robots_hosts: int, started: datetime, ended: datetime) -> dict[str, Any]:
    """What the manifest records of the crawl itself: time, pages, bytes, statuses, hosts."""
    fetches = [o.fetch for o in outcomes.values() if o.fetch]
    statuses = Counter(str(f["status"]) for f in fetches if f["status"] is not None)
    hosts: dict[str, Counter] = {}
    for o in outcomes.values():
        counts = hosts.setdefault(host_of(o.url), Counter())
        counts["urls"] += 1
        counts["docs"] += o.reason is None
        counts["requests"] += (o.fetch or {}).get("requests", 0)
    return {
        "started_at": started.isoformat(),
        "ended_at": ended.isoformat(),
        "urls_discovered": len(outcomes),
        "pages_fetched": sum(1 for f in fetches if f["status"] is not None),
        "requests": sum(f["requests"] for f in fetches) + robots_hosts,
        "bytes_fetched": sum(f["body"][1] for f in fetches if f["body"]),
        "extract_seconds": round(sum(o.extract_seconds for o in outcomes.values()), 3),
        "status_codes": dict(sorted(statuses.items())),
        "hosts": {h: dict(c) for h, c in sorted(hosts.items())},
    }


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
    elif store.fs.exists(committed):
        vid = orjson.loads(store.fs.cat_file(committed))["id"]
        if store.exists(vid):
            return Version(store.manifest(vid), cached=True)
    if mirror:
        mirror.restore(folder)
    started = datetime.now(timezone.utc)
    state = load_journal(folder)
    outcomes, fetch_seconds = crawl(params, seeds, crawl_scope(params, seeds), client, folder, state, mirror)
    summary = crawl_stats(outcomes, len(state.robots), started, datetime.now(timezone.utc))
    summary["fetch_seconds"] = round(fetch_seconds, 3)
    version = commit_crawl(store, params, outcomes, summary, folder, force)
    store.fs.pipe_file(committed, orjson.dumps({"id": version.id}))
    for name in (JOURNAL, BODIES):
        (folder / name).unlink(missing_ok=True)
    if mirror:
        mirror.clear()
    return version


def commit_crawl(store: Store, params: CrawlParams, outcomes: dict[str, Outcome], summary: dict[str, Any],
                 folder: Path, force: bool) -> Version:
    """Write the rows (and WARC) of a finished crawl and commit them, unless that version exists."""
    key = VersionKey.of(STEP, CODE_VERSION, params, fingerprint=fingerprint(outcomes), run_control=RUN_CONTROL)

    def write(attempt: Attempt) -> Written:
        started = datetime.fromisoformat(summary["started_at"])
        part = write_part(attempt.uri, 0, outcome_batches(outcomes, started), DOC_SCHEMA, REJECTED_SCHEMA)
        files = list(part.files)
        if params.warc:
            from tokenmill.corpus.crawl.warc import write_warc

            files.append(write_warc(attempt, outcomes, folder))
        return Written(files, {**part.stats.to_json(), "crawl": summary}, {**part.stats.headline(), **summary})

    return commit_version(store, key, write, force=force)
