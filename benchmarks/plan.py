"""The plan's own phases of a cold no-op build (issue 16.2): ``workspace_of`` and ``Planner.plan``.

    .venv/bin/python benchmarks/plan.py [--size 10000] [--repeat 7] [--baseline-src DIR] [--json] [--quick]

A project of ``--size`` placeholder assets (as ``noop.py`` makes it) is built once. Then each probe is a
fresh process, as a ``assetbuild`` run is: it loads the project (the manifest memo makes that quick; it is
not measured here), then times ``workspace_of`` (the lock's split, the file hashes, the planner) and one
``Planner.plan`` of every asset (each key, lock entry and file stat: all fresh), with the collector's
one-shot settings a command uses. ``--baseline-src DIR`` (an older ``assetbuild`` package, e.g. ``git
worktree add /tmp/before main``) runs the same probes with ``PYTHONPATH=DIR``, interleaved: medians and the
ratios after / before. The whole cold run, against doit, is ``noop.py``'s "cold plan".
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ASSETBUILD, clean_env, emit, parser, run_timed, table
from noop import write_project

PROBE = """
import json, sys, time
from assetbuild import gcpause
getattr(gcpause, "one_shot", lambda: None)()
from assetbuild.workspace import load_project, workspace_of
project = load_project(None)
started = time.perf_counter()
ws = workspace_of(project)
opened = time.perf_counter()
statuses = ws.planner.plan()
planned = time.perf_counter()
fresh = sum(1 for s in statuses if s.state.name == "FRESH")
print(json.dumps({"workspace_of": opened - started, "plan": planned - opened, "fresh": fresh}))
"""


def probe(project: Path, src: str | None) -> dict[str, float]:
    env = clean_env(**({"PYTHONPATH": src} if src else {}))
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=project, env=env, capture_output=True, text=True,
                          check=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=10000, help="assets in the project")
    p.add_argument("--repeat", type=int, default=7, help="probes per code")
    p.add_argument("--baseline-src", help="a folder holding an older `assetbuild` package, measured interleaved")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.repeat = 30, 1
    codes: dict[str, str | None] = {"after": None}
    if args.baseline_src:
        codes = {"before": args.baseline_src, "after": None}
    results: dict[str, Any] = {"size": args.size, "repeat": args.repeat, "load": os.getloadavg()[0], "codes": {}}
    found: dict[str, dict[str, list[float]]] = {name: {"workspace_of": [], "plan": []} for name in codes}
    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-plan-") as tmp:
        project = write_project(Path(tmp) / "project", args.size).parent
        run_timed([ASSETBUILD, "-q"], cwd=project, env=clean_env())
        for src in codes.values():  # a warm-up each (compiled bytecode, page cache)
            probe(project, src)
        for _ in range(args.repeat):
            for name, src in codes.items():
                measured = probe(project, src)
                if measured["fresh"] != args.size:
                    raise SystemExit(f"{name}: {measured['fresh']} of {args.size} assets fresh: not built")
                for phase in ("workspace_of", "plan"):
                    found[name][phase].append(measured[phase])
    rows = []
    for name, phases in found.items():
        medians = {phase: round(statistics.median(values) * 1000, 1) for phase, values in phases.items()}
        results["codes"][name] = medians
        rows.append([name, medians["workspace_of"], medians["plan"], round(sum(medians.values()), 1),
                     round(medians["plan"] * 1000 / args.size, 2)])
    text = table(["code", "workspace_of ms", "plan ms", "both ms", "plan us per asset"], rows)
    if "before" in results["codes"]:
        before, after = results["codes"]["before"], results["codes"]["after"]
        results["ratios"] = {phase: round(after[phase] / before[phase], 3) for phase in before}
        text += (f"\nafter / before ({args.size} assets, medians of {args.repeat} interleaved probes): "
                 + ", ".join(f"{phase} {ratio}" for phase, ratio in results["ratios"].items()))
    text += f"\nload average at the start: {results['load']:.1f}"
    emit(args, "plan", results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
