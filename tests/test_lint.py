"""Static checks are part of the test command, so CI enforces them: ruff (style, bugs) and mypy (types)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> list[str]:
    # The tool installed next to this Python (the dev extra), else one on PATH.
    local = Path(sys.executable).parent / name
    if local.exists():
        return [str(local)]
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return [found]


def test_ruff_is_clean() -> None:
    paths = [p for p in ("assetbuild", "tests", "dodo.py", "benchmarks") if (ROOT / p).exists()]
    result = subprocess.run([*_tool("ruff"), "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = subprocess.run([*_tool("mypy"), "assetbuild"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
