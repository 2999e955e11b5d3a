"""`assetbuild server status` and `assetbuild cancel` against the SwarmUI test double (real sockets)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import run_cli, write_manifest
from helpers import cli, free_port

from assetbuild import userconfig
from assetbuild.cli import main
from assetbuild.commands.server_ops import resolve
from assetbuild.testing import FakeSwarm


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, latency=0.02, steps=2, close_delay=0.05) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeSwarm) -> None:
    fake.configure(latency=0.02, backends=1)
    fake.reset_records()


# --- server status -----------------------------------------------------------------------------------


def test_status_of_a_reachable_server(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "server", "status", "--server", fake.url)
    assert code == 0
    assert f"SwarmUI at {fake.url}: reachable" in out
    assert "version:   0.9.7.2.GIT-fakeswar" in out
    assert "backends:  running" in out
    assert "0 queued" in out and "0 generating" in out
    assert fake.request_count("GetNewSession") == 1  # one session, reused for GetCurrentStatus
    assert fake.request_count("GetCurrentStatus") == 1


def test_status_as_json(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "server", "status", "--server", fake.url, "--json")
    data = json.loads(out)
    assert code == 0
    assert data["reachable"] is True and data["url"] == fake.url and data["user"] == "local"
    assert data["backend_status"] == "running"
    assert set(data["counters"]) >= {"waiting_gens", "live_gens", "waiting_backends", "loading_models"}


def test_status_without_backends_shows_the_servers_message(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeSwarm(backends=0, close_delay=0.05) as empty:
        code, out, _ = cli(capsys, "server", "status", "--server", empty.url)
    assert code == 0  # reachable: the server answers, it just cannot generate
    assert "backends:  empty (No backends present." in out


def test_status_of_an_unreachable_server_exits_1_with_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, out, _ = cli(capsys, "server", "status", "--server", url)
    assert code == 1
    assert f"SwarmUI at {url}: NOT reachable" in out and "hint:" in out
    assert time.monotonic() - started < 5  # interactive: gives up quickly
    code, out, _ = cli(capsys, "server", "status", "--server", url, "--json")
    data = json.loads(out)
    assert code == 1 and data["reachable"] is False and url in data["error"]


def test_status_when_the_server_refuses_our_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "Bearer-correct-horse-battery"
    with FakeSwarm(required_authorization=f"Bearer {secret}", close_delay=0.05) as locked:
        code, out, _ = cli(capsys, "server", "status", "--server", locked.url)
        assert code == 1 and "refused" in out and "ASSETBUILD_API_KEY" in out
        userconfig.save({"api-key": secret})
        code, out, err = cli(capsys, "server", "status", "--server", locked.url)
        assert code == 0, out
        assert secret not in out + err


def test_status_of_the_placeholder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "server", "status", "--server", "placeholder")
    assert code == 0 and "placeholder" in out


def test_server_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["server"])
    assert exc.value.code == 2


def test_status_in_a_real_process_uses_the_manifest_server(fake: FakeSwarm, project: Path) -> None:
    write_manifest(project, f'[server]\nurl = "{fake.url}"\n\n[assets."a.png"]\nprompt = "a"\n')
    result = run_cli(project, "server", "status")
    assert result.returncode == 0, result.stderr
    assert f"SwarmUI at {fake.url}: reachable" in result.stdout
    down = run_cli(project, "server", "status", "--server", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and "NOT reachable" in down.stdout and "Traceback" not in down.stderr


def test_bad_server_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "cancel", "--server", "localhost:7801")
    assert code == 2 and "not an http(s) URL" in err


# --- which server: resolution -----------------------------------------------------------------------------


def test_resolve_follows_the_build_precedence(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    assert resolve(None, None).url == "http://localhost:7801"  # no manifest anywhere: fine
    userconfig.save({"server": "http://config:1", "token": "tok-123"})
    target = resolve(None, None)
    assert target.url == "http://config:1" and target.credentials.token == "tok-123"
    write_manifest(project, '[server]\nurl = "http://manifest:2"\nwebsocket = false\n')
    target = resolve(None, None)
    assert target.url == "http://manifest:2" and target.settings.websocket is False
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")  # found in a parent folder, like a build finds it
    assert resolve(None, None).url == "http://manifest:2"
    monkeypatch.setenv("ASSETBUILD_SERVER", "http://env:3")
    assert resolve(None, None).url == "http://env:3"
    assert resolve(None, "http://option:4").url == "http://option:4"


# --- cancel -----------------------------------------------------------------------------------------------


def _generate_in_background(url: str, results: list[Any]) -> threading.Thread:
    """A generation from another client (its own session), as a running build or the web UI would."""

    def work() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            session = client.post("/API/GetNewSession", json={}).json()["session_id"]
            answer = client.post("/API/GenerateText2Image", json={
                "session_id": session, "images": 1, "prompt": "a long one", "model": "sd_xl_base_1.0",
                "donotsave": True})
            results.append(answer.json())

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_cancel_interrupts_this_users_work_in_other_sessions(fake: FakeSwarm,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    fake.configure(latency=30)
    results: list[Any] = []
    thread = _generate_in_background(fake.url, results)
    deadline = time.monotonic() + 10
    while not fake.live_gens and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.live_gens == 1, "the background generation never started"

    code, out, _ = cli(capsys, "cancel", "--server", fake.url)
    assert code == 0
    assert "interrupt every queued and running generation of user 'local'" in out
    thread.join(10)
    assert not thread.is_alive()
    assert fake.wait_idle(5)
    assert fake.interrupts == 1
    bodies = [r.body for r in fake.requests if r.route == "InterruptAll"]
    assert bodies == [{"other_sessions": True}]
    assert results == [{"error": "Generation session interrupted."}]


def test_cancel_with_nothing_running_is_fine(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "cancel", "--server", fake.url)
    assert code == 0 and "InterruptAll" in out
    assert fake.interrupts == 1


def test_cancel_against_an_unreachable_server_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = cli(capsys, "cancel", "--server", url)
    assert code == 1 and url in err and "Traceback" not in err


def test_cancel_with_the_placeholder_has_nothing_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "cancel", "--server", "placeholder")
    assert code == 0 and "nothing to cancel" in out
