"""The CI workflow of docs/ci.md, replayed locally: build, carry the cache to a fresh clone, --frozen."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import run_cli, write_manifest
from helpers import QUICKSTART, TARGETS, generations

GIT = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid"]
REPO = Path(__file__).resolve().parent.parent


def git(cwd: Path, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True)


def test_fresh_clone_with_the_ci_cache_builds_frozen_with_zero_generations(tmp_path: Path) -> None:
    # A developer's repo where images are build outputs: only the manifest and lock are committed.
    dev = tmp_path / "dev"
    dev.mkdir()
    write_manifest(dev, QUICKSTART)
    (dev / ".gitignore").write_text("sprites/\nui/\n", encoding="utf-8")
    ci_cache = tmp_path / "ci-cache"  # what actions/cache saves and restores
    log = tmp_path / "generations.log"
    env = {"ASSETBUILD_CACHE_DIR": str(ci_cache), "ASSETBUILD_PLACEHOLDER_LOG": str(log)}
    assert run_cli(dev, env=env).returncode == 0
    assert sorted(generations(log)) == sorted(TARGETS)
    git(dev, "init", "-q", "-b", "main")
    git(dev, "add", "-A")
    git(dev, "commit", "-qm", "assets")

    # CI: a fresh clone (no images, no .assetbuild), the cache folder restored, then the gate.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(dev), str(clone))
    assert not any((clone / t).exists() for t in TARGETS)
    restored = tmp_path / "restored-cache"
    shutil.copytree(ci_cache, restored)
    log.unlink()
    result = run_cli(clone, "--frozen", env={**env, "ASSETBUILD_CACHE_DIR": str(restored)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert generations(log) == []
    assert all((clone / t).read_bytes() == (dev / t).read_bytes() for t in TARGETS)
    assert "3 restored" in result.stdout

    # Prune and check the pruned cache still serves another fresh clone.
    assert run_cli(clone, "gc", "--keep-ref", "origin/main", env={**env, "ASSETBUILD_CACHE_DIR": str(restored)}
                   ).returncode == 0
    second = tmp_path / "second"
    git(tmp_path, "clone", "-q", str(dev), str(second))
    result = run_cli(second, "--frozen", env={**env, "ASSETBUILD_CACHE_DIR": str(restored)})
    assert result.returncode == 0, result.stdout
    assert generations(log) == []

    # Without the cache the gate fails, generating nothing, and names the assets.
    third = tmp_path / "third"
    git(tmp_path, "clone", "-q", str(dev), str(third))
    result = run_cli(third, "--frozen", env={**env, "ASSETBUILD_CACHE_DIR": str(tmp_path / "empty")})
    assert result.returncode == 1
    assert generations(log) == []
    assert all(t in result.stdout for t in TARGETS)


def test_the_documented_workflow_has_the_steps_the_test_replays() -> None:
    workflow = (REPO / "examples" / "ci" / "assetbuild.yml").read_text(encoding="utf-8")
    assert "key: assetbuild-${{ hashFiles('assets.lock') }}" in workflow
    assert "restore-keys: assetbuild-" in workflow
    assert "assetbuild --frozen" in workflow
    assert "assetbuild gc --keep-ref origin/main" in workflow
    assert "actions/cache/save" in workflow
    docs = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    assert "examples/ci/assetbuild.yml" in docs
