"""Installed layout: everything under `pbxsms.*`, the command runs from any folder."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_bare_top_level_packages() -> None:
    for bare in ("core", "bus", "plugins"):
        spec = importlib.util.find_spec(bare)
        assert spec is None or "site-packages" not in str(spec.origin), bare


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
    assert (target / "pbxsms" / "core" / "hookspecs.py").is_file()
    assert (target / "pbxsms" / "plugins" / "clicksend" / "plugin.py").is_file()
    for bare in ("core", "bus", "plugins", "tests"):
        assert not (target / bare).exists(), f"bare `{bare}` installed"
