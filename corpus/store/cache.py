"""This node's cache of store files: where a host keeps local copies of what lives on an object store."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`TOKENMILL_CACHE`, else `~/.cache/tokenmill`: one per node, shared by its processes."""
    return Path(os.environ.get("TOKENMILL_CACHE") or Path.home() / ".cache" / "tokenmill")
