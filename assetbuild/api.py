"""assetbuild's Python API: build a project, read each asset's state, load a manifest (docs/api.md).

Built on the same machinery as the command line (``Workspace``, ``commands.run.run``): a build from
Python plans, caches, locks and writes exactly as ``assetbuild run`` does. Errors a user can fix raise
``AssetbuildError`` subclasses (``ManifestError``, ``UsageError``...); an asset that fails does not
raise: it is in the returned ``Summary`` with outcome ``Outcome.FAILED``.
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import BuildEvents, Failure
    from .events import Summary as RunSummary
    from .generators.base import Generator, Progress
    from .manifest import Project
    from .plan import State

ManifestPath = str | os.PathLike[str] | None


class Outcome(enum.Enum):
    """What a build did with one asset."""

    GENERATED = "generated"  # made by the generator
    RESTORED = "restored"  # copied back from the cache
    DERIVED = "derived"  # made from another asset's output (``source``), no generation
    RECORDED = "recorded"  # the right bytes were already on disk; only the lock entry was written
    FRESH = "fresh"  # nothing to do
    FAILED = "failed"  # could not be built (``message``, ``hint`` say why)
    SKIPPED = "skipped"  # not attempted: an input failed, or the build was interrupted

    @property
    def ok(self) -> bool:
        return self not in (Outcome.FAILED, Outcome.SKIPPED)


@dataclass(frozen=True)
class AssetResult:
    """One asset of a build: its target, the file, what happened and (when it failed) why."""

    target: str
    path: Path
    outcome: Outcome
    seconds: float = 0.0
    message: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class Summary:
    """The result of ``build``: every selected asset (and its inputs) in dependency order."""

    assets: tuple[AssetResult, ...]
    orphans: tuple[str, ...]  # images of entries no longer in the manifest (``assetbuild clean`` removes them)
    warnings: tuple[str, ...]
    seconds: float
    exit_code: int  # what ``assetbuild run`` would exit with: 0 ok, 1 an asset failed, 130 interrupted

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def failures(self) -> tuple[AssetResult, ...]:
        return tuple(a for a in self.assets if not a.outcome.ok)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for a in self.assets if a.outcome is outcome)

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {o.value}" for o in Outcome if (n := self.count(o)))
        verdict = "ok" if self.ok else ("interrupted" if self.exit_code == 130 else "FAILED")
        lines = [f"{verdict}: {len(self.assets)} asset(s) in {self.seconds:.2f}s ({counts or 'nothing to do'})"]
        for failure in self.failures:
            lines.append(f"  {failure.outcome.value} {failure.target}: {failure.message}")
            if failure.hint:
                lines.append(f"    hint: {failure.hint}")
        if self.orphans:
            lines.append(f"  orphans: {', '.join(self.orphans)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class AssetStatus:
    """The state of one asset (``State.FRESH``, ``State.GENERATE``...) and why."""

    target: str
    path: Path
    state: State
    reason: str
    key: str | None = None  # the asset's key when it can be computed


def load_manifest(manifest: ManifestPath = None, *, server: str | None = None) -> Project:
    """Read and check a manifest (default: assets.toml here or above), with the server and cache folder
    the command line would use (``server`` like ``--server``). Raises ``ManifestError``/``UsageError``."""
    from .layout import find_manifest
    from .manifest import load
    from .workspace import CACHE_ENV, apply_user_settings

    project = load(find_manifest(_manifest_option(manifest)), cache_dir_override=os.environ.get(CACHE_ENV) or None)
    apply_user_settings(project, server)
    return project


def status(manifest: ManifestPath = None, *, targets: Iterable[str] = (), server: str | None = None,
           force: bool = False) -> list[AssetStatus]:
    """Each selected asset's state (all assets, then orphans, when ``targets`` is empty), like
    ``assetbuild status``. Contacts no server."""
    from .commands.status import statuses
    from .workspace import open_workspace

    ws = open_workspace(_manifest_option(manifest), server=server, force=force)
    result = statuses(ws, _patterns(targets))
    ws.hashes.save()
    return [AssetStatus(s.target, ws.project.target_path(s.target), s.state, s.reason, s.key) for s in result]


def build(manifest: ManifestPath = None, *, targets: Iterable[str] = (), server: str | None = None,
          generator: Generator | None = None, jobs: int | None = None, keep_going: bool = False,
          frozen: bool = False, force: bool = False, events: BuildEvents | None = None) -> Summary:
    """Build the stale assets of ``manifest`` (or only ``targets``, paths or globs, and what they need),
    like ``assetbuild run``.

    ``server``: a SwarmUI URL or ``"placeholder"`` (default: the manifest's, see docs/commands.md).
    ``generator``: an object implementing ``assetbuild.Generator`` to make the images instead (its
    ``kind`` is part of every asset key; it is closed at the end). ``jobs``: assets processed at once.
    ``events``: an ``assetbuild.BuildEvents`` told of progress as it happens (called from worker
    threads). On the main thread, Ctrl-C stops the build (``exit_code`` 130); finished images are kept.
    """
    from .commands.run import run
    from .commands.select import select
    from .plan import closure
    from .projectlock import hold
    from .workspace import load_project, workspace_of

    patterns = _patterns(targets)
    kind = generator.kind if generator is not None else None
    project = load_project(_manifest_option(manifest), server=server)
    with hold(project.state_dir, "build"):  # one writer per project: waits for another build (message on stderr)
        ws = workspace_of(project, force=force, kind=kind)
        selected = closure(ws.project, select(ws.project, patterns))  # raises UsageError before any work
        collector = _Collector(events, ws.project.target_path)
        code = run(ws, patterns, collector, jobs=jobs, keep_going=keep_going, frozen=frozen, generator=generator)
    return collector.summary(selected, code)


def _manifest_option(manifest: ManifestPath) -> str | None:
    return os.fspath(manifest) if manifest is not None else None


def _patterns(targets: Iterable[str]) -> list[str]:
    return [targets] if isinstance(targets, str) else list(targets)


class _Collector:
    """Records what a build reports (and passes it on to the caller's events, if any)."""

    def __init__(self, forward: BuildEvents | None, target_path: Callable[[str], Path]) -> None:
        self.forward = forward
        self.target_path = target_path
        self.lock = threading.Lock()
        self.results: dict[str, AssetResult] = {}
        self.warnings: list[str] = []
        self.run: RunSummary | None = None

    def summary(self, selected: list[str], exit_code: int) -> Summary:
        """Every selected asset; those the build never reported on were up to date (fresh)."""
        assets = tuple(self.results.get(t) or AssetResult(t, self.target_path(t), Outcome.FRESH) for t in selected)
        run = self.run
        return Summary(assets, tuple(run.orphans if run else ()), tuple(self.warnings),
                       run.seconds if run else 0.0, exit_code)

    # --- BuildEvents -------------------------------------------------------------------------------------

    def run_started(self, total: int, to_build: int) -> None:
        if self.forward is not None:
            self.forward.run_started(total, to_build)

    def asset_started(self, target: str) -> None:
        if self.forward is not None:
            self.forward.asset_started(target)

    def asset_progress(self, target: str, progress: Progress) -> None:
        if self.forward is not None:
            self.forward.asset_progress(target, progress)

    def asset_finished(self, target: str, outcome: str, seconds: float) -> None:
        with self.lock:
            self.results[target] = AssetResult(target, self.target_path(target), Outcome(outcome), seconds)
        if self.forward is not None:
            self.forward.asset_finished(target, outcome, seconds)

    def asset_failed(self, target: str, failure: Failure) -> None:
        outcome = Outcome.SKIPPED if failure.skipped else Outcome.FAILED
        with self.lock:
            self.results[target] = AssetResult(target, self.target_path(target), outcome, 0.0, failure.message,
                                               failure.hint)
        if self.forward is not None:
            self.forward.asset_failed(target, failure)

    def warning(self, text: str) -> None:
        with self.lock:
            self.warnings.append(text)
        if self.forward is not None:
            self.forward.warning(text)

    def run_finished(self, summary: RunSummary) -> None:
        self.run = summary
        if self.forward is not None:
            self.forward.run_finished(summary)
