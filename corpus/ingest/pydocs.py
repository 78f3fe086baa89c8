"""The demo source: the documentation text of the installed Python itself.

`python-docs://` reads the pydoc topics and, for every module of the standard library and
of site-packages, its docstrings (module, classes, functions) as one doc per module. The
source files are parsed with `ast`, never imported, so nothing runs and nothing breaks;
templated docstrings across packages give natural near-duplicates for dedup to find.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PYTHON_DOCS_URL = "python-docs://"
# The pydoc topics as a fixed evaluation set: they ship with Python, so every data version
# and every tokenizer is scored on the same text.
PYTHON_TOPICS_URL = "python-docs://topics"
SKIP_DIRS = {"__pycache__", "test", "tests", "testing", "idle_test", "site-packages", "dist-packages", "node_modules"}
FILES_PER_TASK = 400
MAX_SOURCE_BYTES = 4 * 2**20


@dataclass(frozen=True)
class ModuleFile:
    module: str
    path: str
    size: int
    mtime: float


def roots() -> list[Path]:
    """The standard library, then every site-packages folder on `sys.path` (a venv's and,
    with system site packages, the system's), as this interpreter imports them."""
    candidates = [sysconfig.get_paths()["stdlib"]]
    candidates += [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    found: list[Path] = []
    for candidate in candidates:
        path = Path(candidate).resolve()
        if path.is_dir() and path not in found:
            found.append(path)
    return found


def module_files() -> list[ModuleFile]:
    """Every importable `.py` file below the roots, sorted by module name, tests left out."""
    files: dict[str, ModuleFile] = {}
    for root in roots():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and d.isidentifier())
            rel = Path(dirpath).relative_to(root)
            for name in sorted(filenames):
                if not name.endswith(".py"):
                    continue
                parts = [*rel.parts, name[:-3]]
                if parts[-1] == "__init__":
                    parts.pop()
                if not parts or not all(p.isidentifier() for p in parts):
                    continue
                module = ".".join(parts)
                path = os.path.join(dirpath, name)
                stat = os.stat(path)
                if module not in files and 0 < stat.st_size <= MAX_SOURCE_BYTES:
                    files[module] = ModuleFile(module, path, stat.st_size, stat.st_mtime)
    return [files[m] for m in sorted(files)]


def fingerprint(files: list[ModuleFile]) -> str:
    """What the demo read: the interpreter and every file's path, size and mtime."""
    digest = hashlib.sha256(sys.version.encode())
    for f in files:
        digest.update(f"{f.module}\0{f.path}\0{f.size}\0{f.mtime}\n".encode())
    return digest.hexdigest()


def plan(max_bytes: int) -> tuple[list[tuple[list[ModuleFile], int]], str]:
    """Groups of files, each with its share of the byte budget (by source size), and a fingerprint.

    Shares are fixed before any task runs, so the parallel tasks together stay under the cap
    and the same machine always yields the same docs.
    """
    files = module_files()
    total = sum(f.size for f in files) or 1
    groups = [files[i : i + FILES_PER_TASK] for i in range(0, len(files), FILES_PER_TASK)]
    shares = [(group, int(max_bytes * sum(f.size for f in group) / total)) for group in groups]
    return shares, fingerprint(files)


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    try:
        return f"{node.name}({ast.unparse(node.args)})"
    except (ValueError, RecursionError):
        return f"{node.name}(...)"


def module_text(module: str, source: str) -> str:
    """The module's docstrings as one document: module doc, then each class and function."""
    tree = ast.parse(source)
    sections = [module]
    doc = ast.get_docstring(tree, clean=True)
    if doc:
        sections.append(doc)

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                child_doc = ast.get_docstring(child, clean=True)
                if child_doc:
                    sections.append(f"class {prefix}{child.name}\n{child_doc}")
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                child_doc = ast.get_docstring(child, clean=True)
                if child_doc and not child.name.startswith("_"):
                    sections.append(f"def {prefix}{_signature(child)}\n{child_doc}")

    visit(tree, "")
    return "\n\n".join(sections) if len(sections) > 1 else ""


def iter_module_docs(files: list[ModuleFile], budget: int) -> Iterator[tuple[ModuleFile, str | None, str]]:
    """(file, text or None, error) per module until the group's byte budget is spent."""
    spent = 0
    for f in files:
        if spent >= budget:
            return
        try:
            source = Path(f.path).read_text(encoding="utf-8")
            text = module_text(f.module, source)
        except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError, OSError) as exc:
            yield f, None, f"{type(exc).__name__}: {exc}"
            continue
        spent += len(text.encode())
        yield f, text, ""


def topics() -> dict[str, str]:
    """The pydoc help topics (keywords, statements, data model) that ship with Python."""
    from pydoc_data.topics import topics as all_topics

    return dict(sorted(all_topics.items()))
