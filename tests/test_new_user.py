"""What a new user hits first (issue 11): each test reproduces one point, mostly as a real CLI run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, write_manifest

ONE_ASSET = """
[assets."a.png"]
prompt = "a"
width = 64
height = 64
"""


# --- 1. a server URL without a scheme -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "environment", "manifest"])
def test_server_url_without_scheme_is_bad_usage_before_any_work(project: Path, how: str) -> None:
    body = ONE_ASSET if how != "manifest" else '[server]\nurl = "localhost:7801"\n' + ONE_ASSET
    write_manifest(project, body)
    args = ["--server", "127.0.0.1:7801"] if how == "option" else []
    env = {"ASSETBUILD_SERVER": "localhost:7801"} if how == "environment" else {}
    result = run_cli(project, *args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "is not an http(s) URL" in result.stderr
    assert "hint: add the scheme: http://" in result.stderr
    assert result.stdout == ""  # nothing started, nothing announced
    assert not (project / "a.png").exists()
    assert not (project / "assets.lock").exists()
