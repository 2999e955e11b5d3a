"""Assets reach doit in batches (``tasks.BATCH``), so doit's per-task memory stays bounded on a first build of
100,000 assets (issue 16). Across batches the rules of one doit run hold: an input that failed skips its
dependents, a failure stops the run without --keep-going, and every asset is built once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import write_manifest
from helpers import generations
from test_cli import BROKEN_FIRST, assert_recorded

from assetbuild import tasks
from assetbuild.cli import main
from assetbuild.generators.placeholder import LOG_ENV


def build(project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
          *args: str) -> tuple[int, str]:
    monkeypatch.chdir(project)
    code = main(["run", "-n", "2", *args])
    return code, capsys.readouterr().out


@pytest.fixture
def batched(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tasks, "BATCH", 1)  # every asset in its own doit run
    log = project.parent / "generations.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    return log


def test_every_asset_is_built_once_across_batches(project: Path, batched: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    write_manifest(project, BROKEN_FIRST.replace("crop = [0, 0, 500, 500]", "crop = [0, 0, 32, 32]"))
    code, out = build(project, monkeypatch, capsys)
    assert code == 0, out
    names = ["broken.png", "after_broken.png", "a.png", "b.png", "c.png"]
    assert sorted(generations(batched)) == sorted(names)
    for name in names:
        assert_recorded(project, name)


def test_an_input_failed_in_an_earlier_batch_skips_its_dependents(
        project: Path, batched: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    write_manifest(project, BROKEN_FIRST)
    code, out = build(project, monkeypatch, capsys, "--keep-going")
    assert code == 1
    assert re.search(r"FAILED\s+broken\.png: .*crop", out)
    assert re.search(r"skipped\s+after_broken\.png: not built: input broken\.png failed", out), out
    assert "after_broken.png" not in generations(batched)
    for name in ("a.png", "b.png", "c.png"):
        assert_recorded(project, name)


def test_a_failure_stops_the_later_batches_without_keep_going(
        project: Path, batched: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    write_manifest(project, BROKEN_FIRST)
    code, out = build(project, monkeypatch, capsys)
    assert code == 1
    assert generations(batched) == ["broken.png"]
    assert "4 not built (stopped after the first failure; --keep-going builds the rest)" in out, out
