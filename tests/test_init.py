"""`assetbuild init`: a commented starter manifest that builds, written without overwriting anything."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import run_cli
from helpers import png_size

from assetbuild.cli import main
from assetbuild.commands.init import STARTER
from assetbuild.lock import Lock
from assetbuild.manifest import load


def test_init_writes_a_starter_that_builds_with_the_placeholder(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    assert "wrote assets.toml" in result.stdout and "offline with placeholder images" in result.stdout
    manifest = tmp_path / "assets.toml"
    assert manifest.read_text(encoding="utf-8") == STARTER

    build = run_cli(tmp_path)  # the starter sets url = "placeholder": a plain `assetbuild` works offline
    assert build.returncode == 0, build.stdout + build.stderr
    assert "warning" not in build.stdout  # no unknown parameter in the starter
    project = load(manifest)
    lock = Lock.load(project.lock_path)
    for target, asset in project.assets.items():
        assert asset.path.is_file(), target
        assert lock.get(target) is not None, target
    assert png_size((tmp_path / "assets" / "ui" / "icon_sword_small.png").read_bytes()) == (32, 32)
    again = run_cli(tmp_path)
    assert again.returncode == 0 and "0 generated" in again.stdout


def test_starter_is_commented_and_shows_the_main_features() -> None:
    data = tomllib.loads(STARTER)
    assert data["server"]["url"] == "placeholder"  # builds at once; the comment says how to switch
    assert "config set\n" in STARTER or "`assetbuild config set" in STARTER
    assets = data["assets"]
    assert any("initimage" in a for a in assets.values())
    assert any("source" in a for a in assets.values())
    assert any("count" in a for a in assets.values())
    assert any("resize" in a for a in assets.values())
    assert sum(line.lstrip().startswith("#") for line in STARTER.splitlines()) >= 10
    assert "api-key" in STARTER and "ASSETBUILD_API_KEY" in STARTER  # says where credentials go instead


def test_init_refuses_to_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "assets.toml").write_text("# mine\n", encoding="utf-8")
    assert main(["init"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "not overwriting" in err
    assert (tmp_path / "assets.toml").read_text(encoding="utf-8") == "# mine\n"
    assert [p.name for p in tmp_path.iterdir()] == ["assets.toml"]  # no temporary file left


def test_init_with_a_file_or_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "game").mkdir()
    assert main(["init", "-f", "game/art.toml"]) == 0
    assert (tmp_path / "game" / "art.toml").read_text(encoding="utf-8") == STARTER
    assert "-f game/art.toml" in capsys.readouterr().out  # the next command to run names the file
    assert main(["init", "-f", "game"]) == 0  # a folder: assets.toml inside it
    assert (tmp_path / "game" / "assets.toml").is_file()
    assert main(["init", "-f", "game/art.toml"]) == 2
    assert main(["init", "-f", "missing/sub/assets.toml"]) == 0  # missing folders are created
    assert (tmp_path / "missing" / "sub" / "assets.toml").read_text(encoding="utf-8") == STARTER


def test_refusal_in_a_real_process_exits_2(tmp_path: Path) -> None:
    (tmp_path / "assets.toml").write_text("# mine\n", encoding="utf-8")
    result = run_cli(tmp_path, "init")
    assert result.returncode == 2 and "already exists" in result.stderr and "Traceback" not in result.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from assetbuild import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"assetbuild {__version__}"
