"""Cost of the lock itself: Lock.load of a big assets.lock, and the memory a first build's commits hold.

    .venv/bin/python benchmarks/lockload.py [--sizes 10000,100000] [--repeat 7] [--commits 100000]
                                            [--before REV] [--json] [--quick]

Both measures compare this checkout's ``assetbuild/lock.py`` ("after") with the one at ``--before REV``
("before", default: the commit before the lock parsed entries when used), loaded from git into the same
process, so the ratios come from the same run on the same machine.

- **load** (issue 16.2): for each size N, a lock of N entries shaped like a real build's (~650 bytes each)
  is written as assetbuild writes it (with its ``lock.rendered`` note, the everyday case); then, interleaved
  and repeated, in this process with the garbage collector paused as ``workspace_of`` does:
  ``Lock.load`` by each implementation, ``Lock.load`` plus one ``get`` (one asset used: an edit), plus
  ``entries()`` (every entry used), and ``json.loads`` of the file alone (the floor of any loader that
  parses the whole file). Medians; the ratio after / before.
- **commits** (issue 16.3): in a fresh subprocess per implementation, a Lock receives ``--commits`` new
  entries from 4 threads (as a ``-n 4`` first build commits them), then ``flush()``; reported: the rise of
  peak RSS over the RSS before the commits (that process's VmHWM less its VmRSS at the start) and per
  entry. ``os.fsync`` is a no-op in that process: memory, not durability, is measured (the lock's journal
  and rewrites still happen, by size, as in a build).
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, clean_env, emit, parser, run_timed, table

LAZY_SUBJECT = "Lock parses its entries when used"  # the commit that made it so


def _before_default() -> str | None:
    """The commit before the lazy lock: the parent of the commit that made it (found by its subject)."""
    try:
        out = subprocess.run(["git", "log", "--format=%H %s", "--", "assetbuild/lock.py"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in out.splitlines():
        commit, _, subject = line.partition(" ")
        if subject.startswith(LAZY_SUBJECT):
            return f"{commit}^"
    return None


def entry_json(i: int) -> dict[str, Any]:
    """One lock entry shaped like a placeholder build's (noop.py's project)."""
    return {"key": f"{i * 7919 + 1:032x}", "hash": f"{i * 104729 + 7:032x}", "seed": i, "model": "sd_xl_base_1.0",
            "inputs": {"generator": "placeholder", "inputs": {}, "v": 1, "post": {"format": "PNG"},
                       "params": {"cfgscale": 7, "height": 64, "model": "sd_xl_base_1.0", "negativeprompt": "blurry",
                                  "prompt": f"pixel art of asset number {i}, a small item, 16-bit palette",
                                  "seed": i, "steps": 20, "width": 64}}}


def target(i: int) -> str:
    return f"set{i // 100:03d}/asset{i:06d}.png"


def module_at(rev: str, tmp: Path) -> types.ModuleType:
    """``assetbuild/lock.py`` at ``rev``, as the module ``assetbuild._lock_before`` (its relative imports
    resolve in this checkout's package)."""
    source = subprocess.run(["git", "show", f"{rev}:assetbuild/lock.py"], cwd=REPO, capture_output=True,
                            check=True).stdout
    path = tmp / "lock_before.py"
    path.write_bytes(source)
    return load_module(path)


def load_module(path: Path) -> types.ModuleType:
    import assetbuild

    name = "assetbuild._lock_before"
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=None)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = assetbuild.__name__
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def write_lock(root: Path, count: int) -> Path:
    """A lock of ``count`` entries written by this checkout's Lock, with the note of a lock it rendered."""
    from assetbuild.lock import Lock, LockEntry

    root.mkdir(parents=True)
    path = root / "assets.lock"
    lock = Lock(path, {target(i): LockEntry.from_json(entry_json(i)) for i in range(count)})
    lock._dirty = True
    lock.flush()
    return path


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure_load(path: Path, impls: dict[str, types.ModuleType], repeat: int) -> dict[str, dict[str, float]]:
    one = target(0)
    cases: dict[str, Callable[[], Any]] = {"json.loads alone": lambda: json.loads(path.read_bytes())}
    for label, module in impls.items():
        cases[f"{label}: load"] = lambda m=module: m.Lock.load(path)
        cases[f"{label}: load + get 1"] = lambda m=module: m.Lock.load(path).get(one)
        cases[f"{label}: load + entries()"] = lambda m=module: m.Lock.load(path).entries()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    gc.collect()
    gc.freeze()
    gc.disable()  # as workspace_of loads the lock (gcpause.paused)
    try:
        for fn in cases.values():
            fn()  # warm-up: page cache, imports
        for _ in range(repeat):
            for name, fn in cases.items():
                samples[name].append(timed(fn))
                gc.collect()
    finally:
        gc.enable()
        gc.unfreeze()
    return {name: {"median_ms": round(statistics.median(values) * 1000, 2), "min_ms": round(min(values) * 1000, 2)}
            for name, values in samples.items()}


# Runs in a fresh process: argv = [module file or "", lock path, commits, threads]; prints JSON.
COMMITS = r'''
import json, os, sys, threading
from pathlib import Path
sys.path.insert(0, {bench!r})
from lockload import entry_json, load_module, target
module = load_module(Path(sys.argv[1])) if sys.argv[1] else __import__("assetbuild.lock", fromlist=["Lock"])
os.fsync = lambda fd: None  # memory, not durability, is measured here
count, threads = int(sys.argv[3]), int(sys.argv[4])
def status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0
lock = module.Lock.load(Path(sys.argv[2]))
start = status_kib("VmRSS")
def work(k):
    for i in range(k, count, threads):
        lock.commit(target(i), module.LockEntry.from_json(entry_json(i)))
workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
lock.flush()
assert len(lock.targets()) == count
# VmHWM, not ru_maxrss: Linux carries the parent's high-water mark into ru_maxrss across fork and exec.
print(json.dumps({{"start_kib": start, "peak_kib": status_kib("VmHWM"), "end_kib": status_kib("VmRSS")}}))
'''


def measure_commits(tmp: Path, label: str, module_file: Path | None, count: int) -> dict[str, Any]:
    root = tmp / f"commits-{label}"
    root.mkdir()
    script = COMMITS.format(bench=str(Path(__file__).resolve().parent))
    env = clean_env(PYTHONPATH=str(REPO))
    run = run_timed([sys.executable, "-c", script, str(module_file or ""), str(root / "assets.lock"), str(count), "4"],
                    cwd=root, env=env)
    data = json.loads(run.stdout.decode().strip().splitlines()[-1])
    rise = (data["peak_kib"] - data["start_kib"]) / 1024
    return {"rise_mib": round(rise, 1), "bytes_per_entry": round(rise * 1024 * 1024 / count),
            "peak_rss_mib": round(data["peak_kib"] / 1024, 1), "seconds": round(run.seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000", help="comma-separated entry counts of the lock loaded")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--commits", type=int, default=100_000, help="entries committed for the memory measure")
    p.add_argument("--before", help="the commit whose lock.py is the baseline (default: the one before the lazy lock)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.quick:
        sizes, args.repeat, args.commits = [300], 1, 2000
    results: dict[str, Any] = {"load": {}, "commits": {}, "loadavg": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-lock-") as tmp_name:
        tmp = Path(tmp_name)
        import assetbuild.lock as after

        impls: dict[str, types.ModuleType] = {}
        before_rev = args.before or _before_default()
        before_file: Path | None = None
        if before_rev:
            before = module_at(before_rev, tmp)
            before_file = Path(before.__file__ or "")
            impls["before"] = before
            results["before"] = subprocess.run(["git", "rev-parse", "--short", before_rev], cwd=REPO,
                                               capture_output=True, text=True).stdout.strip()
        impls["after"] = after
        memory_rows = []  # first, while this process is small (its children start as copies of it)
        for label, module_file in (("before", before_file), ("after", None)):
            if label == "before" and before_file is None:
                continue
            found = measure_commits(tmp, label, module_file, args.commits)
            results["commits"][label] = found
            memory_rows.append([label, args.commits, found["rise_mib"], found["bytes_per_entry"],
                                found["peak_rss_mib"], found["seconds"]])
        rows = []
        for size in sizes:
            path = write_lock(tmp / f"lock-{size}", size)
            found = measure_load(path, impls, args.repeat)
            results["load"][str(size)] = found
            for case in ("load", "load + get 1", "load + entries()"):
                now = found[f"after: {case}"]["median_ms"]
                then = found[f"before: {case}"]["median_ms"] if "before" in impls else None
                rows.append([size, case, then if then is not None else "-", now,
                             round(now / then, 3) if then else "-"])
            rows.append([size, "json.loads alone", "", found["json.loads alone"]["median_ms"], ""])
        text = table(["entries", "case", "before ms", "after ms", "after / before"], rows)
        text += "\n\n" + table(["lock.py", "commits", "peak RSS rise MiB", "bytes / entry", "peak RSS MiB",
                                "s (fsync off)"], memory_rows)
        results["loadavg_end"] = os.getloadavg()[0]
        text += (f"\nbefore = {results.get('before') or 'not available (no git history)'}; "
                 f"load average {results['loadavg']:.2f} at the start, {results['loadavg_end']:.2f} at the end; "
                 f"medians of {args.repeat}")
    emit(args, "lockload", results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
