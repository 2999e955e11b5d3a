"""The README's test command is the CI script, and that script runs the static checks before the tests."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_test_command_is_the_ci_script() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", quick_start, flags=re.DOTALL)
    assert commands[1] == "bash .ci/run"


def test_the_ci_script_checks_then_tests() -> None:
    steps = [line for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    assert "set -euo pipefail" in steps
    ruff = next(i for i, s in enumerate(steps) if s.startswith(".venv/bin/ruff check"))
    mypy = steps.index(".venv/bin/mypy assetbuild")
    pytest = steps.index(".venv/bin/python -m pytest -q -n 2")
    assert ruff < pytest and mypy < pytest
    for folder in ("assetbuild", "tests", "benchmarks", "dodo.py"):
        assert folder in steps[ruff]
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"\[tool\.mypy\][^\[]*strict = true", pyproject)
