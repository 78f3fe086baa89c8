"""The package layout: every module imports, from the editable tree and from a built wheel; no
import cycles; lower layers never import upper ones (corpus < tokenize < train < flows)."""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["tokenmill.corpus", "tokenmill.tokenize", "tokenmill.train", "tokenmill.flows"]


def source_modules() -> dict[str, Path]:
    """Every module of the four packages, by dotted name, from pyproject's package-dir mapping."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules = {}
    for package, folder in config.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            modules[".".join((package, *parts))] = path
    return modules


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The tokenmill modules a file imports anywhere in it (also inside functions: a lazy import is
    still a dependency)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                         for alias in node.names)
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    modules = source_modules()
    return {name: imported_modules(path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the path that closes it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                return stack[stack.index(child):] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer(module: str) -> int:
    return next(i for i, prefix in enumerate(LAYERS) if module.startswith(prefix + "."))


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_tokenmill_modules():
    assert find_cycle(import_graph()) is None


def test_lower_layers_never_import_upper_ones():
    upward = [(module, dep) for module, deps in import_graph().items() for dep in deps if layer(dep) > layer(module)]
    assert upward == []


def test_prefect_only_in_flows():
    modules = source_modules()
    users = [name for name, path in modules.items() if not name.startswith("tokenmill.flows.")
             and "prefect" in {n.split(".")[0] for n in _all_imports(path)}]
    assert users == []


def _all_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_tokenize_stays_a_namespace_package():
    assert not (ROOT / "tokenize" / "__init__.py").exists()
    import inspect  # imports the standard tokenize module: shadowing it would break here

    assert inspect.getsource(test_tokenize_stays_a_namespace_package)


def test_every_module_imports_from_the_editable_tree():
    for name in sorted(source_modules()):
        module = importlib.import_module(name)
        assert Path(module.__file__).resolve().is_relative_to(ROOT), name


@pytest.mark.slow
def test_every_module_imports_from_the_built_wheel(tmp_path):
    """The wheel holds every module of the tree (a subpackage missing from pyproject's list would not
    ship), and each imports from the installed copy, not from the editable tree."""
    source = tmp_path / "source"  # a copy: building in the tree would leave build/ beside the code
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", "tokenmill-data", "results"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True)
    wheel = next((tmp_path / "dist").glob("tokenmill-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n[:-3].replace("/", ".") for n in names if n.endswith(".py"))
    assert shipped == sorted(source_modules())
    assert "tokenmill/tokenize/__init__.py" not in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True)
    check = (
        "import importlib, sys; from pathlib import Path\n"
        f"site = Path({str(site)!r})\n"
        f"for name in {shipped!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert Path(module.__file__).resolve().is_relative_to(site), (name, module.__file__)\n"
        "print(len(sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", check], env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
