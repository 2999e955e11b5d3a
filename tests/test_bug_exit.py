"""An unexpected exception is a bug: exit 3, one line naming where the traceback was written (the project's
.assetbuild/crash.log, else the user's cache folder), secrets removed, the traceback on screen only with -v."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_manifest

API_KEY = "sk-crash-test-0123456789"
URL_PASSWORD = "hunter2pass"

# A real process whose `status` command hits an unexpected error mentioning secrets.
CRASHING_CLI = f"""
import os, sys
from assetbuild.commands import status

def broken(*args, **kwargs):
    raise RuntimeError("boom at http://me:{URL_PASSWORD}@example.com with " + os.environ["ASSETBUILD_API_KEY"])

status.show_status = broken
from assetbuild.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def crash(cwd: Path, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASSETBUILD_API_KEY": API_KEY, "XDG_CACHE_HOME": str(cache)}
    return subprocess.run([sys.executable, "-c", CRASHING_CLI, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def placeholder_project(project: Path) -> Path:
    write_manifest(project, """
        [server]
        url = "placeholder"

        [assets."hero.png"]
        prompt = "a hero"
    """)
    return project


def test_a_bug_exits_3_with_one_line_and_the_log_in_the_project(placeholder_project: Path, tmp_path: Path) -> None:
    result = crash(placeholder_project, "status", cache=tmp_path / "cache")
    assert result.returncode == 3
    log = placeholder_project / ".assetbuild" / "crash.log"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "bug" in lines[0] and str(log) in lines[0] and "RuntimeError" in lines[0]
    assert "Traceback" not in result.stderr
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "in broken" in text and "command: status" in text
    for secret in (API_KEY, URL_PASSWORD):
        assert secret not in text and secret not in result.stderr
    assert "http://me:****@example.com" in text
    if hasattr(os, "getuid"):
        assert log.stat().st_mode & 0o077 == 0
    assert not (tmp_path / "cache").exists()


def test_verbose_shows_the_traceback_without_secrets(placeholder_project: Path, tmp_path: Path) -> None:
    result = crash(placeholder_project, "status", "-v", cache=tmp_path / "cache")
    assert result.returncode == 3
    assert "Traceback (most recent call last)" in result.stderr and "in broken" in result.stderr
    assert API_KEY not in result.stderr and URL_PASSWORD not in result.stderr


def test_outside_a_project_the_log_goes_to_the_user_cache(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    script = CRASHING_CLI.replace("from assetbuild.commands import status", "from assetbuild.commands import config")
    script = script.replace("status.show_status = broken", "config.config = broken")
    env = {**os.environ, "ASSETBUILD_API_KEY": API_KEY, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", script, "config", "view"], cwd=bare, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    log = tmp_path / "cache" / "assetbuild" / "crash.log"
    assert str(log) in result.stderr
    assert "in broken" in log.read_text(encoding="utf-8")
    assert list(bare.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlinks_are_never_followed(placeholder_project: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from assetbuild import crash as crash_log

    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n", encoding="utf-8")
    state = placeholder_project / ".assetbuild"
    state.mkdir()
    (state / "crash.log").symlink_to(outside)
    # A state folder holding a symlink is refused before any command runs (exit 2, issue 12.1) ...
    result = crash(placeholder_project, "status", cache=tmp_path / "cache")
    assert result.returncode == 2 and "symlink" in result.stderr
    assert outside.read_text(encoding="utf-8") == "precious\n"
    # ... and the crash log never writes through one: it goes to the user cache instead.
    monkeypatch.chdir(placeholder_project)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _, log = crash_log.report(RuntimeError("in broken"), manifest=None, command="status")
    assert log == tmp_path / "cache" / "assetbuild" / "crash.log"
    assert outside.read_text(encoding="utf-8") == "precious\n" and (state / "crash.log").is_symlink()
    assert log is not None and "in broken" in log.read_text(encoding="utf-8")

    # A state folder that is itself a symlink is not written through: the user cache gets the log.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for child in state.iterdir():
        child.unlink()
    state.rmdir()
    state.symlink_to(elsewhere, target_is_directory=True)
    result = crash(placeholder_project, "status", cache=tmp_path / "cache")
    assert result.returncode == 2 and "symlink" in result.stderr
    _, log = crash_log.report(RuntimeError("in broken"), manifest=None, command="status")
    assert list(elsewhere.iterdir()) == []
    assert log == tmp_path / "cache" / "assetbuild" / "crash.log"
