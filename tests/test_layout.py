"""The tests' own layout: one folder per feature, each a package; shared helpers only in
plain modules (tests/helpers.py, tests/procs.py, tests/support/); conftest.py files only
define fixtures and nothing imports from them."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# The modules every folder may import from; anything else under tests/ is a feature's own.
SHARED = {"helpers", "procs", "support"}


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names `node` imports, relative imports resolved against `module`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".")[: -node.level]
        base = ".".join([*package, base] if base else package)
    # `from tests.x import conftest` imports the module tests.x.conftest.
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def layout_problems(module: str, source: str) -> list[str]:
    """What is wrong with the imports of the test module `module` (dotted, from `tests`)."""
    parts = module.split(".")
    own = parts[1] if len(parts) > 2 else None  # the feature folder; None at the top
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        for name in _imported(module, node):
            target = name.split(".")
            if target[0] != "tests":
                continue
            if "conftest" in target:
                problems.append(f"{module}:{node.lineno} imports from {name}")
            elif len(target) > 1 and target[1] not in SHARED and target[1] != own:
                problems.append(f"{module}:{node.lineno} imports {name}, a module of "
                                f"another feature's tests")
    return problems


def conftest_problems(module: str, source: str) -> list[str]:
    """Definitions in a conftest.py other than fixtures (helpers belong in plain modules)."""
    problems = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            problems.append(f"{module}:{node.lineno} defines class {node.name}")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not any(
                "fixture" in ast.unparse(decorator) for decorator in node.decorator_list):
            problems.append(f"{module}:{node.lineno} defines {node.name}, not a fixture")
    return problems


def _modules() -> list[tuple[str, Path]]:
    return [(".".join(path.relative_to(TESTS.parent).with_suffix("").parts), path)
            for path in sorted(TESTS.rglob("*.py")) if "__pycache__" not in path.parts]


def test_the_layout_rules_catch_what_they_forbid() -> None:
    assert layout_problems("tests.faults.test_x", "from tests.conftest import Gateway")
    assert layout_problems("tests.faults.test_x", "from tests.delivery.support import X")
    assert layout_problems("tests.faults.test_x", "from tests.email import test_delivery")
    assert layout_problems("tests.faults.test_x", "from ..outbound.conftest import x")
    assert layout_problems("tests.numbers.test_x", "from .conftest import ENV")
    assert layout_problems("tests.test_top", "import tests.faults.support")
    assert not layout_problems("tests.faults.test_x", "from tests.faults.support import X")
    assert not layout_problems("tests.faults.test_x", "from tests.support.smtp import S")
    assert not layout_problems("tests.faults.test_x", "from tests.helpers import wait_until")
    assert conftest_problems("tests.conftest", "def helper() -> None: ...")
    assert conftest_problems("tests.conftest", "class Gateway: ...")
    assert not conftest_problems("tests.conftest", "@pytest.fixture\ndef app() -> None: ...")


def test_no_module_imports_a_conftest_or_another_features_tests() -> None:
    modules = _modules()
    assert len(modules) > 50, "the scan found too few test modules"
    problems = [problem for module, path in modules
                for problem in layout_problems(module, path.read_text())]
    assert not problems, "\n".join(problems)


def test_conftest_files_only_define_fixtures() -> None:
    problems = [problem for module, path in _modules() if path.name == "conftest.py"
                for problem in conftest_problems(module, path.read_text())]
    assert not problems, "\n".join(problems)


def test_every_test_folder_is_a_package() -> None:
    folders = {path.parent for _, path in _modules()}
    missing = [str(folder.relative_to(TESTS.parent)) for folder in folders
               if not (folder / "__init__.py").exists()]
    assert not missing, f"no __init__.py in {missing}"
