"""Shared helpers of the benchmark scripts: timed subprocesses, medians, the machine, tables, --json.

The machines these run on are shared and noisy, so every script reports medians of several repetitions
and ratios against a baseline measured in the same script, on the same machine, in the same minute.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Measured processes start as on a user's machine, which keeps compiled bytecode: with this set (as in
# some shells and CI images) every run would compile each module it imports again, for every program.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
BIN = Path(sys.executable).parent
ASSETBUILD = str(BIN / "assetbuild") if (BIN / "assetbuild").exists() else shutil.which("assetbuild") or "assetbuild"
DOIT = str(BIN / "doit") if (BIN / "doit").exists() else shutil.which("doit") or "doit"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for measured subprocesses: no ASSETBUILD_* or colour settings from the shell, and
    Python's bytecode cache written as on a user's machine. With PYTHONDONTWRITEBYTECODE set (this machine's
    shell sets it) a module whose cached bytecode is missing or stale is compiled again by every run: 25-30 ms
    of assetbuild's start-up, and none of doit's, whose bytecode pip wrote when installing it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ASSETBUILD_") and k not in ("NO_COLOR", "FORCE_COLOR", "PYTHONDONTWRITEBYTECODE")}
    env.update(extra)
    return env


@dataclass
class Run:
    seconds: float
    max_rss_kib: int  # the child's peak resident set (Linux ru_maxrss is in KiB)
    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""
    cpu_seconds: float = 0.0  # the child's user + system CPU time (steadier than wall time on a busy machine)


def run_timed(argv: Sequence[str], *, cwd: Path | str | None = None, env: dict[str, str] | None = None,
              stdout_to_pipe: bool = False, check: bool = True) -> Run:
    """Run ``argv`` and return its wall time and peak RSS (from wait4 on that very child).

    stdout and stderr go to temporary files (a pipe that nobody reads while the child runs could block
    it); ``stdout_to_pipe`` instead reads stdout through a real pipe, as a display that is not a
    terminal sees it.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env if env is not None else clean_env(),
                                stdout=subprocess.PIPE if stdout_to_pipe else out, stderr=err,
                                stdin=subprocess.DEVNULL)
        chunks: list[bytes] = []
        if stdout_to_pipe:
            assert proc.stdout is not None
            while chunk := proc.stdout.read(65536):
                chunks.append(chunk)
            proc.stdout.close()
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = Run(elapsed, int(usage.ru_maxrss), proc.returncode,
                     b"".join(chunks) if stdout_to_pipe else out.read(), err.read(),
                     usage.ru_utime + usage.ru_stime)
    if check and result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(argv)}\n"
                         f"{result.stdout.decode(errors='replace')[-2000:]}\n"
                         f"{result.stderr.decode(errors='replace')[-2000:]}")
    return result


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class Samples:
    """Repeated measurements of one case."""

    name: str
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system seconds of each run

    def add(self, run: Run) -> None:
        self.seconds.append(run.seconds)
        self.rss_kib.append(run.max_rss_kib)
        self.cpu.append(run.cpu_seconds)

    @property
    def median(self) -> float:
        return median(self.seconds)

    @property
    def median_cpu(self) -> float:
        return median(self.cpu) if self.cpu else 0.0

    @property
    def peak_rss_mib(self) -> float:
        return max(self.rss_kib) / 1024 if self.rss_kib else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"median_s": round(self.median, 4), "min_s": round(min(self.seconds), 4),
                "max_s": round(max(self.seconds), 4), "runs": len(self.seconds),
                **({"median_cpu_s": round(self.median_cpu, 4)} if self.cpu else {}),
                **({"peak_rss_mib": round(self.peak_rss_mib, 1)} if self.rss_kib else {})}


def interleaved(cases: list[tuple[Samples, Callable[[], Run]]], repeat: int, *, warmup: int = 1) -> None:
    """Run every case ``repeat`` times, round-robin (so a noisy minute hits all cases alike)."""
    for _ in range(warmup):
        for _samples, fn in cases:
            fn()
    for _ in range(repeat):
        for samples, fn in cases:
            samples.add(fn())


def machine() -> dict[str, Any]:
    """nproc, RAM, Python, CPU model and OS: what a reader needs to weigh the numbers."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "ram": ram, "python": platform.python_version(), "cpu": cpu,
            "os": f"{platform.system()} {platform.release()}"}


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A small Markdown table (readable in a terminal, pasteable into docs/benchmarks.md)."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print the results as one JSON object instead of tables")
    p.add_argument("--quick", action="store_true", help="tiny sizes and one repetition (a smoke test, not a result)")
    return p


def emit(args: argparse.Namespace, name: str, results: dict[str, Any], text: str) -> None:
    """Print the tables, or with --json one JSON object (the tables' numbers plus the machine)."""
    if args.json:
        print(json.dumps({"benchmark": name, "quick": bool(args.quick), "machine": machine(), **results},
                         indent=2))
    else:
        m = machine()
        print(f"# {name}  ({m['nproc']} CPU, {m['ram']}, Python {m['python']}, {m['cpu']})"
              + ("  [--quick: smoke test only]" if args.quick else ""))
        print(text)
