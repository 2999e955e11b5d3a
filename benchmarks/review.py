"""The review page of 1,000 assets: first run (every thumbnail made), second run (all reused), and after 10
assets changed (with --since: only theirs made), against `assetbuild status` on the same project.

    /tmp/venv/bin/python benchmarks/review.py [--count 1000] [--size 512] [--repeat 3] [--json] [--quick]

The project is built once with the placeholder generator (``--size`` x ``--size`` PNGs, so every image
needs a real thumbnail) and committed to git. The first run writes a fresh site; the second run, on an
unchanged project, must reuse every thumbnail; then 10 prompts change, the project is rebuilt, and
``review --since main`` makes only the 10 new thumbnails (the before images are already on the site).
Baseline: ``assetbuild status`` of the same project (planning and hashing, no images), measured
interleaved with the second run. Target (issue 17): a review of 1,000 assets takes seconds; a second run
only redoes what changed.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ASSETBUILD, Samples, emit, interleaved, median, parser, run_timed, table

GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "commit.gpgsign=false"]
CHANGED = 10


def write_project(root: Path, count: int, size: int, changed: int = 0) -> None:
    lines = ["[server]", 'url = "placeholder"', "concurrency = 4", "",
             "[defaults]", f"width = {size}", f"height = {size}", ""]
    for i in range(count):
        mark = " (redrawn)" if i < changed else ""
        lines += [f'[assets."set{i % 20:02d}/{i:04d}.png"]', f'prompt = "asset number {i}{mark}"',
                  f"seed = {i}", ""]
    (root / "assets.toml").write_text("\n".join(lines), encoding="utf-8")


def cpu_of(fn: Any) -> tuple[Any, float]:
    """Run ``fn`` (which waits for its child) and the CPU seconds (user + system) its children used: on a
    shared, loaded machine CPU time says more about the work than wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def page_load(index: Path) -> dict[str, Any] | None:
    """Open the page in headless Chromium (Debian's, when installed): the time to the load event, how
    many images it loaded (lazy loading: only those near the viewport), and the time a text filter over
    every card takes. None without the browser or selenium."""
    chromium, driver_path = "/usr/bin/chromium", "/usr/bin/chromedriver"
    if not (Path(chromium).exists() and Path(driver_path).exists()):
        return None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-chromium-") as profile:
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={profile}", "--window-size=1280,900"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            loads, filters = [], []
            for _ in range(3):
                driver.get(index.as_uri())
                loads.append(driver.execute_script(
                    "return performance.getEntriesByType('navigation')[0].loadEventEnd"))
                filters.append(driver.execute_script(
                    "var q=document.getElementById('q'),t=performance.now();q.value='0999';"
                    "q.dispatchEvent(new Event('input'));document.body.offsetHeight;return performance.now()-t"))
            images = driver.execute_script("return document.images.length")
            loaded = driver.execute_script(
                "return [].filter.call(document.images, i => i.complete && i.naturalWidth > 0).length")
        finally:
            driver.quit()
    return {"load_ms": round(median(loads)), "filter_ms": round(median(filters), 1), "images": images,
            "loaded_at_first": loaded}


def made(run: Any) -> tuple[int, int]:
    """(thumbnails made, reused) from the review's summary line."""
    found = re.search(r"\((\d+) thumbnails made, (\d+) reused\)", run.stderr.decode())
    if not found:
        raise SystemExit(f"no summary line in:\n{run.stderr.decode()[-1000:]}")
    return int(found.group(1)), int(found.group(2))


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    if args.quick:
        args.count, args.size, args.repeat = 30, 300, 1
    results: dict[str, Any] = {"count": args.count, "size": args.size}
    with tempfile.TemporaryDirectory(prefix="assetbuild-bench-review-") as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        write_project(root, args.count, args.size)
        run_timed([ASSETBUILD, "-q"], cwd=root)
        subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=root, check=True)
        subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
        subprocess.run([*GIT, "commit", "-qm", "assets"], cwd=root, check=True)
        site = root / ".assetbuild" / "review"

        first = Samples("first run (fresh site)")
        first_made = (0, 0)
        cpu: dict[str, list[float]] = {"first": [], "second": [], "since": [], "status": []}
        for _ in range(args.repeat):
            shutil.rmtree(site, ignore_errors=True)
            run, seconds = cpu_of(lambda: run_timed([ASSETBUILD, "review"], cwd=root))
            first.add(run)
            cpu["first"].append(seconds)
            first_made = made(run)
        second = Samples("second run (nothing changed)")
        status = Samples("baseline: assetbuild status")
        second_made = (0, 0)

        def review_again() -> Any:
            nonlocal second_made
            run, seconds = cpu_of(lambda: run_timed([ASSETBUILD, "review"], cwd=root))
            cpu["second"].append(seconds)
            second_made = made(run)
            return run

        def plain_status() -> Any:
            run, seconds = cpu_of(lambda: run_timed([ASSETBUILD, "status"], cwd=root))
            cpu["status"].append(seconds)
            return run

        interleaved([(second, review_again), (status, plain_status)], args.repeat)

        write_project(root, args.count, args.size, changed=CHANGED)
        run_timed([ASSETBUILD, "-q"], cwd=root)
        since = Samples(f"--since main after {CHANGED} assets changed")
        since_made = (0, 0)
        run, seconds = cpu_of(lambda: run_timed([ASSETBUILD, "review", "--since", "main"], cwd=root))
        cpu["since"].append(seconds)
        since.add(run)
        since_made = made(run)
        results["browser"] = page_load(site / "index.html")
        site_mib = sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 2 ** 20
        index_kib = (site / "index.html").stat().st_size / 1024

    rows = []
    cases = (("first", first, first_made), ("second", second, second_made), ("since", since, since_made),
             ("status", status, (0, 0)))
    for name, samples, (m, r) in cases:
        cpu_s = median(cpu[name][-len(samples.seconds):])
        rows.append([samples.name, samples.median, cpu_s, m, r, samples.median / status.median])
        results[samples.name] = {**samples.as_dict(), "cpu_s": round(cpu_s, 3), "thumbnails_made": m, "reused": r}
    results["site_mib"] = round(site_mib, 1)
    results["index_kib"] = round(index_kib, 1)
    results["only_changed_redone"] = second_made[0] == 0 and since_made[0] == CHANGED
    text = table(["case", "median s (whole process)", "CPU s (user+sys)", "thumbnails made", "reused",
                  "x status"], rows)
    text += (f"\n{args.count} assets of {args.size}x{args.size} px; site {site_mib:.1f} MiB, index.html "
             f"{index_kib:.0f} KiB. Second run redoes nothing, --since redoes only the {CHANGED} changed: "
             f"{'yes' if results['only_changed_redone'] else 'NO'}")
    page = results["browser"]
    if page:
        text += (f"\nChromium: index.html of {args.count} cards loads in {page['load_ms']} ms (median of 3, to "
                 f"the load event), {page['loaded_at_first']} of {page['images']} images loaded at first "
                 f"(lazy); a text filter over every card takes {page['filter_ms']} ms")
    else:
        text += "\n(no Chromium: page load not measured)"
    emit(args, "review", results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
