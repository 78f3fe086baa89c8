"""The outline every docs step shares: hash the version id, reuse it if committed, else write and commit.

A step supplies its tasks and a partition function; this module owns caching, the staging
folder, `stats.json` and the manifest, so in = kept + rejected holds the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel
from tokenmill.corpus.store.parts import Batch, run_parts
from tokenmill.corpus.store.schema import DOC_SCHEMA, rejected_schema
from tokenmill.corpus.store.versions import Manifest, Store, version_id

BATCH_ROWS = 2_000


@dataclass(frozen=True)
class Version:
    """A committed version as a step returns it; `cached` says it was found, not made."""

    manifest: Manifest
    cached: bool

    @property
    def id(self) -> str:
        return self.manifest.id


def params_json(params: BaseModel) -> dict[str, Any]:
    """The resolved settings as the manifest records them and the version id hashes them."""
    return params.model_dump(mode="json")


def find_cached(store: Store, vid: str, force: bool) -> Version | None:
    if not force and store.exists(vid):
        return Version(store.manifest(vid), cached=True)
    return None


def run_docs_step(
    store: Store,
    client: Any,
    *,
    step: str,
    code_version: str,
    params: BaseModel,
    inputs: Sequence[str],
    tasks: Sequence[Any],
    process: Callable[[Any], Iterable[Batch]],
    kept_schema: pa.Schema = DOC_SCHEMA,
    force: bool = False,
    fingerprint: str | None = None,
    extra_stats: Mapping[str, Any] | None = None,
) -> Version:
    """Commit the version that `process` makes of `tasks`, or return it if already committed."""
    settings = params_json(params)
    identity = {**settings, "_fingerprint": fingerprint} if fingerprint else settings
    vid = version_id(step, identity, inputs, code_version)
    cached = find_cached(store, vid, force)
    if cached:
        return cached
    attempt = store.begin(step, vid)
    files, stats = run_parts(
        client, tasks, process, attempt.uri, kept_schema, rejected_schema(kept_schema), f"{step} {vid}"
    )
    full_stats = {**stats.to_json(), **(extra_stats or {})}
    files.append(attempt.write_json("stats.json", full_stats))
    manifest = attempt.commit(
        settings, inputs, code_version, files, stats.headline(), fingerprint=fingerprint, force=force
    )
    return Version(manifest, cached=False)


def input_parts(store: Store, vid: str) -> list[str]:
    """The tasks of a docs-to-docs step: one per kept part of the input version."""
    return store.files(vid, "kept")


def read_batches(url: str, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """Stream a part file in bounded batches, whatever its size."""
    import fsspec

    with fsspec.open(url, "rb") as f:
        reader = pq.ParquetFile(f)
        for record_batch in reader.iter_batches(batch_size=batch_rows, columns=columns):
            yield pa.Table.from_batches([record_batch])
