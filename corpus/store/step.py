"""The step contract: every step is `run_<step>(store, params, client, *, force=False, **inputs)`,
and every one commits through `commit_version`: version id -> cached? -> attempt -> the step's
own stages -> `stats.json` -> manifest.

A step names what makes its version (`VersionKey`) and hands over one function that writes
into the open attempt and says what it wrote (`Written`); this module owns caching, the
staging folder, `stats.json` and the manifest, so every step commits the same way. Docs
steps go one level further through `run_docs_step`: tasks and a partition function, so
in = kept + rejected holds the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tokenmill.corpus.store.parts import Batch, run_parts
from tokenmill.corpus.store.schema import DOC_SCHEMA, rejected_schema
from tokenmill.corpus.store.versions import Attempt, FileEntry, Manifest, Store, VersionKey

# Part of the step contract that steps import from here; defined beside `version_id`.
from tokenmill.corpus.store.versions import params_json as params_json

BATCH_ROWS = 2_000
STATS_FILE = "stats.json"


@dataclass(frozen=True)
class Version:
    """A committed version as a step returns it; `cached` says it was found, not made."""

    manifest: Manifest
    cached: bool

    @property
    def id(self) -> str:
        return self.manifest.id


@dataclass
class Written:
    """What a step's stages wrote into an attempt: its files, its `stats.json`, and the headline
    figures the manifest carries (all of `stats` when not given)."""

    files: list[FileEntry]
    stats: dict[str, Any]
    headline: dict[str, Any] | None = field(default=None)


def cached_version(store: Store, key: VersionKey, force: bool = False) -> Version | None:
    """The committed version of `key`, unless it is missing or `force` asks to recompute it."""
    if not force and store.exists(key.id):
        return Version(store.manifest(key.id), cached=True)
    return None


def check_inputs(store: Store, inputs: Sequence[str]) -> None:
    """Every input version is committed with all its files at their recorded sizes: a damaged input
    is one line before any work, not a traceback from a worker halfway through."""
    for vid in inputs:
        store.check_files(vid)


def commit_written(attempt: Attempt, key: VersionKey, written: Written, force: bool = False) -> Version:
    """Write `stats.json`, then the manifest last (the commit). If another writer committed the same
    version meanwhile, theirs is kept and returned."""
    files = [*written.files, attempt.write_json(STATS_FILE, written.stats)]
    headline = written.stats if written.headline is None else written.headline
    manifest = attempt.commit(key.settings, key.inputs, key.code_version, files, headline,
                              fingerprint=key.fingerprint, force=force)
    return Version(manifest, cached=False)


def commit_version(store: Store, key: VersionKey, write: Callable[[Attempt], Written], *,
                   force: bool = False) -> Version:
    """The outline of every step: the cached version if committed, else check the inputs' files,
    `write` into a fresh attempt and commit it. A failed `write` removes its attempt; a killed one
    leaves a staging folder that the next commit of any version removes (`Store.begin`)."""
    cached = cached_version(store, key, force)
    if cached:
        return cached
    check_inputs(store, key.inputs)
    attempt = store.begin(key.step, key.id)
    if not force and store.exists(key.id):  # another writer held the lock and committed it meanwhile
        attempt.abort()
        return Version(store.manifest(key.id), cached=True)
    try:
        written = write(attempt)
    except BaseException:
        attempt.abort()
        raise
    return commit_written(attempt, key, written, force)


def run_docs_step(
    store: Store,
    client: Any,
    key: VersionKey,
    tasks: Sequence[Any],
    process: Callable[[Any], Iterable[Batch]],
    *,
    kept_schema: pa.Schema = DOC_SCHEMA,
    force: bool = False,
    extra_stats: Mapping[str, Any] | None = None,
) -> Version:
    """Commit the docs version that `process` makes of `tasks`: one kept and one rejected part per task."""

    def write(attempt: Attempt) -> Written:
        files, stats = run_parts(client, tasks, process, attempt.uri, kept_schema, rejected_schema(kept_schema),
                                 f"{key.step} {key.id}")
        return Written(files, {**stats.to_json(), **(extra_stats or {})}, stats.headline())

    return commit_version(store, key, write, force=force)


def input_parts(store: Store, vid: str) -> list[str]:
    """The tasks of a docs-to-docs step: one per kept part of the input version."""
    return store.files(vid, "kept")


def read_batches(url: str, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS,
                 row_groups: list[int] | None = None) -> Iterator[pa.Table]:
    """Stream a part file (or some of its row groups) in bounded batches, whatever its size."""
    import fsspec

    with fsspec.open(url, "rb") as f:
        reader = pq.ParquetFile(f)
        for record_batch in reader.iter_batches(batch_size=batch_rows, columns=columns, row_groups=row_groups):
            yield pa.Table.from_batches([record_batch])
