"""Client overhead: images per second through a whole assetbuild build vs a bare httpx loop, ~1 MiB PNGs.

    /tmp/venv/bin/python benchmarks/client_overhead.py [-N 40] [--size 592] [--repeat 5] [--json] [--quick]

FakeSwarm runs in this process with zero latency and ``noise=True`` (incompressible PNGs; 592 x 592 is
about 1 MiB), so the server costs the same for both sides and what differs is the client.

- Baseline, in this process: a bare httpx loop that opens a session, then for each of the N images
  POSTs GenerateText2Image (``donotsave=false``) and GETs the image from its View path. Nothing else.
- assetbuild, as a subprocess: a real build of N distinct assets (session, WebSocket generation with
  progress, image transfer, decode + re-encode without metadata, hashing, cache entry, atomic write,
  lock commit). Two variants: ``save_images = false`` (the default: the image comes back inside the
  WebSocket as a data URL) and ``save_images = true`` (downloaded from its View path, like the
  baseline); each with ``-n 4`` (the default ``server.concurrency``: what a user runs, and the case the
  target is judged on) and ``-n 1`` (one image at a time, like the baseline; for information).

Rates are N / time. assetbuild's time is the build time it reports itself (``run_finished.seconds``:
from the start of the build to its end, start-up excluded, as the baseline's loop excludes Python's);
whole-process rates are shown too. Target (issue 8): assetbuild's rate >= 0.7 x the bare loop's.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import ASSETBUILD, emit, median, parser, run_timed, table, verdict

from assetbuild.testing import FakeSwarm

TARGET_RATIO = 0.85  # issue 16: like for like (same concurrency on both sides)


def bare_loop(url: str, count: int, size: int, salt: str, concurrency: int = 1) -> float:
    """Seconds for ``count`` POST GenerateText2Image + GET View round trips, ``concurrency`` at a time
    (each worker thread with its own session and connection, like assetbuild's slots)."""
    numbers = iter(range(count))
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            session = client.post("/API/GetNewSession", json={}).json()["session_id"]
            while True:
                with lock:
                    i = next(numbers, None)
                if i is None:
                    return
                body = {"session_id": session, "images": 1, "prompt": f"benchmark image {i} {salt}", "seed": i,
                        "model": "sd_xl_base_1.0", "width": size, "height": size, "steps": 20, "donotsave": False}
                answer = client.post("/API/GenerateText2Image", json=body).json()
                data = client.get("/" + answer["images"][0]).content
                if not data.startswith(b"\x89PNG"):
                    raise SystemExit("the bare loop did not get a PNG")

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    return time.perf_counter() - started


def write_project(root: Path, count: int, size: int, save_images: bool, salt: str, jobs: int) -> None:
    root.mkdir(parents=True)
    lines = ["[server]", "websocket = true", f"save_images = {str(save_images).lower()}", f"concurrency = {jobs}",
             "",
             "[defaults]", 'model = "sd_xl_base_1.0"', f"width = {size}", f"height = {size}", "steps = 20", ""]
    for i in range(count):
        lines += [f'[assets."img/{i:04d}.png"]', f'prompt = "benchmark image {i} {salt}"', f"seed = {i}", ""]
    (root / "assets.toml").write_text("\n".join(lines), encoding="utf-8")


def assetbuild_build(url: str, root: Path, count: int, jobs: int) -> tuple[float, float, int]:
    """(build seconds as reported, whole-process seconds, output bytes of one image)."""
    run = run_timed([ASSETBUILD, "--server", url, "-n", str(jobs), "--json"], cwd=root, stdout_to_pipe=True)
    events = [json.loads(line) for line in run.stdout.decode().splitlines() if line.strip()]
    finished = next(e for e in events if e["event"] == "run_finished")
    if finished["generated"] != count:
        raise SystemExit(f"expected {count} generated images: {finished}")
    return float(finished["seconds"]), run.seconds, (root / "img" / "0000.png").stat().st_size


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("-N", "--images", type=int, default=40)
    p.add_argument("--size", type=int, default=592, help="image side in pixels (592 gives ~1 MiB noise PNGs)")
    p.add_argument("--repeat", type=int, default=5, help="timed rounds (after one warm-up)")
    p.add_argument("--jobs", default="1,4,8",
                   help="concurrency values (assetbuild -n and server.concurrency, and the bare loop's)")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.size, args.repeat = 4, 128, 1
    n = args.images
    jobs = [int(j) for j in args.jobs.split(",")]
    variants = [(f"{kind}-n{j}", kind == "view", j) for j in jobs for kind in ("ws", "view")]
    bare: dict[int, list[float]] = {j: [] for j in jobs}
    ab: dict[str, list[float]] = {v: [] for v, _, _ in variants}
    ab_wall: dict[str, list[float]] = {v: [] for v, _, _ in variants}
    png_bytes = {"server": 0, "written": 0}
    with FakeSwarm(backends=2, latency=0.0, steps=0, noise=True, close_delay=0.1, model_load_delay=0) as fake, \
            tempfile.TemporaryDirectory(prefix="assetbuild-bench-client-") as tmp:
        warmup = 0 if args.quick else 1
        for rep in range(args.repeat + warmup):  # interleaved rounds, after a warm-up
            bare_s = {j: bare_loop(fake.url, n, args.size, f"r{rep}-bare{j}", j) for j in jobs}
            if not png_bytes["server"]:
                files = fake.stored_files()
                png_bytes["server"] = max(len(d) for d in files.values()) if files else 0
            results = {}
            for variant, save, j in variants:
                root = Path(tmp) / f"{variant}-{rep}"
                write_project(root, n, args.size, save, f"r{rep}", j)
                results[variant] = assetbuild_build(fake.url, root, n, j)
            if rep < warmup:
                continue
            for j in jobs:
                bare[j].append(bare_s[j])
            for variant, (build_s, wall_s, written) in results.items():
                ab[variant].append(build_s)
                ab_wall[variant].append(wall_s)
                png_bytes["written"] = written

    bare_rates = {j: n / median(bare[j]) for j in jobs}
    out: dict[str, Any] = {"images": n, "size": args.size, "jobs": jobs,
                           "png_bytes_from_server": png_bytes["server"], "png_bytes_written": png_bytes["written"],
                           "bare_loop": {str(j): {"median_s": round(median(bare[j]), 3),
                                                  "images_per_s": round(bare_rates[j], 2)} for j in jobs}}
    rows = [[f"bare httpx loop (POST + GET View), {j} at once", median(bare[j]), bare_rates[j], 1.0, "-", "baseline"]
            for j in jobs]
    labels = {"ws": "assetbuild -n {j}, save_images=false (data URL in the WebSocket)",
              "view": "assetbuild -n {j}, save_images=true (GET View)"}
    for variant, _save, j in variants:
        judged = True
        bare_rate = bare_rates[j]
        rate = n / median(ab[variant])
        wall_rate = n / median(ab_wall[variant])
        ratio = rate / bare_rate
        out[variant] = {"build_median_s": round(median(ab[variant]), 3), "images_per_s": round(rate, 2),
                        "ratio": round(ratio, 3), "wall_median_s": round(median(ab_wall[variant]), 3),
                        "wall_images_per_s": round(wall_rate, 2), "wall_ratio": round(wall_rate / bare_rate, 3),
                        **({"met": ratio >= TARGET_RATIO} if judged else {})}
        rows.append([labels[variant.split("-")[0]].format(j=j), median(ab[variant]), rate, ratio,
                     round(wall_rate / bare_rate, 3),
                     f">= {TARGET_RATIO}: {verdict(ratio >= TARGET_RATIO)}" if judged else "(information)"])
    out["target"] = TARGET_RATIO
    text = table(["path", "median s", "images/s", "x bare loop", "x bare (whole process)", "target"], rows)
    text += (f"\nN={n} distinct images of {args.size}x{args.size} (server PNG {png_bytes['server'] / 2**20:.2f} MiB, "
             f"written {png_bytes['written'] / 2**20:.2f} MiB), zero latency, each compared with the bare loop "
             f"at the same concurrency; medians of {args.repeat} interleaved rounds after a warm-up")
    emit(args, "client_overhead", out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
