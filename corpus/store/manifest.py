"""What a committed version records (DESIGN §2), and reading it back from the store.

A manifest comes from storage, so it is checked like input: its id, inputs and file paths must
be version ids and paths inside the version folder, or the version is broken (one line), never
a traceback and never a read outside the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from tokenmill.corpus.store.errors import BrokenManifestError
from tokenmill.corpus.store.integrity import manifest_problem
from tokenmill.corpus.store.layout import ATTEMPTS, is_version_id


def is_inside(relpath: str) -> bool:
    """A path that stays inside the folder it is relative to: a manifest never points a reader elsewhere."""
    return bool(relpath) and not relpath.startswith("/") and "\\" not in relpath and ".." not in relpath.split("/")


class FileEntry(BaseModel):
    path: str = Field(description="relative to the version folder")
    rows: int | None = None
    bytes: int = Field(ge=0)
    sha256: str

    @field_validator("path")
    @classmethod
    def _inside(cls, path: str) -> str:
        if not is_inside(path):
            raise ValueError(f"{path!r} is not a path inside the version folder")
        return path


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

    @field_validator("id")
    @classmethod
    def _id(cls, vid: str) -> str:
        if not is_version_id(vid):
            raise ValueError(f"{vid!r} is not a version id")
        return vid

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, inputs: list[str]) -> list[str]:
        bad = [vid for vid in inputs if not is_version_id(vid)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a version id")
        return inputs

    @field_validator("base")
    @classmethod
    def _base(cls, base: str) -> str:
        if base and not (base.startswith(f"{ATTEMPTS}/") and is_inside(base)):
            raise ValueError(f"{base!r} is not an attempt folder")
        return base

    def data_files(self, kind: str = "kept") -> list[str]:
        """Relative paths of the kept (`kept`) or dropped (`rejected`) Parquet parts."""
        rejected = kind == "rejected"
        return [
            f.path
            for f in self.files
            if f.path.endswith(".parquet") and f.path.startswith("rejected/") == rejected
        ]


def parse_manifest(vid: str, raw: bytes) -> Manifest:
    """The manifest of `vid` as read from the store; BrokenManifestError if it is truncated, garbage,
    or another version's."""
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:
        raise BrokenManifestError(vid, manifest_problem(exc)) from None
    if manifest.id != vid:
        raise BrokenManifestError(vid, f"is the manifest of '{manifest.id}'")
    return manifest


@dataclass
class Listing:
    """The store's versions: readable manifests, oldest first, and {id: problem} of the broken ones."""

    manifests: list[Manifest]
    broken: dict[str, str]
