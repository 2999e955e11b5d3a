"""Peak memory of builds of big images: 10 vs 100 images of 4096 x 4096 must need about the same RSS.

    /tmp/venv/bin/python benchmarks/memory.py [--counts 10,100] [--size 4096] [--json] [--quick]

For each count it builds a fresh project of that many distinct 4096 x 4096 assets with the placeholder
generator (``-n 4``, the default ``server.concurrency``) and reads the build's peak resident set from
wait4 (ru_maxrss of that very process). Peak RSS is a high-water mark, not a timing, so one build per
count is enough. Memory must not grow with the number of images: each image's buffers (rendered pixels,
PNG bytes, decoded pixels, re-encoded bytes) must be freed when its asset is done. Target (issue 8):
peak RSS(100) / peak RSS(10) close to 1.

``--noop-sizes`` (issue 16.5): for each N, a project of N small placeholder assets (noop.py's) is built
once, then the peak RSS of its no-op build is read (median of 3 runs): the memo path, and the full plan
(memo deleted). Target: <= 100 MiB at 100,000 assets. A first build of 100,000 assets takes ~10 minutes
on 2 CPUs, so ``--workdir DIR`` keeps the built projects for the next run (reused when already built).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ASSETBUILD, clean_env, emit, parser, run_timed, table, verdict

TARGET_RATIO = 1.15  # "close to 1": allow 15 % for allocator noise
TARGET_NOOP_MIB = 100  # the no-op at 100,000 assets (issue 16.5)


def write_project(root: Path, count: int, size: int) -> None:
    root.mkdir(parents=True)
    lines = ["[server]", 'url = "placeholder"', "concurrency = 4", "",
             "[defaults]", f"width = {size}", f"height = {size}", ""]
    for i in range(count):
        lines += [f'[assets."big/{i:04d}.png"]', f'prompt = "a big image number {i}"', f"seed = {i}", ""]
    (root / "assets.toml").write_text("\n".join(lines), encoding="utf-8")


def noop_rss(base: Path, count: int) -> dict[str, Any]:
    """Peak RSS (MiB, median of 3) of the no-op build of a built ``count``-asset project, memo and full plan."""
    from noop import write_project

    root = base / f"noop-{count}"
    env = clean_env(ASSETBUILD_CACHE_DIR=str(root / "cache"))
    memo = root / ".assetbuild" / "noop.json"
    if not memo.exists():
        write_project(root, count)
        run_timed([ASSETBUILD, "-q"], cwd=root, env=env)
    result: dict[str, Any] = {}
    for case in ("memo", "full plan"):
        rss, seconds = [], []
        for _ in range(3):
            if case == "full plan":
                memo.unlink(missing_ok=True)
            run = run_timed([ASSETBUILD, "-q"], cwd=root, env=env)
            if not memo.exists():
                raise SystemExit(f"the {count}-asset project is not fresh: no memo recorded")
            rss.append(run.max_rss_kib / 1024)
            seconds.append(run.seconds)
        result[case] = {"peak_rss_mib": round(statistics.median(rss), 1),
                        "seconds": round(statistics.median(seconds), 3)}
    return result


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--counts", default="10,100", help="comma-separated image counts; the first is the baseline")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--noop-sizes", default="", help="comma-separated asset counts for the no-op memory (e.g. 100000)")
    p.add_argument("--only-noop", action="store_true", help="skip the big-image builds")
    p.add_argument("--workdir", help="keep the no-op projects here (reused when already built)")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    noop_sizes = [int(c) for c in args.noop_sizes.split(",") if c]
    if args.quick:
        counts, args.size = [2, 6], 512
        noop_sizes = [20] if noop_sizes or args.only_noop else []
    if args.only_noop:
        counts = []
    results: dict[str, Any] = {"size": args.size, "builds": {}, "noop": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-memory-") as tmp:
        for count in counts:
            root = Path(tmp) / f"p{count}"
            write_project(root, count, args.size)
            run = run_timed([ASSETBUILD, "-q"], cwd=root)
            if f"{count} generated" not in run.stdout.decode():
                raise SystemExit(f"expected {count} generated images:\n{run.stdout.decode()[-1000:]}")
            rss = run.max_rss_kib / 1024
            results["builds"][str(count)] = {"peak_rss_mib": round(rss, 1), "seconds": round(run.seconds, 1)}
            rows.append([count, round(rss), run.seconds, run.seconds / count])
    text = ""
    if counts:
        base = results["builds"][str(counts[0])]["peak_rss_mib"]
        top = results["builds"][str(counts[-1])]["peak_rss_mib"]
        ratio = round(top / base, 3)
        results["ratio"] = ratio
        results["target"] = TARGET_RATIO
        results["met"] = ratio <= TARGET_RATIO
        text = table(["images", "peak RSS MiB", "build s (whole process)", "s per image"], rows)
        text += (f"\n{args.size}x{args.size} placeholder images, -n 4. Peak RSS {counts[-1]} / {counts[0]} images = "
                 f"{ratio} (target close to 1, <= {TARGET_RATIO}: {verdict(results['met'])})")
    if noop_sizes:
        with tempfile.TemporaryDirectory(prefix="assetbuild-bench-noopmem-") as tmp:
            base_dir = Path(args.workdir) if args.workdir else Path(tmp)
            base_dir.mkdir(parents=True, exist_ok=True)
            noop_rows = []
            for count in noop_sizes:
                found = noop_rss(base_dir, count)
                results["noop"][str(count)] = found
                noop_rows.append([count, found["memo"]["peak_rss_mib"], found["memo"]["seconds"],
                                  found["full plan"]["peak_rss_mib"], found["full plan"]["seconds"]])
        text += ("\n\n" if text else "") + table(["assets", "no-op RSS MiB (memo)", "s", "RSS MiB (full plan)", "s"],
                                                   noop_rows)
        top_noop = results["noop"][str(max(noop_sizes))]["memo"]["peak_rss_mib"]
        text += f"\nNo-op (memo) peak RSS at {max(noop_sizes)} assets: {top_noop} MiB"
        if max(noop_sizes) >= 100_000:
            text += f" (target <= {TARGET_NOOP_MIB} MiB: {verdict(top_noop <= TARGET_NOOP_MIB)})"
    emit(args, "memory", results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
