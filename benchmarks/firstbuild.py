"""First build at scale: per-asset cost, lock I/O, peak memory and fsyncs of a fresh placeholder build.

    .venv/bin/python benchmarks/firstbuild.py [--sizes 1000,10000,100000] [--repeat 1] [-n 4]
                                              [--baseline-src DIR] [--json] [--quick]

For each size N it writes a fresh project of N placeholder assets (64 x 64, the project of noop.py, with
its own cache folder) and builds it once with ``assetbuild -q -n 4`` in a subprocess that counts, by
wrapping ``os.fsync``, every fsync by what it flushes (a cache entry, a target, the lock, the lock's
journal, the intents file, a folder) and the bytes the lock file and its journal were given. It reports:

- wall time and time per asset (issue 16: constant from 1,000 to 100,000 assets);
- bytes written to the lock and its journal, and their ratio to the final lock's size (linear I/O keeps
  this ratio constant; a rewrite per commit makes it grow with N);
- peak RSS (wait4's ru_maxrss; target at 100,000 assets: <= 400 MiB) and RSS per asset;
- fsyncs per asset, by kind;
- the load average before each build (the machine is shared: weigh the times with it).

``--baseline-src DIR`` builds every size a second time with ``PYTHONPATH=DIR`` (an export of an older
commit: ``git archive COMMIT assetbuild | tar -x -C DIR``), interleaved, for before/after ratios from
the same run. Peak RSS and fsyncs are not timings: one build per size is enough for them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import clean_env, emit, median, parser, run_timed, table, verdict
from noop import write_project

TARGET_RSS_MIB = 400  # at 100,000 assets

# Runs the CLI in this process after wrapping os.fsync; writes the counts as JSON to argv[1] at exit.
WRAPPER = r'''
import atexit, json, os, stat, sys
out = sys.argv.pop(1)
counts, lock_bytes, seen = {}, {"rewrite": 0, "journal": 0}, {}
real_fsync = os.fsync
def kind(fd):
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
        mode = os.fstat(fd)
    except OSError:
        return "other", 0
    name = os.path.basename(path)
    cache = os.environ["ASSETBUILD_CACHE_DIR"]
    if stat.S_ISDIR(mode.st_mode):
        if path.startswith(cache + os.sep):
            return "cache folder", 0
        if path == os.getcwd():
            return "lock folder", 0
        if path == os.path.join(os.getcwd(), ".assetbuild"):
            return "state folder", 0
        return "target folder", 0
    if path.startswith(cache + os.sep):
        return "cache entry", 0
    if name.startswith(".assets.lock."):
        lock_bytes["rewrite"] += mode.st_size
        return "lock rewrite", 0
    if name == "lock.journal":
        grown = mode.st_size - seen.get(path, 0) if mode.st_size >= seen.get(path, 0) else mode.st_size
        seen[path] = mode.st_size
        lock_bytes["journal"] += grown
        return "lock journal", 0
    if name == "intents.jsonl":
        return "intents", 0
    for state in ("intents.jsonl", "noop.json", "hashes.json", "doit.json", "project.lock"):
        if name.startswith("." + state + "."):
            return state + " rewrite", 0
    if name.endswith(".tmp"):
        return "target", 0
    return "other:" + name, 0
def fsync(fd):
    k = kind(fd)[0]
    counts[k] = counts.get(k, 0) + 1
    return real_fsync(fd)
os.fsync = fsync
def dump():
    with open(out, "w") as handle:
        json.dump({"fsyncs": counts, "lock_bytes": lock_bytes}, handle)
atexit.register(dump)
from assetbuild.cli import main
code = main(sys.argv[1:])
dump()
sys.exit(code)
'''


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return -1.0


def build(root: Path, jobs: int, src: str | None) -> dict[str, Any]:
    """Build the project at ``root`` once (from scratch) and return what was measured."""
    counts_file = root / "counts.json"
    env = clean_env(ASSETBUILD_CACHE_DIR=str(root / "cache"))
    if src:
        env["PYTHONPATH"] = src
    load = loadavg()
    run = run_timed([sys.executable, "-c", WRAPPER, str(counts_file), "-q", "-n", str(jobs)], cwd=root, env=env)
    counts = json.loads(counts_file.read_text())
    lock_size = (root / "assets.lock").stat().st_size
    return {"seconds": run.seconds, "rss_mib": run.max_rss_kib / 1024, "load": load, "lock_size": lock_size,
            "lock_bytes": counts["lock_bytes"]["rewrite"] + counts["lock_bytes"]["journal"],
            "fsyncs": counts["fsyncs"], "stdout": run.stdout.decode(errors="replace")}


def fresh_project(base: Path, name: str, count: int) -> Path:
    root = base / name
    if root.exists():
        import shutil

        shutil.rmtree(root)
    write_project(root, count)
    return root


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000", help="comma-separated asset counts")
    p.add_argument("--repeat", type=int, default=1, help="builds per size and code (medians of times)")
    p.add_argument("-n", "--jobs", type=int, default=4, help="assetbuild -n (default 4, the default concurrency)")
    p.add_argument("--baseline-src", help="a folder holding an older `assetbuild` package, built interleaved")
    p.add_argument("--workdir", help="put the projects here instead of a temporary folder")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes, args.repeat = [20, 60], 1
    codes = [("current", None)] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
    results: dict[str, Any] = {"sizes": {}, "jobs": args.jobs}
    rows = []
    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-firstbuild-") as tmp:
        base = Path(args.workdir) if args.workdir else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        for count in sizes:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in codes}
            for _ in range(args.repeat):
                for name, src in codes:
                    root = fresh_project(base, f"{name}-{count}", count)
                    run = build(root, args.jobs, src)
                    if f"{count} generated" not in run["stdout"]:
                        raise SystemExit(f"expected {count} generated images:\n{run['stdout'][-1000:]}")
                    runs[name].append(run)
            entry: dict[str, Any] = {}
            for name, _src in codes:
                done = runs[name]
                seconds = median([r["seconds"] for r in done])
                last = done[-1]
                fsyncs = last["fsyncs"]
                entry[name] = {
                    "median_s": round(seconds, 3), "ms_per_asset": round(seconds / count * 1000, 3),
                    "peak_rss_mib": round(max(r["rss_mib"] for r in done), 1),
                    "lock_bytes": last["lock_bytes"], "lock_size": last["lock_size"],
                    "lock_bytes_over_size": round(last["lock_bytes"] / last["lock_size"], 2),
                    "fsyncs_per_asset": round(sum(fsyncs.values()) / count, 2),
                    "fsyncs_by_kind_per_asset": {k: round(v / count, 3) for k, v in sorted(fsyncs.items())},
                    "load": [r["load"] for r in done],
                }
                e = entry[name]
                rows.append([count, name, e["median_s"], e["ms_per_asset"], e["peak_rss_mib"],
                             round(e["peak_rss_mib"] * 1024 / count, 1), round(e["lock_bytes"] / 2**20, 1),
                             e["lock_bytes_over_size"], e["fsyncs_per_asset"],
                             ", ".join(f"{k} {v}" for k, v in e["fsyncs_by_kind_per_asset"].items()),
                             "/".join(f"{x:.1f}" for x in e["load"])])
            if args.baseline_src:
                ratio = entry["current"]["median_s"] / entry["baseline"]["median_s"]
                entry["ratio_current_vs_baseline"] = round(ratio, 3)
            results["sizes"][str(count)] = entry
    text = [table(["assets", "code", "build s", "ms / asset", "peak RSS MiB", "KiB / asset", "lock MiB written",
                   "written / lock size", "fsyncs / asset", "fsyncs by kind / asset", "load avg"], rows)]
    largest = str(max(sizes))
    rss = results["sizes"][largest]["current"]["peak_rss_mib"]
    met = rss <= TARGET_RSS_MIB if int(largest) >= 100_000 else None
    results["target_rss"] = {"assets": int(largest), "peak_rss_mib": rss, "target_mib": TARGET_RSS_MIB, "met": met}
    text.append("")
    text.append(f"Peak RSS at {largest} assets: {rss} MiB"
                + (f" (target <= {TARGET_RSS_MIB} MiB at 100,000: {verdict(bool(met))})" if met is not None else ""))
    if args.baseline_src:
        text.append("current / baseline build time: " + ", ".join(
            f"{n}: {results['sizes'][str(n)]['ratio_current_vs_baseline']}" for n in sizes))
    emit(args, "firstbuild", results, "\n".join(text))
    return 0


if __name__ == "__main__":
    os.environ.pop("ASSETBUILD_SERVER", None)
    raise SystemExit(main())
