"""Installed layout: every source folder under `pbxsms.*`, no import cycles, one-line owners."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("core", "bus", "plugins", "sim")
# The plugin contract: what every plugin builds on imports no feature of the core.
CONTRACT = {"pbxsms.core.hookspecs", "pbxsms.core.plugins", "pbxsms.core.registry"}


def _module_files() -> dict[str, Path]:
    """Installed module name → source file, for every module of the source folders."""
    modules: dict[str, Path] = {}
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(["pbxsms", *parts])] = path
    return modules


def _runtime_imports(path: Path, known: set[str]) -> set[str]:
    """The pbxsms modules `path` imports when it runs (not those under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def _graph() -> dict[str, set[str]]:
    files = _module_files()
    known = set(files)
    return {name: _runtime_imports(path, known) - {name} for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph`, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_source_package_is_installed() -> None:
    """A new folder missing from pyproject's package list would be absent when installed."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {name for name, path in _module_files().items() if path.name == "__init__.py"}
    # Folders of data only (the console's templates) are listed with their files.
    data = {name for name in setuptools["package-data"] if name != "*"}
    assert folders == listed - data
    assert data <= listed


def test_no_import_cycle_at_run_time() -> None:
    assert _cycle(_graph()) is None, " → ".join(_cycle(_graph()) or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _core(modules: set[str]) -> set[str]:
    return {m for m in modules if m.startswith("pbxsms.core.")}


def test_the_plugin_contract_imports_no_feature() -> None:
    """The contract imports itself and leaf modules (which import nothing of the core)."""
    graph = _graph()
    leaves = {name for name, imports in graph.items() if not _core(imports)}
    for name in CONTRACT:
        above = _core(graph[name]) - CONTRACT - leaves
        assert not above, f"{name} imports {sorted(above)} at run time"


def test_every_module_says_what_it_owns_on_its_first_line() -> None:
    for name, path in _module_files().items():
        first = path.read_text().splitlines()[:1]
        assert first and first[0].startswith('"""') and len(first[0]) > 10, name


def test_pbxsms_command_runs_from_any_folder(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "pbxsms"
    result = subprocess.run([str(script), "--version"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "pbxsms" in result.stdout


def test_regular_install_puts_sources_under_the_namespace(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(ROOT)],
                   check=True, timeout=300, capture_output=True)
    for path in _module_files().values():
        relative = path.relative_to(ROOT)
        assert (target / "pbxsms" / relative).is_file(), f"{relative} not installed"
    for bare in ("core", "bus", "plugins", "sim", "tests"):
        assert not (target / bare).exists(), f"bare `{bare}` installed"
