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
from rich.padding import Padding
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ..events import GENERATED, Failure, Summary
from ..generators.base import Progress
from ..safetext import safe_text
from .failures import RepeatFilter, group

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
    generating_since: float | None = None  # first real progress: the server is working on it (not queued)
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
                 clock: Callable[[], float] = time.monotonic, jobs: int = 1, auto_refresh: bool = True,
                 one_off: bool = False) -> None:
        self.console = console or Console()
        self.one_off = one_off  # `generate`: images, not a build (no restored/fresh columns)
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
        self._peak_generating = 0  # most assets seen generating at once: the server's real parallelism
        self._started = clock()
        self._live = Live(self, console=self.console, refresh_per_second=8, transient=True,
                          auto_refresh=auto_refresh, redirect_stdout=False, redirect_stderr=False)
        self._running = False
        self._repeats = RepeatFilter()

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
            if state.generating_since is None and progress.phase == "generating" and (progress.fraction or 0) > 0:
                state.generating_since = self.clock()
                now_generating = sum(1 for s in self._flight.values() if s.generating_since is not None
                                     and s.phase == "generating")
                self._peak_generating = max(self._peak_generating, now_generating)

    def asset_finished(self, target: str, outcome: str, seconds: float) -> None:
        with self._lock:
            state = self._flight.pop(target, None)
            self._done += 1
            self._counts[outcome] = self._counts.get(outcome, 0) + 1
            if outcome == GENERATED:  # the server's working time, without the wait in its queue
                since = state.generating_since if state is not None else None
                self._generation_times.append(self.clock() - since if since is not None else seconds)
        if not self.quiet:
            style = OUTCOME_STYLES.get(outcome, "")
            line = Text.assemble((f"{outcome:>9} ", style), safe_text(target),
                                 (f"  {format_seconds(seconds)}", "dim"))
            self.console.print(line)

    def asset_failed(self, target: str, failure: Failure) -> None:
        with self._lock:
            self._flight.pop(target, None)
            self._done += 1
            self._counts["failed"] = self._counts.get("failed", 0) + (not failure.skipped)
            repeated = failure.skipped or self._repeats.first_with_same_cause(failure) is not None
        if repeated:  # skipped assets and repeats of a cause are listed once, grouped, after the summary
            return
        self.console.print(Text.assemble((f"{'FAILED':>9} ", "bold red"), safe_text(target),
                                         f": {safe_text(failure.message)}"))

    def warning(self, text: str) -> None:
        self.console.print(Text.assemble(("warning: ", "yellow"), safe_text(text)))

    def run_finished(self, summary: Summary) -> None:
        if self._running:
            self._live.stop()
            self._running = False
        self.console.print(summary_view(summary, self.console.width, one_off=self.one_off))
        for cause in group(summary.failures):
            lead, text = cause.headline()
            self.console.print(Text.assemble((lead, "yellow" if cause.skipped else "red"), safe_text(text)))
            names = cause.target_list(quiet=self.quiet)
            if names:  # indented, also where a long list wraps
                self.console.print(Padding(Text(safe_text(names)), (0, 0, 0, 2)))
            if cause.hint:
                self.console.print(Padding(Text(f"try: {safe_text(cause.hint)}", style="dim"), (0, 0, 0, 2)))
        not_built = summary.not_built_text()
        if not_built:
            self.console.print(Text(not_built, style="yellow"))
        if summary.orphans:
            self.console.print(Text(f"{len(summary.orphans)} orphaned file(s) from removed entries: "
                                    "`assetbuild clean` removes them", style="dim"))

    # --- rendering (rich's refresh thread) ---

    def eta(self) -> float | None:
        """Seconds left, or None before any generation. Accounts for the server's queue: the mean time
        the server worked on one image, times the images it has not started (unstarted, or waiting in
        its queue), plus the rest of those it is working on, over the parallelism the server really
        showed (not the number of assets assetbuild keeps in flight, which may only be queued there)."""
        with self._lock:
            if not self._generation_times:
                return None
            mean = sum(self._generation_times) / len(self._generation_times)
            left = max(0, self._to_build - self._done)
            now = self.clock()
            waiting = 0
            working: list[float] = []
            for state in self._flight.values():
                if state.generating_since is not None:
                    working.append(now - state.generating_since)
                elif state.phase in ("queued", "waiting", "loading"):
                    waiting += 1
                else:  # no phase reported (e.g. a derived asset): count it as working since it started
                    working.append(now - state.started)
            parallel = self._peak_generating or self.jobs
        unstarted = max(0, left - waiting - len(working))
        remaining = (unstarted + waiting) * mean + sum(max(0.0, mean - spent) for spent in working)
        return remaining / max(1, min(self.jobs, parallel, left))

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
        parts += [f"{counts[k]} {k}" for k in ("generated", "restored", "derived", "fresh", "failed") if counts.get(k)]
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


def summary_view(summary: Summary, width: int, *, one_off: bool = False) -> RenderableType:
    """The summary table, or the same counts on one line where the table's headers would not fit."""
    table = summary_table(summary, one_off=one_off)
    needed = sum(max(len(str(c.header)), *(len(str(cell)) for cell in c.cells)) + 4 for c in table.columns)
    if needed <= width:
        return table
    values = [f"{cell} {column.header}" for column in table.columns[:-1] for cell in column.cells]
    return Text(f"done: {', '.join(values)} in {next(iter(table.columns[-1].cells))}")


def summary_table(summary: Summary, *, one_off: bool = False) -> Table:
    table = Table(title=None, show_header=True, header_style="bold", box=None, padding=(0, 2))
    columns: list[tuple[str, int | str]] = [("generated", summary.generated)]
    if one_off:  # `generate`: nothing is restored, fresh or modified
        if summary.failed:
            columns.append(("failed", summary.failed))
    else:
        columns += _build_columns(summary)
    columns.append(("time", format_seconds(summary.seconds) if summary.seconds >= 1 else f"{summary.seconds:.2f}s"))
    for name, _ in columns:
        table.add_column(name, justify="right")
    table.add_row(*[str(value) for _, value in columns])
    return table


def _build_columns(summary: Summary) -> list[tuple[str, int | str]]:
    columns: list[tuple[str, int | str]] = [("restored", summary.restored), ("fresh", summary.fresh)]
    if summary.derived:
        columns.append(("derived", summary.derived))
    if summary.recorded:
        columns.append(("recorded", summary.recorded))
    columns += [("modified", summary.modified), ("failed", summary.failed - summary.modified)]
    if summary.skipped:
        columns.append(("skipped", summary.skipped))
    if summary.not_built:
        columns.append(("not built", summary.not_built))
    return columns
