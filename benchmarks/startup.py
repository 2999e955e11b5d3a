"""Start-up: `assetbuild --help` and a no-op build of examples/quickstart, against `python -c pass`.

    /tmp/venv/bin/python benchmarks/startup.py [--repeat 15] [--json] [--quick]

The quickstart (6 assets, placeholder generator) is copied to a temporary folder and built once; then
whole processes are timed, interleaved and repeated: ``python -c pass`` (the interpreter alone, the
floor), ``assetbuild --help``, ``assetbuild -q`` (no-op, the memo answers) and ``assetbuild -q`` with the
memo deleted first (full plan). Target (issue 8): ``--help`` and the no-op build each under 0.3 s
median.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ASSETBUILD, REPO, Samples, emit, interleaved, parser, run_timed, table, verdict

TARGET_SECONDS = 0.3


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=15, help="timed runs per case (after one warm-up)")
    args = p.parse_args(argv)
    if args.quick:
        args.repeat = 1
    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-startup-") as tmp:
        project = Path(tmp) / "quickstart"
        shutil.copytree(REPO / "examples" / "quickstart", project)
        run_timed([ASSETBUILD, "-q"], cwd=project)  # build the six images once
        memo = project / ".assetbuild" / "noop.json"
        if not memo.exists():
            raise SystemExit("the quickstart build did not record the no-op memo")

        def full_plan() -> Any:
            memo.unlink()
            return run_timed([ASSETBUILD, "-q"], cwd=project)

        cases = {
            "python -c pass": (Samples("python"), lambda: run_timed([sys.executable, "-c", "pass"], cwd=project)),
            "assetbuild --help": (Samples("help"), lambda: run_timed([ASSETBUILD, "--help"], cwd=project)),
            "assetbuild -q (no-op)": (Samples("noop"), lambda: run_timed([ASSETBUILD, "-q"], cwd=project)),
            "assetbuild -q (no-op, full plan)": (Samples("full"), full_plan),
        }
        interleaved(list(cases.values()), args.repeat, warmup=0 if args.quick else 1)

    base = cases["python -c pass"][0].median
    results: dict[str, Any] = {"repeat": args.repeat, "cases": {}}
    rows = []
    for name, (samples, _fn) in cases.items():
        entry = samples.as_dict()
        entry["vs_python"] = round(samples.median / base, 2)
        entry["extra_over_python_s"] = round(samples.median - base, 4)
        results["cases"][name] = entry
        target = "" if name == "python -c pass" else f"< {TARGET_SECONDS}: {verdict(samples.median < TARGET_SECONDS)}"
        if name.endswith("full plan)"):
            target = "(information)"
        rows.append([name, samples.median, entry["vs_python"], entry["extra_over_python_s"],
                     round(samples.peak_rss_mib), target])
    help_ok = cases["assetbuild --help"][0].median < TARGET_SECONDS
    noop_ok = cases["assetbuild -q (no-op)"][0].median < TARGET_SECONDS
    results["targets"] = {"help_under_s": TARGET_SECONDS, "met_help": help_ok, "met_noop": noop_ok}
    text = table(["command", "median s", "x python -c pass", "s over python", "RSS MiB", "target"], rows)
    text += f"\n(medians of {args.repeat} interleaved runs after a warm-up; whole-process wall time)"
    emit(args, "startup", results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
