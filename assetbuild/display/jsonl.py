"""``--json``: one JSON object per line on stdout, for scripts and CI annotations.

Schema (every object has ``event`` and ``time``, seconds since the run started):

- ``{"event": "run_started", "total": int, "to_build": int}``
- ``{"event": "asset_started", "target": str}``
- ``{"event": "progress", "target": str, "phase": str, "fraction": float | null}`` -- phase is one of
  queued, waiting, loading, generating, downloading, postprocessing; sent on a phase change and at
  most every ``interval`` seconds (0.5) per asset otherwise
- ``{"event": "asset_finished", "target": str, "outcome": str, "seconds": float}`` -- outcome is
  generated, restored, derived, recorded or fresh
- ``{"event": "asset_failed", "target": str, "message": str, "hint": str | null, "skipped": bool}``
- ``{"event": "warning", "message": str}``
- ``{"event": "run_finished", "generated": int, "restored": int, "fresh": int, "derived": int,
  "recorded": int, "failed": int, "modified": int, "skipped": int, "not_built": int,
  "not_built_reason": str | null, "seconds": float, "orphans": [str]}`` -- not_built counts the assets the
  run never reached (it stopped at a failure without --keep-going, or was interrupted), and says why
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..events import Failure, Summary
from ..generators.base import Progress
from ..safetext import safe_json
from ._stream import LineWriter


class JsonDisplay:
    def __init__(self, stream: TextIO | None = None, *, interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out = LineWriter(stream or sys.stdout)
        self.interval = interval
        self.clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._last: dict[str, tuple[str, float]] = {}

    def _emit(self, event: str, **fields: Any) -> None:
        with self._lock:  # stamp inside the lock so times never go backwards in the output
            record = {"event": event, "time": round(self.clock() - self._start, 3), **fields}
            self.out.line(safe_json(record, ensure_ascii=False))

    def run_started(self, total: int, to_build: int) -> None:
        self._start = self.clock()
        self._emit("run_started", total=total, to_build=to_build)

    def asset_started(self, target: str) -> None:
        self._emit("asset_started", target=target)

    def asset_progress(self, target: str, progress: Progress) -> None:
        now = self.clock()
        with self._lock:
            phase, at = self._last.get(target, ("", -1e9))
            if phase == progress.phase and now - at < self.interval:
                return
            self._last[target] = (progress.phase, now)
        self._emit("progress", target=target, phase=progress.phase, fraction=progress.fraction)

    def asset_finished(self, target: str, outcome: str, seconds: float) -> None:
        self._emit("asset_finished", target=target, outcome=outcome, seconds=round(seconds, 3))

    def asset_failed(self, target: str, failure: Failure) -> None:
        self._emit("asset_failed", target=target, message=failure.message, hint=failure.hint,
                   skipped=failure.skipped)

    def warning(self, text: str) -> None:
        self._emit("warning", message=text)

    def run_finished(self, summary: Summary) -> None:
        self._emit("run_finished", generated=summary.generated, restored=summary.restored, fresh=summary.fresh,
                   derived=summary.derived, recorded=summary.recorded, failed=summary.failed,
                   modified=summary.modified, skipped=summary.skipped, not_built=summary.not_built,
                   not_built_reason=summary.not_built_reason, seconds=round(summary.seconds, 3),
                   orphans=summary.orphans)
