"""Client overhead: images per second through a whole assetbuild build vs a bare httpx loop, ~1 MiB PNGs.

    python benchmarks/client_overhead.py [-N 40] [--size 592] [--repeat 5] [--jobs 1,4,8]
                                         [--before CMD] [--json] [--quick]

FakeSwarm runs in this process with zero latency and ``noise=True`` (incompressible PNGs; 592 x 592 is
about 1 MiB), so the server costs the same for both sides and what differs is the client.

- Baselines, in this process, ``j`` workers each with its own session and connection, nothing else (no
  progress display, no file written). Each build is compared with the one taking **the same server
  path** (like for like: on the double, as on SwarmUI, the paths cost the server different work):

  - the bare View loop: httpx, for each image POST GenerateText2Image (``donotsave=false``) and GET the
    image from its View path. The original baseline; every row is also shown against it (labelled).
  - the bare WebSocket loop: for each image, connect to GenerateText2ImageWS (``donotsave=true``), send
    the request, read the frames until ``socket_intention: close``, base64-decode the image's data URL,
    close (the shape of ``_bare_ws_client.py``). The baseline of the ``save_images = false`` builds (the
    double base64-encodes each image into a 1.33 MiB JSON frame, which the View loop's binary GET
    never pays).
  - the bare WebSocket + View loop: the same WebSocket generation with ``donotsave=false``, then a GET of
    the View path it names. The baseline of the ``save_images = true`` builds and of
    ``SwarmClient.generate`` (both generate over the WebSocket, then download).
- assetbuild, as a subprocess: a real build of N distinct assets with ``-n j`` and ``concurrency = j``
  (session, WebSocket generation with progress, image transfer, chunk-level metadata strip, hashing,
  cache entry, atomic durable writes, intent and lock commits). Two variants: ``save_images = false``
  (the default: the image comes back inside the WebSocket as a data URL) and ``save_images = true``
  (downloaded from its View path).

For information, the same images also go through ``SwarmClient.generate`` alone (the client library in
this process, like the bare loop: no build, no file), which splits assetbuild's overhead between the
client and the build (post-processing, cache, durable writes, lock).

Two rates per case, both against its bare loop at the same concurrency, from the same rounds:

- whole build: N / time, assetbuild's time being the build time it reports itself
  (``run_finished.seconds``: planning, the server check, imports made on first use and the first
  session included; interpreter start-up excluded, as the baseline's loop excludes Python's).
- steady state: the cost of one more image. Each case also runs with N/4 images, and the rate is
  (N - N/4) / (median time at N - median time at N/4), for the bare loop and for assetbuild alike: the
  per-run costs (assetbuild's server check and imports, the loop's client and sessions) cancel out,
  what is left is the per-image path. With N = 40 a bare run lasts about a second, so the whole-build
  ratio mixes the two.

``--before CMD`` adds the same builds made by another assetbuild command (e.g. a checkout of an older
commit), interleaved in the same rounds, for before/after figures from one run. Target (issue 16.4):
>= 0.85 x the bare loop at concurrency 1, 4 and 8.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
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


def bare_ws_loop(url: str, count: int, size: int, salt: str, concurrency: int = 1, *, view: bool = False) -> float:
    """Seconds for ``count`` images over GenerateText2ImageWS, ``concurrency`` at a time, each worker with its
    own session: connect, send, read frames until ``socket_intention: close``, close; the image comes
    inside the WebSocket as a data URL (``donotsave=true``: base64-decoded) or, with ``view``, as a View
    path (``donotsave=false``: then GET with httpx, on the worker's connection). Nothing else."""
    from _bare_ws_client import closed, image_reference

    ws_url = "ws" + url.removeprefix("http") + "/API/GenerateText2ImageWS"

    async def run() -> float:
        numbers = iter(range(count))

        async def worker() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                session = (await http.post("/API/GetNewSession", json={})).json()["session_id"]
                while (i := next(numbers, None)) is not None:
                    body = {"session_id": session, "images": 1, "prompt": f"benchmark image {i} {salt}", "seed": i,
                            "model": "sd_xl_base_1.0", "width": size, "height": size, "steps": 20,
                            "donotsave": not view}
                    reference = await image_reference(ws_url, body)
                    image = ((await http.get("/" + reference)).content if view
                             else base64.b64decode(reference.partition(",")[2]))
                    if not image.startswith(b"\x89PNG"):
                        raise SystemExit("the bare WebSocket loop did not get a PNG")

        started = time.perf_counter()
        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - started
        finally:
            await closed()  # (also after a failure: no close task is left for the next event loop)

    return asyncio.run(run())


def client_loop(url: str, count: int, size: int, salt: str, concurrency: int = 1) -> float:
    """Seconds for ``count`` images through assetbuild's SwarmUI client library alone (``SwarmClient.generate``:
    sessions, WebSocket generation with progress, GET View), ``concurrency`` at once, in this process like
    the bare loop: no build, no file. Splits the overhead between the client library and the build."""
    from assetbuild.swarm.client import SwarmClient

    async def run() -> float:
        client = SwarmClient(url, concurrency=concurrency, save_images=True)
        try:
            started = time.perf_counter()
            await asyncio.gather(*(client.generate(
                {"prompt": f"benchmark image {i} {salt}", "seed": i, "model": "sd_xl_base_1.0", "width": size,
                 "height": size, "steps": 20}, {}, lambda _progress: None) for i in range(count)))
            return time.perf_counter() - started
        finally:
            await client.aclose()

    return asyncio.run(run())


def write_project(root: Path, count: int, size: int, save_images: bool, salt: str, jobs: int) -> None:
    root.mkdir(parents=True)
    lines = ["[server]", "websocket = true", f"save_images = {str(save_images).lower()}", f"concurrency = {jobs}",
             "",
             "[defaults]", 'model = "sd_xl_base_1.0"', f"width = {size}", f"height = {size}", "steps = 20", ""]
    for i in range(count):
        lines += [f'[assets."img/{i:04d}.png"]', f'prompt = "benchmark image {i} {salt}"', f"seed = {i}", ""]
    (root / "assets.toml").write_text("\n".join(lines), encoding="utf-8")


def assetbuild_build(command: list[str], url: str, root: Path, count: int, jobs: int) -> tuple[float, float, int]:
    """(build seconds as reported, whole-process seconds, output bytes of one image)."""
    run = run_timed([*command, "--server", url, "-n", str(jobs), "--json"], cwd=root, stdout_to_pipe=True)
    events = [json.loads(line) for line in run.stdout.decode().splitlines() if line.strip()]
    finished = next(e for e in events if e["event"] == "run_finished")
    if finished["generated"] != count:
        raise SystemExit(f"expected {count} generated images: {finished}")
    return float(finished["seconds"]), run.seconds, (root / "img" / "0000.png").stat().st_size


def fsync_ms(folder: Path, count: int = 9) -> float:
    """Median milliseconds to write and fsync a new 1 MiB file in ``folder``: how long the disk makes a
    build's durable writes wait right now. It moves during a run (on this project's machine from ~1 ms to
    ~3 ms as the builds' writes pile up), and the bare loops, which write nothing, never pay it."""
    data = os.urandom(1 << 20)
    times = []
    for i in range(count):
        path = folder / f"fsync-probe-{i}"
        started = time.perf_counter()
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        times.append(time.perf_counter() - started)
        path.unlink()
    return median(times) * 1000


def steady_rate(count: int, small: int, seconds: list[float], small_seconds: list[float]) -> float | None:
    """Images per second of the images beyond the first ``small``: the per-run costs cancel out. None
    when the noise exceeds the difference (only in --quick runs, with a handful of tiny images)."""
    extra = median(seconds) - median(small_seconds)
    return (count - small) / extra if extra > 0 else None


def quotient(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def rounded(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("-N", "--images", type=int, default=40)
    p.add_argument("--size", type=int, default=592, help="image side in pixels (592 gives ~1 MiB noise PNGs)")
    p.add_argument("--repeat", type=int, default=5, help="timed rounds (after one warm-up)")
    p.add_argument("--jobs", default="1,4,8",
                   help="concurrency values (assetbuild -n and server.concurrency, and the bare loop's)")
    p.add_argument("--before", metavar="CMD", help="another assetbuild command to measure in the same rounds "
                                                   "(e.g. a wrapper running an older checkout)")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.size, args.repeat = 4, 128, 1
    n = args.images
    small = max(1, n // 4)
    jobs = [int(j) for j in args.jobs.split(",")]
    builds = {"": [ASSETBUILD]} | ({"before:": args.before.split()} if args.before else {})
    variants = [(f"{who}{kind}-n{j}", kind == "view", j, command)
                for j in jobs for kind in ("ws", "view") for who, command in builds.items()]
    counts = (n, small)
    bare: dict[tuple[int, int], list[float]] = {(j, c): [] for j in jobs for c in counts}
    bare_ws: dict[tuple[int, int], list[float]] = {(j, c): [] for j in jobs for c in counts}
    bare_wsv: dict[tuple[int, int], list[float]] = {(j, c): [] for j in jobs for c in counts}
    library: dict[tuple[int, int], list[float]] = {(j, c): [] for j in jobs for c in counts}
    ab: dict[tuple[str, int], list[float]] = {(v, c): [] for v, *_ in variants for c in counts}
    ab_wall: dict[str, list[float]] = {v: [] for v, *_ in variants}
    png_bytes = {"server": 0, "written": 0}
    loads = []
    fsyncs: list[float] = []  # the disk's state: a build's durable writes wait for it, the bare loops write nothing
    with FakeSwarm(backends=2, latency=0.0, steps=0, noise=True, close_delay=0.1, model_load_delay=0) as fake, \
            tempfile.TemporaryDirectory(prefix="assetbuild-bench-client-") as tmp:
        warmup = 0 if args.quick else 1
        for rep in range(args.repeat + warmup):  # interleaved rounds, after a warm-up
            loads.append(os.getloadavg()[0])
            fsyncs.append(fsync_ms(Path(tmp)))
            bare_s: dict[tuple[int, int], float] = {}
            bare_ws_s: dict[tuple[int, int], float] = {}
            bare_wsv_s: dict[tuple[int, int], float] = {}
            library_s: dict[tuple[int, int], float] = {}
            results = {}
            for j in jobs:  # each baseline right before the builds compared with it: load drifts on a shared machine
                for c in counts:
                    bare_s[j, c] = bare_loop(fake.url, c, args.size, f"r{rep}-bare{j}-{c}", j)
                    bare_ws_s[j, c] = bare_ws_loop(fake.url, c, args.size, f"r{rep}-barews{j}-{c}", j)
                    bare_wsv_s[j, c] = bare_ws_loop(fake.url, c, args.size, f"r{rep}-barewsv{j}-{c}", j, view=True)
                    library_s[j, c] = client_loop(fake.url, c, args.size, f"r{rep}-client{j}-{c}", j)
                if not png_bytes["server"]:
                    files = fake.stored_files()
                    png_bytes["server"] = max(len(d) for d in files.values()) if files else 0
                for variant, save, vj, command in variants:
                    if vj != j:
                        continue
                    for c in counts:
                        root = Path(tmp) / f"{variant.replace(':', '-')}-{c}-{rep}"
                        write_project(root, c, args.size, save, f"r{rep}-{c}", j)
                        results[variant, c] = assetbuild_build(command, fake.url, root, c, j)
            if rep < warmup:
                continue
            for key, seconds in bare_s.items():
                bare[key].append(seconds)
                bare_ws[key].append(bare_ws_s[key])
                bare_wsv[key].append(bare_wsv_s[key])
                library[key].append(library_s[key])
            for (variant, c), (build_s, wall_s, written) in results.items():
                ab[variant, c].append(build_s)
                if c == n:
                    ab_wall[variant].append(wall_s)
                    png_bytes["written"] = written

    loops = {"view": bare, "ws": bare_ws, "wsview": bare_wsv}  # the baselines, by the server path they take
    rates = {name: {j: n / median(times[j, n]) for j in jobs} for name, times in loops.items()}
    steadies = {name: {j: steady_rate(n, small, times[j, n], times[j, small]) for j in jobs}
                for name, times in loops.items()}
    bare_rates, bare_steady = rates["view"], steadies["view"]
    loop_keys = {"view": "bare_loop", "ws": "bare_ws_loop", "wsview": "bare_ws_view_loop"}
    loop_labels = {"view": "bare View loop (httpx POST + GET View)",
                   "ws": "bare WebSocket loop (data URL in the WebSocket)",
                   "wsview": "bare WebSocket + View loop (WebSocket, then GET View)"}
    short = {"view": "View loop", "ws": "WebSocket loop", "wsview": "WebSocket + View loop"}
    out: dict[str, Any] = {"images": n, "steady_from": small, "size": args.size, "jobs": jobs,
                           "load_average": [round(x, 2) for x in loads],
                           "fsync_ms": [round(x, 2) for x in fsyncs],
                           "png_bytes_from_server": png_bytes["server"], "png_bytes_written": png_bytes["written"]}
    for name, times in loops.items():
        out[loop_keys[name]] = {str(j): {"median_s": round(median(times[j, n]), 3),
                                         "images_per_s": round(rates[name][j], 2),
                                         "steady_images_per_s": rounded(steadies[name][j], 2)} for j in jobs}
    rows = []
    for j in jobs:
        for name, times in loops.items():
            rows.append([f"{loop_labels[name]}, {j} at once", "-", median(times[j, n]), rates[name][j], 1.0,
                         _cell(steadies[name][j]), 1.0, "-", _cell(quotient(steadies[name][j], bare_steady[j])),
                         "baseline"])
    for j in jobs:
        rate = n / median(library[j, n])
        steady = steady_rate(n, small, library[j, n], library[j, small])
        like = "wsview"  # the client library generates over the WebSocket and downloads from the View path
        out[f"client-n{j}"] = {"baseline": loop_keys[like], "median_s": round(median(library[j, n]), 3),
                               "images_per_s": round(rate, 2), "ratio": round(rate / rates[like][j], 3),
                               "steady_ratio": rounded(quotient(steady, steadies[like][j]), 3),
                               "steady_ratio_vs_view_loop": rounded(quotient(steady, bare_steady[j]), 3)}
        rows.append([f"SwarmClient.generate alone (WebSocket + GET View), {j} at once", short[like],
                     median(library[j, n]), rate, rate / rates[like][j], _cell(steady),
                     _cell(quotient(steady, steadies[like][j])), "-", _cell(quotient(steady, bare_steady[j])),
                     "(information)"])
    labels = {"ws": "assetbuild -n {j}, save_images=false (data URL in the WebSocket)",
              "view": "assetbuild -n {j}, save_images=true (WebSocket, then GET View)"}
    for variant, _save, j, _command in variants:
        who, _, kind = variant.rpartition(":")
        like = "ws" if kind.startswith("ws") else "wsview"  # the bare loop taking the same server path
        base_rate, base_steady = rates[like][j], steadies[like][j]
        rate = n / median(ab[variant, n])
        ratio = rate / base_rate
        steady = steady_rate(n, small, ab[variant, n], ab[variant, small])
        steady_ratio = quotient(steady, base_steady)
        steady_met = steady_ratio is not None and steady_ratio >= TARGET_RATIO
        wall_rate = n / median(ab_wall[variant])
        out[variant] = {"baseline": loop_keys[like],
                        "build_median_s": round(median(ab[variant, n]), 3), "images_per_s": round(rate, 2),
                        "ratio": round(ratio, 3), "steady_images_per_s": rounded(steady, 2),
                        "steady_ratio": rounded(steady_ratio, 3), "wall_median_s": round(median(ab_wall[variant]), 3),
                        "wall_ratio": round(wall_rate / base_rate, 3),
                        "ratio_vs_view_loop": round(rate / bare_rates[j], 3),
                        "steady_ratio_vs_view_loop": rounded(quotient(steady, bare_steady[j]), 3),
                        "met": ratio >= TARGET_RATIO, "steady_met": steady_met}
        label = labels[kind.split("-")[0]].format(j=j) + (f" [{who}]" if who else "")
        rows.append([label, short[like], median(ab[variant, n]), rate, ratio,
                     _cell(steady), _cell(steady_ratio), round(wall_rate / base_rate, 3),
                     _cell(quotient(steady, bare_steady[j])),
                     f"{verdict(ratio >= TARGET_RATIO)} / {verdict(steady_met)}"])
    out["target"] = TARGET_RATIO
    text = table(["path", "compared with", "median s", "images/s", "x bare", "steady images/s", "x bare (steady)",
                  "x bare (whole process)", "x POST View loop (steady)", f">= {TARGET_RATIO} whole / steady"], rows)
    text += (f"\nN={n} distinct images of {args.size}x{args.size} (server PNG {png_bytes['server'] / 2**20:.2f} MiB, "
             f"written {png_bytes['written'] / 2**20:.2f} MiB), zero latency, each compared with the bare loop "
             f"taking the same server path at the same concurrency (\"compared with\"; the next to last column: with "
             f"the bare View loop (POST + GET View) whatever the path); steady state: the images beyond the "
             f"first {small} (runs of {n} and {small}); "
             f"medians of {args.repeat} interleaved rounds after a warm-up; load average "
             f"{min(loads):.2f}-{max(loads):.2f} and a 1 MiB write + fsync {min(fsyncs):.2f}-{max(fsyncs):.2f} ms "
             f"at the rounds' starts")
    emit(args, "client_overhead", out, text)
    return 0


def _cell(value: float | None) -> float | str:
    return value if value is not None else "-"


if __name__ == "__main__":
    raise SystemExit(main())
