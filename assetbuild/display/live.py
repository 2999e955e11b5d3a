"""The terminal display: a rich live view of the assets in flight, an overall bar, a summary table.

Finished assets scroll above the live area, one line each. The live area has one line per asset in
flight with its real phase (queued, waiting for a backend, loading a model, generating NN%,
downloading, post-processing) and an overall line: done/total, generated/restored/fresh counts,
elapsed time and an ETA from the generation times observed so far. Events arrive from worker
threads; state is guarded by one lock and rendered by rich's refresh thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ..events import GENERATED, Failure, Summary
from ..generators.base import Progress
from ..safetext import safe_text

PHASE_LABELS = {
    "starting": "starting",
    "queued": "queued",
    "waiting": "waiting for a backend",
    "loading": "loading model",
    "generating": "generating",
    "downloading": "downloading",
    "postprocessing": "post-processing",
}
OUTCOME_STYLES = {"generated": "green", "restored": "cyan", "fresh": "dim", "derived": "blue",
                  "recorded": "dim"}


@dataclass
class _InFlight:
    started: float
    phase: str = "starting"
    fraction: float | None = None
    # One spinner per asset for its whole life: a spinner animates from its own start time, so one made
    # afresh at each refresh would always show its first frame.
    spinner: Spinner = field(default_factory=lambda: Spinner("dots"))


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class LiveDisplay:
    def __init__(self, console: Console | None = None, *, quiet: bool = False, verbose: bool = False,
                 clock: Callable[[], float] = time.monotonic, jobs: int = 1, auto_refresh: bool = True) -> None:
        self.console = console or Console()
        self.quiet = quiet
        self.verbose = verbose
        self.clock = clock
        self.jobs = max(1, jobs)
        self._lock = threading.Lock()
        self._flight: dict[str, _InFlight] = {}
        self._total = 0
        self._to_build = 0
        self._done = 0
        self._counts: dict[str, int] = {}
        self._generation_times: list[float] = []
        self._started = clock()
        self._live = Live(self, console=self.console, refresh_per_second=8, transient=True,
                          auto_refresh=auto_refresh, redirect_stdout=False, redirect_stderr=False)
        self._running = False

    # --- events (any thread) ---

    def run_started(self, total: int, to_build: int) -> None:
        with self._lock:
            self._total, self._to_build = total, to_build
            self._started = self.clock()
        if to_build and not self.quiet:
            self._live.start()
            self._running = True

    def asset_started(self, target: str) -> None:
        with self._lock:
            self._flight[target] = _InFlight(self.clock())

    def asset_progress(self, target: str, progress: Progress) -> None:
        with self._lock:
            state = self._flight.get(target)
            if state is None:
                state = self._flight[target] = _InFlight(self.clock())
            state.phase = progress.phase
            state.fraction = progress.fraction

    def asset_finished(self, target: str, outcome: str, seconds: float) -> None:
        with self._lock:
            self._flight.pop(target, None)
            self._done += 1
            self._counts[outcome] = self._counts.get(outcome, 0) + 1
            if outcome == GENERATED:
                self._generation_times.append(seconds)
        if not self.quiet:
            style = OUTCOME_STYLES.get(outcome, "")
            line = Text.assemble((f"{outcome:>9} ", style), safe_text(target),
                                 (f"  {format_seconds(seconds)}", "dim"))
            self.console.print(line)

    def asset_failed(self, target: str, failure: Failure) -> None:
        with self._lock:
            self._flight.pop(target, None)
            self._done += 1
        word, style = ("skipped", "yellow") if failure.skipped else ("FAILED", "bold red")
        self.console.print(Text.assemble((f"{word:>9} ", style), safe_text(target), f": {safe_text(failure.message)}"))

    def warning(self, text: str) -> None:
        self.console.print(Text.assemble(("warning: ", "yellow"), safe_text(text)))

    def run_finished(self, summary: Summary) -> None:
        if self._running:
            self._live.stop()
            self._running = False
        self.console.print(summary_table(summary))
        for failure in summary.failures:
            mark = "skipped" if failure.skipped else "failed"
            self.console.print(Text.assemble((f"{mark}: ", "red"), (safe_text(failure.target), "bold"),
                                             f": {safe_text(failure.message)}"))
            if failure.hint:
                self.console.print(Text(f"  try: {safe_text(failure.hint)}", style="dim"))
        if summary.orphans:
            self.console.print(Text(f"{len(summary.orphans)} orphaned file(s) from removed entries: "
                                    "`assetbuild clean` removes them", style="dim"))

    # --- rendering (rich's refresh thread) ---

    def eta(self) -> float | None:
        """Seconds left, from the mean observed generation time, or None before any generation."""
        with self._lock:
            if not self._generation_times:
                return None
            mean = sum(self._generation_times) / len(self._generation_times)
            left = max(0, self._to_build - self._done)
            in_flight = [self.clock() - s.started for s in self._flight.values()]
        # Work left: unstarted assets plus the remainder of those in flight, spread over the slots.
        unstarted = max(0, left - len(in_flight))
        remaining = unstarted * mean + sum(max(0.0, mean - spent) for spent in in_flight)
        return remaining / min(self.jobs, max(1, left))

    def __rich__(self) -> RenderableType:
        with self._lock:
            flight = sorted(self._flight.items(), key=lambda item: item[1].started)
            done, to_build = self._done, self._to_build
            counts = dict(self._counts)
            elapsed = self.clock() - self._started
        rows = Table.grid(padding=(0, 1))
        rows.add_column(width=1)
        rows.add_column(no_wrap=True, overflow="ellipsis", ratio=3)
        rows.add_column(no_wrap=True, ratio=2)
        for target, state in flight:
            rows.add_row(state.spinner, Text(safe_text(target)), _phase_text(state))  # Text: no markup
        eta = self.eta()
        parts = [f"{done}/{to_build}"]
        parts += [f"{counts[k]} {k}" for k in ("generated", "restored", "derived", "fresh") if counts.get(k)]
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if eta is not None and done < to_build:
            parts.append(f"ETA {format_seconds(eta)}")
        overall = Table.grid(padding=(0, 1))
        overall.add_column(width=30)
        overall.add_column(no_wrap=True)
        overall.add_row(ProgressBar(total=max(1, to_build), completed=done, width=30), "  ".join(parts))
        return Group(rows, overall)


def _phase_text(state: _InFlight) -> Text:
    label = PHASE_LABELS.get(state.phase, state.phase)
    if state.phase == "generating" and state.fraction is not None:
        return Text(f"{label} {state.fraction * 100:3.0f}%", style="green")
    return Text(label, style="yellow" if state.phase in ("queued", "waiting", "loading") else "")


def summary_table(summary: Summary) -> Table:
    table = Table(title=None, show_header=True, header_style="bold", box=None, padding=(0, 2))
    columns: list[tuple[str, int | str]] = [
        ("generated", summary.generated), ("restored", summary.restored), ("fresh", summary.fresh)]
    if summary.derived:
        columns.append(("derived", summary.derived))
    if summary.recorded:
        columns.append(("recorded", summary.recorded))
    columns += [("modified", summary.modified), ("failed", summary.failed - summary.modified)]
    if summary.skipped:
        columns.append(("skipped", summary.skipped))
    columns.append(("time", format_seconds(summary.seconds) if summary.seconds >= 1 else f"{summary.seconds:.2f}s"))
    for name, _ in columns:
        table.add_column(name, justify="right")
    table.add_row(*[str(value) for _, value in columns])
    return table
