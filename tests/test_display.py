"""What users see: the rich live view, plain CI lines, JSON events, summaries; rendered and read as text."""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest
from helpers import QUICKSTART
from rich.console import Console

from assetbuild.display import make_display, wants_plain
from assetbuild.display.jsonl import JsonDisplay
from assetbuild.display.live import LiveDisplay, format_seconds, summary_table
from assetbuild.display.plain import PlainDisplay
from assetbuild.events import Failure, Summary
from assetbuild.generators.base import Progress

CONTROL = re.compile(r"\x1b\[|\r")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def recording_console() -> Console:
    return Console(record=True, width=100, file=io.StringIO(), force_terminal=True, color_system=None)


def test_live_view_shows_each_asset_phase_and_the_overall_line() -> None:
    clock = Clock()
    console = recording_console()
    display = LiveDisplay(console, clock=clock, jobs=2, auto_refresh=False)
    display.run_started(total=5, to_build=4)
    for target, progress in [
        ("sprites/hero.png", Progress("generating", 0.42)),
        ("sprites/slime.png", Progress("waiting", detail="waiting for a backend")),
        ("ui/icon.png", Progress("loading")),
        ("ui/potion.png", Progress("queued")),
    ]:
        display.asset_started(target)
        display.asset_progress(target, progress)
    console.print(display)
    text = console.export_text()
    assert re.search(r"sprites/hero\.png\s+generating\s+42%", text)
    assert re.search(r"sprites/slime\.png\s+waiting for a backend", text)
    assert re.search(r"ui/icon\.png\s+loading model", text)
    assert re.search(r"ui/potion\.png\s+queued", text)
    assert "0/4" in text and "elapsed 0s" in text
    assert "ETA" not in text  # no generation finished yet: no basis for an estimate
    display._live.stop()


def test_finished_assets_scroll_above_and_the_eta_uses_observed_times() -> None:
    clock = Clock()
    console = recording_console()
    display = LiveDisplay(console, clock=clock, jobs=2, auto_refresh=False)
    display.run_started(total=4, to_build=4)
    for target in ("a.png", "b.png"):
        display.asset_started(target)
    clock.now += 10
    display.asset_finished("a.png", "generated", 10.0)
    display.asset_finished("b.png", "restored", 0.1)
    display.asset_started("c.png")
    display.asset_started("d.png")
    clock.now += 4
    # One generation took 10 s; c and d have run 4 s each: about 6 s more, spread over 2 slots.
    assert display.eta() == pytest.approx(6.0)
    console.print(display)
    text = console.export_text()
    assert re.search(r"generated a\.png\s+10s", text)
    assert re.search(r"restored b\.png", text)
    assert "2/4" in text and "1 generated" in text and "1 restored" in text and "ETA 6s" in text
    display.run_finished(Summary(generated=1, restored=1, failed=1, seconds=75.0,
                                 failures=[Failure("c.png", "No backends available!", "check the server")]))
    text = console.export_text()
    assert "1m15s" in text
    assert "c.png: No backends available!" in text
    assert "try: check the server" in text


def test_quiet_live_view_prints_only_failures_and_the_summary() -> None:
    console = recording_console()
    display = LiveDisplay(console, quiet=True, auto_refresh=False)
    display.run_started(2, 2)
    display.asset_finished("a.png", "generated", 1.0)
    display.asset_failed("b.png", Failure("b.png", "boom"))
    display.run_finished(Summary(generated=1, failed=1, failures=[Failure("b.png", "boom")]))
    text = console.export_text()
    assert "a.png" not in text
    assert "b.png: boom" in text
    assert "generated" in text  # the summary table's header


def test_live_view_survives_many_threads_reporting_at_once() -> None:
    console = recording_console()
    display = LiveDisplay(console, jobs=8, auto_refresh=False)
    display.run_started(total=800, to_build=800)

    def worker(n: int) -> None:
        for i in range(100):
            target = f"t{n}/{i}.png"
            display.asset_started(target)
            for step in range(5):
                display.asset_progress(target, Progress("generating", step / 4))
            display.asset_finished(target, "generated", 0.01)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(50):
        console.print(display)  # render while the workers report
    for thread in threads:
        thread.join()
    display.run_finished(Summary(generated=800))
    assert console.export_text().count("generated t") == 800


def test_summary_table_counts() -> None:
    console = recording_console()
    console.print(summary_table(Summary(generated=3, restored=2, fresh=5, failed=2, modified=1, seconds=0.5)))
    text = console.export_text()
    header, values = [line.split() for line in text.strip().splitlines()]
    assert dict(zip(header, values, strict=True)) == {"generated": "3", "restored": "2", "fresh": "5",
                                                      "modified": "1", "failed": "1", "time": "0.50s"}


def test_plain_mode_rate_limits_progress_and_has_no_control_codes() -> None:
    clock = Clock()
    out = io.StringIO()
    display = PlainDisplay(out, clock=clock, progress_interval=10.0)
    display.run_started(2, 2)
    display.asset_started("a.png")
    display.asset_progress("a.png", Progress("queued"))
    display.asset_progress("a.png", Progress("waiting", detail="waiting for a backend"))
    display.asset_progress("a.png", Progress("loading", detail="loading model"))
    for percent in range(100):
        clock.now += 0.1
        display.asset_progress("a.png", Progress("generating", percent / 100))
    display.asset_finished("a.png", "generated", 12.3)
    display.asset_failed("b.png", Failure("b.png", "No backends available!", "check the server"))
    display.run_finished(Summary(generated=1, failed=1, seconds=12.5))
    text = out.getvalue()
    assert not CONTROL.search(text)
    progress_lines = [line for line in text.splitlines() if line.startswith("progress")]
    assert progress_lines[:2] == ["progress  a.png: waiting (waiting for a backend)",
                                  "progress  a.png: loading (loading model)"]
    assert len(progress_lines) == 3  # waiting, loading, and one generating line in 10 s (not 100)
    assert "generated a.png (12.30s)" in text
    assert "FAILED    b.png: No backends available!" in text and "hint: check the server" in text
    assert "done: 1 generated, 0 restored, 0 fresh, 1 failed" in text


JSON_FIELDS = {
    "run_started": {"total", "to_build"},
    "asset_started": {"target"},
    "progress": {"target", "phase", "fraction"},
    "asset_finished": {"target", "outcome", "seconds"},
    "asset_failed": {"target", "message", "hint", "skipped"},
    "warning": {"message"},
    "run_finished": {"generated", "restored", "fresh", "derived", "recorded", "failed", "modified", "skipped",
                     "not_built", "not_built_reason", "seconds", "orphans"},
}


def test_json_events_follow_the_documented_schema() -> None:
    clock = Clock()
    out = io.StringIO()
    display = JsonDisplay(out, clock=clock, interval=0.5)
    display.run_started(2, 2)
    display.asset_started("a.png")
    display.asset_progress("a.png", Progress("generating", 0.1))
    display.asset_progress("a.png", Progress("generating", 0.2))  # same phase, too soon: dropped
    clock.now += 1
    display.asset_progress("a.png", Progress("generating", 0.9))
    display.asset_finished("a.png", "generated", 1.0)
    display.asset_failed("b.png", Failure("b.png", "boom", None, skipped=True))
    display.warning("careful")
    display.run_finished(Summary(generated=1, skipped=1, orphans=["old.png"]))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["run_started", "asset_started", "progress", "progress",
                                            "asset_finished", "asset_failed", "warning", "run_finished"]
    for event in events:
        assert set(event) == JSON_FIELDS[event["event"]] | {"event", "time"}
    assert [e["fraction"] for e in events if e["event"] == "progress"] == [0.1, 0.9]
    assert events[-1]["orphans"] == ["old.png"]
    documented = (Path(__file__).parent.parent / "assetbuild" / "display" / "jsonl.py").read_text()
    for name in JSON_FIELDS:
        assert f'"event": "{name}"' in documented


@pytest.mark.parametrize(("env", "tty", "plain"), [
    ({}, True, False), ({}, False, True), ({"NO_COLOR": "1"}, True, True), ({"TERM": "dumb"}, True, True),
    ({"CI": "true"}, True, True),
])
def test_plain_output_off_a_terminal(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool,
                                     plain: bool) -> None:
    for name in ("NO_COLOR", "TERM", "CI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    assert wants_plain(Stream()) is plain
    assert isinstance(make_display(stream=Stream()), PlainDisplay if plain else LiveDisplay)
    assert isinstance(make_display(json_output=True, stream=Stream()), JsonDisplay)


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0.4, 59, 61, 3600 + 120)] == ["0s", "59s", "1m01s", "1h02m"]


def test_cli_json_and_quiet_and_dry_run(project: Path) -> None:
    write_manifest(project, QUICKSTART)
    dry = run_cli(project, "--dry-run")
    assert dry.returncode == 0
    assert "stale (generate)" in dry.stdout and "stale (after upstream)" in dry.stdout
    assert not (project / "assets.lock").exists()
    result = run_cli(project, "--json")
    assert result.returncode == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished"
    assert events[-1]["generated"] == 3
    assert {e["target"] for e in events if e["event"] == "asset_finished"} == {
        "sprites/hero.png", "sprites/hero_attack.png", "ui/icon_sword.png"}
    quiet = run_cli(project, "-q", "--force")
    assert quiet.returncode == 0
    assert quiet.stdout.strip().splitlines() == [quiet.stdout.strip().splitlines()[-1]]
    assert quiet.stdout.startswith("done:")
    assert not CONTROL.search(quiet.stdout + result.stdout + dry.stdout)


def test_brackets_in_target_names_are_shown_not_read_as_markup() -> None:
    console = recording_console()
    display = LiveDisplay(console, auto_refresh=False)
    display.run_started(1, 1)
    display.asset_started("ui/[/b]odd [bold] name.png")
    console.print(display)  # raised MarkupError before
    display.asset_finished("ui/[/b]odd [bold] name.png", "generated", 1.0)
    display.run_finished(Summary(generated=1))
    assert "ui/[/b]odd [bold] name.png" in console.export_text()
