"""Peak memory of builds of big images: 10 vs 100 images of 4096 x 4096 must need about the same RSS.

    /tmp/venv/bin/python benchmarks/memory.py [--counts 10,100] [--size 4096] [--json] [--quick]

For each count it builds a fresh project of that many distinct 4096 x 4096 assets with the placeholder
generator (``-n 4``, the default ``server.concurrency``) and reads the build's peak resident set from
wait4 (ru_maxrss of that very process). Peak RSS is a high-water mark, not a timing, so one build per
count is enough. Memory must not grow with the number of images: each image's buffers (rendered pixels,
PNG bytes, decoded pixels, re-encoded bytes) must be freed when its asset is done. Target (issue 8):
peak RSS(100) / peak RSS(10) close to 1. The peak of the 10,000-asset no-op build is in noop.py.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ASSETBUILD, emit, parser, run_timed, table, verdict

TARGET_RATIO = 1.15  # "close to 1": allow 15 % for allocator noise


def write_project(root: Path, count: int, size: int) -> None:
    root.mkdir(parents=True)
    lines = ["[server]", 'url = "placeholder"', "concurrency = 4", "",
             "[defaults]", f"width = {size}", f"height = {size}", ""]
    for i in range(count):
        lines += [f'[assets."big/{i:04d}.png"]', f'prompt = "a big image number {i}"', f"seed = {i}", ""]
    (root / "assets.toml").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--counts", default="10,100", help="comma-separated image counts; the first is the baseline")
    p.add_argument("--size", type=int, default=4096)
    args = p.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    if args.quick:
        counts, args.size = [2, 6], 512
    results: dict[str, Any] = {"size": args.size, "builds": {}}
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
    base = results["builds"][str(counts[0])]["peak_rss_mib"]
    top = results["builds"][str(counts[-1])]["peak_rss_mib"]
    ratio = round(top / base, 3)
    results["ratio"] = ratio
    results["target"] = TARGET_RATIO
    results["met"] = ratio <= TARGET_RATIO
    text = table(["images", "peak RSS MiB", "build s (whole process)", "s per image"], rows)
    text += (f"\n{args.size}x{args.size} placeholder images, -n 4. Peak RSS {counts[-1]} / {counts[0]} images = "
             f"{ratio} (target close to 1, <= {TARGET_RATIO}: {verdict(results['met'])})")
    emit(args, "memory", results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
