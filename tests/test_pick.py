"""``assetbuild pick`` (issue 18): pin a candidate in assets.toml keeping every other byte, then restore it
from the cache (0 generations). Real CLI subprocesses against the SwarmUI test double."""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from helpers import temp_files

from assetbuild.testing import FakeSwarm

pytestmark = [pytest.mark.timeout(90),
              pytest.mark.skipif(sys.platform == "win32", reason="subprocess timing")]

FAST: dict[str, Any] = {"latency": 0.02, "steps": 2, "close_delay": 0.02, "model_load_delay": 0.01}

# A manifest full of comments, blank lines, odd spacing and key order: pick must keep every byte of it.
COMMENTED = """\
# My game's art.   Edit freely; assetbuild only ever adds or changes one `seed` line.

[server]   # the server comes from --server in the tests
url = "http://127.0.0.1:9"
concurrency = 2

[defaults]
model = "sd_xl_base_1.0"   # SDXL
width  = 64
height = 64
steps = 4
seed = 1                   # every asset starts from seed 1

[styles.pixel]
prompt = "pixel art of {prompt}"  # {prompt} is the asset's own prompt
Seed = 3

# ---- characters ----

[assets."sprites/hero.png"]     # the hero
prompt = "a knight in silver armor"   # idle pose
# TODO: a cape?

[assets."sprites/villain.png"]
prompt = "a dark wizard"
style = "pixel"

[assets."sprites/sidekick.png"]
Seed = 9   # keeps its spelling and its comment
prompt = "a squire"


# ---- nature ----
[assets."trees/oak_{n}.png"]
prompt = "an oak tree"
count = 3
[assets]
"ui/icon.png" = { prompt = "a sword icon" }   # inline table
"""


@pytest.fixture
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, **FAST) as server:
        yield server


def cli(project: Path, url: str, *args: str) -> tuple[int, str]:
    result = run_cli(project, *args, "--server", url)
    return result.returncode, result.stdout + result.stderr


def diff(before: str, after: str) -> list[str]:
    """The changed lines of a unified diff (+/-), without headers."""
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True), n=0)
    return [line for line in lines if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def lock_entry(project: Path, target: str) -> dict[str, Any]:
    return dict(json.loads((project / "assets.lock").read_text(encoding="utf-8"))["assets"][target])


@pytest.fixture
def commented(project: Path) -> Path:
    (project / "assets.toml").write_text(COMMENTED, encoding="utf-8")
    return project


def test_pick_pins_the_seed_keeping_every_other_byte_and_restores_without_generating(
        commented: Path, fake: FakeSwarm) -> None:
    project = commented
    code, out = cli(project, fake.url, "explore", "sprites/hero.png", "--seeds", "101,102,103")
    assert code == 0, out
    assert fake.generations == 3
    code, out = cli(project, fake.url, "pick", "sprites/hero.png", "102")
    assert code == 0, out
    assert fake.generations == 3  # the candidate is restored from the cache
    assert "restored  sprites/hero.png" in out
    after = (project / "assets.toml").read_text(encoding="utf-8")
    assert diff(COMMENTED, after) == ["+seed = 102\n"]
    assert after.index("seed = 102") < after.index("# TODO: a cape?")  # after the table's last key
    assert "the seed in [defaults] stays as it is" in out
    candidate = project / ".assetbuild/explore/sprites/hero.png/seed-102.png"
    assert (project / "sprites/hero.png").read_bytes() == candidate.read_bytes()
    assert lock_entry(project, "sprites/hero.png")["seed"] == 102
    assert temp_files(project) == []

    # Picking another explored candidate changes that one line only.
    code, out = cli(project, fake.url, "pick", "sprites/hero.png", "103")
    assert code == 0, out
    assert fake.generations == 3
    assert diff(COMMENTED, (project / "assets.toml").read_text(encoding="utf-8")) == ["+seed = 103\n"]


def test_an_existing_seed_keeps_its_spelling_place_and_comment(commented: Path, fake: FakeSwarm) -> None:
    project = commented
    assert cli(project, fake.url, "explore", "sprites/sidekick.png", "--seeds", "44")[0] == 0
    code, out = cli(project, fake.url, "pick", "sprites/sidekick.png", "44")
    assert code == 0, out
    assert diff(COMMENTED, (project / "assets.toml").read_text(encoding="utf-8")) == [
        "-Seed = 9   # keeps its spelling and its comment\n", "+Seed = 44   # keeps its spelling and its comment\n"]
    assert fake.generations == 1


def test_a_style_seed_is_overridden_in_the_asset_table(commented: Path, fake: FakeSwarm) -> None:
    project = commented
    assert cli(project, fake.url, "explore", "sprites/villain.png", "--seeds", "8")[0] == 0
    code, out = cli(project, fake.url, "pick", "sprites/villain.png", "8")
    assert code == 0, out
    assert "the seed of [styles.pixel] stays as it is" in out
    after = (project / "assets.toml").read_text(encoding="utf-8")
    assert diff(COMMENTED, after) == ["+seed = 8\n"]
    assert after.index("seed = 8") > after.index('[assets."sprites/villain.png"]')
    assert fake.generations == 1


def test_an_inline_table_gets_the_seed_inline(commented: Path, fake: FakeSwarm) -> None:
    project = commented
    assert cli(project, fake.url, "explore", "ui/icon.png", "--seeds", "5")[0] == 0
    code, out = cli(project, fake.url, "pick", "ui/icon.png", "5")
    assert code == 0, out
    changed = diff(COMMENTED, (project / "assets.toml").read_text(encoding="utf-8"))
    assert len(changed) == 2 and changed[1].startswith('+"ui/icon.png" = { prompt = "a sword icon", seed = 5')
    assert changed[1].endswith("# inline table\n")
    assert fake.generations == 1


@pytest.mark.parametrize(("args", "message"), [
    (["sprites/hero.png", "77"], "seed 77 was not explored for sprites/hero.png"),
    (["trees/oak_2.png", "50"], "variant 2 of [assets.\"trees/oak_{n}.png\"]"),
    (["sprites/nope.png", "5"], "no asset matches"),
    (["sprites/hero.png", "--current"], "assets.lock records no seed"),
    (["sprites/hero.png"], "give either SEED or --current"),
])
def test_refused_picks_change_nothing(commented: Path, fake: FakeSwarm, args: list[str], message: str) -> None:
    project = commented
    code, out = cli(project, fake.url, "pick", *args)
    assert code == 2, out
    assert message in out
    assert (project / "assets.toml").read_text(encoding="utf-8") == COMMENTED
    assert fake.generations == 0
    assert not (project / "assets.lock").exists()


def test_variant_hint_names_the_group_seed_that_gives_the_picked_one(commented: Path, fake: FakeSwarm) -> None:
    code, out = cli(commented, fake.url, "pick", "trees/oak_2.png", "50")
    assert code == 2
    assert "set `seed = 49` in [assets.\"trees/oak_{n}.png\"]" in out


def test_generate_accepts_an_unexplored_seed(commented: Path, fake: FakeSwarm) -> None:
    project = commented
    code, out = cli(project, fake.url, "pick", "sprites/hero.png", "77", "--generate")
    assert code == 0, out
    assert fake.generations == 1
    assert [g.seed for g in fake.generation_log] == [77]
    assert lock_entry(project, "sprites/hero.png")["seed"] == 77


def test_pick_current_pins_the_seed_a_random_build_used_without_generating(project: Path, fake: FakeSwarm) -> None:
    body = COMMENTED.replace('prompt = "a knight in silver armor"   # idle pose\n',
                             'prompt = "a knight in silver armor"   # idle pose\nseed = -1\n')
    (project / "assets.toml").write_text(body, encoding="utf-8")
    code, out = cli(project, fake.url, "run", "sprites/hero.png")
    assert code == 0, out
    assert fake.generations == 1
    used = fake.generation_log[0].seed
    assert used >= 0 and lock_entry(project, "sprites/hero.png")["seed"] == used
    image = (project / "sprites/hero.png").read_bytes()

    code, out = cli(project, fake.url, "pick", "sprites/hero.png", "--current")
    assert code == 0, out
    assert fake.generations == 1  # the image made with that seed is the candidate: nothing generated
    assert diff(body, (project / "assets.toml").read_text(encoding="utf-8")) == ["-seed = -1\n", f"+seed = {used}\n"]
    assert (project / "sprites/hero.png").read_bytes() == image
    entry = lock_entry(project, "sprites/hero.png")
    assert entry["seed"] == used and entry["inputs"]["params"]["seed"] == used

    code, out = cli(project, fake.url, "pick", "sprites/hero.png", "--current")
    assert code == 0, out
    assert f"already pinned to seed {used}" in out


def test_crlf_manifest_stays_crlf(project: Path, fake: FakeSwarm) -> None:
    body = COMMENTED.replace("\n", "\r\n")
    (project / "assets.toml").write_bytes(body.encode())
    assert cli(project, fake.url, "explore", "sprites/hero.png", "--seeds", "4")[0] == 0
    code, out = cli(project, fake.url, "pick", "sprites/hero.png", "4")
    assert code == 0, out
    after = (project / "assets.toml").read_bytes().decode()
    assert after.count("\r\n") == after.count("\n") == body.count("\n") + 1
    assert fake.generations == 1


def test_a_hand_edited_target_is_not_pinned_over(commented: Path, fake: FakeSwarm) -> None:
    project = commented
    assert cli(project, fake.url, "explore", "sprites/hero.png", "--seeds", "5")[0] == 0
    (project / "sprites").mkdir()
    (project / "sprites/hero.png").write_bytes(b"painted by hand")
    code, out = cli(project, fake.url, "pick", "sprites/hero.png", "5")
    assert code == 1, out
    assert "not pinning over it" in out
    assert (project / "assets.toml").read_text(encoding="utf-8") == COMMENTED
    assert (project / "sprites/hero.png").read_bytes() == b"painted by hand"


def test_pick_takes_the_project_lock(commented: Path, fake: FakeSwarm) -> None:
    from assetbuild.projectlock import hold

    project = commented
    assert cli(project, fake.url, "explore", "sprites/hero.png", "--seeds", "5")[0] == 0
    with hold(project / ".assetbuild", "run"):
        code, out = cli(project, fake.url, "pick", "sprites/hero.png", "5", "--no-wait")
    assert code == 1, out
    assert "not waiting" in out
    assert (project / "assets.toml").read_text(encoding="utf-8") == COMMENTED


def test_crlf_manifest_without_a_final_newline_stays_crlf(project: Path, fake: FakeSwarm) -> None:
    # The picked asset's table is the last one, and its last line has no line ending at all.
    body = ('[server]\r\nurl = "http://127.0.0.1:9"\r\n\r\n[defaults]\r\nmodel = "sd_xl_base_1.0"\r\n'
            'width = 64\r\nheight = 64\r\n\r\n[assets."sprites/hero.png"]\r\nprompt = "a knight"')
    (project / "assets.toml").write_bytes(body.encode())
    assert cli(project, fake.url, "explore", "sprites/hero.png", "--seeds", "4")[0] == 0
    code, out = cli(project, fake.url, "pick", "sprites/hero.png", "4")
    assert code == 0, out
    after = (project / "assets.toml").read_bytes().decode()
    assert "\n" not in after.replace("\r\n", "")  # no bare LF anywhere
