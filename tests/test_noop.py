"""The no-op memo: a fresh project is reported fresh without planning, and no change slips past it."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import write_manifest
from helpers import QUICKSTART, TARGETS, generations
from PIL import Image

from assetbuild import manifest, noop
from assetbuild.cli import main

HERO, ATTACK, ICON = TARGETS


@pytest.fixture
def built(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_manifest(project, QUICKSTART)
    (project / "refs").mkdir()
    image = io.BytesIO()
    Image.new("L", (128, 128), 200).save(image, "PNG")
    (project / "refs" / "mask.png").write_bytes(image.getvalue())
    text = (project / "assets.toml").read_text()
    (project / "assets.toml").write_text(text.replace('initimagecreativity = 0.6',
                                                      'initimagecreativity = 0.6\nmaskimage = "refs/mask.png"'))
    monkeypatch.chdir(project)
    monkeypatch.setenv("ASSETBUILD_PLACEHOLDER_LOG", str(project.parent / "gen.log"))
    assert main(["-q"]) == 0
    assert (project / ".assetbuild" / noop.MEMO_NAME).is_file()
    (project.parent / "gen.log").unlink()
    return project


def generated(root: Path) -> list[str]:
    log = root.parent / "gen.log"
    names = sorted(generations(log))
    log.unlink(missing_ok=True)
    return names


class PlanningForbidden(BaseException):
    """Not an Exception: the CLI's bug handler (exit 3) must not swallow it."""


def forbid_planning(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PlanningForbidden("the manifest was parsed: the memo was not used")

    monkeypatch.setattr(manifest, "load", refuse)
    monkeypatch.setattr("assetbuild.workspace.load", refuse)


def test_a_fresh_project_is_reported_without_parsing_the_manifest(built: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    forbid_planning(monkeypatch)
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()}
    assert main([]) == 0
    assert "3 fresh" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()} == before
    assert main(["--json"]) == 0
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (last["event"], last["fresh"], last["generated"]) == ("run_finished", 3, 0)


def _edit_bytes(path: Path) -> None:
    with Image.open(path) as image:
        image.load()
        edited = image.copy()
    edited.putpixel((0, 0), 7 if edited.mode in ("L", "P") else (1, 2, 3))
    edited.save(path)


def _edit_lock_key(root: Path, target: str) -> None:
    lock = json.loads((root / "assets.lock").read_text())
    lock["assets"][target]["key"] = "0" * 32
    (root / "assets.lock").write_text(json.dumps(lock, indent=2))


CHANGES = {
    "manifest edited": lambda root: (root / "assets.toml").write_text(
        (root / "assets.toml").read_text().replace("steps = 20", "steps = 21")),
    "manifest touched only": lambda root: os.utime(root / "assets.toml"),
    "target edited by hand": lambda root: _edit_bytes(root / HERO),
    "target deleted": lambda root: (root / ICON).unlink(),
    "input file changed": lambda root: _edit_bytes(root / "refs" / "mask.png"),
    "lock edited": lambda root: _edit_lock_key(root, HERO),
}


def test_a_build_the_memo_answers_imports_only_what_it_needs(built: Path) -> None:
    """The everyday no-op: none of the parser, logging, TOML, pydantic, doit or Pillow is imported."""
    import subprocess
    import sys

    probe = ("import sys\nfrom assetbuild.cli import main\nsys.argv = ['assetbuild', '-q']\ncode = main()\n"
             "print('EXIT', code, sorted(m for m in ('logging', 'tomllib', 'tomli', 'traceback', 'pydantic', "
             "'doit', 'PIL', 'httpx', 'rich') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=built, capture_output=True, text=True, timeout=60,
                            check=False)
    assert "EXIT 0 []" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_change_falls_back_to_the_full_plan(built: Path, change: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    CHANGES[change](built)
    capsys.readouterr()
    code = main([])
    output = capsys.readouterr().out
    if change == "manifest edited":
        assert code == 0 and generated(built) == sorted(TARGETS)  # steps is a default: all three
    elif change == "manifest touched only":
        assert code == 0 and generated(built) == [] and "3 fresh" in output
    elif change == "target edited by hand":
        assert code == 1 and HERO in output and "edited" in output
    elif change == "target deleted":
        assert code == 0 and generated(built) == [] and "1 restored" in output
    elif change == "input file changed":
        assert code == 0 and generated(built) == [ATTACK]
    elif change == "lock edited":
        assert code == 0 and generated(built) == [] and "1 restored" in output  # the key no longer matched


def test_a_different_server_or_environment_is_a_different_context(built: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    base = noop.context(built / "assets.toml", None)
    assert noop.check(built / "assets.toml", base) is not None
    assert noop.check(built / "assets.toml", noop.context(built / "assets.toml", "http://127.0.0.1:9")) is None
    monkeypatch.setenv("ASSETBUILD_SERVER", "http://127.0.0.1:9")
    assert noop.check(built / "assets.toml", noop.context(built / "assets.toml", None)) is None


def test_a_left_over_lock_journal_disables_the_memo(built: Path) -> None:
    ctx = noop.context(built / "assets.toml", None)
    (built / ".assetbuild" / "lock.journal").write_text('{"base": ""}\n')
    assert noop.check(built / "assets.toml", ctx) is None


def test_selected_targets_and_force_never_use_the_memo(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_planning(monkeypatch)
    with pytest.raises(PlanningForbidden, match="memo was not used"):
        main(["run", HERO])
    with pytest.raises(PlanningForbidden, match="memo was not used"):
        main(["--force"])


def _damage(memo: dict[str, Any], tables: dict[str, Any], damage: str) -> None:
    if damage == "one stamp fewer":
        memo["stamps"].pop()
    elif damage == "a name not a string":
        memo["files"][0] = 7
    elif damage == "a stamp changed":
        memo["stamps"][1] += 1
    elif damage == "names swapped":
        memo["files"][0], memo["files"][1] = memo["files"][1], memo["files"][0]
    elif damage == "a record not a string":
        tables["common_targets"] = [[target] for target in tables["common_targets"]]
    elif damage == "a record of another folder":
        tables["folder"] = "elsewhere/"


@pytest.mark.parametrize("damage", ["one stamp fewer", "a name not a string", "a stamp changed", "names swapped",
                                    "a record not a string", "a record of another folder"])
def test_a_damaged_memo_never_proves_a_changed_file_fresh(built: Path, damage: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    manifest_path, state = built / "assets.toml", built / ".assetbuild"
    ctx = noop.context(manifest_path, None)
    assert isinstance(noop.check(manifest_path, ctx), noop.Memo)
    memo = json.loads((state / noop.MEMO_NAME).read_bytes())
    tables = json.loads((state / noop.TABLES_NAME).read_bytes())
    # The hero and the icon are common tables: their file is their target.
    assert len(tables["common"]) == len(tables["common_targets"]) == 2 and tables["folder"] == ""
    _damage(memo, tables, damage)
    (state / noop.MEMO_NAME).write_text(json.dumps(memo))
    (state / noop.TABLES_NAME).write_text(json.dumps(tables))
    if damage.startswith("a record"):
        assert isinstance(noop.check(manifest_path, ctx), noop.Memo)  # records are read only for a partial plan
    else:
        assert not isinstance(noop.check(manifest_path, ctx), noop.Memo)
    _edit_bytes(built / HERO)  # a change the memo must not hide, whatever it holds
    found = noop.check(manifest_path, ctx)
    assert found is None or (isinstance(found, noop.Partial) and HERO not in found.fresh_targets)
    capsys.readouterr()
    assert main([]) == 1 and "edited" in capsys.readouterr().out


def test_a_target_in_another_folder_object_is_recorded_by_its_own_path(built: Path) -> None:
    """``record`` spells each target's file from the project's output folder; an asset holding another folder
    object is looked up by its own path (a stamp is only ever taken for the very name verified)."""
    import dataclasses

    from assetbuild.workspace import load_project, workspace_of

    (built / ".assetbuild" / noop.MEMO_NAME).unlink()
    project = load_project(None)
    project.assets[ICON] = dataclasses.replace(project.assets[ICON], output_dir=Path(str(project.output_dir)))
    assert project.assets[ICON].output_dir is not project.output_dir
    ws = workspace_of(project)
    assert all(status.state.name == "FRESH" for status in ws.planner.plan(list(project.assets)))
    ctx = noop.context(project.manifest, None)
    verified = ws.hashes.verified_stamps()
    noop.record(project, ctx, [], {name: stamp for name, stamp in verified.items() if not name.endswith(ICON)}, None,
                ws.lock)
    assert not (built / ".assetbuild" / noop.MEMO_NAME).exists()  # the icon was not verified: no memo
    noop.record(project, ctx, [], verified, None, ws.lock)
    assert isinstance(noop.check(project.manifest, ctx), noop.Memo)
    assert ICON in json.loads((built / ".assetbuild" / noop.MEMO_NAME).read_bytes())["files"]
