"""Downstream tasks built from text every machine with Python has, so the demo scores one offline.

`python-docs://tasks/stdlib-packages`: which standard-library package a docstring comes from,
among the packages with the most distinct docstrings of public classes and functions (on
Python 3.11: tkinter, idlelib, asyncio, distutils, email, importlib, logging, xml). The same
docstrings are in the demo's pretraining text (unlabelled, inside each module's doc), so the
task measures how well a model's states separate the packages' language after fine-tuning,
not recall of unseen text. Its bytes, hence its sha256, change with the Python installed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import orjson

from tokenmill.corpus.ingest.pydocs import SKIP_DIRS

STDLIB_PACKAGES_URL = "python-docs://tasks/stdlib-packages"
PACKAGES = 8
PER_PACKAGE = 150  # 1,200 items: a three-epoch fine-tune of the tiny model stays within a minute on a CPU
MIN_WORDS = 5


def public_docstrings(source: str) -> list[str]:
    """The docstrings of a module's public classes, functions and methods, of at least MIN_WORDS words."""
    docs = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc.split()) >= MIN_WORDS:
                docs.append(doc)
    return docs


def package_docstrings(stdlib: Path) -> dict[str, set[str]]:
    """Distinct docstrings per top-level package (a folder) of the standard library, tests left out."""
    found: dict[str, set[str]] = {}
    for package in sorted(p for p in stdlib.iterdir() if p.is_dir() and p.name.isidentifier()):
        if package.name in SKIP_DIRS:
            continue
        for dirpath, dirnames, filenames in os.walk(package):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and d.isidentifier())
            for name in sorted(f for f in filenames if f.endswith(".py")):
                try:
                    docs = public_docstrings(Path(dirpath, name).read_text(encoding="utf-8"))
                except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError, OSError):
                    continue
                found.setdefault(package.name, set()).update(docs)
    return found


def stdlib_packages() -> bytes:
    """The task's JSONL: the PACKAGES packages with the most docstrings, PER_PACKAGE docstrings of each
    (the ones with the smallest sha256: a fixed sample), labelled with the package, sorted."""
    found = package_docstrings(Path(sysconfig.get_paths()["stdlib"]))
    top = sorted(found, key=lambda name: (-len(found[name]), name))[:PACKAGES]
    rows = []
    for package in sorted(top):
        chosen = sorted(found[package], key=lambda text: hashlib.sha256(text.encode()).digest())[:PER_PACKAGE]
        rows += [{"text": text, "label": package} for text in sorted(chosen)]
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


BUILTIN_TASKS: dict[str, Callable[[], bytes]] = {STDLIB_PACKAGES_URL: stdlib_packages}


# Where built tasks are kept between commands; TOKENMILL_CACHE_DIR moves it.
CACHE_ENV = "TOKENMILL_CACHE_DIR"


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tokenmill"
    return Path(os.environ.get(CACHE_ENV) or default)


def cache_path(url: str) -> Path:
    """The cached build of `url` for this Python: its version and standard library, and the task's
    build settings, name the file; editing the installed standard library in place is not noticed."""
    recipe = [url, sys.version, sysconfig.get_paths()["stdlib"], PACKAGES, PER_PACKAGE, MIN_WORDS, sorted(SKIP_DIRS)]
    digest = hashlib.sha256(orjson.dumps(recipe)).hexdigest()[:16]
    return cache_dir() / "tasks" / f"{url.rsplit('/', 1)[-1]}-{digest}.jsonl"


@functools.lru_cache(maxsize=None)
def builtin_task(url: str) -> bytes:
    """A built-in task's bytes, built once per Python and kept in the cache folder (parsing the
    standard library takes seconds; a cached `tokenmill run eval` names its version with them).
    An unwritable cache folder only costs the rebuild."""
    path = cache_path(url)
    if path.is_file():
        return path.read_bytes()
    data = BUILTIN_TASKS[url]()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(data)
        partial.replace(path)
    except OSError:
        pass
    return data
