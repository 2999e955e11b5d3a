"""Loading the manifest alone: peak memory at 100,000 assets and time at 10,000, first load and from the memo.

    .venv/bin/python benchmarks/manifestload.py [--rss-sizes 100000] [--time-size 10000] [--repeat 5]
                                                [--baseline-src DIR] [--json] [--quick]

Each measurement is a fresh subprocess that loads a project of N assets (noop.py's project: 100 per
folder, a style with a ``{prompt}`` template, [defaults]) the way every command does
(``workspace.load_project``) and reports its own time and peak RSS (``ru_maxrss``):

- first load: no manifest memo (``.assetbuild/manifest.json``): every table parsed, checked and resolved,
  as on a first build (issue 16.3: the load alone peaked at 453 MiB of a 571 MiB first build);
- memo load: every table known to the memo (the "full plan" and "one edit" cases of noop.py; issue 16.2).

``--baseline-src DIR`` runs the same loads with ``PYTHONPATH=DIR`` (an older ``assetbuild`` package:
``git archive COMMIT assetbuild | tar -x -C DIR``), interleaved, and reports after / before ratios.
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

from _common import clean_env, emit, parser, table

# Runs in the measured subprocess: one load, then its time and this process's peak RSS as JSON.
PROBE = r'''
import json, resource, sys, time
from pathlib import Path
root, case = Path(sys.argv[1]), sys.argv[2]
from assetbuild.workspace import load_project
from assetbuild.manifest.memo import MEMO_NAME
memo = root / ".assetbuild" / MEMO_NAME
if case == "first":
    memo.unlink(missing_ok=True)
started = time.perf_counter()
project = load_project(str(root / "assets.toml"))
seconds = time.perf_counter() - started
if case == "save":
    project.memo.save(root / ".assetbuild" / "tmp")
print(json.dumps({"seconds": seconds, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "assets": len(project.assets)}))
'''


def make_project(base: Path, count: int) -> Path:
    from noop import write_project

    root = base / f"p{count}"
    if not (root / "assets.toml").exists():
        write_project(root, count)
    (root / ".assetbuild" / "tmp").mkdir(parents=True, exist_ok=True)
    return root


def probe(root: Path, case: str, src: str | None) -> dict[str, float]:
    env = clean_env(**({"PYTHONPATH": src} if src else {}))
    # In the project's folder: ``-c`` puts the current folder first on sys.path, and a checkout's would win.
    out = subprocess.run([sys.executable, "-c", PROBE, str(root), case], env=env, cwd=root, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def measure(root: Path, codes: dict[str, str | None], repeat: int) -> dict[str, dict[str, list[float]]]:
    """For each code: ``repeat`` first loads and memo loads, interleaved across codes. Each code's memo is
    made by its own load (``save``) just before its memo loads."""
    found: dict[str, dict[str, list[float]]] = {name: {"first_s": [], "first_rss": [], "memo_s": [], "memo_rss": []}
                                                for name in codes}
    for _ in range(repeat):
        for name, src in codes.items():
            first = probe(root, "first", src)
            probe(root, "save", src)
            memo = probe(root, "memo", src)
            found[name]["first_s"].append(first["seconds"])
            found[name]["first_rss"].append(first["rss_mib"])
            found[name]["memo_s"].append(memo["seconds"])
            found[name]["memo_rss"].append(memo["rss_mib"])
    return found


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rss-sizes", default="100000", help="comma-separated asset counts for peak RSS")
    p.add_argument("--time-size", type=int, default=10000, help="asset count for the timed loads")
    p.add_argument("--repeat", type=int, default=5, help="timed loads per case and code (peak RSS: 1)")
    p.add_argument("--baseline-src", help="a folder holding an older `assetbuild` package, measured interleaved")
    p.add_argument("--workdir", help="keep the projects here instead of a temporary folder")
    args = p.parse_args(argv)
    rss_sizes = [int(s) for s in args.rss_sizes.split(",") if s]
    if args.quick:
        rss_sizes, args.time_size, args.repeat = [50], 30, 1
    codes: dict[str, str | None] = {"after": None}
    if args.baseline_src:
        codes = {"before": args.baseline_src, "after": None}
    results: dict[str, Any] = {"rss": {}, "time": {}, "load": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-manifestload-") as tmp:
        base = Path(args.workdir) if args.workdir else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        rss_rows = []
        for count in rss_sizes:
            found = measure(make_project(base, count), codes, 1)
            results["rss"][str(count)] = {name: {"first_mib": round(f["first_rss"][0], 1),
                                                 "memo_mib": round(f["memo_rss"][0], 1)} for name, f in found.items()}
            rss_rows += [[count, name, round(f["first_rss"][0]), round(f["memo_rss"][0])] for name, f in found.items()]
        found = measure(make_project(base, args.time_size), codes, args.repeat)
        time_rows = []
        for name, f in found.items():
            entry = {"first_s": round(statistics.median(f["first_s"]), 4),
                     "memo_s": round(statistics.median(f["memo_s"]), 4)}
            results["time"][name] = entry
            time_rows.append([name, entry["first_s"], entry["memo_s"]])
    text = table(["assets", "code", "first load peak RSS MiB", "memo load peak RSS MiB"], rss_rows)
    text += "\n\n" + table([f"code ({args.time_size} assets)", "first load s", "memo load s"], time_rows)
    if "before" in results["time"]:
        before, after = results["time"]["before"], results["time"]["after"]
        results["ratios"] = {case: round(after[case] / before[case], 3) for case in ("first_s", "memo_s")}
        text += (f"\nafter / before: first load {results['ratios']['first_s']}, memo load "
                 f"{results['ratios']['memo_s']} (medians of {args.repeat} interleaved loads)")
    text += f"\nload average at the start: {results['load']:.1f}"
    emit(args, "manifestload", results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
