"""Shared fixtures: a clean environment, a project folder, and a way to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ASSETBUILD_* or NO_COLOR from the developer's shell leaks into a test; user config is private."""
    for name in list(os.environ):
        if name.startswith("ASSETBUILD_") or name in ("NO_COLOR", "FORCE_COLOR"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ASSETBUILD_CONFIG_DIR", str(tmp_path / "user-config"))
    yield


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The targets the manifest loader resolves from their tables (those not taken from a memo)."""
    from assetbuild.manifest import loader

    made: list[str] = []
    original = loader.make_asset

    def counting(target: str, *args: Any, **kwargs: Any) -> Any:
        made.append(target)
        return original(target, *args, **kwargs)

    monkeypatch.setattr(loader, "make_asset", counting)
    return made


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder."""
    root = tmp_path / "proj"
    root.mkdir()
    return root


def write_manifest(root: Path, body: str) -> Path:
    """Write assets.toml (dedented) into ``root`` and return its path."""
    path = root / "assets.toml"
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def run_cli(root: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m assetbuild ARGS`` in ``root`` as a real subprocess."""
    full_env = {k: v for k, v in os.environ.items()}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "assetbuild", *args], cwd=root, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One SeaweedFS (S3) server for the session's team-store tests, stopped by its process id at the end;
    tests keep apart by prefix. Skipped, saying what to install, where the ``weed`` binary is missing."""
    from assetbuild.testing.seaweedfs import SeaweedFS, skip_reason

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()
