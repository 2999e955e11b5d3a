"""What a new user hits first (issue 11): each test reproduces one point, mostly as a real CLI run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest
from helpers import free_port, generations

from assetbuild.keys import hash_bytes
from assetbuild.testing import FakeSwarm

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


# --- 3. run --rebuild TARGET... --------------------------------------------------------------------------

REBUILD = """
[server]
url = "placeholder"

[defaults]
width = 64
height = 64

[assets."roll.png"]
prompt = "a random roll"

[assets."fixed.png"]
prompt = "a fixed seed"
seed = 7

[assets."after.png"]
prompt = "made from the roll"
initimage = "roll.png"
"""


def _lock(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / "assets.lock").read_text(encoding="utf-8"))["assets"])


def _cli(root: Path, log: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(root, *args, env={"ASSETBUILD_PLACEHOLDER_LOG": str(log)})
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_rebuild_generates_fresh_targets_again_bypassing_the_cache(project: Path, tmp_path: Path) -> None:
    write_manifest(project, REBUILD)
    log = tmp_path / "generations.log"
    assert _cli(project, log).returncode == 0
    first = _lock(project)
    assert first["roll.png"]["seed"] >= 0  # seed -1: the lock records the seed actually used
    old_roll = (project / "roll.png").read_bytes()
    log.unlink()

    result = _cli(project, log, "run", "--rebuild", "roll.png", "fixed.png")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(generations(log)) == ["fixed.png", "roll.png"]  # both were fresh and cached
    second = _lock(project)
    assert second["roll.png"]["seed"] != first["roll.png"]["seed"]
    assert second["roll.png"]["seed"] >= 0
    assert second["roll.png"]["hash"] == hash_bytes((project / "roll.png").read_bytes())
    assert (project / "roll.png").read_bytes() != old_roll
    assert second["fixed.png"]["seed"] == 7

    # The new roll is what the cache now holds: clean + run restores it, and its dependent is stale.
    log.unlink()
    new_roll = (project / "roll.png").read_bytes()
    assert _cli(project, log, "clean", "roll.png").returncode == 0
    assert _cli(project, log).returncode == 0
    assert (project / "roll.png").read_bytes() == new_roll
    assert generations(log) == ["after.png"]  # its input changed; roll.png came from the cache
    log.unlink()
    again = _cli(project, log)
    assert again.returncode == 0 and generations(log) == []


def test_rebuild_does_not_replace_a_hand_made_file_without_force(project: Path, tmp_path: Path) -> None:
    write_manifest(project, REBUILD)
    log = tmp_path / "generations.log"
    assert _cli(project, log).returncode == 0
    (project / "fixed.png").write_bytes(b"my own drawing")
    refused = _cli(project, log, "run", "--rebuild", "fixed.png")
    assert refused.returncode == 1
    assert "--force" in refused.stdout
    assert (project / "fixed.png").read_bytes() == b"my own drawing"
    forced = _cli(project, log, "run", "--rebuild", "--force", "fixed.png")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert (project / "fixed.png").read_bytes() != b"my own drawing"


def test_rebuild_needs_named_targets(project: Path, tmp_path: Path) -> None:
    write_manifest(project, REBUILD)
    result = _cli(project, tmp_path / "log", "run", "--rebuild")
    assert result.returncode == 2
    assert "name them" in result.stderr
    assert not (project / "roll.png").exists()


def test_rebuild_records_the_seed_the_server_used(project: Path) -> None:
    with FakeSwarm(backends=1, latency=0.05, steps=4, close_delay=0.05, model_load_delay=0.01) as fake:
        write_manifest(project, '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\nsteps = 4\n'
                       '[assets."roll.png"]\nprompt = "a random roll"\nseed = -1\n')
        assert run_cli(project, "--server", fake.url).returncode == 0
        first = _lock(project)["roll.png"]
        result = run_cli(project, "run", "--server", fake.url, "--rebuild", "roll.png")
        assert result.returncode == 0, result.stdout + result.stderr
        second = _lock(project)["roll.png"]
    assert first["seed"] >= 0 and second["seed"] >= 0
    assert first["seed"] != second["seed"]
    assert first["key"] == second["key"] and first["hash"] != second["hash"]


# --- 2. assets never attempted are counted, with why ----------------------------------------------------

STOPS = """
[server]
url = "placeholder"

[defaults]
width = 64
height = 64

[assets."broken.png"]
prompt = "cropped outside the image"
crop = [0, 0, 500, 500]

[assets."a.png"]
prompt = "a"

[assets."b.png"]
prompt = "b"
"""


def test_stopping_at_the_first_failure_counts_what_was_not_built(project: Path, tmp_path: Path) -> None:
    write_manifest(project, STOPS)
    result = _cli(project, tmp_path / "log", "-n", "1")
    assert result.returncode == 1
    assert "2 not built (stopped after the first failure; --keep-going builds the rest)" in result.stdout
    as_json = _cli(project, tmp_path / "log", "-n", "1", "--json")
    finished = json.loads(as_json.stdout.splitlines()[-1])
    assert finished["event"] == "run_finished"
    assert (finished["failed"], finished["not_built"]) == (1, 2)
    assert "--keep-going" in finished["not_built_reason"]
    kept_going = _cli(project, tmp_path / "log", "--keep-going", "--json")
    assert json.loads(kept_going.stdout.splitlines()[-1])["not_built"] == 0


def test_server_down_counts_what_was_not_built(project: Path) -> None:
    write_manifest(project, STOPS.replace('url = "placeholder"', 'url = "http://127.0.0.1:9"'))
    result = run_cli(project, "-n", "1", "--server", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "2 not built (stopped after the first failure" in result.stdout


def test_interrupt_counts_what_was_not_built(project: Path) -> None:
    with FakeSwarm(backends=1, latency=1.5, steps=6, close_delay=0.05, model_load_delay=0.01) as fake:
        body = '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\nsteps = 4\n'
        body += "".join(f'[assets."a{n}.png"]\nprompt = "asset {n}"\nseed = {n + 1}\n' for n in range(4))
        write_manifest(project, body)
        process = subprocess.Popen([sys.executable, "-m", "assetbuild", "run", "-n", "1", "--server", fake.url],
                                   cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ})
        try:
            deadline = time.monotonic() + 60
            while not fake.active_jobs() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert process.poll() is None
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130, out + err
    assert re.search(r"[1-4] not built \(interrupted; run again to build the rest\)", out), out
