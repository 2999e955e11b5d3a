"""The planner: fresh / restore / generate / modified / orphan from manifest, lock, cache and files; `why` diffs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import write_manifest
from helpers import QUICKSTART, TARGETS, generations, snapshot

from assetbuild import generators
from assetbuild.builder import Builder
from assetbuild.cli import main
from assetbuild.display.plain import PlainDisplay
from assetbuild.lock import Lock
from assetbuild.plan import State, closure, explain
from assetbuild.workspace import Workspace, open_workspace

HERO, ATTACK, ICON = TARGETS


@pytest.fixture
def proj(project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    write_manifest(project, QUICKSTART)
    monkeypatch.chdir(project)
    monkeypatch.setenv("ASSETBUILD_PLACEHOLDER_LOG", str(project.parent / "generations.log"))
    return project


def build(*args: str) -> int:
    return main(["run", "-q", *args])


def workspace(force: bool = False) -> Workspace:
    return open_workspace(None, force=force)


def states(force: bool = False) -> dict[str, State]:
    ws = workspace(force)
    return {s.target: s.state for s in ws.planner.plan() + ws.planner.orphans()}


def reasons() -> dict[str, str]:
    ws = workspace()
    return {s.target: s.reason for s in ws.planner.plan() + ws.planner.orphans()}


def log(proj: Path) -> list[str]:
    return generations(proj.parent / "generations.log")


def test_new_project_generates_and_downstream_waits(proj: Path) -> None:
    assert states() == {HERO: State.GENERATE, ATTACK: State.UPSTREAM, ICON: State.GENERATE}
    assert reasons()[HERO] == "new"


def test_after_a_build_everything_is_fresh(proj: Path) -> None:
    assert build() == 0
    assert states() == dict.fromkeys(TARGETS, State.FRESH)


def test_planning_writes_nothing(proj: Path) -> None:
    assert build() == 0
    before = snapshot(proj)
    ws = workspace()
    ws.planner.plan()
    ws.planner.orphans()
    assert snapshot(proj) == before


def test_missing_file_is_restored_from_the_cache(proj: Path) -> None:
    assert build() == 0
    (proj / ICON).unlink()
    assert states()[ICON] == State.RESTORE
    assert reasons()[ICON] == "file missing"
    shutil.rmtree(proj / ".assetbuild" / "cache")
    assert states()[ICON] == State.GENERATE


def test_changed_then_reverted_prompt(proj: Path) -> None:
    assert build() == 0
    write_manifest(proj, QUICKSTART.replace("a steel sword icon", "a bronze sword icon"))
    assert states()[ICON] == State.GENERATE
    assert reasons()[ICON] == "inputs changed"
    assert build() == 0
    write_manifest(proj, QUICKSTART)
    assert states()[ICON] == State.RESTORE  # the old image is still in the cache


def test_upstream_change_makes_downstream_wait(proj: Path) -> None:
    assert build() == 0
    write_manifest(proj, QUICKSTART.replace("seed = 42", "seed = 43"))
    assert states() == {HERO: State.GENERATE, ATTACK: State.UPSTREAM, ICON: State.FRESH}


def test_edited_file_is_modified(proj: Path) -> None:
    assert build() == 0
    with open(proj / ICON, "ab") as handle:
        handle.write(b"edited")
    assert states()[ICON] == State.MODIFIED
    assert reasons()[ICON] == "edited after assetbuild wrote it"
    forced = states(force=True)
    assert forced[ICON] == State.RESTORE  # --force: replace it with the cached image


def test_hand_made_file_is_modified(proj: Path) -> None:
    (proj / "ui").mkdir()
    (proj / ICON).write_bytes(b"my own icon")
    assert states()[ICON] == State.MODIFIED
    assert reasons()[ICON] == "not written by assetbuild (no lock entry)"
    assert states(force=True)[ICON] == State.GENERATE


def test_edited_upstream_holds_back_its_downstream(proj: Path) -> None:
    assert build() == 0
    (proj / HERO).write_bytes(b"hand painted")
    assert states() == {HERO: State.MODIFIED, ATTACK: State.UPSTREAM, ICON: State.FRESH}


def test_our_file_without_lock_entry_is_adopted(proj: Path) -> None:
    assert build() == 0
    (proj / "assets.lock").unlink()
    assert states() == {HERO: State.ADOPT, ATTACK: State.ADOPT, ICON: State.ADOPT}
    assert build() == 0
    assert len(log(proj)) == 3  # the first build's three generations; nothing regenerated
    assert states() == dict.fromkeys(TARGETS, State.FRESH)


def test_rebuilt_file_whose_lock_commit_was_lost_is_adopted_not_modified(proj: Path) -> None:
    # A run killed after renaming the new image into place but before committing the lock: the lock still
    # holds the entry of the previous build. The file is ours (it equals the cache entry of its current
    # key) and must be recorded, not reported as edited by hand.
    assert build() == 0
    write_manifest(proj, QUICKSTART.replace("a steel sword icon", "a bronze sword icon"))
    ws = workspace()
    ws.lock.commit = lambda *args, **kwargs: None  # type: ignore[method-assign]  # "killed" before the commit
    builder = Builder(ws, lambda: generators.create(ws.project.server), PlainDisplay(quiet=True))
    assert builder.build(ICON) == "generated"
    status = {s.target: s for s in workspace().planner.plan()}[ICON]
    assert status.state == State.ADOPT
    assert status.entry is not None and status.entry.key != status.key
    count = len(log(proj))
    assert build() == 0
    assert len(log(proj)) == count  # recorded, not generated again
    assert states()[ICON] == State.FRESH


def test_builder_keeps_each_outcome_and_error_for_the_reporter(proj: Path) -> None:
    # The doit reporter reads results through builder.Outcomes only: what build() returned or raised.
    from assetbuild.errors import ModifiedFileError

    (proj / "sprites").mkdir()
    (proj / HERO).write_bytes(b"drawn by hand")
    ws = workspace()
    builder = Builder(ws, lambda: generators.create(ws.project.server), PlainDisplay(quiet=True))
    assert (builder.outcome(ICON), builder.error(ICON), builder.seconds(ICON)) == ("fresh", None, 0.0)
    assert builder.build(ICON) == "generated"
    assert (builder.outcome(ICON), builder.error(ICON)) == ("generated", None)
    assert builder.seconds(ICON) > 0
    with pytest.raises(ModifiedFileError) as raised:
        builder.build(HERO)
    assert builder.error(HERO) is raised.value
    assert builder.outcome(HERO) == "fresh"  # nothing was built for it
    assert (proj / HERO).read_bytes() == b"drawn by hand"


def test_orphans(proj: Path) -> None:
    assert build() == 0
    without_icon = QUICKSTART.split('[assets."ui/icon_sword.png"]')[0]
    write_manifest(proj, without_icon)
    assert states() == {HERO: State.FRESH, ATTACK: State.FRESH, ICON: State.ORPHAN}
    assert reasons()[ICON] == "entry removed from the manifest"
    (proj / ICON).write_bytes(b"edited since")
    assert reasons()[ICON].endswith("(kept)")
    (proj / ICON).unlink()
    assert reasons()[ICON] == "file already gone"


def test_changed_source_image_makes_the_asset_stale(proj: Path) -> None:
    (proj / "refs").mkdir()
    (proj / "refs" / "pose.png").write_bytes(b"pose v1")
    body = QUICKSTART + '\n[assets."pose.png"]\nprompt = "posed"\ninitimage = "refs/pose.png"\n'
    write_manifest(proj, body)
    assert build() == 0
    assert states()["pose.png"] == State.FRESH
    (proj / "refs" / "pose.png").write_bytes(b"pose v2")
    assert states()["pose.png"] == State.GENERATE


def test_damaged_cache_entry_is_never_restored(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build() == 0
    ws = workspace()
    key = {s.target: s.key for s in ws.planner.plan()}[ICON]
    assert key is not None
    entry = ws.cache.path_of(key)
    raw = entry.read_bytes()
    entry.write_bytes(raw[:-10] + b"0123456789")  # same size, other bytes
    good = (proj / ICON).read_bytes()
    (proj / ICON).unlink()
    assert states()[ICON] == State.RESTORE
    count = len(log(proj))
    capsys.readouterr()
    assert main(["run", ICON]) == 0
    out = capsys.readouterr().out
    assert "damaged" in out
    assert len(log(proj)) == count + 1  # generated again instead
    assert (proj / ICON).read_bytes() == good


def test_closure_adds_upstream_in_dependency_order(proj: Path) -> None:
    project = workspace().project
    assert closure(project, [ATTACK]) == [HERO, ATTACK]
    assert closure(project, [ICON]) == [ICON]
    assert closure(project, [ICON, ATTACK]) == list(TARGETS)


def test_explain_names_changed_fields() -> None:
    old = {"v": 1, "generator": "placeholder",
           "params": {"steps": 20, "prompt": "a knight in silver armor", "model": "sdxl", "seed": 1},
           "inputs": {"initimage": "aaaa"}, "post": {"format": "PNG"}}
    new = {"v": 1, "generator": "swarmui",
           "params": {"steps": 30, "prompt": "a knight in golden armor, running", "model": "sdxl",
                      "sampler": "euler"},
           "inputs": {"initimage": "bbbb", "maskimage": "cccc"},
           "post": {"format": "PNG", "resize": {"size": [64, 64]}}}
    lines = explain(old, new)
    assert "steps: 20 -> 30" in lines
    assert "prompt: a knight in [-silver armor-] {+golden armor, running+}" in lines
    assert "generator: placeholder -> swarmui" in lines
    assert "seed: 1 -> (unset)" in lines
    assert "sampler: (unset) -> 'euler'" in lines
    assert "input initimage: bytes changed" in lines
    assert "input maskimage: added" in lines
    assert any(line.startswith("post resize: (unset) -> ") for line in lines)
    assert not any(line.startswith("model") for line in lines)
    assert explain(old, old) == []


def test_lock_is_not_rewritten_by_planning_even_with_adopt(proj: Path) -> None:
    assert build() == 0
    lock_path = proj / "assets.lock"
    lock_path.unlink()
    workspace().planner.plan()
    assert not lock_path.exists()
    assert Lock.load(lock_path).targets() == []
