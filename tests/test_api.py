"""The Python API: a short sorted __all__, a cheap import, typed results, a generator passed in, and the
docs/api.md examples run as written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import write_manifest
from helpers import QUICKSTART, TARGETS, heavy_imports, png_size

import assetbuild
from assetbuild.generators.base import GenerationRequest, GenerationResult, ProgressCallback
from assetbuild.generators.placeholder import PlaceholderGenerator

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_short_sorted_and_every_name_exists() -> None:
    assert assetbuild.__all__ == sorted(assetbuild.__all__)
    assert len(assetbuild.__all__) <= 25
    for name in assetbuild.__all__:
        assert getattr(assetbuild, name) is not None, name
    with pytest.raises(AttributeError):
        _ = assetbuild.no_such_name  # type: ignore[attr-defined]
    assert (Path(assetbuild.__file__).parent / "py.typed").is_file()


def test_importing_assetbuild_imports_nothing_heavy() -> None:
    assert heavy_imports("import assetbuild") == []
    # The probe can see them: the manifest package needs xxhash (pydantic only to word a manifest error).
    assert "xxhash" in heavy_imports("import assetbuild; assetbuild.Project")


def test_build_then_status_return_typed_results(project: Path) -> None:
    manifest = write_manifest(project, QUICKSTART)
    summary = assetbuild.build(manifest, server="placeholder")
    assert summary.ok and summary.exit_code == 0
    assert tuple(a.target for a in summary.assets) == TARGETS
    assert all(a.outcome is assetbuild.Outcome.GENERATED for a in summary.assets)
    for asset in summary.assets:
        assert asset.path == project / asset.target
        png_size(asset.path.read_bytes())
    assert f"{len(TARGETS)} generated" in str(summary)

    again = assetbuild.build(str(manifest), server="placeholder")
    assert again.count(assetbuild.Outcome.FRESH) == len(TARGETS) and again.ok

    states = assetbuild.status(manifest, server="placeholder")
    assert tuple(s.target for s in states) == TARGETS
    assert {s.state for s in states} == {assetbuild.State.FRESH}
    (project / TARGETS[0]).write_bytes(b"edited by hand")
    [edited] = assetbuild.status(manifest, targets=[TARGETS[0]], server="placeholder")
    assert edited.state is assetbuild.State.MODIFIED

    project_info = assetbuild.load_manifest(manifest)
    assert tuple(project_info.assets) == TARGETS


def test_bad_input_raises_the_users_errors(project: Path) -> None:
    manifest = write_manifest(project, QUICKSTART)
    with pytest.raises(assetbuild.UsageError, match="no asset matches"):
        assetbuild.build(manifest, targets=["nope.png"], server="placeholder")
    broken = write_manifest(project, "[assets.\n")
    with pytest.raises(assetbuild.ManifestError):
        assetbuild.load_manifest(broken)
    assert not (project / "assets.lock").exists()


class Recording:
    """A generator object passed in: counts its calls (from several threads) and whether it was closed."""

    kind = "recording"

    def __init__(self, fail: str | None = None) -> None:
        self.inner = PlaceholderGenerator()
        self.fail = fail
        self.made: list[str] = []
        self.closed = False
        self.lock = threading.Lock()

    def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationResult:
        if request.asset == self.fail:
            raise assetbuild.GenerationError(request.asset, "the recording generator refuses", hint="by design")
        with self.lock:
            self.made.append(request.asset)
        return self.inner.generate(request, progress)

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_a_generator_object_makes_the_images_under_its_own_kind(project: Path) -> None:
    manifest = write_manifest(project, QUICKSTART)
    placeholder = assetbuild.build(manifest, server="placeholder")
    assert placeholder.ok
    mine = Recording()
    summary = assetbuild.build(manifest, generator=mine, jobs=2)
    # Its kind is part of the keys: the placeholder's images are not taken for its own.
    assert sorted(mine.made) == sorted(TARGETS) and mine.closed
    assert summary.count(assetbuild.Outcome.GENERATED) == len(TARGETS)


def test_a_failing_asset_is_in_the_summary_not_raised(project: Path) -> None:
    manifest = write_manifest(project, QUICKSTART)
    events: list[str] = []

    class Events:
        def run_started(self, total: int, to_build: int) -> None:
            events.append(f"started {total}")

        def asset_started(self, target: str) -> None: ...

        def asset_progress(self, target: str, progress: assetbuild.Progress) -> None: ...

        def asset_finished(self, target: str, outcome: str, seconds: float) -> None:
            events.append(f"{outcome} {target}")

        def asset_failed(self, target: str, failure: object) -> None:
            events.append(f"failed {target}")

        def warning(self, text: str) -> None: ...

        def run_finished(self, summary: object) -> None:
            events.append("finished")

    summary = assetbuild.build(manifest, generator=Recording(fail=TARGETS[0]), keep_going=True, events=Events())
    assert not summary.ok and summary.exit_code == 1
    failed = summary.failures[0]
    assert failed.target == TARGETS[0] and failed.outcome is assetbuild.Outcome.FAILED
    assert failed.message == "the recording generator refuses" and failed.hint == "by design"
    assert f"failed {TARGETS[0]}" in events and events[0] == f"started {len(TARGETS)}" and events[-1] == "finished"
    assert "FAILED" in str(summary) and "hint: by design" in str(summary)


def _quickstart_copy(tmp_path: Path) -> Path:
    """The quickstart as a fresh clone has it: without what the README's first command builds there."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "quickstart", root / "examples" / "quickstart",
                    ignore=shutil.ignore_patterns("build", "assets.lock", ".assetbuild"))
    return root


def test_the_one_line_quickstart_prints_a_summary(tmp_path: Path) -> None:
    root = _quickstart_copy(tmp_path)
    code = ("import assetbuild; "
            "print(assetbuild.build(manifest='examples/quickstart/assets.toml', server='placeholder'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"ok: 6 asset\(s\) in \d+\.\d\ds \(6 generated\)\n", result.stdout), result.stdout
    assert len(list((root / "examples" / "quickstart" / "build").rglob("*.png"))) == 6


def test_the_examples_of_docs_api_md_run(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 2
    root = _quickstart_copy(tmp_path)
    script = root / "example.py"
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "generated" in result.stdout and "ui/icon_sword.png" in result.stdout
