"""The versioned store of DESIGN §2: one folder per version, committed by its manifest.

A version is visible only once `<root>/<step>/<id>/_manifest.json` exists. Every attempt at
a version writes into a folder of its own, and the manifest is written last:

- on a local disk the attempt is a staging folder, published by one atomic rename, and
  writers of one version are serialized by `flock` (freed by the OS when a writer dies);
- on an object store nothing is copied or moved: the attempt writes in place under
  `<id>/attempts/<attempt>/`, and the commit is one PUT of the manifest, whose `base` names
  that folder. Writers are serialized by a lease object on the store itself (`lease.py`); the
  holder of the lease removes the attempts that no manifest names, which only writers whose
  lease expired can have left.

A killed run never leaves anything readers see, and the next writer cleans up after it.
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
from tokenmill.corpus.store.lease import Lease
from tokenmill.corpus.store.settings import Settings

MANIFEST = "_manifest.json"
STAGING = ".staging"
TRASH = ".trash"
LOCKS = ".locks"
ATTEMPTS = "attempts"
# Version locks this process holds: lock path -> (open lock file, id of the Attempt that owns it).
_HELD: dict[str, tuple[Any, str]] = {}
# Object-store leases this process holds: lease folder -> lease (its `holder` is the owning Attempt's id).
_LEASED: dict[str, Lease] = {}
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
    base: str = Field(default="", description="folder of the files under the version folder: the attempt that "
                      "committed them on an object store, empty on a local disk")

    def data_files(self, kind: str = "kept") -> list[str]:
        """Relative paths of the kept (`kept`) or dropped (`rejected`) Parquet parts."""
        rejected = kind == "rejected"
        return [
            f.path
            for f in self.files
            if f.path.endswith(".parquet") and f.path.startswith("rejected/") == rejected
        ]


class StoreSettings(Settings):
    root: str = Field(default="./tokenmill-data", description="store root: a local path or an fsspec URL (s3://…)")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage options of the root's filesystem (endpoint_url, profile, anon, key, secret, "
        "client_kwargs …), used for every read and write of the store, the inputs and side files, on the driver "
        "and on every Dask worker; the standard environment (AWS_ENDPOINT_URL, AWS_PROFILE …) needs none",
    )
    shared_filesystem: bool = Field(
        default=False,
        description="a local root that every Dask worker reads and writes at the same path (NFS, Lustre, one "
        "host); required to use a local store with an external scheduler",
    )
    lease_seconds: float = Field(
        default=60.0, ge=2, le=3600,
        description="object stores: how long a writer's lease on a version lasts unrenewed; a live writer renews "
        "it every third of that, and a killed writer's attempt is cleaned once it has expired",
    )


class Store:
    """A store rooted at a local path or any fsspec URL."""

    def __init__(self, root: str, options: Mapping[str, Any] | None = None, lease_seconds: float = 60.0):
        self.url = root
        self.options = dict(options or {})
        self.lease_seconds = lease_seconds
        self.fs, self.root = fsspec.core.url_to_fs(root, **self.options)
        self.root = self.root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)
        if self.options:
            use_storage_options(self.storage_options())

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> Store:
        return cls(settings.root, settings.options, settings.lease_seconds)

    def settings(self) -> StoreSettings:
        """Settings that open this store from another process: a local root made absolute."""
        root = self.root if self.local else self.url
        return StoreSettings(root=root, options=self.options, shared_filesystem=self.local,
                             lease_seconds=self.lease_seconds)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def storage_options(self) -> dict[str, dict[str, Any]]:
        """{protocol: options} as fsspec's config takes them, for this process and the Dask workers."""
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return {protocol: dict(self.options) for protocol in protocols} if self.options else {}

    def uri(self, path: str) -> str:
        """A path inside the store as a URL that Dask workers and pyarrow can open."""
        return path if self.local else self.fs.unstrip_protocol(path)

    def version_dir(self, vid: str) -> str:
        return f"{self.root}/{folder_of(step_of(vid))}/{vid}"

    def data_dir(self, vid: str, manifest: Manifest | None = None) -> str:
        """The folder that holds a committed version's files (its attempt's folder on object stores)."""
        base = (manifest or self.manifest(vid)).base
        return f"{self.version_dir(vid)}/{base}" if base else self.version_dir(vid)

    def file_path(self, vid: str, relpath: str, manifest: Manifest | None = None) -> str:
        """The store path of one file of a committed version."""
        return f"{self.data_dir(vid, manifest)}/{relpath}"

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
        manifest = self.manifest(vid)
        base = self.data_dir(vid, manifest)
        return [self.uri(f"{base}/{rel}") for rel in manifest.data_files(kind)]

    def read_docs(self, vid: str, columns: list[str] | None = None, kind: str = "kept"):
        """The version's rows as a Dask DataFrame, one partition per part file."""
        import dask.dataframe as dd

        files = self.files(vid, kind)
        if not files:
            raise InputError(f"version '{vid}' has no {kind} rows to read")
        return dd.read_parquet(files, columns=columns, split_row_groups=False)

    def read_json(self, vid: str, name: str) -> Any:
        with self.fs.open(self.file_path(vid, name), "rb") as f:
            return json.loads(f.read())

    def lock(self, step: str, vid: str, owner: str) -> str:
        """Wait for the exclusive writer lock of `vid` on a local disk (`flock` on `.locks/<vid>.lock`,
        freed by the OS if the writer dies). Within one process a new attempt takes the lock over
        from an abandoned one."""
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

    def lease(self, step: str, vid: str, owner: str) -> Lease:
        """Wait for the writer lease of `vid` on an object store (`lease.py`); as with `lock`, a new
        attempt in this process takes the lease over from an abandoned one."""
        folder = f"{self.root}/{folder_of(step)}/{LOCKS}/{vid}"
        if folder not in _LEASED:
            _LEASED[folder] = Lease(self.fs, folder, self.lease_seconds).acquire()
        _LEASED[folder].holder = owner
        return _LEASED[folder]

    def begin(self, step: str, vid: str) -> Attempt:
        """A fresh attempt at `vid`, once no other live writer has one; what dead writers left is removed."""
        owner = uuid.uuid4().hex[:8]
        if not self.local:
            lease = self.lease(step, vid, owner)
            self._remove_dead_attempts(vid)
            path = f"{self.version_dir(vid)}/{ATTEMPTS}/{owner}"
            return Attempt(self, step, vid, path, owner=owner, lease=lease)
        lock = self.lock(step, vid, owner)
        staging_root = f"{self.root}/{folder_of(step)}/{STAGING}"
        for stale in self.fs.glob(f"{staging_root}/{vid}.*"):
            self.fs.rm(stale, recursive=True)
        final = self.version_dir(vid)
        if self.fs.exists(final) and not self.exists(vid):
            self.fs.rm(final, recursive=True)
        path = f"{staging_root}/{vid}.{owner}"
        self.fs.makedirs(path, exist_ok=True)
        return Attempt(self, step, vid, path, owner=owner, lock=lock)

    def _remove_dead_attempts(self, vid: str) -> None:
        """Under the lease: every attempt folder that the committed manifest (if any) does not name."""
        live = self.manifest(vid).base if self.exists(vid) else None
        try:
            attempts = self.fs.ls(f"{self.version_dir(vid)}/{ATTEMPTS}", detail=False, refresh=True)
        except FileNotFoundError:
            return
        for path in attempts:
            if f"{ATTEMPTS}/{path.rstrip('/').rsplit('/', 1)[-1]}" != live:
                self.fs.rm(path, recursive=True)


def use_storage_options(options: Mapping[str, Mapping[str, Any]]) -> None:
    """Make `options` the defaults of every fsspec filesystem of their protocol in this process, so a
    plain `fsspec.open(url)` anywhere (pyarrow, Dask, the steps' tasks) reaches the store the same way."""
    for protocol, values in options.items():
        fsspec.config.conf.setdefault(protocol, {}).update(values)


class Attempt:
    """One try at writing a version: files go to the attempt's own folder until `commit`."""

    def __init__(self, store: Store, step: str, vid: str, path: str, owner: str = "", lock: str | None = None,
                 lease: Lease | None = None):
        self.store, self.step, self.vid, self.path = store, step, vid, path
        self.owner, self.lock, self.lease = owner, lock, lease
        self.started = datetime.now(timezone.utc)

    def unlock(self) -> None:
        """Free the version's writer lock or lease if this attempt still owns it."""
        if self.lease is not None and self.lease.holder == self.owner:
            _LEASED.pop(self.lease.folder, None)
            self.lease.release()
        self.lease = None
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
            base="" if self.store.local else self.path[len(self.store.version_dir(self.vid)) + 1:],
        )
        if self.store.exists(self.vid) and not force:
            self.abort()
            return self.store.manifest(self.vid)
        try:
            if self.store.local:
                self._publish_local(manifest)
            else:
                self._publish_in_place(manifest)
        finally:
            self.unlock()
        return manifest

    def abort(self) -> None:
        if self.store.fs.exists(self.path):
            self.store.fs.rm(self.path, recursive=True)
        self.unlock()

    def _publish_in_place(self, manifest: Manifest) -> None:
        """Object stores: one PUT of the manifest is the commit (a PUT is atomic); a replaced version's
        files go after it, once readers see the new ones."""
        store, final = self.store, self.store.version_dir(self.vid)
        replaced = store.manifest(self.vid).base if store.exists(self.vid) else None
        self.lease.check()
        store.fs.pipe_file(f"{final}/{MANIFEST}", manifest.model_dump_json(indent=2).encode())
        if replaced and replaced != manifest.base:
            store.fs.rm(f"{final}/{replaced}", recursive=True)

    def _publish_local(self, manifest: Manifest) -> None:
        """Local disks: the manifest into the staging folder, then one rename of the folder."""
        store, final, fs = self.store, self.store.version_dir(self.vid), self.store.fs
        with fs.open(f"{self.path}/{MANIFEST}.tmp", "wb") as f:
            f.write(manifest.model_dump_json(indent=2).encode())
        fs.mv(f"{self.path}/{MANIFEST}.tmp", f"{self.path}/{MANIFEST}")
        trash = None
        if fs.exists(final):
            trash = f"{store.root}/{folder_of(self.step)}/{TRASH}/{self.vid}.{uuid.uuid4().hex[:8]}"
            fs.makedirs(os.path.dirname(trash), exist_ok=True)
            fs.mv(final, trash, recursive=True)
        os.rename(self.path, final)
        if trash is not None:
            fs.rm(trash, recursive=True)
