"""The cost of asking the server (issue 15): a build where every asset is fresh, with and without model hashes.

    /tmp/venv/bin/python benchmarks/servercheck.py [-N 500] [--repeat 5] [--json] [--quick]

FakeSwarm runs in this process. N assets are built once; the project is then copied, so each case has its
own folder, and each case runs ``assetbuild -q`` as a subprocess (nothing is stale in any of them):

- ``memo``: a lock without model hashes (as before issue 15): the no-op memo answers, no server contact;
- ``plan, no server``: the same, with ``.assetbuild/noop.json`` deleted before each run: the full plan
  (parse, keys, hashes), still no server contact (nothing to compare);
- ``plan + server check``: a lock with model hashes (what builds write now): no memo, the full plan plus
  one session and one ``DescribeModel`` per distinct model (``ListT2IParams`` from the cache);
- ``plan + server check, cold``: the same with ``.assetbuild/server/`` deleted before each run, so
  ``ListT2IParams`` is fetched too.

The check's own cost is ``plan + server check`` minus ``plan, no server``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ASSETBUILD, Samples, emit, interleaved, parser, run_timed, table

from assetbuild.testing import FakeSwarm


def write_project(root: Path, count: int) -> None:
    root.mkdir(parents=True)
    lines = ["[server]", "concurrency = 8", "", "[defaults]", 'model = "sd_xl_base_1.0"', "width = 64",
             "height = 64", "steps = 4", ""]
    for i in range(count):
        lines += [f'[assets."sprites/s{i}.png"]', f'prompt = "sprite number {i}"', f"seed = {i + 1}", ""]
    (root / "assets.toml").write_text("\n".join(lines), encoding="utf-8")


def strip_hashes(root: Path) -> None:
    path = root / "assets.lock"
    data = json.loads(path.read_text(encoding="utf-8"))
    for entry in data["assets"].values():
        entry.pop("model_hashes", None)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("-N", type=int, default=500, help="assets in the project")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    count, repeat = (10, 1) if args.quick else (args.N, args.repeat)
    with tempfile.TemporaryDirectory() as tmp, FakeSwarm(backends=4, latency=0, steps=1, close_delay=0,
                                                         model_load_delay=0, slot_parallel=True) as fake:
        base = Path(tmp) / "built"
        write_project(base, count)
        run_timed([ASSETBUILD, "-q", "--server", fake.url], cwd=base)
        folders = {name: Path(tmp) / name for name in ("memo", "plan", "check", "cold")}
        for name, folder in folders.items():
            shutil.copytree(base, folder, symlinks=True)
            if name in ("memo", "plan"):
                strip_hashes(folder)
                run_timed([ASSETBUILD, "-q", "--server", fake.url], cwd=folder)  # records the memo
        url = fake.url

        def case(name: str) -> Any:
            folder = folders[name]

            def go() -> Any:
                if name == "plan":
                    (folder / ".assetbuild" / "noop.json").unlink(missing_ok=True)
                if name == "cold":
                    shutil.rmtree(folder / ".assetbuild" / "server", ignore_errors=True)
                return run_timed([ASSETBUILD, "-q", "--server", url], cwd=folder)

            return go

        labels = {"memo": "memo (no hashes in the lock)", "plan": "plan, no server (no hashes, no memo)",
                  "check": "plan + server check (hashes in the lock)",
                  "cold": "plan + server check, ListT2IParams not cached"}
        samples = {name: Samples(labels[name]) for name in folders}
        before = len(fake.requests)
        interleaved([(samples[name], case(name)) for name in folders], repeat)
        generated = fake.generations
        routes: dict[str, int] = {}
        for request in fake.requests[before:]:
            routes[request.route] = routes.get(request.route, 0) + 1
    if generated != count:
        raise SystemExit(f"a fresh build generated something: {generated} != {count}")
    check_cost = samples["check"].median - samples["plan"].median
    rows = [[s.name, s.median, min(s.seconds), max(s.seconds)] for s in samples.values()]
    rows.append(["server check alone (check - plan)", check_cost, "", ""])
    results = {"assets": count, "repeat": repeat, **{name: s.as_dict() for name, s in samples.items()},
               "check_cost_s": round(check_cost, 4), "requests": routes}
    text = (table(["case (every asset fresh)", "median s", "min s", "max s"], rows)
            + f"\n\n{count} assets, {repeat} runs per case (+1 warm-up); requests during the runs: "
            + ", ".join(f"{route} x{n}" for route, n in sorted(routes.items())))
    emit(args, "servercheck", results, text)


if __name__ == "__main__":
    main()
