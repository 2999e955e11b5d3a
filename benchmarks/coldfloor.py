"""How far the cold plan is from the least work any design must do (issue 16.2's cold plan).

    .venv/bin/python benchmarks/coldfloor.py [--size 10000] [--repeat 7] [--workdir DIR] [--json] [--quick]

For a project of ``--size`` assets made and built as ``noop.py`` does, three whole processes, interleaved
and repeated (medians):

- plain doit's no-op (``noop.py``'s baseline);
- ``assetbuild -q`` with both memos deleted: the cold plan;
- ``_cold_floor.py``: the same answer as one plain loop with no checks at all (see its docstring):
  a lower bound for the cold plan of any design in Python, not a design.

The floor's ratio to doit bounds what any amount of work on the cold plan can reach; the difference
between the cold plan and the floor is the cost of the checks, messages and memos.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ASSETBUILD, DOIT, Samples, emit, interleaved, parser, run_timed, table
from noop import TARGET_PLAN_RATIO, prepare

FLOOR = Path(__file__).resolve().parent / "_cold_floor.py"


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=10000, help="assets in the project")
    p.add_argument("--repeat", type=int, default=7, help="timed runs per case (after one warm-up)")
    p.add_argument("--workdir", help="keep the projects here (reused when already built) instead of a temp dir")
    args: argparse.Namespace = p.parse_args(argv)
    if args.quick:
        args.size, args.repeat = 20, 1
    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-coldfloor-") as tmp:
        base = Path(args.workdir) if args.workdir else Path(tmp)
        project, plain = base / f"assetbuild-{args.size}", base / f"doit-{args.size}"
        if not (args.workdir and (project / ".assetbuild" / "noop.json").exists()
                and (plain / ".doit.sqlite3").exists()):
            project, plain, _first = prepare(base, args.size)
        state = project / ".assetbuild"
        doit_s, cold_s, floor_s = Samples("doit"), Samples("cold plan"), Samples("floor (no checks)")

        def doit_run() -> Any:
            return run_timed([DOIT, "-f", "dodo_plain.py"], cwd=plain)

        def cold_run() -> Any:
            (state / "noop.json").unlink(missing_ok=True)
            (state / "manifest.json").unlink(missing_ok=True)
            return run_timed([ASSETBUILD, "-q"], cwd=project)

        def floor_run() -> Any:
            run = run_timed([sys.executable, str(FLOOR), str(project)])
            expected = f"{args.size} vouched for, {args.size} keys"
            if run.stdout.decode().strip() != expected:
                raise SystemExit(f"the floor did not do the work: {run.stdout.decode().strip()!r}, not {expected!r}")
            return run

        interleaved([(doit_s, doit_run), (cold_s, cold_run), (floor_s, floor_run)], args.repeat,
                    warmup=0 if args.quick else 1)
    doit = doit_s.median
    results = {"assets": args.size, "doit": doit_s.as_dict(), "cold": cold_s.as_dict(), "floor": floor_s.as_dict(),
               "ratio_cold_vs_doit": round(cold_s.median / doit, 3),
               "ratio_floor_vs_doit": round(floor_s.median / doit, 3),
               "target_cold_ratio": TARGET_PLAN_RATIO,
               "checks_and_memos_s": round(cold_s.median - floor_s.median, 4),
               "budget_for_checks_s": round(TARGET_PLAN_RATIO * doit - floor_s.median, 4)}
    text = [table(["assets", "doit s", "cold plan s", "floor s", "cold / doit", "floor / doit"],
                  [[args.size, doit, cold_s.median, floor_s.median, results["ratio_cold_vs_doit"],
                    results["ratio_floor_vs_doit"]]]),
            "",
            f"Checks, messages and memos cost {results['checks_and_memos_s']} s over the floor; the target "
            f"({TARGET_PLAN_RATIO} x doit) leaves them {results['budget_for_checks_s']} s.",
            f"(medians of {args.repeat} interleaved runs after a warm-up; whole-process wall time)"]
    emit(args, "coldfloor", results, "\n".join(text))
    return 0


if __name__ == "__main__":
    os.environ.pop("ASSETBUILD_SERVER", None)
    raise SystemExit(main())
