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

A killed run never leaves anything readers see, and the next writer of any version cleans up
after it once its lock or lease says it is dead (`cleanup.py`). Readers check a version's file
sizes against its manifest before any work (`check_files`, `integrity.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel, Field

from tokenmill.corpus.store.cleanup import collect_local, leased_versions
from tokenmill.corpus.store.errors import BrokenManifestError, DamagedVersionError, InputError
from tokenmill.corpus.store.integrity import Damage, damage_summary, find_damage
from tokenmill.corpus.store.layout import (
    ATTEMPTS,
    ID_HEX,
    LOCKS,
    MANIFEST,
    STAGING,
    TRASH,
    check_step,
    folder_of,
    is_version_id,
    step_folders,
    step_of,
)
from tokenmill.corpus.store.lease import Lease
from tokenmill.corpus.store.manifest import FileEntry, Listing, Manifest, parse_manifest
from tokenmill.corpus.store.settings import Settings

# Version locks this process holds: lock path -> (open lock file, id of the Attempt that owns it).
_HELD: dict[str, tuple[Any, str]] = {}
# Object-store leases this process holds: lease folder -> lease (its `holder` is the owning Attempt's id).
_LEASED: dict[str, Lease] = {}


def canonical_json(value: Any) -> bytes:
    """One byte string per value, whatever the key order, so equal settings hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def version_id(step: str, params: Mapping[str, Any], inputs: Sequence[str], code_version: str) -> str:
    """`<step>-<12 hex>`: the same step, settings, inputs and code always give the same id."""
    for vid in inputs:
        step_of(vid, f"{step} input")
    payload = {"step": check_step(step), "params": dict(params), "inputs": list(inputs), "code_version": code_version}
    return f"{step}-{hashlib.sha256(canonical_json(payload)).hexdigest()[:ID_HEX]}"


def params_json(params: BaseModel) -> dict[str, Any]:
    """The resolved settings as the manifest records them and the version id hashes them."""
    return params.model_dump(mode="json")


@dataclass(frozen=True)
class VersionKey:
    """What names a version (DESIGN §2): step, recorded settings, input versions and code version.

    `identity` is what the id hashes when that is not the settings alone: an ingest step adds
    the fingerprint of what it read, a training run leaves out the settings that only steer
    the run and adds its eval set. `fingerprint` is recorded in the manifest.
    """

    step: str
    code_version: str
    settings: Mapping[str, Any]
    inputs: tuple[str, ...] = ()
    identity: Mapping[str, Any] | None = None
    fingerprint: str | None = None

    @classmethod
    def of(cls, step: str, code_version: str, params: BaseModel, inputs: Sequence[str] = (),
           fingerprint: str | None = None, run_control: Sequence[str] = ()) -> VersionKey:
        """The usual key: the step's settings but those in `run_control` (how it runs, not what it
        makes), plus the fingerprint of the outside world for ingest steps."""
        settings = params_json(params)
        hashed = {k: v for k, v in settings.items() if k not in run_control}
        identity = {**hashed, "_fingerprint": fingerprint} if fingerprint else hashed
        return cls(step, code_version, settings, tuple(inputs), identity, fingerprint)

    @cached_property
    def id(self) -> str:
        hashed = self.settings if self.identity is None else self.identity
        return version_id(self.step, hashed, list(self.inputs), self.code_version)


def tokenmill_version() -> str:
    try:
        return package_version("tokenmill")
    except PackageNotFoundError:
        return "unknown"


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
        """The committed manifest of `vid`; DamagedVersionError (one line) if it is unreadable."""
        try:
            raw = self.fs.cat_file(f"{self.version_dir(vid)}/{MANIFEST}")
        except FileNotFoundError:
            raise InputError(f"version '{vid}' is not in the store {self.url}") from None
        return parse_manifest(vid, raw)

    def scan(self, step: str | None = None) -> Listing:
        """Committed versions, oldest first, and those whose manifest is unreadable, apart: one broken
        manifest never hides the rest of the store. Staging folders and incomplete attempts are ignored."""
        pattern = f"{self.root}/{folder_of(step) if step else '*'}/*/{MANIFEST}"
        listing = Listing([], {})
        for path in self.fs.glob(pattern):
            folder, vid = path.rsplit("/", 3)[-3:-1]
            if not is_version_id(vid) or folder != folder_of(step_of(vid)):
                continue  # not a version folder: a staging attempt being published, a report …
            try:
                listing.manifests.append(parse_manifest(vid, self.fs.cat_file(path)))
            except BrokenManifestError as exc:
                listing.broken[vid] = exc.problem
        listing.manifests.sort(key=lambda m: m.created)
        return listing

    def versions(self, step: str | None = None) -> list[Manifest]:
        """Committed versions with a readable manifest, oldest first (`scan` also lists the broken ones)."""
        return self.scan(step).manifests

    def damage(self, vid: str, manifest: Manifest | None = None, checksums: bool = False) -> list[Damage]:
        """Files of a committed version that are missing or resized (one listing), or with `checksums`
        also those whose sha256 differs (reads every file); see `find_damage`."""
        manifest = manifest or self.manifest(vid)
        return find_damage(self.fs, vid, self.data_dir(vid, manifest), manifest.files, checksums)

    def check_files(self, vid: str) -> Manifest:
        """The manifest of `vid` once its files are all there at their recorded sizes: what a reader
        calls before any work, so a damaged input fails in one line, not deep in a worker."""
        manifest = self.manifest(vid)
        damage = self.damage(vid, manifest)
        if damage:
            raise DamagedVersionError(damage_summary(vid, damage))
        return manifest

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
        """URLs of a version's kept or rejected Parquet parts, once they are checked to be all there."""
        manifest = self.check_files(vid)
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
        """A fresh attempt at `vid`, once no other live writer has one. What dead writers left, of this
        version and of any other (`collect_garbage`), is removed first: every commit starts clean."""
        if step_of(vid) != step:
            raise ValueError(f"version '{vid}' is not a {step} version")
        owner = uuid.uuid4().hex[:8]
        if not self.local:
            lease = self.lease(step, vid, owner)
            self._remove_dead_attempts(vid)
            self.collect_garbage(keep=vid)
            path = f"{self.version_dir(vid)}/{ATTEMPTS}/{owner}"
            return Attempt(self, step, vid, path, owner=owner, lease=lease)
        lock = self.lock(step, vid, owner)
        self.collect_garbage(keep=vid)
        staging_root = f"{self.root}/{folder_of(step)}/{STAGING}"
        for stale in self.fs.glob(f"{staging_root}/{vid}.*"):
            self.fs.rm(stale, recursive=True)
        final = self.version_dir(vid)
        if self.fs.exists(final) and not self.exists(vid):
            self.fs.rm(final, recursive=True)
        path = f"{staging_root}/{vid}.{owner}"
        self.fs.makedirs(path, exist_ok=True)
        return Attempt(self, step, vid, path, owner=owner, lock=lock)

    def collect_garbage(self, keep: str = "") -> list[str]:
        """Remove the failed attempts (staging folders, attempt folders) of every version but `keep` that
        no live writer owns, as the writer lock or lease says (cleanup.py); returns what was removed.
        Cheap: a directory scan per step folder locally, a listing of each step's leases on object stores."""
        if self.local:
            return collect_local(self.root, step_folders(), keep)
        removed: list[str] = []
        for vid, folder in leased_versions(self.fs, self.root, step_folders()):
            if vid == keep or folder in _LEASED:
                continue
            lease = Lease(self.fs, folder, self.lease_seconds)
            if lease.try_acquire():  # expired: its writer is dead, and the lease is ours until released
                try:
                    removed += self._remove_dead_attempts(vid)
                finally:
                    lease.release()
        return removed

    def _committed_base(self, vid: str) -> str | None:
        """The attempt folder the committed manifest names; None when there is none, or it is unreadable
        (only a forced rewrite begins an attempt at a broken version, and it replaces the manifest)."""
        try:
            return self.manifest(vid).base if self.exists(vid) else None
        except BrokenManifestError:
            return None

    def _remove_dead_attempts(self, vid: str) -> list[str]:
        """Under the lease: every attempt folder that the committed manifest (if any) does not name."""
        live = self._committed_base(vid)
        try:
            attempts = self.fs.ls(f"{self.version_dir(vid)}/{ATTEMPTS}", detail=False, refresh=True)
        except FileNotFoundError:
            return []
        dead = [path for path in attempts if f"{ATTEMPTS}/{path.rstrip('/').rsplit('/', 1)[-1]}" != live]
        for path in dead:
            self.fs.rm(path, recursive=True)
        return dead


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
        replaced = store._committed_base(self.vid)
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
