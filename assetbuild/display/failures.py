"""Failures grouped by cause, so that 16 assets failing for one reason read as one message and a list.

Used by the displays at the end of a run (and to print only the first of a repeated failure while it
runs): ``16 assets failed: model 'bad' not found`` followed by the targets, compactly, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..events import Failure

NAMES_SHOWN = 12  # targets named in a group before "and N more"
NAMES_SHOWN_QUIET = 3


@dataclass
class FailureGroup:
    message: str
    hint: str | None
    skipped: bool
    targets: list[str] = field(default_factory=list)

    def headline(self) -> tuple[str, str]:
        """(``16 assets failed: ``, MESSAGE), or (``failed: ``, ``a.png: MESSAGE``) for one asset."""
        if len(self.targets) == 1:
            return ("skipped: " if self.skipped else "failed: "), f"{self.targets[0]}: {self.message}"
        verb = "skipped" if self.skipped else "failed"
        return f"{len(self.targets)} assets {verb}: ", self.message

    def target_list(self, *, quiet: bool = False) -> str | None:
        """The targets, comma-separated, cut to a few names (fewer with -q); None for a single asset."""
        if len(self.targets) == 1:
            return None
        return compact(self.targets, NAMES_SHOWN_QUIET if quiet else NAMES_SHOWN)


def group(failures: list[Failure]) -> list[FailureGroup]:
    """Failures with the same message, hint and kind together, in order of first appearance; real
    failures before skipped assets."""
    groups: dict[tuple[str, str | None, bool], FailureGroup] = {}
    for failure in failures:
        key = (failure.message, failure.hint, failure.skipped)
        if key not in groups:
            groups[key] = FailureGroup(failure.message, failure.hint, failure.skipped)
        groups[key].targets.append(failure.target)
    for each in groups.values():
        each.targets.sort()  # workers finish in any order; a sorted list is easier to scan
    return sorted(groups.values(), key=lambda g: g.skipped)


def compact(targets: list[str], limit: int) -> str:
    shown = ", ".join(targets[:limit])
    more = len(targets) - limit
    return f"{shown}, and {more} more" if more > 0 else shown


class RepeatFilter:
    """Remembers the failures seen during a run: the first asset with a given cause is worth a full line,
    the next ones only a reference to it (or nothing)."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, str | None], str] = {}

    def first_with_same_cause(self, failure: Failure) -> str | None:
        """The target that already failed for the same reason, or None if this cause is new."""
        key = (failure.message, failure.hint)
        first = self._first.get(key)
        if first is None:
            self._first[key] = failure.target
        return first
