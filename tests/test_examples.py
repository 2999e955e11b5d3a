"""examples/game builds with the placeholder and against the SwarmUI test double, as its README says."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from helpers import png_size

from assetbuild.lock import Lock
from assetbuild.manifest import load
from assetbuild.testing import FakeSwarm

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "game"


@pytest.fixture
def game(tmp_path: Path) -> Path:
    """A copy of the example (a build must not write into the repository)."""
    root = tmp_path / "game"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("art", ".assetbuild", "assets.lock"))
    return root


def check_outputs(root: Path) -> None:
    project = load(root / "assets.toml")
    lock = Lock.load(project.lock_path)
    for target, asset in project.assets.items():
        assert asset.path.is_file(), target
        assert lock.get(target) is not None, target
    art = root / "art"
    assert png_size((art / "characters" / "knight_attack.png").read_bytes()) == (128, 128)
    assert png_size((art / "tiles" / "grass.png").read_bytes()) == (64, 64)
    assert png_size((art / "ui" / "icons" / "potion_32.png").read_bytes()) == (32, 32)
    assert png_size((art / "ui" / "title.png").read_bytes()) == (1344, 768)
    assert [p.name for p in sorted((art / "enemies").iterdir())] == ["slime_1.png", "slime_2.png", "slime_3.png"]


def test_the_example_uses_what_its_readme_promises() -> None:
    project = load(EXAMPLE / "assets.toml")
    assert project.warnings == []
    assets = project.assets
    assert assets["characters/knight_attack.png"].inputs[0].asset == "characters/knight_walk.png"
    assert assets["characters/knight_walk.png"].inputs[0].asset == "characters/knight_idle.png"
    assert assets["tiles/grass.png"].params["seamlesstileable"] == "true"
    assert assets["ui/icons/potion_32.png"].source == "ui/icons/potion_128.png"
    assert [assets[f"enemies/slime_{n}.png"].params["seed"] for n in (1, 2, 3)] == [300, 301, 302]
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    for command in ("--server placeholder", "python -m assetbuild.testing.fakeswarm --port 7801",
                    "--server http://127.0.0.1:7801", "--server http://localhost:7801"):
        assert command in readme


def test_game_builds_with_the_placeholder(game: Path) -> None:
    result = run_cli(game, "--server", "placeholder")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "21 generated" in result.stdout and "5 derived" in result.stdout
    check_outputs(game)


def test_game_builds_against_the_test_double(game: Path) -> None:
    with FakeSwarm(backends=2, latency=0.01, steps=2, close_delay=0.05) as fake:
        result = run_cli(game, "--server", fake.url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert fake.generations == 21
        slime_seeds = sorted(g.seed for g in fake.generation_log if "slime" in g.prompt)
        assert slime_seeds == [300, 301, 302]
        # the img2img chain sent the upstream image along
        walk = [r.body for r in fake.requests if r.route.startswith("GenerateText2Image")
                and "walking pose" in str(r.body.get("prompt"))]
        assert walk and str(walk[0]["initimage"]).startswith("data:image/png;base64,")
        check_outputs(game)
        again = run_cli(game, "--server", fake.url)
        assert again.returncode == 0 and fake.generations == 21  # nothing regenerated
