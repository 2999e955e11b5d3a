"""Names and server text that try to forge output (issue 12 item 4): newlines, ANSI escapes, other C0/C1
controls and bidi overrides in target names and in what a server says are shown escaped in plain, rich and
JSON output (JSON still parses back to the real name); NFC/NFD twins are refused like case-only twins.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest
from rich.console import Console

from assetbuild.display.jsonl import JsonDisplay
from assetbuild.display.live import LiveDisplay
from assetbuild.display.plain import PlainDisplay
from assetbuild.events import Failure, Summary
from assetbuild.generators.base import Progress
from assetbuild.safetext import safe_json, safe_text
from assetbuild.testing import FakeSwarm

pytestmark = pytest.mark.timeout(120)

FORGED_LINE = "done: 99 generated, 0 restored, 0 fresh in 0.01s"
HOSTILE = [
    f"x.png\n{FORGED_LINE}\ny.png",   # a fake summary line in a CI log
    "\x1b[31mred\x1b[0m\x1b[2J.png",  # ANSI colours and clear-screen
    "c1\x9b31m\x85.png",              # C1 CSI and NEL
    "bidi\u202egnp.png",              # right-to-left override: reads "bidi" + "png.exe"-style tricks
    "tab\tcr\rbell\x07del\x7f.png",
    "iso\u2066late\u2069\u200f.png",
]
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def assert_clean(text: str) -> None:
    """No control or bidi character anywhere (newlines only as line ends), and no forged summary line."""
    assert not UNSAFE.search(text), repr(UNSAFE.search(text))
    assert not any(line.startswith("done: 99") for line in text.splitlines())


# ------------------------------------------------------------------------------------ the helper

@pytest.mark.parametrize("name", HOSTILE)
def test_safe_text_escapes_every_control_and_bidi_character(name: str) -> None:
    shown = safe_text(name)
    assert_clean(shown)
    assert "\n" not in shown
    assert safe_text("sprites/héro ü.png") == "sprites/héro ü.png"  # ordinary non-ASCII stays readable


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_json_parses_back_to_the_real_name(name: str) -> None:
    text = safe_json({"target": name}, ensure_ascii=False)
    assert_clean(text)
    assert json.loads(text) == {"target": name}


# ----------------------------------------------------------------------- the three displays

def _drive(display: PlainDisplay | JsonDisplay | LiveDisplay) -> None:
    display.run_started(len(HOSTILE), len(HOSTILE))
    for name in HOSTILE:
        display.asset_started(name)
        display.asset_progress(name, Progress("generating", 0.5))
        display.asset_failed(name, Failure(name, f"server said: {name}", hint=f"hint {name}"))
        display.warning(f"warning about {name}")
    summary = Summary(failed=len(HOSTILE))
    summary.failures = [Failure(name, f"server said: {name}", hint=name) for name in HOSTILE]
    display.run_finished(summary)


def test_plain_display_escapes_names_and_messages() -> None:
    out = io.StringIO()
    _drive(PlainDisplay(out, progress_interval=0))
    assert_clean(out.getvalue())
    assert "x.png\\ndone: 99" in out.getvalue()


def test_json_display_escapes_and_keeps_the_real_names() -> None:
    out = io.StringIO()
    _drive(JsonDisplay(out))
    assert_clean(out.getvalue())
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["target"] for r in records if r["event"] == "asset_started"] == HOSTILE


def test_rich_display_escapes_names_and_messages() -> None:
    console = Console(record=True, width=300, file=io.StringIO(), force_terminal=True, color_system=None)
    display = LiveDisplay(console, auto_refresh=False)
    display.run_started(len(HOSTILE), len(HOSTILE))
    for name in HOSTILE:
        display.asset_started(name)
    console.print(display)  # the live area, as it would be drawn
    for name in HOSTILE:
        display.asset_finished(name, "generated", 0.1)
    display.asset_failed(HOSTILE[0], Failure(HOSTILE[0], HOSTILE[1], hint=HOSTILE[2]))
    display.warning(HOSTILE[3])
    summary = Summary(generated=len(HOSTILE))
    summary.failures = [Failure(name, name, hint=name) for name in HOSTILE]
    display.run_finished(summary)
    text = console.export_text(styles=False)
    assert_clean(text)
    assert "x.png\\ndone: 99" in text


# ---------------------------------------------------------------------------- real CLI runs

def hostile_manifest(project: Path) -> None:
    body = '[defaults]\nwidth = 64\nheight = 64\n\n'
    for n, name in enumerate(HOSTILE):
        body += f'[assets.{json.dumps(name)}]\nprompt = "p {n}"\n\n'
    write_manifest(project, body)


def test_cli_outputs_never_carry_a_control_character_from_a_name(project: Path) -> None:
    hostile_manifest(project)
    outputs = []
    for args in (["run"], ["run", "--force"], ["run", "--json", "--force"], ["status"], ["status", "--json"],
                 ["list"], ["why", HOSTILE[0]], ["clean", "--dry-run"]):
        result = run_cli(project, *args, "--server", "placeholder")
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        outputs.append(result.stdout + result.stderr)
    for text in outputs:
        assert_clean(text)
    assert all((project / name).is_file() for name in HOSTILE)  # real files with the real names
    statuses = [json.loads(line) for line in outputs[4].splitlines()]
    assert sorted(s["target"] for s in statuses) == sorted(HOSTILE)
    edited = project / HOSTILE[1]
    edited.write_bytes(edited.read_bytes() + b"x")
    for args in (["run"], ["why", HOSTILE[1]], ["clean"]):
        result = run_cli(project, *args, "--server", "placeholder")
        assert_clean(result.stdout + result.stderr)
        assert "red" in result.stdout + result.stderr


def test_error_lines_escape_names(project: Path) -> None:
    write_manifest(project, f'[assets.{json.dumps(HOSTILE[0])}]\nprompt = "a"\nstyle = "nope"\n')
    result = run_cli(project, "run", "--server", "placeholder")
    assert result.returncode == 2
    assert_clean(result.stdout + result.stderr)


@pytest.fixture
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, latency=0.05, steps=2, close_delay=0.05) as server:
        yield server


def test_server_text_is_escaped(project: Path, fake: FakeSwarm) -> None:
    message = f"ok\n{FORGED_LINE}\x1b[2J\u202e"
    fake.answer_next("GetCurrentStatus", json.dumps({"backend_status": {"status": "running", "message": message},
                                                     "supported_features": [message]}))
    result = run_cli(project, "server", "status", "--server", fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_clean(result.stdout)
    assert "ok\\ndone: 99" in result.stdout
    fake.answer_next("GetCurrentStatus", json.dumps({"backend_status": {"status": "running", "message": message}}))
    result = run_cli(project, "server", "status", "--json", "--server", fake.url)
    assert_clean(result.stdout)
    assert json.loads(result.stdout)["backend_message"] == message
    fake.answer_next("ListModels", json.dumps({"folders": [], "files": [{"name": message, "architecture": message}]}))
    result = run_cli(project, "models", "--server", fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_clean(result.stdout)


def test_server_error_message_is_escaped_in_a_build(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n\n'
                            '[assets."a.png"]\nprompt = "a"\n')
    fake.send_ws_frames(json.dumps({"error": f"bad\n{FORGED_LINE}\x1b[2J"}))
    result = run_cli(project, "run", "--server", fake.url)
    assert result.returncode == 1
    assert_clean(result.stdout + result.stderr)
    assert "bad\\ndone: 99" in result.stdout + result.stderr


# --------------------------------------------------------------------------------- NFC / NFD twins

def test_nfc_nfd_twins_are_refused_naming_both_lines(project: Path) -> None:
    nfc, nfd = "caf\u00e9.png", "cafe\u0301.png"
    write_manifest(project, f'[assets."{nfc}"]\nprompt = "a"\n\n[assets."{nfd}"]\nprompt = "b"\n')
    result = run_cli(project, "run", "--server", "placeholder")
    assert result.returncode == 2
    assert "assets.toml:4:" in result.stderr and "(line 1)" in result.stderr
    assert "Unicode normalisation" in result.stderr
    assert "cafe\\u0301.png" in result.stderr and "caf\\xe9.png" in result.stderr
    assert not list(project.glob("*.png"))


def test_case_twins_name_both_lines(project: Path) -> None:
    write_manifest(project, '[assets."Hero.png"]\nprompt = "a"\n\n[assets."hero.png"]\nprompt = "b"\n')
    result = run_cli(project, "run", "--server", "placeholder")
    assert result.returncode == 2
    assert "assets.toml:4:" in result.stderr and "'Hero.png' (line 1)" in result.stderr


def test_verbose_debug_lines_escape_server_text(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n\n'
                            '[assets."a.png"]\nprompt = "a"\n')
    # The debug log quotes the server's version; this session id is unknown, so the client renews it.
    fake.answer_next("GetNewSession", json.dumps({"session_id": "0" * 40, "version": f"1\n{FORGED_LINE}\x1b[2J"}))
    result = run_cli(project, "-v", "run", "--server", fake.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1\\ndone: 99" in result.stderr
    assert_clean(result.stdout + result.stderr)
