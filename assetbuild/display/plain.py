"""Plain, line-per-event output for CI logs and pipes: no control codes, rate-limited progress."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from ..events import Failure, Summary
from ..generators.base import Progress
from . import plural
from ._stream import LineWriter
from .failures import RepeatFilter, group


class PlainDisplay:
    """One line per event. Progress lines at most every ``progress_interval`` seconds per asset."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, verbose: bool = False,
                 progress_interval: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 one_off: bool = False) -> None:
        self.out = LineWriter(stream or sys.stdout)
        self.one_off = one_off  # `generate`: images, not a build
        self.quiet = quiet
        self.verbose = verbose
        self.progress_interval = progress_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._last_progress: dict[str, float] = {}
        self._last_phase: dict[str, str] = {}
        self._repeats = RepeatFilter()

    def _line(self, text: str) -> None:
        with self._lock:
            self.out.line(text)

    def run_started(self, total: int, to_build: int) -> None:
        if self.quiet:
            return
        if self.one_off:
            self._line(f"assetbuild: generating {plural(total, 'image')}")
        else:
            self._line(f"assetbuild: {plural(total, 'asset')}, {to_build} to build")

    def asset_started(self, target: str) -> None:
        if not self.quiet:
            self._line(f"start     {target}")

    def asset_progress(self, target: str, progress: Progress) -> None:
        """Waiting for a backend and loading a model are worth a line at once (they explain a slow
        asset); everything else at most every ``progress_interval`` seconds per asset."""
        if self.quiet:
            return
        now = self.clock()
        with self._lock:
            notable = progress.phase in ("waiting", "loading") and self._last_phase.get(target) != progress.phase
            self._last_phase[target] = progress.phase
            last = self._last_progress.setdefault(target, now)
            if not notable and now - last < self.progress_interval:
                return
            self._last_progress[target] = now
        pct = f" {progress.fraction * 100:.0f}%" if progress.fraction is not None else ""
        detail = f" ({progress.detail})" if progress.detail else ""
        self._line(f"progress  {target}: {progress.phase}{pct}{detail}")

    def asset_finished(self, target: str, outcome: str, seconds: float) -> None:
        if not self.quiet:
            self._line(f"{outcome:<9} {target} ({seconds:.2f}s)")

    def asset_failed(self, target: str, failure: Failure) -> None:
        word = "skipped" if failure.skipped else "FAILED"
        with self._lock:
            earlier = self._repeats.first_with_same_cause(failure)
        if earlier is not None:  # one line per asset for CI logs, but the message only once (-q: not even that)
            if not self.quiet:
                self._line(f"{word:<9} {target}: same as {earlier}")
            return
        self._line(f"{word:<9} {target}: {failure.message}")
        if failure.hint:
            self._line(f"          hint: {failure.hint}")

    def warning(self, text: str) -> None:
        self._line(f"warning: {text}")

    def run_finished(self, summary: Summary) -> None:
        if self.one_off:
            parts = [f"{summary.generated} generated"] + ([f"{summary.failed} failed"] if summary.failed else [])
            self._line(f"done: {', '.join(parts)} in {summary.seconds:.2f}s")
            return
        parts = [f"{summary.generated} generated", f"{summary.restored} restored", f"{summary.fresh} fresh"]
        if summary.derived:
            parts.append(f"{summary.derived} derived")
        if summary.recorded:
            parts.append(f"{summary.recorded} recorded")
        if summary.failed:
            parts.append(f"{summary.failed} failed")
        if summary.skipped:
            parts.append(f"{summary.skipped} skipped")
        not_built = summary.not_built_text()
        if not_built:
            parts.append(not_built)
        self._line(f"done: {', '.join(parts)} in {summary.seconds:.2f}s")
        if self.quiet:  # repeats were not printed as they happened: the groups, compactly, once
            for cause in group(summary.failures):
                names = cause.target_list(quiet=True)
                if names:
                    lead, text = cause.headline()
                    self._line(f"{lead}{text}")
                    self._line(f"          {names}")
        if summary.orphans:
            self._line(f"note: {len(summary.orphans)} orphaned file(s) from removed entries; "
                       "`assetbuild clean` removes them")
