"""This checkout's assetbuild against another git revision's, on one project: the full plan and the no-op.

    /tmp/venv/bin/python benchmarks/revisions.py [--base main] [--size 10000] [--repeat 15] [--json] [--quick]

For a change that must not make a build slower: the other revision's ``assetbuild`` package is taken with
``git archive`` into a temporary folder, and each run puts one of the two first on PYTHONPATH (same Python,
same dependencies, same project, same state files). The project (``noop.write_project``, placeholder
images) is built once by this checkout. Cases, interleaved (base, this, base, this...):

- the full plan: ``assetbuild -q`` with ``.assetbuild/noop.json`` and ``noop-tables.json`` deleted (the
  manifest's tables come from its memo, every target's hash from ``hashes.json``);
- the no-op: ``assetbuild -q`` (the no-op memo answers).

Reported: medians of wall and CPU time (user + system: steadier on a shared machine) and this / base.
Both revisions must read each other's state files (as between commits of one version): a format change
makes each run rewrite them, which this would measure too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, Samples, clean_env, emit, interleaved, parser, run_timed, table
from noop import write_project


def extract(revision: str, into: Path) -> None:
    """``revision``'s assetbuild package, under ``into``."""
    archive = into / "assetbuild.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), revision, "assetbuild"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--base", default="main", help="the git revision to compare with (default: main)")
    p.add_argument("--size", type=int, default=10000, help="assets in the project")
    p.add_argument("--repeat", type=int, default=15, help="timed runs per case (after one warm-up)")
    args: argparse.Namespace = p.parse_args(argv)
    if args.quick:
        args.size, args.repeat = 30, 1

    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-revisions-") as tmp:
        base_code = Path(tmp) / "base"
        base_code.mkdir()
        extract(args.base, base_code)
        project = write_project(Path(tmp) / "project", args.size).parent
        envs = {"base": clean_env(PYTHONPATH=str(base_code)), "this": clean_env(PYTHONPATH=str(REPO))}
        command = [sys.executable, "-m", "assetbuild", "-q"]
        run_timed(command, cwd=project, env=envs["this"])  # build everything once
        state = project / ".assetbuild"

        def full(which: str) -> Any:
            def run() -> Any:
                for name in ("noop.json", "noop-tables.json"):
                    (state / name).unlink(missing_ok=True)
                return run_timed(command, cwd=project, env=envs[which])
            return run

        def noop(which: str) -> Any:
            return lambda: run_timed(command, cwd=project, env=envs[which])

        samples = {(case, which): Samples(f"{case} {which}") for case in ("full plan", "no-op")
                   for which in ("base", "this")}
        interleaved([(samples[("full plan", w)], full(w)) for w in ("base", "this")]
                    + [(samples[("no-op", w)], noop(w)) for w in ("base", "this")],
                    args.repeat, warmup=0 if args.quick else 1)
        load = os.getloadavg()

    rows = []
    results: dict[str, Any] = {"base": args.base, "size": args.size, "load_average": [round(x, 2) for x in load]}
    for case in ("full plan", "no-op"):
        before, after = samples[(case, "base")], samples[(case, "this")]
        ratio_wall = round(after.median / before.median, 3)
        ratio_cpu = round(after.median_cpu / (before.median_cpu or 1e-9), 3)
        rows.append([case, before.median, after.median, ratio_wall, before.median_cpu, after.median_cpu, ratio_cpu])
        results[case] = {"base": before.as_dict(), "this": after.as_dict(), "ratio_wall": ratio_wall,
                         "ratio_cpu": ratio_cpu}
    text = table(["case", f"{args.base} s", "this s", "this / base", f"{args.base} cpu s", "this cpu s",
                  "cpu this / base"], rows)
    text += (f"\n({args.size} assets; medians of {args.repeat} interleaved runs after a warm-up; load average "
             f"{', '.join(f'{x:.2f}' for x in load)} at the end)")
    emit(args, "revisions", results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
