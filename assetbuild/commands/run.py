"""``assetbuild run``: build what is stale, restoring from the cache where possible."""

from __future__ import annotations

import time

from .. import cacheusers, generators, noop
from ..build import Builder
from ..events import BuildEvents, Failure, Summary
from ..plan import State, Status, closure, explain
from ..tasks import run as run_doit
from ..workspace import Workspace
from .interrupt import INTERRUPTED_EXIT, on_interrupt
from .select import select


def run(ws: Workspace, patterns: list[str], events: BuildEvents, *, jobs: int | None, keep_going: bool,
        frozen: bool, memo_context: str | None = None) -> int:
    """Build the selected assets. Returns the exit code (0 ok, 1 an asset failed).

    ``memo_context`` (full builds only): record the no-op memo when everything ends fresh.
    """
    started = time.monotonic()
    project = ws.project
    for warning in project.warnings:
        events.warning(warning)
    targets = closure(project, select(project, patterns))
    statuses = ws.planner.plan(targets)
    summary = Summary(orphans=[s.target for s in ws.planner.orphans()] if not patterns else [])
    pending = [s for s in statuses if s.state is not State.FRESH]
    events.run_started(len(targets), len(pending))

    missing = _must_generate(ws, pending) if frozen else []
    if missing:  # --frozen: fail before doing anything, naming every asset that would be generated
        for status in missing:
            failure = Failure(status.target, f"stale ({_why_stale(status)}) and not in the cache",
                              "--frozen forbids generating: build and commit the images and assets.lock")
            summary.failures.append(failure)
            summary.failed += 1
            events.asset_failed(status.target, failure)
        return _finish(ws, events, summary, started)

    if not pending:
        summary.fresh = len(targets)
        code = _finish(ws, events, summary, started)
        if memo_context is not None:  # the memo was missing or stale (else cli would not be here)
            noop.record(project, memo_context, summary.orphans, ws.hashes.verified_stamp)
        return code

    # Made now (it contacts nothing until its first generation) so that bad settings, such as unusable
    # credentials, stop the run with exit 2 before any work rather than failing inside a task.
    # Generations in flight stay capped by server.concurrency (the load agreed with the server, issue 3);
    # -n/--jobs only sets how many assets doit processes at once (restores and derivations included).
    cacheusers.register(project)  # so gc run from any project sharing the cache keeps what this one needs
    generator = generators.create(project.server)
    builder = Builder(project, ws.lock, ws.cache, ws.hashes, ws.planner, lambda: generator, events, frozen=frozen)
    try:
        with on_interrupt(builder.cancel) as interrupted:
            run_doit(builder, targets, jobs=jobs or project.server.concurrency, keep_going=keep_going,
                     summary=summary)
    finally:
        builder.close()
    code = _finish(ws, events, summary, started)
    if interrupted.is_set():
        events.warning("interrupted: finished assets are kept; run again to build the rest")
        return INTERRUPTED_EXIT
    if memo_context is not None and code == 0:
        noop.record(project, memo_context, summary.orphans, ws.hashes.verified_stamp)
    return code


def _must_generate(ws: Workspace, pending: list[Status]) -> list[Status]:
    """Pending assets that cannot be restored: stale and not cached, or downstream of such an asset."""
    missing = [s for s in pending if s.state is State.GENERATE]
    blocked = {s.target for s in missing}
    for status in pending:  # dependency order, so upstream assets were seen first
        if status.state is State.UPSTREAM and blocked & set(ws.project.assets[status.target].upstream):
            blocked.add(status.target)
            missing.append(Status(status.target, State.UPSTREAM, "an input asset must be generated first"))
    return missing


def _finish(ws: Workspace, events: BuildEvents, summary: Summary, started: float) -> int:
    ws.settle()
    summary.seconds = time.monotonic() - started
    events.run_finished(summary)
    return 0 if summary.ok else 1


def _why_stale(status: Status) -> str:
    """The reason, with the changed fields when the lock knows the old inputs (``steps: 20 -> 30``)."""
    if status.entry is None or status.form is None:
        return status.reason
    changes = explain(status.entry.inputs, status.form)
    return f"{status.reason}: {'; '.join(changes)}" if changes else status.reason
