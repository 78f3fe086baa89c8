"""Is a committed version still what its manifest says (DESIGN §2: immutable, and checkable by any reader)?

Two depths. By default `find_damage` compares sizes from one listing of the version's folder:
one LIST on an object store, one directory walk locally, no file read, so every reader can
afford it before it starts. With `checksums` it also reads every file for its sha256, for
`tokenmill verify`: that catches a same-size replacement the listing cannot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

BLOCK_BYTES = 1 << 20


class Recorded(Protocol):
    """What the manifest records of one file (a `FileEntry`)."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Damage:
    """One file of a version that is not as recorded."""

    version: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.version}/{self.path}: {self.problem}"


def listed_sizes(fs: Any, folder: str) -> dict[str, int]:
    """{path relative to `folder`: bytes} of every file under it, from one fresh listing."""
    fs.invalidate_cache(folder)
    try:
        found = fs.find(folder, detail=True)
    except FileNotFoundError:
        return {}
    prefix = folder.rstrip("/") + "/"
    return {path[len(prefix):]: int(info["size"]) for path, info in found.items() if path.startswith(prefix)}


def find_damage(fs: Any, version: str, folder: str, files: Iterable[Recorded], checksums: bool = False) -> list[Damage]:
    """The recorded files that are missing, or of another size and other bytes; with `checksums`, also
    those of the recorded size and other bytes (reads every file).

    A file of another size is read and hashed before it counts as damaged: pack shards written before
    the pack's writer counted bytes (it took `len()` of a uint16 memoryview) recorded their size in
    tokens, so a size alone would call every such shard in older stores damaged though its sha256 is
    right. An intact store pays that read for those files only."""
    sizes = listed_sizes(fs, folder)
    damage = []
    for entry in files:
        size = sizes.get(entry.path)
        if size is None:
            damage.append(Damage(version, entry.path, "missing"))
        elif (size != entry.bytes or checksums) and file_sha256(fs, f"{folder}/{entry.path}") != entry.sha256:
            problem = f"{size:,} bytes where the manifest records {entry.bytes:,}" if size != entry.bytes \
                else "sha256 differs from the manifest (same size, other bytes)"
            damage.append(Damage(version, entry.path, problem))
    return damage


def file_sha256(fs: Any, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def damage_summary(version: str, damage: list[Damage], shown: int = 3) -> str:
    """One line for an error message: the first few damaged files and how many more."""
    listed = "; ".join(f"{d.path} {d.problem}" for d in damage[:shown])
    more = f" (and {len(damage) - shown} more)" if len(damage) > shown else ""
    return (f"version '{version}' is damaged: {listed}{more}; restore the files or recompute it with --force "
            f"(`tokenmill verify {version}` lists every file)")


def manifest_problem(error: ValidationError) -> str:
    """What is wrong with an unreadable manifest, in one line: the first problem pydantic found."""
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return f"is not valid JSON ({first['msg'].removeprefix('Invalid JSON: ')})"
    key = ".".join(str(part) for part in first["loc"]) or "manifest"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"does not match the manifest schema: {key}: {first['msg'].removeprefix('Value error, ')}{more}"
