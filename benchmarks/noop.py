"""No-op build of a project where every asset is fresh, against plain doit with the same number of tasks.

    /tmp/venv/bin/python benchmarks/noop.py [--sizes 100,1000,10000] [--repeat 7] [--json] [--quick]

For each size N it makes, in a temporary folder:

- an assetbuild project of N assets (placeholder generator, 64 x 64 images), built once;
- a plain doit project, ``dodo_plain.py``: N tasks, each with ``uptodate=[config_changed(params)]``,
  ``targets=[file]`` and a Python action that writes a small file, ``DOIT_CONFIG`` with the sqlite3
  backend and the dep file in the temporary folder; run once so everything is up to date.

Then it times whole processes (what a user feels, interpreter start-up included), interleaved and
repeated, and reports medians:

- ``doit -f dodo_plain.py``: the baseline;
- ``assetbuild -q``: the normal path (the no-op memo answers);
- ``assetbuild -q`` with ``.assetbuild/noop.json`` deleted before each run: the full plan (keys, lock,
  file stats; the manifest's tables come from its memo, ``.assetbuild/manifest.json``);
- the same with the manifest memo deleted too: the cold plan (every table parsed and checked);
- one prompt edited (issue 16): a new prompt for the first asset, then the build (one generation);
- one target touched (issue 16's "memo invalid, nothing stale"): a new mtime for one image, then the
  build (the memo's per-table records prove the other tables fresh; the touched one is hashed again);
- the whole state folder (``.assetbuild``) deleted: what a fresh clone, or CI without cached state, runs
  (the lock read in full, every image hashed, every memo written again).

Peak RSS of every run (wait4's ru_maxrss) is reported too (the memory target: < 150 MiB at 10,000).
Target (issue 8): at 10,000 assets, the no-op build takes at most 0.4 x plain doit's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ASSETBUILD, DOIT, Samples, clean_env, emit, interleaved, parser, run_timed, table, verdict

TARGET_RATIO = 0.4
TARGET_RSS_MIB = 150
TARGET_EDIT_RATIO = 0.5  # issue 16: one prompt edited, against plain doit's no-op
TARGET_PLAN_RATIO = 0.35  # issue 16: the plan alone when the no-op memo cannot answer (nothing stale)


def write_project(root: Path, count: int, *, size: int = 64, per_folder: int = 100) -> Path:
    """An assetbuild project of ``count`` placeholder assets in folders of ``per_folder``."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [
        "[server]", 'url = "placeholder"', "concurrency = 4", "",
        "[defaults]", 'model = "sd_xl_base_1.0"', f"width = {size}", f"height = {size}", "steps = 20",
        "cfgscale = 7", "seed = 1", "",
        "[styles.pixel]", 'prompt = "pixel art of {prompt}, 16-bit palette"', 'negativeprompt = "blurry"', "",
    ]
    for i in range(count):
        lines += [f'[assets."set{i // per_folder:03d}/asset{i:05d}.png"]',
                  f'prompt = "asset number {i}, a small item"', 'style = "pixel"', f"seed = {i}", ""]
    manifest = root / "assets.toml"
    manifest.write_text("\n".join(lines), encoding="utf-8")
    return manifest


DODO = '''\
"""Plain doit: {count} tasks with config_changed, targets and a Python action (the no-op baseline)."""
from pathlib import Path

from doit.tools import config_changed

DOIT_CONFIG = {{"backend": "sqlite3", "dep_file": {dep_file!r}, "default_tasks": ["assets"]}}
ROOT = Path(__file__).parent


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def task_assets():
    for i in range({count}):
        target = ROOT / "out" / f"set{{i // 100:03d}}" / f"asset{{i:05d}}.txt"
        params = {{"prompt": f"pixel art of asset number {{i}}, a small item, 16-bit palette",
                   "negativeprompt": "blurry", "model": "sd_xl_base_1.0", "width": 64, "height": 64,
                   "steps": 20, "cfgscale": 7, "seed": i}}
        yield {{
            "name": f"set{{i // 100:03d}}/asset{{i:05d}}",
            "actions": [(write, [target, repr(params)])],
            "targets": [str(target)],
            "uptodate": [config_changed(params)],
        }}
'''


def write_dodo(root: Path, count: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    dodo = root / "dodo_plain.py"
    dodo.write_text(DODO.format(count=count, dep_file=str(root / ".doit.sqlite3")), encoding="utf-8")
    return dodo


def prepare(base: Path, count: int) -> tuple[Path, Path, dict[str, float]]:
    """Build both projects once; returns their folders and how long the first builds took."""
    project, plain = base / f"assetbuild-{count}", base / f"doit-{count}"
    write_project(project, count)
    write_dodo(plain, count)
    started = time.perf_counter()
    run_timed([ASSETBUILD, "-q", "-n", "2"], cwd=project)
    built = time.perf_counter() - started
    started = time.perf_counter()
    run_timed([DOIT, "-f", "dodo_plain.py"], cwd=plain)
    doit_built = time.perf_counter() - started
    # Make sure both really are no-ops now (the assetbuild run above recorded the memo).
    again = run_timed([DOIT, "-f", "dodo_plain.py"], cwd=plain).stdout.decode()
    if any(line.startswith(".") for line in again.splitlines()):  # doit prints ". task" for tasks it runs
        raise SystemExit(f"plain doit re-ran tasks of the {count}-task dodo: it is not a no-op baseline")
    check = run_timed([ASSETBUILD, "run", "--dry-run", "--json"], cwd=project, env=clean_env())
    states = {json.loads(line)["state"] for line in check.stdout.splitlines() if line.strip()}
    if states != {"fresh"}:
        raise SystemExit(f"the {count}-asset project is not fresh after its build: {sorted(states)}")
    return project, plain, {"assetbuild_first_build_s": round(built, 1), "doit_first_build_s": round(doit_built, 1)}


def measure(project: Path, plain: Path, repeat: int, warmup: int = 1) -> dict[str, Samples]:
    memo = project / ".assetbuild" / "noop.json"
    doit_s, memo_s, full_s = Samples("doit"), Samples("assetbuild (memo)"), Samples("assetbuild (full plan)")
    cold_s = Samples("assetbuild (cold plan)")
    edit_s = Samples("assetbuild (one prompt edited)")
    touch_s = Samples("assetbuild (one target touched)")
    clone_s = Samples("assetbuild (no state folder)")
    touched = project / "set000" / "asset00001.png"
    tables = project / ".assetbuild" / "manifest.json"  # the manifest memo (assetbuild.manifest.memo)
    manifest = project / "assets.toml"
    original = manifest.read_text(encoding="utf-8")
    edits = iter(range(10**6))

    def doit_run() -> Any:
        return run_timed([DOIT, "-f", "dodo_plain.py"], cwd=plain)

    def memo_run() -> Any:
        if not memo.exists():
            raise SystemExit("the no-op memo is missing before a memo run")
        return run_timed([ASSETBUILD, "-q"], cwd=project)

    def full_run() -> Any:
        memo.unlink(missing_ok=True)
        run = run_timed([ASSETBUILD, "-q"], cwd=project)
        if not memo.exists():  # the full plan found everything fresh and recorded the memo again
            raise SystemExit("the full-plan run did not record the memo: the project is not fresh")
        return run

    def cold_run() -> Any:
        memo.unlink(missing_ok=True)
        tables.unlink(missing_ok=True)
        run = run_timed([ASSETBUILD, "-q"], cwd=project)
        if not memo.exists():
            raise SystemExit("the cold-plan run did not record the memo: the project is not fresh")
        return run

    def edit_run() -> Any:
        # Issue 16: the everyday edit. A new prompt for the first asset (never seen before, so it is
        # generated, not restored), then the build; the manifest is put back (and rebuilt) afterwards.
        manifest.write_text(original.replace('prompt = "asset number 0,', f'prompt = "edit {next(edits)},', 1),
                            encoding="utf-8")
        run = run_timed([ASSETBUILD, "-q"], cwd=project)
        manifest.write_text(original, encoding="utf-8")
        run_timed([ASSETBUILD, "-q"], cwd=project)  # back to all fresh (a cache restore), not timed
        return run

    def touch_run() -> Any:
        st = touched.stat()
        os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # same bytes, a new stamp
        run = run_timed([ASSETBUILD, "-q"], cwd=project)
        if not memo.exists():
            raise SystemExit("the touched-file run did not record the memo: the project is not fresh")
        return run

    def clone_run() -> Any:
        shutil.rmtree(project / ".assetbuild")  # its cache too: a clone has none
        run = run_timed([ASSETBUILD, "-q"], cwd=project)
        if not memo.exists():
            raise SystemExit("the run without a state folder did not record the memo: the project is not fresh")
        return run

    interleaved([(doit_s, doit_run), (memo_s, memo_run), (full_s, full_run), (cold_s, cold_run),
                 (edit_s, edit_run), (touch_s, touch_run), (clone_s, clone_run)], repeat, warmup=warmup)
    return {"doit": doit_s, "memo": memo_s, "full": full_s, "cold": cold_s, "edit": edit_s, "touch": touch_s,
            "clone": clone_s}


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares y = a + b x: (a, b)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,1000,10000", help="comma-separated asset counts")
    p.add_argument("--repeat", type=int, default=7, help="timed runs per case (after one warm-up)")
    p.add_argument("--workdir", help="keep the projects here (reused when already built) instead of a temp dir")
    args: argparse.Namespace = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes, args.repeat = [10, 30], 1

    results: dict[str, Any] = {"sizes": {}}
    rows = []
    cpu_rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-noop-") as tmp:
        base = Path(args.workdir) if args.workdir else Path(tmp)
        for count in sizes:
            project, plain = base / f"assetbuild-{count}", base / f"doit-{count}"
            if args.workdir and (project / ".assetbuild" / "noop.json").exists() and (plain / ".doit.sqlite3").exists():
                first: dict[str, float] = {}
            else:
                project, plain, first = prepare(base, count)
            samples = measure(project, plain, args.repeat, warmup=0 if args.quick else 1)
            doit, memo, full, edit = samples["doit"], samples["memo"], samples["full"], samples["edit"]
            cold, touch, clone = samples["cold"], samples["touch"], samples["clone"]
            entry: dict[str, Any] = {name: s.as_dict() for name, s in samples.items()}
            entry.update(first)
            entry["ratio_memo_vs_doit"] = round(memo.median / doit.median, 3)
            entry["ratio_full_vs_doit"] = round(full.median / doit.median, 3)
            entry["ratio_cold_vs_doit"] = round(cold.median / doit.median, 3)
            entry["ratio_edit_vs_doit"] = round(edit.median / doit.median, 3)
            entry["ratio_touch_vs_doit"] = round(touch.median / doit.median, 3)
            entry["ratio_clone_vs_doit"] = round(clone.median / doit.median, 3)
            cpu_doit = doit.median_cpu or 1e-9
            entry["cpu_ratios_vs_doit"] = {name: round(s.median_cpu / cpu_doit, 3) for name, s in samples.items()}
            cpu_rows.append([count] + [round(s.median_cpu, 3) for s in samples.values()]
                            + [entry["cpu_ratios_vs_doit"][name] for name in samples if name != "doit"])
            results["sizes"][str(count)] = entry
            rows.append([count, doit.median, memo.median, full.median, cold.median, edit.median, touch.median,
                         clone.median, entry["ratio_memo_vs_doit"], entry["ratio_full_vs_doit"],
                         entry["ratio_cold_vs_doit"], entry["ratio_edit_vs_doit"], entry["ratio_touch_vs_doit"],
                         entry["ratio_clone_vs_doit"], round(memo.peak_rss_mib),
                         round(full.peak_rss_mib),
                         round(edit.peak_rss_mib), round(doit.peak_rss_mib)])

    text = [table(["assets", "doit s", "memo s", "full plan s", "cold plan s", "one edit s", "one touch s",
                   "no state s", "memo / doit", "full / doit", "cold / doit", "edit / doit", "touch / doit",
                   "no state / doit",
                   "RSS MiB memo", "RSS MiB full", "RSS MiB edit",
                   "RSS MiB doit"], rows)]
    text.append("")
    text.append("CPU time (user + system of each process, medians): steadier than wall time on a shared machine")
    text.append(table(["assets", "doit cpu s", "memo cpu s", "full cpu s", "cold cpu s", "edit cpu s", "touch cpu s",
                       "no state cpu s", "memo / doit", "full / doit", "cold / doit", "edit / doit", "touch / doit",
                       "no state / doit"], cpu_rows))
    if len(sizes) >= 2:
        xs = [float(s) for s in sizes]
        fits = {}
        for name in ("doit", "memo", "full", "cold", "edit", "touch", "clone"):
            ys = [results["sizes"][str(s)][name]["median_s"] for s in sizes]
            a, b = linear_fit(xs, ys)
            cpu_a, cpu_b = linear_fit(xs, [results["sizes"][str(s)][name].get("median_cpu_s", 0.0) for s in sizes])
            fits[name] = {"fixed_s": round(a, 4), "per_1000_assets_s": round(b * 1000, 4),
                          "cpu_fixed_s": round(cpu_a, 4), "cpu_per_1000_assets_s": round(cpu_b * 1000, 4)}
        results["growth"] = fits
        text.append("")
        text.append("Growth, least-squares fit time = fixed + per_asset x N over the sizes above:")
        text.append(table(["path", "fixed s", "s per 1,000 assets", "cpu fixed s", "cpu s per 1,000 assets"],
                          [[name, f["fixed_s"], f["per_1000_assets_s"], f["cpu_fixed_s"], f["cpu_per_1000_assets_s"]]
                           for name, f in fits.items()]))
    largest = str(max(sizes))
    big = results["sizes"][largest]
    results["targets"] = {
        "noop_ratio": {"assets": int(largest), "memo": big["ratio_memo_vs_doit"],
                       "full": big["ratio_full_vs_doit"], "target": TARGET_RATIO,
                       "met_memo": big["ratio_memo_vs_doit"] <= TARGET_RATIO,
                       "met_full": big["ratio_full_vs_doit"] <= TARGET_RATIO},
        "noop_rss_mib": {"assets": int(largest), "memo": big["memo"]["peak_rss_mib"],
                         "full": big["full"]["peak_rss_mib"], "target": TARGET_RSS_MIB,
                         "met": max(big["memo"]["peak_rss_mib"], big["full"]["peak_rss_mib"]) < TARGET_RSS_MIB},
        "edit_ratio": {"assets": int(largest), "edit": big["ratio_edit_vs_doit"], "target": TARGET_EDIT_RATIO,
                       "met": big["ratio_edit_vs_doit"] <= TARGET_EDIT_RATIO},
        "plan_ratio": {"assets": int(largest), "full": big["ratio_full_vs_doit"], "cold": big["ratio_cold_vs_doit"],
                       "touch": big["ratio_touch_vs_doit"], "no_state": big["ratio_clone_vs_doit"],
                       "target": TARGET_PLAN_RATIO, "met_full": big["ratio_full_vs_doit"] <= TARGET_PLAN_RATIO,
                       "met_cold": big["ratio_cold_vs_doit"] <= TARGET_PLAN_RATIO,
                       "met_touch": big["ratio_touch_vs_doit"] <= TARGET_PLAN_RATIO},
    }
    t = results["targets"]
    rss_memo, rss_full = big["memo"]["peak_rss_mib"], big["full"]["peak_rss_mib"]
    text.append("")
    text.append(f"Target at {largest} assets: no-op <= {TARGET_RATIO} x doit -> memo {big['ratio_memo_vs_doit']} "
                f"({verdict(t['noop_ratio']['met_memo'])}), full plan {big['ratio_full_vs_doit']} "
                f"({verdict(t['noop_ratio']['met_full'])}); peak RSS < {TARGET_RSS_MIB} MiB -> "
                f"{rss_memo} / {rss_full} MiB ({verdict(t['noop_rss_mib']['met'])})")
    text.append(f"Issue 16 at {largest} assets: one edit <= {TARGET_EDIT_RATIO} x doit -> {big['ratio_edit_vs_doit']} "
                f"({verdict(t['edit_ratio']['met'])}); plan alone <= {TARGET_PLAN_RATIO} x doit -> full plan "
                f"{big['ratio_full_vs_doit']} ({verdict(t['plan_ratio']['met_full'])}), cold plan "
                f"{big['ratio_cold_vs_doit']} ({verdict(t['plan_ratio']['met_cold'])}), memo invalidated by one "
                f"touched file {big['ratio_touch_vs_doit']} ({verdict(t['plan_ratio']['met_touch'])})")
    text.append(f"No state folder (a fresh clone, CI without cached state; no target): "
                f"{big['ratio_clone_vs_doit']} x doit")
    text.append(f"(medians of {args.repeat} interleaved runs after a warm-up; whole-process wall time)")
    emit(args, "noop", results, "\n".join(text))
    return 0


if __name__ == "__main__":
    os.environ.pop("ASSETBUILD_SERVER", None)
    raise SystemExit(main())
