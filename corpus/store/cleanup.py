"""Garbage collection of failed attempts of any version, once no live writer owns them (DESIGN §2).

A writer removes the dead attempts of the version it writes; these helpers find those of every
other version, which a failed run leaves behind when nobody writes that version again. The
writer lock decides whether a writer is alive:

- on a local disk each staging (or trash) folder `<id>.<owner>` belongs to the writers of `<id>`,
  who hold `flock` on `.locks/<id>.lock` while they work. If a non-blocking `flock` succeeds, no
  writer is alive (the OS frees the lock of a dead process), and the folder is removed while we
  hold the lock, so no new writer can start meanwhile. Only a folder without a lock file, which no
  writer of ours makes, falls back to its age;
- on an object store the lock is a lease (`lease.py`): a lease that expired unrenewed belongs to a
  dead writer, and whoever takes it over may remove that version's dead attempts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tokenmill.corpus.store.layout import LOCKS, STAGING, TRASH, is_version_id
from tokenmill.corpus.store.lease import SUFFIX

# Age after which a local staging folder with no lock file is taken as dead: far longer than any
# step stays silent, and such folders only come from outside tokenmill's writers (a copied store).
UNLOCKED_STALE_SECONDS = 24 * 3600


def _owner(name: str) -> str | None:
    """The version id of a staging or trash folder named `<id>.<owner>`, else None (not ours: kept)."""
    vid, sep, owner = name.partition(".")
    return vid if sep and owner and is_version_id(vid) else None


def _remove_if_unowned(folder: Path, lock: Path) -> bool:
    """Remove `folder` if no live writer holds `lock`; True if removed."""
    try:
        handle = open(lock, "rb")
    except FileNotFoundError:
        if time.time() - folder.stat().st_mtime < UNLOCKED_STALE_SECONDS:
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer of this version owns it
        shutil.rmtree(folder, ignore_errors=True)
        return True  # closing the handle frees the lock


def collect_local(root: str, folders: list[str], keep: str = "") -> list[str]:
    """Remove the staging and trash folders under every step folder that no live writer owns,
    except those of version `keep` (the caller's own, which it cleans itself); returns what was removed."""
    removed = []
    for folder in folders:
        for kind in (STAGING, TRASH):
            try:
                entries = list(os.scandir(f"{root}/{folder}/{kind}"))
            except FileNotFoundError:
                continue
            for entry in entries:
                vid = _owner(entry.name)
                if vid is None or vid == keep or not entry.is_dir(follow_symlinks=False):
                    continue
                if _remove_if_unowned(Path(entry.path), Path(f"{root}/{folder}/{LOCKS}/{vid}.lock")):
                    removed.append(entry.path)
    return removed


def leased_versions(fs: Any, root: str, folders: list[str]) -> Iterator[tuple[str, str]]:
    """(version id, lease folder) of every version whose lease folder holds a lease object: a live
    writer's, or a dead one's that nobody took over. One listing per step folder present."""
    try:
        present = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False, refresh=True)}
    except FileNotFoundError:
        return
    for folder in folders:
        if folder not in present:
            continue
        locks = f"{root}/{folder}/{LOCKS}"
        fs.invalidate_cache(locks)
        try:
            leases = fs.find(locks, detail=False)
        except FileNotFoundError:
            continue
        seen = set()
        for path in leases:
            lease_folder, _, name = path.rpartition("/")
            vid = lease_folder.rsplit("/", 1)[-1]
            if name.endswith(SUFFIX) and is_version_id(vid) and vid not in seen:
                seen.add(vid)
                yield vid, lease_folder
