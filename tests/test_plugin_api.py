"""`pbxsms.core.plugin_api` suffices: plugins reach the core and the bus only through it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pbxsms.core import plugin_api

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_FILES = sorted([*(ROOT / "plugins").rglob("*.py"),
                       *(ROOT / "docs" / "examples").rglob("*.py")])
INSIDE = sorted([*(ROOT / "core").rglob("*.py"), *(ROOT / "bus").rglob("*.py")])
API = "pbxsms.core.plugin_api"


def imported_modules(path: Path) -> set[str]:
    """Every absolute module (or module.name) `path` imports, at run time or for typing."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def outside_api(modules: set[str]) -> set[str]:
    """The core and bus modules imported other than through the plugin API."""
    return {name for name in modules
            if name.split(".")[:2] in (["pbxsms", "core"], ["pbxsms", "bus"])
            and name != API and not name.startswith(f"{API}.")}


def test_the_scan_sees_a_forbidden_import(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text("from pbxsms.core.registry import ConsumerSpec\nimport pbxsms.bus.kv\n"
                    "import pbxsms.core\nfrom pbxsms.core import __version__, plugin_api\n"
                    "from pbxsms.core.plugin_api import ok\n"
                    "if TYPE_CHECKING:\n    from pbxsms.core.serve.runtime import Runtime\n")
    assert outside_api(imported_modules(path)) == {
        "pbxsms.core.registry.ConsumerSpec", "pbxsms.bus.kv", "pbxsms.core",
        "pbxsms.core.__version__", "pbxsms.core.serve.runtime.Runtime"}


def test_the_scan_covers_every_built_in_plugin_and_the_example() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in PLUGIN_FILES}
    for expected in ("plugins/clicksend/plugin.py", "plugins/email/plugin.py",
                     "plugins/mobileapp/plugin.py", "docs/examples/acme_plugin.py"):
        assert expected in names


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_plugins_import_the_core_and_bus_only_through_the_plugin_api(path: Path) -> None:
    assert outside_api(imported_modules(path)) == set(), (
        f"{path.relative_to(ROOT)} imports pbxsms.core/pbxsms.bus other than through {API}")


def test_nothing_inside_imports_the_plugin_api() -> None:
    """It is the leaf at the top: the core importing it would make a cycle through it."""
    users = [path.relative_to(ROOT).as_posix() for path in INSIDE
             if path.name != "plugin_api.py"
             and any(name.startswith(API) for name in imported_modules(path))]
    assert users == []


def test_every_exported_name_exists() -> None:
    missing = [name for name in plugin_api.__all__ if not hasattr(plugin_api, name)]
    assert missing == []
    assert len(set(plugin_api.__all__)) == len(plugin_api.__all__)
