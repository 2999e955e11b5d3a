"""Hostile repositories (issue 12.1): a cloned repo that plants `.assetbuild/` must never make assetbuild
write, rename or delete anything outside the project. Each attack is a real git repository, cloned."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")

MANIFEST = """
[server]
url = "placeholder"
[assets."$(touch PWNED).png"]
prompt = "a hero"
width = 64
height = 64
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main",
                    *args], cwd=cwd, check=True, capture_output=True)


def hostile_clone(tmp_path: Path, plant: dict[str, str]) -> Path:
    """A repository whose commit holds assets.toml and ``.assetbuild/NAME -> TARGET`` symlinks (forced
    past the folder's own .gitignore), cloned for real; returns the clone."""
    origin = tmp_path / "origin"
    origin.mkdir()
    write_manifest(origin, MANIFEST)
    state = origin / ".assetbuild"
    state.mkdir()
    for name, target in plant.items():
        (state / name).symlink_to(target)
    git(origin, "init", "-q")
    git(origin, "add", "-f", ".")
    git(origin, "commit", "-q", "-m", "innocent")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    for name in plant:
        assert (clone / ".assetbuild" / name).is_symlink()  # the clone really carries the planted link
    return clone


def test_planted_intents_symlink_to_a_shell_profile_is_refused(tmp_path: Path) -> None:
    profile = tmp_path / "home" / ".bashrc"
    profile.parent.mkdir()
    profile.write_text("export PATH=$PATH\n")
    clone = hostile_clone(tmp_path, {"intents.jsonl": str(profile)})
    result = run_cli(clone, env={"HOME": str(profile.parent)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "symlink" in result.stderr and "intents.jsonl" in result.stderr
    assert "Traceback" not in result.stderr
    assert profile.read_text() == "export PATH=$PATH\n"
    assert not (clone / "$(touch PWNED).png").exists()


def test_planted_tmp_symlink_does_not_let_gc_delete_the_users_files(tmp_path: Path) -> None:
    victim = tmp_path / "home"
    victim.mkdir()
    old = time.time() - 30 * 86400
    for name in ("thesis.docx", "photo.jpg"):
        (victim / name).write_text("precious")
        os.utime(victim / name, (old, old))
    clone = hostile_clone(tmp_path, {"tmp": str(victim)})
    for command in ("gc", "clean", "run"):
        result = run_cli(clone, command)
        assert result.returncode == 2, command + result.stdout + result.stderr
        assert "symlink" in result.stderr, result.stderr
    assert sorted(p.name for p in victim.iterdir()) == ["photo.jpg", "thesis.docx"]


def test_dangling_doit_db_symlink_creates_nothing_outside_the_project(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "created.json"
    outside.parent.mkdir()
    clone = hostile_clone(tmp_path, {"doit.json": str(outside)})
    result = run_cli(clone)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "doit.json" in result.stderr
    assert not outside.exists()


def commit_state_folder(repo: Path, project: Path) -> None:
    """A git repository at ``repo`` with a project at ``project`` whose state folder was committed."""
    project.mkdir(parents=True)
    write_manifest(project, MANIFEST)
    (project / ".assetbuild").mkdir()
    (project / ".assetbuild" / "hashes.json").write_text("{}")
    git(repo, "init", "-q")
    git(repo, "add", "-f", ".")
    git(repo, "commit", "-q", "-m", "state committed by mistake")


def test_a_state_folder_tracked_by_git_is_refused_with_the_fix(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    commit_state_folder(origin, origin)
    result = run_cli(origin)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "tracked by git" in result.stderr and "git rm -r --cached .assetbuild" in result.stderr
    git(origin, "rm", "-r", "-q", "--cached", ".assetbuild")
    fixed = run_cli(origin)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


def test_a_state_folder_tracked_by_git_is_refused_in_a_subfolder_or_through_git_dir(tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch
                                                                                   ) -> None:
    """git is asked only when it could find a repository (a .git above the project, or GIT_DIR): both are."""
    from assetbuild.errors import StateError
    from assetbuild.fsutil import refuse_tracked_state

    repo = tmp_path / "repo"
    state = repo / "game" / "art" / ".assetbuild"
    state.mkdir(parents=True)
    (state / "hashes.json").write_text("{}")
    git(repo, "init", "-q")
    git(repo, "add", "-f", ".")
    git(repo, "commit", "-q", "-m", "state committed by mistake")
    with pytest.raises(StateError, match="tracked by git"):
        refuse_tracked_state(state)
    os.rename(repo / ".git", tmp_path / "elsewhere.git")
    refuse_tracked_state(state)  # no repository to be found: nothing tracked
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere.git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(repo))
    with pytest.raises(StateError, match="tracked by git"):
        refuse_tracked_state(state)


def test_a_tracked_state_folder_reached_through_a_symlink_is_refused(tmp_path: Path) -> None:
    """git walks up the real path: a project reached by a symlink to a folder inside a repository is in it,
    though no .git is above the symlink's own path."""
    repo = tmp_path / "repo"
    game = repo / "game"
    commit_state_folder(repo, game)
    outside = tmp_path / "links"
    outside.mkdir()
    (outside / "game").symlink_to(game)
    result = run_cli(tmp_path, "-f", "links/game/assets.toml", "status")  # (a cwd there would be the real path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "tracked by git" in result.stderr


def test_the_write_helpers_never_write_through_a_symlink(tmp_path: Path) -> None:
    """Defence in depth below the state-folder check: each helper refuses or replaces a link itself."""
    from assetbuild.errors import StateError
    from assetbuild.fsutil import append_durably, atomic_write, check_state_dir
    from assetbuild.lock import Lock, LockEntry

    state = tmp_path / ".assetbuild"
    state.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (state / "intents.jsonl").symlink_to(victim)
    with pytest.raises(StateError):
        append_durably(state / "intents.jsonl", b"evil\n")
    with pytest.raises(StateError):
        check_state_dir(state)
    (state / "intents.jsonl").unlink()
    (state / "tmp").symlink_to(tmp_path)
    with pytest.raises(StateError):
        atomic_write(state / "noop.json", b"{}", tmp_dir=state / "tmp")
    (state / "tmp").unlink()
    (state / "lock.journal").symlink_to(victim)
    lock = Lock(tmp_path / "assets.lock")
    lock._file_bytes = 1 << 30  # as for a big lock: commits go through the journal
    with pytest.raises(StateError):
        lock.commit("a.png", LockEntry("k", "h", 1, "m", {}))
    (state / "doit.json").symlink_to(tmp_path / "nowhere.json")  # dangling
    atomic_write(state / "doit.json", b"{}", tmp_dir=state / "tmp")  # replaces the link, never follows it
    assert not (tmp_path / "nowhere.json").exists() and not (state / "doit.json").is_symlink()
    assert victim.read_text() == "keep"


def test_a_target_through_a_symlink_into_the_state_folder_is_refused(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    write_manifest(origin, MANIFEST.replace('"$(touch PWNED).png"', '"art/intents.jsonl"'))
    (origin / "art").symlink_to(".assetbuild")  # inside the project, but into assetbuild's own files
    git(origin, "init", "-q")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "art")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    (clone / ".assetbuild").mkdir()
    result = run_cli(clone)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "reserved for assetbuild's own files" in result.stderr
    assert not (clone / ".assetbuild" / "intents.jsonl").exists()
