"""The versioned store of DESIGN §2: one folder per version, committed by its manifest.

A version is visible only once `_manifest.json` exists in `<root>/<step>/<id>/`. A step
writes into a staging folder, writes the manifest there last, then publishes the folder
with one rename (local disks) or by moving every file before the manifest (object stores),
so a killed run never leaves a half version that readers could see.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel, Field

from tokenmill.corpus.store.errors import InputError

MANIFEST = "_manifest.json"
STAGING = ".staging"
TRASH = ".trash"
LOCKS = ".locks"
# Version locks this process holds: lock path -> (open lock file, id of the Attempt that owns it).
_HELD: dict[str, tuple[Any, str]] = {}
# Steps whose versions live in a folder not named after the step: training runs go to `runs/` (DESIGN §4).
STEP_FOLDERS = {"train": "runs"}


def folder_of(step: str) -> str:
    """The folder under the root that holds a step's versions."""
    return STEP_FOLDERS.get(step, step)


def canonical_json(value: Any) -> bytes:
    """One byte string per value, whatever the key order, so equal settings hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def version_id(step: str, params: Mapping[str, Any], inputs: Sequence[str], code_version: str) -> str:
    """`<step>-<12 hex>`: the same step, settings, inputs and code always give the same id."""
    payload = {"step": step, "params": dict(params), "inputs": list(inputs), "code_version": code_version}
    return f"{step}-{hashlib.sha256(canonical_json(payload)).hexdigest()[:12]}"


def step_of(vid: str) -> str:
    step, sep, digest = vid.rpartition("-")
    if not sep or not step or len(digest) != 12:
        raise InputError(f"'{vid}' is not a version id (expected <step>-<12 hex>)")
    return step


def tokenmill_version() -> str:
    try:
        return package_version("tokenmill")
    except PackageNotFoundError:
        return "unknown"


class FileEntry(BaseModel):
    path: str = Field(description="relative to the version folder")
    rows: int | None = None
    bytes: int
    sha256: str


class Manifest(BaseModel):
    id: str
    step: str
    params: dict[str, Any]
    inputs: list[str]
    code_version: str
    tokenmill_version: str
    created: datetime
    wall_seconds: float
    files: list[FileEntry]
    stats: dict[str, Any] = Field(default_factory=dict, description="headline figures; all of them in stats.json")
    fingerprint: str | None = Field(default=None, description="what of the outside world an ingest step read")

    def data_files(self, kind: str = "kept") -> list[str]:
        """Relative paths of the kept (`kept`) or dropped (`rejected`) Parquet parts."""
        rejected = kind == "rejected"
        return [
            f.path
            for f in self.files
            if f.path.endswith(".parquet") and f.path.startswith("rejected/") == rejected
        ]


class Store:
    """A store rooted at a local path or any fsspec URL."""

    def __init__(self, root: str):
        self.url = root
        self.fs, self.root = fsspec.core.url_to_fs(root)
        self.root = self.root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def uri(self, path: str) -> str:
        """A path inside the store as a URL that Dask workers and pyarrow can open."""
        return path if self.local else self.fs.unstrip_protocol(path)

    def version_dir(self, vid: str) -> str:
        return f"{self.root}/{folder_of(step_of(vid))}/{vid}"

    def exists(self, vid: str) -> bool:
        return self.fs.exists(f"{self.version_dir(vid)}/{MANIFEST}")

    def manifest(self, vid: str) -> Manifest:
        path = f"{self.version_dir(vid)}/{MANIFEST}"
        try:
            with self.fs.open(path, "rb") as f:
                return Manifest.model_validate_json(f.read())
        except FileNotFoundError:
            raise InputError(f"version '{vid}' is not in the store {self.url}") from None

    def versions(self, step: str | None = None) -> list[Manifest]:
        """Committed versions, oldest first; staging folders and incomplete attempts are ignored."""
        pattern = f"{self.root}/{folder_of(step) if step else '*'}/*/{MANIFEST}"
        manifests = []
        for path in self.fs.glob(pattern):
            with self.fs.open(path, "rb") as f:
                manifests.append(Manifest.model_validate_json(f.read()))
        return sorted(manifests, key=lambda m: m.created)

    def lineage(self, vid: str) -> list[Manifest]:
        """The version and everything it was made from, inputs before the versions that used them."""
        ordered: list[Manifest] = []
        seen: set[str] = set()

        def visit(current: str) -> None:
            if current in seen:
                return
            seen.add(current)
            manifest = self.manifest(current)
            for parent in manifest.inputs:
                visit(parent)
            ordered.append(manifest)

        visit(vid)
        return ordered

    def files(self, vid: str, kind: str = "kept") -> list[str]:
        """URLs of a version's kept or rejected Parquet parts."""
        base = self.version_dir(vid)
        return [self.uri(f"{base}/{rel}") for rel in self.manifest(vid).data_files(kind)]

    def read_docs(self, vid: str, columns: list[str] | None = None, kind: str = "kept"):
        """The version's rows as a Dask DataFrame, one partition per part file."""
        import dask.dataframe as dd

        files = self.files(vid, kind)
        if not files:
            raise InputError(f"version '{vid}' has no {kind} rows to read")
        return dd.read_parquet(files, columns=columns, split_row_groups=False)

    def read_json(self, vid: str, name: str) -> Any:
        with self.fs.open(f"{self.version_dir(vid)}/{name}", "rb") as f:
            return json.loads(f.read())

    def lock(self, step: str, vid: str, owner: str) -> str | None:
        """Wait for the exclusive writer lock of `vid` (local stores: `flock` on `.locks/<vid>.lock`, freed by
        the OS if the writer dies). Two processes never write one version at once; within one process a new
        attempt takes the lock over from an abandoned one. Object stores have no lock: use Prefect limits."""
        if not self.local:
            return None
        import fcntl

        path = f"{self.root}/{folder_of(step)}/{LOCKS}/{vid}.lock"
        if path in _HELD:
            _HELD[path] = (_HELD[path][0], owner)
            return path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle = open(path, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        _HELD[path] = (handle, owner)
        return path

    def begin(self, step: str, vid: str) -> Attempt:
        """A fresh staging folder for `vid`, once no other process writes it; leftovers of killed attempts
        at it are removed."""
        owner = uuid.uuid4().hex[:8]
        lock = self.lock(step, vid, owner)
        staging_root = f"{self.root}/{folder_of(step)}/{STAGING}"
        for stale in self.fs.glob(f"{staging_root}/{vid}.*"):
            self.fs.rm(stale, recursive=True)
        final = self.version_dir(vid)
        if self.fs.exists(final) and not self.exists(vid):
            self.fs.rm(final, recursive=True)
        path = f"{staging_root}/{vid}.{owner}"
        self.fs.makedirs(path, exist_ok=True)
        return Attempt(self, step, vid, path, lock, owner)


class Attempt:
    """One try at writing a version: files go to a private staging folder until `commit`."""

    def __init__(self, store: Store, step: str, vid: str, path: str, lock: str | None = None, owner: str = ""):
        self.store, self.step, self.vid, self.path = store, step, vid, path
        self.lock, self.owner = lock, owner
        self.started = datetime.now(timezone.utc)

    def unlock(self) -> None:
        """Free the version's writer lock if this attempt still owns it."""
        held = _HELD.get(self.lock) if self.lock else None
        if held is not None and held[1] == self.owner:
            del _HELD[self.lock]
            held[0].close()

    @property
    def uri(self) -> str:
        return self.store.uri(self.path)

    def write_bytes(self, name: str, data: bytes, rows: int | None = None) -> FileEntry:
        """One whole file of the version (a model, a vocabulary, a listing), with its checksum."""
        with self.store.fs.open(f"{self.path}/{name}", "wb") as f:
            f.write(data)
        return FileEntry(path=name, rows=rows, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

    def write_json(self, name: str, value: Any) -> FileEntry:
        return self.write_bytes(name, json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def commit(
        self,
        params: Mapping[str, Any],
        inputs: Sequence[str],
        code_version: str,
        files: list[FileEntry],
        stats: Mapping[str, Any],
        fingerprint: str | None = None,
        force: bool = False,
    ) -> Manifest:
        """Write the manifest last, then publish; if another writer committed first, keep theirs."""
        now = datetime.now(timezone.utc)
        manifest = Manifest(
            id=self.vid,
            step=self.step,
            params=dict(params),
            inputs=list(inputs),
            code_version=code_version,
            tokenmill_version=tokenmill_version(),
            created=now,
            wall_seconds=round((now - self.started).total_seconds(), 3),
            files=sorted(files, key=lambda f: f.path),
            stats=dict(stats),
            fingerprint=fingerprint,
        )
        fs = self.store.fs
        with fs.open(f"{self.path}/{MANIFEST}.tmp", "wb") as f:
            f.write(manifest.model_dump_json(indent=2).encode())
        fs.mv(f"{self.path}/{MANIFEST}.tmp", f"{self.path}/{MANIFEST}")
        if self.store.exists(self.vid) and not force:
            self.abort()
            return self.store.manifest(self.vid)
        try:
            self._publish(force)
        finally:
            self.unlock()
        return manifest

    def abort(self) -> None:
        if self.store.fs.exists(self.path):
            self.store.fs.rm(self.path, recursive=True)
        self.unlock()

    def _publish(self, force: bool) -> None:
        store, final = self.store, self.store.version_dir(self.vid)
        trash = None
        if store.fs.exists(final):
            trash = f"{store.root}/{folder_of(self.step)}/{TRASH}/{self.vid}.{uuid.uuid4().hex[:8]}"
            store.fs.makedirs(os.path.dirname(trash), exist_ok=True)
            store.fs.mv(final, trash, recursive=True)
        if store.local:
            os.rename(self.path, final)
        else:
            manifest_path = f"{self.path}/{MANIFEST}"
            for path in store.fs.find(self.path):
                if path != manifest_path:
                    store.fs.mv(path, final + path[len(self.path):])
            store.fs.mv(manifest_path, f"{final}/{MANIFEST}")
            store.fs.rm(self.path, recursive=True)
        if trash is not None:
            store.fs.rm(trash, recursive=True)
