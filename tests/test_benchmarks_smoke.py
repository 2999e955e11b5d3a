"""The benchmark scripts still run: each in --quick mode (tiny sizes, one repetition) exits 0 and prints
its table (and --json prints JSON). Nothing here is timed: the numbers live in docs/benchmarks.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = ["noop", "startup", "throughput", "client_overhead", "memory", "servercheck", "review", "firstbuild",
           "manifestload", "lockload", "plan", "coldfloor", "revisions"]


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), "--quick", *args],
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_and_prints_its_table(script: str) -> None:
    out = run(script)
    assert out.startswith(f"# {script}")
    assert "|---" in out and "smoke test only" in out


def test_benchmark_json_output() -> None:
    data = json.loads(run("memory", "--json"))
    assert data["benchmark"] == "memory" and data["quick"] is True
    assert {"nproc", "ram", "python", "cpu"} <= set(data["machine"])


def test_remote_benchmark_runs() -> None:
    from assetbuild.testing.seaweedfs import skip_reason

    if skip_reason():
        pytest.skip(skip_reason() or "")
    out = run("remote")
    assert out.startswith("# remote") and "assetbuild pull" in out and "smoke test only" in out
