"""``assetbuild explore`` (issue 18): candidates into the cache only, a contact sheet, 0 generations the
second time. Real CLI subprocesses against the SwarmUI test double; generations counted by the double."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest
from helpers import png_size, temp_files

from assetbuild.testing import FakeSwarm

pytestmark = [pytest.mark.timeout(90),
              pytest.mark.skipif(sys.platform == "win32", reason="subprocess timing")]

FAST: dict[str, Any] = {"latency": 0.02, "steps": 2, "close_delay": 0.02, "model_load_delay": 0.01}

MANIFEST = """
[server]
url = "http://127.0.0.1:9"
concurrency = 2

[defaults]
model = "sd_xl_base_1.0"
width = 64
height = 64
steps = 4
seed = 1

[assets."sprites/hero.png"]
prompt = "a knight <b>&amp; \\"friends\\"</b>"

[assets."sprites/tree.png"]
prompt = "an oak tree"
seed = -1

[assets."sprites/hero_glow.png"]
source = "sprites/hero.png"
resize = [32, 32]
"""


@pytest.fixture
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, **FAST) as server:
        yield server


def explore(project: Path, url: str, *args: str) -> tuple[int, str]:
    result = run_cli(project, "explore", "--server", url, *args)
    return result.returncode, result.stdout + result.stderr


def printed_seeds(output: str, target: str) -> list[int]:
    return [int(s) for s in re.findall(rf"^{re.escape(target)}  seed (\d+): ", output, re.M)]


def test_explore_twice_generates_once_and_never_touches_the_target(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, MANIFEST)
    code, out = explore(project, fake.url, "sprites/hero.png", "--seeds", "11,12,13")
    assert code == 0, out
    assert fake.generations == 3
    assert sorted(g.seed for g in fake.generation_log) == [11, 12, 13]
    assert printed_seeds(out, "sprites/hero.png") == [11, 12, 13]
    assert not (project / "sprites/hero.png").exists()
    assert not (project / "assets.lock").exists()  # candidates are not builds: no lock entry
    sheet = project / ".assetbuild/explore/sprites/hero.png"
    assert f"contact sheet: {Path('.assetbuild/explore/sprites/hero.png/index.html')}" in out
    for seed in (11, 12, 13):
        assert png_size((sheet / f"seed-{seed}.png").read_bytes()) == (64, 64)
    assert temp_files(project) == []

    code, out = explore(project, fake.url, "sprites/hero.png", "--seeds", "11,12,13")
    assert code == 0, out
    assert fake.generations == 3  # all three restored from the cache: no new generation
    assert "0 generated" in out and "3 fresh" in out


def test_contact_sheet_is_escaped_relative_and_offline(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, MANIFEST)
    code, out = explore(project, fake.url, "sprites/hero.png", "--seeds", "5,6")
    assert code == 0, out
    page = (project / ".assetbuild/explore/sprites/hero.png/index.html").read_text(encoding="utf-8")
    assert "<b>&amp;" not in page and "&lt;b&gt;&amp;amp; &quot;friends&quot;&lt;/b&gt;" in page
    sources = re.findall(r'src="([^"]+)"', page)
    assert sorted(s.split("?")[0] for s in sources) == ["seed-5.png", "seed-6.png"]
    assert not re.search(r"(https?:)?//", page)  # nothing loaded from the network
    assert "assetbuild pick sprites/hero.png 5" in page

    # A later explore adds to the sheet; the earlier candidates stay while the parameters are the same.
    code, out = explore(project, fake.url, "sprites/hero.png", "--seeds", "7")
    assert code == 0, out
    assert "and 2 earlier candidate(s)" in out
    page = (project / ".assetbuild/explore/sprites/hero.png/index.html").read_text(encoding="utf-8")
    assert sorted(re.findall(r'src="seed-(\d+)\.png', page)) == ["5", "6", "7"]

    # A changed prompt makes other candidates: the old ones leave the sheet (and their images the folder).
    (project / "assets.toml").write_text(MANIFEST.replace("a knight", "a paladin"), encoding="utf-8")
    code, out = explore(project, fake.url, "sprites/hero.png", "--seeds", "8")
    assert code == 0, out
    folder = project / ".assetbuild/explore/sprites/hero.png"
    assert sorted(p.name for p in folder.glob("seed-*")) == ["seed-8.png"]


def test_random_seeds_are_distinct_and_printed(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, MANIFEST)
    code, out = explore(project, fake.url, "sprites/tree.png")
    assert code == 0, out
    seeds = printed_seeds(out, "sprites/tree.png")
    assert len(seeds) == 4 and len(set(seeds)) == 4
    assert sorted(g.seed for g in fake.generation_log) == sorted(seeds)
    recorded = json.loads((project / ".assetbuild/explore/sprites/tree.png/candidates.json").read_text())
    assert sorted(recorded["seeds"]) == sorted(seeds)


def test_glob_explores_a_few_assets_within_the_limit(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, MANIFEST.replace('[assets."sprites/hero_glow.png"]\nsource = "sprites/hero.png"\n'
                                             'resize = [32, 32]\n', ""))
    code, out = explore(project, fake.url, "sprites/*.png", "-k", "2", "--max-assets", "1")
    assert code == 2
    assert "2 assets match" in out and "--max-assets" in out
    assert fake.generations == 0
    code, out = explore(project, fake.url, "sprites/*.png", "-k", "2")
    assert code == 0, out
    assert fake.generations == 4
    assert len(printed_seeds(out, "sprites/hero.png")) == 2 and len(printed_seeds(out, "sprites/tree.png")) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["sprites/hero_glow.png"], "derived from sprites/hero.png"),
    (["sprites/hero.png", "--seeds", "1,1"], "given twice"),
    (["sprites/hero.png", "--seeds", "x"], "not a whole number"),
    (["sprites/hero.png", "--seeds", "-3"], "out of range"),
    (["sprites/hero.png", "--seeds", str(2**63)], "out of range"),
    (["sprites/hero.png", "--seeds", "1,2", "-k", "3"], "-k 3 but 2 seeds"),
    (["sprites/nope.png"], "no asset matches"),
])
def test_bad_requests_are_usage_errors(project: Path, fake: FakeSwarm, args: list[str], message: str) -> None:
    write_manifest(project, MANIFEST)
    code, out = explore(project, fake.url, *args)
    assert code == 2, out
    assert message in out
    assert fake.generations == 0


def test_a_candidate_key_is_the_key_of_the_asset_with_that_seed(project: Path, fake: FakeSwarm) -> None:
    """Setting the seed by hand after exploring restores the candidate: the keys agree."""
    write_manifest(project, MANIFEST)
    code, out = explore(project, fake.url, "sprites/hero.png", "--seeds", "21,22")
    assert code == 0, out
    manifest = (project / "assets.toml").read_text(encoding="utf-8")
    manifest = manifest.replace('[assets."sprites/hero.png"]\n', '[assets."sprites/hero.png"]\nseed = 22\n')
    (project / "assets.toml").write_text(manifest, encoding="utf-8")
    result = run_cli(project, "run", "--server", fake.url, "sprites/hero.png")
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake.generations == 2
    assert "restored  sprites/hero.png" in result.stdout
    candidate = project / ".assetbuild/explore/sprites/hero.png/seed-22.png"
    assert (project / "sprites/hero.png").read_bytes() == candidate.read_bytes()


def test_input_assets_are_built_first_and_the_explored_target_is_not(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, MANIFEST + '\n[assets."sprites/hero_attack.png"]\nprompt = "attacking"\n'
                                       'initimage = "sprites/hero.png"\ninitimagecreativity = 0.5\n')
    code, out = explore(project, fake.url, "sprites/hero_attack.png", "--seeds", "1,2")
    assert code == 0, out
    assert fake.generations == 3  # the input asset (a normal build) and two candidates
    assert (project / "sprites/hero.png").is_file()
    assert not (project / "sprites/hero_attack.png").exists()
    lock = json.loads((project / "assets.lock").read_text(encoding="utf-8"))["assets"]
    assert sorted(lock) == ["sprites/hero.png"]


def test_ctrl_c_stops_the_candidates_and_keeps_no_partial_entry(project: Path, fake: FakeSwarm) -> None:
    import os
    import signal
    import subprocess
    import time

    fake.configure(latency=30)
    write_manifest(project, MANIFEST)
    process = subprocess.Popen([sys.executable, "-m", "assetbuild", "explore", "--server", fake.url,
                                "sprites/hero.png", "--seeds", "1,2"], cwd=project, env=dict(os.environ),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while fake.live_gens < 1:
            assert time.monotonic() < deadline, "no generation started"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, out
    assert "interrupted" in out
    assert fake.interrupts >= 1
    assert list((project / ".assetbuild/cache").rglob("*.img")) == []
    assert temp_files(project) == []
    assert not (project / "sprites/hero.png").exists()


def test_candidates_are_checked_against_the_server_before_any_generation(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, MANIFEST.replace('model = "sd_xl_base_1.0"', 'model = "sd_xl_base_1.1"'))
    code, out = explore(project, fake.url, "sprites/hero.png", "--seeds", "1,2")
    assert code == 2, out
    assert "problem(s) against the server" in out and "sd_xl_base_1.1" in out
    assert fake.generations == 0
    assert list((project / ".assetbuild/cache").rglob("*.img")) == []
