"""Throughput against the SwarmUI test double: N images with -n 2B on B backends x 2 slots, latency L.

    /tmp/venv/bin/python benchmarks/throughput.py [-N 64] [--backends 4] [--latency 0.5] [--repeat 3]
                                                  [--json] [--quick]

FakeSwarm runs in this process (a thread); ``assetbuild`` runs as a subprocess against it
(``--server http://127.0.0.1:PORT``) on a fresh project of N distinct assets (so every run generates
all N), through the WebSocket path with progress on: ``server.websocket = true`` and a display that
receives every event (``--json`` read through a pipe; also the plain display, for information).

Two server modes:

- ``slot_parallel``: both slots of a backend generate at once, so the server's capacity is 2B images
  per L. Ideal time ceil(N / 2B) x L. Target (issue 8): whole-process wall time <= 1.1 x ideal.
- realistic (the double's default, like ComfyUI): a backend runs one image at a time, its 2nd slot's
  job waits. Ideal ceil(N / B) x L. Reported for information.

The manifest sets ``server.concurrency`` to 2B as well (the SwarmUI client opens that many sessions
and ``-n`` does not raise it); one case keeps the default of 4 to show what ``-n 8`` alone gives.
Model loads are switched off in the double (``model_load_delay=0``): the ideal has none. Reported per
mode: median whole-process wall time (interpreter start-up, manifest, plan and the final lock write
included), the build time assetbuild itself reports (``run_finished.seconds``), and both over ideal.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ASSETBUILD, Samples, clean_env, emit, median, parser, run_timed, table, verdict

from assetbuild.testing import FakeSwarm

TARGET_RATIO = 1.1
DEFAULT_TARGET = 1.15  # issue 16: default settings reach >= 1 / 1.15 of the ideal throughput


def write_project(root: Path, count: int, *, size: int = 256, concurrency: int | None = 8) -> None:
    root.mkdir(parents=True)
    lines = ["[server]", "websocket = true", *([f"concurrency = {concurrency}"] if concurrency else []), "",
             "[defaults]", 'model = "sd_xl_base_1.0"', f"width = {size}", f"height = {size}", "steps = 20", "",
             ]
    for i in range(count):
        lines += [f'[assets."img/{i:04d}.png"]', f'prompt = "benchmark image {i}"', f"seed = {i}", ""]
    (root / "assets.toml").write_text("\n".join(lines), encoding="utf-8")


def one_build(fake: FakeSwarm, base: Path, name: str, count: int, jobs: int | None, display: str,
              concurrency: int | None, source: str | None = None) -> dict[str, Any]:
    """One build in a fresh project; ``source``: run the assetbuild package found in that folder instead
    (another checkout's source tree, for before/after in the same minutes)."""
    root = base / name
    write_project(root, count, concurrency=concurrency)
    fake.reset_records()
    argv = [ASSETBUILD, "--server", fake.url, *(["-n", str(jobs)] if jobs else []),
            *(["--json"] if display == "json" else [])]
    env = clean_env(PYTHONPATH=source) if source else None
    run = run_timed(argv, cwd=root, stdout_to_pipe=True, env=env)
    out = run.stdout.decode()
    build_seconds = span = math.nan
    progress = 0
    if display == "json":
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        finished = [e for e in events if e["event"] == "run_finished"]
        if not finished or finished[0]["generated"] != count:
            raise SystemExit(f"expected {count} generated images: {finished}")
        build_seconds = finished[0]["seconds"]
        # From the first generation submitted to the last image written: like the bare client's clock
        # (no start-up, planning, server check or final lock write).
        first = min(e["time"] for e in events if e["event"] == "progress")
        span = max(e["time"] for e in events if e["event"] == "asset_finished") - first
        progress = sum(1 for e in events if e["event"] == "progress" and e["phase"] == "generating"
                       and e.get("fraction"))
    elif f"{count} generated" not in out:
        raise SystemExit(f"expected '{count} generated' in the output:\n{out[-2000:]}")
    log = fake.generation_log
    if len(log) != count or any(r.transport != "ws" for r in log):
        raise SystemExit(f"expected {count} WebSocket generations, got {len(log)} "
                         f"({sorted({r.transport for r in log})})")
    return {"wall": run.seconds, "build": build_seconds, "peak_live": fake.peak_live_gens, "progress": progress,
            "peak_in_flight": fake.peak_in_flight, "span": span}


def bare_client(fake: FakeSwarm, count: int, concurrency: int, prefix: str) -> float:
    """Seconds the bare asyncio WebSocket client (its own process) takes for ``count`` images."""
    run = run_timed([sys.executable, str(Path(__file__).with_name("_bare_ws_client.py")), fake.url, str(count),
                     str(concurrency), "--prefix", prefix])
    answer = json.loads(run.stdout)
    if answer["images"] != count:
        raise SystemExit(f"the bare client made {answer['images']} of {count} images")
    return float(answer["seconds"])


def default_settings(args: Any, base: Path) -> tuple[dict[str, Any], list[list[Any]]]:
    """Issue 16: no `concurrency`, no `-n`; B backends x 2 slots (slot_parallel), 4 images per slot.

    Interleaved with each build, the bare asyncio client (``_bare_ws_client.py``) makes as many images
    against the same double with as many WebSockets as the server has slots, and with as many as that
    build had in flight at its peak: the double's own ceiling on this machine (it shares the cores)."""
    results: dict[str, Any] = {}
    rows = []
    for b in args.backend_counts:
        slots = 2 * b
        n = args.per_slot * slots
        ideal = math.ceil(n / slots) * args.latency
        with FakeSwarm(backends=b, latency=args.latency, steps=args.steps, close_delay=0.1, model_load_delay=0,
                       slot_parallel=True) as fake:
            walls, builds, in_flight, bare, bare_same, same = [], [], [], [], [], []
            before_builds, before_in_flight, spans, before_spans = [], [], [], []
            for rep in range(args.repeat + (0 if args.quick else 1)):
                if args.before_src:
                    old = one_build(fake, base, f"before-{b}-{rep}", n, None, "json", None, args.before_src)
                    if rep or args.quick:
                        before_builds.append(old["build"])
                        before_in_flight.append(old["peak_in_flight"])
                        before_spans.append(old["span"])
                r = one_build(fake, base, f"default-{b}-{rep}", n, None, "json", None)
                fake.reset_records()
                bare_s = bare_client(fake, n, slots, f"bare {b} {rep}")
                bare_same_s = bare_client(fake, n, r["peak_in_flight"], f"bare-same {b} {rep}")
                if rep == 0 and not args.quick:
                    continue  # warm-up
                walls.append(r["wall"])
                builds.append(r["build"])
                spans.append(r["span"])
                in_flight.append(r["peak_in_flight"])
                bare.append(bare_s)
                bare_same.append(bare_same_s)
                same.append(r["peak_in_flight"])
        build_ratio = round(median(builds) / ideal, 3)
        entry = {"backends": b, "images": n, "ideal_s": ideal, "wall_median_s": round(median(walls), 3),
                 "build_median_s": round(median(builds), 3), "wall_over_ideal": round(median(walls) / ideal, 3),
                 "build_over_ideal": build_ratio, "peak_in_flight": max(in_flight), "server_slots": slots,
                 "bare_median_s": round(median(bare), 3), "bare_over_ideal": round(median(bare) / ideal, 3),
                 "build_over_bare": round(median(builds) / median(bare), 3),
                 "bare_same_in_flight": max(same), "bare_same_median_s": round(median(bare_same), 3),
                 "build_over_bare_same": round(median(builds) / median(bare_same), 3),
                 "span_median_s": round(median(spans), 3), "span_over_bare": round(median(spans) / median(bare), 3),
                 "met": build_ratio <= DEFAULT_TARGET and max(in_flight) <= 2 * slots}
        if before_builds:
            entry["before"] = {"build_median_s": round(median(before_builds), 3),
                               "build_over_ideal": round(median(before_builds) / ideal, 3),
                               "build_over_bare": round(median(before_builds) / median(bare), 3),
                               "peak_in_flight": max(before_in_flight),
                               "span_median_s": round(median(before_spans), 3),
                               "span_over_bare": round(median(before_spans) / median(bare), 3)}
        results[str(b)] = entry
        rows.append([f"{b} x 2", n, ideal, entry["build_median_s"], build_ratio, entry["wall_over_ideal"],
                     f"{max(in_flight)} / {2 * slots}", entry["bare_over_ideal"], entry["build_over_bare"],
                     f"{entry['build_over_bare_same']} ({max(same)})", entry["span_over_bare"], verdict(entry["met"]),
                     *([f"{entry['before']['build_over_ideal']} / {entry['before']['build_over_bare']} "
                        f"({entry['before']['peak_in_flight']})"] if before_builds else [])])
    return results, rows


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("-N", "--images", type=int, default=64)
    p.add_argument("--backends", type=int, default=4)
    p.add_argument("--latency", type=float, default=0.5, help="seconds per image")
    p.add_argument("--steps", type=int, default=10, help="gen_progress messages per image")
    p.add_argument("--repeat", type=int, default=3, help="timed builds per case (after one warm-up)")
    p.add_argument("--backend-counts", type=lambda t: [int(x) for x in t.split(",")], default=[1, 2, 4, 8, 16],
                   help="default-settings cases: backend counts (default 1,2,4,8,16)")
    p.add_argument("--per-slot", type=int, default=4, help="default-settings cases: images per server slot")
    p.add_argument("--only-default", action="store_true", help="only the default-settings cases")
    p.add_argument("--before-src", default=None, metavar="DIR",
                   help="default-settings cases: also build with the assetbuild package in DIR (e.g. an older "
                        "checkout's source tree), interleaved, for a before/after from the same minutes")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.backends, args.latency, args.repeat, args.steps = 8, 2, 0.1, 1, 2
        args.backend_counts, args.per_slot = [2], 2
    n, b, lat = args.images, args.backends, args.latency
    jobs = 2 * b

    ideal_parallel, ideal_realistic = math.ceil(n / (2 * b)) * lat, math.ceil(n / b) * lat
    cases = [  # (label, slot_parallel, display, server.concurrency in the manifest, ideal seconds, is the target)
        ("slot_parallel, --json", True, "json", jobs, ideal_parallel, True),
        ("slot_parallel, plain", True, "plain", jobs, ideal_parallel, False),
        ("slot_parallel, --json, manifest concurrency 4", True, "json", 4, ideal_parallel, False),
        ("realistic (1 image per backend), --json", False, "json", jobs, ideal_realistic, False),
    ]
    results: dict[str, Any] = {"images": n, "backends": b, "latency_s": lat, "jobs": jobs, "cases": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-throughput-") as tmp:
        base = Path(tmp)
        results["default_settings"], default_rows = default_settings(args, base)
        counter = 0
        for label, slot_parallel, display, concurrency, ideal, is_target in ([] if args.only_default else cases):
            with FakeSwarm(backends=b, latency=lat, steps=args.steps, close_delay=0.1, model_load_delay=0,
                           slot_parallel=slot_parallel) as fake:
                wall, build = Samples(label), []
                peaks, progress = [], []
                warmup = 0 if args.quick else 1  # the first build warms the page cache and the double
                for rep in range(args.repeat + warmup):
                    counter += 1
                    r = one_build(fake, base, f"p{counter}", n, jobs, display, concurrency)
                    if rep < warmup:
                        continue
                    wall.seconds.append(r["wall"])
                    build.append(r["build"])
                    peaks.append(r["peak_live"])
                    progress.append(r["progress"])
            entry = {"ideal_s": ideal, "wall": wall.as_dict(), "wall_over_ideal": round(wall.median / ideal, 3),
                     "peak_live_gens": max(peaks), "slot_parallel": slot_parallel, "display": display,
                     "manifest_concurrency": concurrency}
            if display == "json":
                entry["build_median_s"] = round(median(build), 3)
                entry["build_over_ideal"] = round(median(build) / ideal, 3)
                entry["progress_events_median"] = median(progress)
            if is_target:
                entry["target"] = TARGET_RATIO
                entry["met"] = entry["wall_over_ideal"] <= TARGET_RATIO
            results["cases"][label] = entry
            rows.append([label, ideal, wall.median, entry["wall_over_ideal"],
                         entry.get("build_median_s", "-"), entry.get("build_over_ideal", "-"), max(peaks),
                         f"<= {TARGET_RATIO}: {verdict(entry['met'])}" if is_target else "(information)"])
    text = table(["backends", "images", "ideal s", "build s", "build / ideal", "wall / ideal",
                  "peak in flight / 2x slots", "bare / ideal", "build / bare",
                  "build / bare (same in flight)", "first gen to last image / bare",
                  f"build <= {DEFAULT_TARGET} x ideal",
                  *(["before: build / ideal / bare (peak)"] if args.before_src else [])], default_rows)
    text += (f"\nDefault settings (no server.concurrency, no -n), slot_parallel, L={lat} s, {args.per_slot} images "
             "per slot; medians after a warm-up. bare: a bare asyncio WebSocket client (benchmarks/_bare_ws_client.py, "
             "its own process, sessions opened before its clock starts) with as many WebSockets as the server "
             "has slots, or as assetbuild had in flight at its peak (in brackets): the double's own ceiling.\n\n")
    text += table(["case", "ideal s", "wall s", "wall / ideal", "build s", "build / ideal", "peak live",
                  "target"], rows)
    text += (f"\nN={n} images, B={b} backends x 2 slots, L={lat} s, -n {jobs}; medians of {args.repeat} builds "
             "after a warm-up; wall = whole process, build = assetbuild's own run_finished.seconds")
    emit(args, "throughput", results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
