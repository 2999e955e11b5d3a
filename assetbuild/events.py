"""What a build reports, and to whom: the interface between the build and its displays.

The builder and doit's reporter call these methods, some from worker threads; every display must be
thread-safe. Displays live in ``assetbuild.display`` (rich live view, plain CI log, JSON lines).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Progress:
    """One progress report from a generator, for the display.

    ``phase`` is one of: ``queued``, ``waiting``, ``loading``, ``generating``, ``downloading``.
    ``fraction`` is 0..1 when known (``generating``), else None. ``detail`` is free text.
    """

    phase: str
    fraction: float | None = None
    detail: str = ""


# What happened to one asset.
GENERATED = "generated"
RESTORED = "restored"
FRESH = "fresh"
RECORDED = "recorded"  # the right bytes were on disk; only the lock entry was written
DERIVED = "derived"


@dataclass(frozen=True)
class Failure:
    target: str
    message: str  # the server's own message or our reason
    hint: str | None = None
    skipped: bool = False  # not attempted because an input failed or the run stopped


@dataclass
class Summary:
    generated: int = 0
    restored: int = 0
    fresh: int = 0
    derived: int = 0
    recorded: int = 0
    failed: int = 0
    skipped: int = 0
    modified: int = 0
    not_built: int = 0  # never attempted: the run stopped first (a failure without --keep-going, Ctrl-C)
    not_built_reason: str | None = None  # why, with what to do: "stopped after the first failure; ..."
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def accounted(self) -> int:
        """Assets whose fate is known: built, fresh, failed or skipped."""
        return (self.generated + self.restored + self.fresh + self.derived + self.recorded + self.failed
                + self.skipped)

    def not_built_text(self) -> str | None:
        """``8 not built (stopped after the first failure; --keep-going builds the rest)``, or None."""
        if not self.not_built:
            return None
        return f"{self.not_built} not built" + (f" ({self.not_built_reason})" if self.not_built_reason else "")

    @property
    def ok(self) -> bool:
        return not self.failures


class BuildEvents(Protocol):
    def run_started(self, total: int, to_build: int) -> None: ...

    def asset_started(self, target: str) -> None: ...

    def asset_progress(self, target: str, progress: Progress) -> None: ...

    def asset_finished(self, target: str, outcome: str, seconds: float) -> None: ...

    def asset_failed(self, target: str, failure: Failure) -> None: ...

    def warning(self, text: str) -> None: ...

    def run_finished(self, summary: Summary) -> None: ...
