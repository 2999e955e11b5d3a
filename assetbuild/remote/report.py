"""Progress and summary of a transfer command (push, pull) on the build's displays.

Each item is shown like an asset of a build (``uploaded sprites/hero.png``, JSON ``asset_finished``
events with ``--json``); the run ends with one summary line (JSON: a ``transfer_finished`` event).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TextIO

from ..events import BuildEvents, Failure


class TransferReport:
    def __init__(self, events: BuildEvents, out: TextIO, *, as_json: bool, command: str) -> None:
        self.events = events
        self.out = out
        self.as_json = as_json
        self.command = command
        self.counts: Counter[str] = Counter()
        self.failed = 0
        self._started = time.monotonic()

    def start(self, total: int) -> None:
        self.events.run_started(total, 0)

    def item(self, target: str, outcome: str, seconds: float = 0.0) -> None:
        self.counts[outcome] += 1
        self.events.asset_finished(target, outcome, seconds)

    def failure(self, target: str, message: str, hint: str | None = None) -> None:
        self.failed += 1
        self.events.asset_failed(target, Failure(target, message, hint))

    def finish(self, store: str) -> int:
        seconds = time.monotonic() - self._started
        if self.as_json:
            self.out.write(json.dumps({"event": "transfer_finished", "command": self.command, "store": store,
                                       "counts": dict(self.counts), "failed": self.failed,
                                       "seconds": round(seconds, 3)}) + "\n")
        else:
            parts = [f"{n} {outcome}" for outcome, n in sorted(self.counts.items())]
            if self.failed:
                parts.append(f"{self.failed} failed")
            self.out.write(f"{self.command}: {', '.join(parts) or 'nothing to do'} ({store}) in {seconds:.2f}s\n")
        self.out.flush()
        return 1 if self.failed else 0
