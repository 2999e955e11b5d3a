"""gc never loses art (issue 12.8): what any project sharing the cache needs stays, also after `clean`;
recently used entries stay (grace period); --dry-run says what and why."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import run_cli, write_manifest
from helpers import generations

from assetbuild.cache import Cache


def manifest(word: str) -> str:
    return f"""
        [server]
        url = "placeholder"
        [assets."hero.png"]
        prompt = "a {word} hero"
        width = 64
        height = 64
        [assets."hero_small.png"]
        source = "hero.png"
        resize = [32, 32]
        [assets."hero_night.png"]
        prompt = "the {word} hero at night"
        initimage = "hero.png"
        width = 64
        height = 64
    """


def keys(cache: Path) -> set[str]:
    return {entry.key for entry in Cache(cache).entries()}


def age(cache: Path, days: float) -> None:
    """Make every entry look unused for ``days`` (as if the grace period had passed)."""
    then = time.time() - days * 86400
    for entry in Cache(cache).entries():
        os.utime(entry.path, (then, then))


def two_projects_sharing_a_cache(tmp_path: Path) -> tuple[Path, dict[str, str], Path, Path]:
    """Projects one (red) and two (blue), each built once into one shared cache folder."""
    shared = tmp_path / "shared-cache"
    env = {"ASSETBUILD_CACHE_DIR": str(shared)}
    one, two = tmp_path / "one", tmp_path / "two"
    for root, word in ((one, "red"), (two, "blue")):
        root.mkdir()
        write_manifest(root, manifest(word))
        assert run_cli(root, "-q", env=env).returncode == 0
    return shared, env, one, two


def test_gc_in_one_project_keeps_what_another_project_sharing_the_cache_needs(tmp_path: Path) -> None:
    shared, env, one, two = two_projects_sharing_a_cache(tmp_path)
    before = keys(shared)
    assert len(before) == 6
    write_manifest(two, manifest("green"))  # two's blue images are now needed by nobody
    assert run_cli(two, "-q", env=env).returncode == 0
    age(shared, 30)
    for image in (two / "hero.png", two / "hero_small.png", two / "hero_night.png"):
        image.unlink()  # images not committed: the cache is the only copy of two's art
    dry = run_cli(one, "gc", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would remove 3 entries" in dry.stdout
    assert "needed by none of 2 projects" in dry.stdout
    assert f"needed by {two}" in dry.stdout and "in assets.lock" in dry.stdout
    assert run_cli(one, "gc", env=env).returncode == 0
    log = tmp_path / "gen.log"
    result = run_cli(two, env={**env, "ASSETBUILD_PLACEHOLDER_LOG": str(log)})
    assert result.returncode == 0 and "3 restored" in result.stdout, result.stdout
    assert generations(log) == []  # nothing had to be generated again: two's art survived one's gc
    assert len(keys(shared)) == 6


def test_a_project_that_only_finds_everything_fresh_registers_too(tmp_path: Path) -> None:
    shared, env, one, two = two_projects_sharing_a_cache(tmp_path)
    for registration in (shared / "projects").iterdir():  # as if built by a version without registration
        registration.unlink()
    (two / ".assetbuild" / "noop.json").unlink()
    assert run_cli(two, "-q", env=env).returncode == 0  # nothing to build: it still registers
    age(shared, 30)
    assert run_cli(one, "gc", "--keep-days", "0", env=env).returncode == 0
    assert len(keys(shared)) == 6


def test_a_registered_project_that_is_gone_is_forgotten(tmp_path: Path) -> None:
    shared, env, one, two = two_projects_sharing_a_cache(tmp_path)
    (two / "assets.toml").unlink()
    age(shared, 30)
    result = run_cli(one, "gc", "--keep-days", "0", env=env)
    assert result.returncode == 0, result.stderr
    assert "forgot a project that no longer exists" in result.stdout
    assert "removed 3 entries" in result.stdout and len(keys(shared)) == 3


def test_gc_after_clean_keeps_every_entry_the_manifest_would_use(project: Path) -> None:
    write_manifest(project, manifest("red"))
    assert run_cli(project, "-q").returncode == 0
    cache = project / ".assetbuild" / "cache"
    assert len(keys(cache)) == 3
    assert run_cli(project, "clean").returncode == 0
    assert not (project / "hero.png").exists() and "hero.png" not in (project / "assets.lock").read_text()
    age(cache, 365)
    result = run_cli(project, "gc", "--keep-days", "0")
    assert result.returncode == 0, result.stderr
    assert "removed 0 entries" in result.stdout and "used by assets.toml" in result.stdout
    assert len(keys(cache)) == 3  # the derived and the initimage-built assets' keys included
    log = project.parent / "gen.log"
    rebuilt = run_cli(project, env={"ASSETBUILD_PLACEHOLDER_LOG": str(log)})
    assert rebuilt.returncode == 0 and "3 restored" in rebuilt.stdout, rebuilt.stdout
    assert generations(log) == []


def test_recently_used_entries_are_kept_by_default(project: Path) -> None:
    write_manifest(project, manifest("red"))
    assert run_cli(project, "-q").returncode == 0
    write_manifest(project, manifest("blue"))
    assert run_cli(project, "-q").returncode == 0
    cache = project / ".assetbuild" / "cache"
    assert len(keys(cache)) == 6
    kept = run_cli(project, "gc", "--dry-run")
    assert "would remove 0 entries" in kept.stdout and "kept 3: used in the last 14 days" in kept.stdout
    assert run_cli(project, "gc").returncode == 0 and len(keys(cache)) == 6
    assert run_cli(project, "gc", "--keep-days", "0").returncode == 0 and len(keys(cache)) == 3
    assert run_cli(project, "gc", "--keep-days", "-1").returncode == 2
