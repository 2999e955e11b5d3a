"""``assetbuild run``: build what is stale, restoring from the cache where possible.

This module is imported to build the command line parser and on the no-op path, so the build machinery
(pydantic, doit, Pillow) is imported inside the functions that use it.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from ._args import add_no_wait, whole_number

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..events import BuildEvents, Summary
    from ..generators.base import Generator
    from ..manifest import Project
    from ..noop import Partial
    from ..plan import Status
    from ..remote.remote import Remote
    from ..workspace import Workspace

HELP = "build stale assets (default)"
DESCRIPTION = "Build everything, or the named targets and what they need."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="target paths or globs (default: all)")
    parser.add_argument("-n", "--jobs", type=whole_number(1), metavar="N",
                        help="assets processed at once (default: server.concurrency if set, else enough to "
                             "keep the server's slots filled); SwarmUI generations in flight never exceed it")
    parser.add_argument("--force", action="store_true",
                        help="replace files assetbuild did not write or that were edited")
    parser.add_argument("--rebuild", action="store_true",
                        help="generate the named TARGETs again even if fresh, bypassing the cache (like make -B); "
                             "hand-made or edited files still need --force")
    parser.add_argument("--keep-going", action="store_true", help="build the others when one asset fails")
    parser.add_argument("--frozen", action="store_true",
                        help="fail, generating nothing, if an asset is stale and not in the cache (for CI)")
    parser.add_argument("--dry-run", action="store_true",
                        help="show what would happen to each asset, without building or contacting the server")
    parser.add_argument("--json", action="store_true", help="one JSON object per event on stdout")
    add_no_wait(parser)


def main(args: argparse.Namespace) -> int:
    from .. import noop
    from ..display import forward_logs, make_display
    from ..layout import find_manifest

    out = sys.stdout
    memo_context = None
    partial = None
    # --frozen (CI) always plans in full: it must prove every asset fresh, not trust a memo.
    if not (args.targets or args.dry_run or args.force or args.frozen or args.rebuild):
        manifest = find_manifest(args.file)
        memo_context = noop.context(manifest, args.server)
        memo = noop.check(manifest, memo_context)
        if isinstance(memo, noop.Memo):  # nothing changed since everything was last fresh: skip planning
            return noop.report(make_display(json_output=args.json, quiet=args.quiet, stream=out), memo)
        partial = memo  # the asset tables still proven fresh, if any: only the others are planned
    # Imported only now: a no-op answered by the memo never pays for pydantic, doit or Pillow.
    from ..projectlock import workspace
    from .status import show_status

    with workspace(args, writes=not args.dry_run, force=args.force, partial=partial) as ws:  # one writer per project
        if args.rebuild:
            ws.planner.rebuild.update(rebuild_targets(ws.project, args.targets))
        if args.dry_run:
            return show_status(ws, args.targets, out, as_json=args.json, ask_server=False)
        jobs = args.jobs or ws.project.server.default_jobs
        events = make_display(json_output=args.json, quiet=args.quiet, verbose=args.verbose, stream=out,
                              jobs=jobs)
        with forward_logs(events, verbose=args.verbose):
            return run(ws, args.targets, events, jobs=jobs, keep_going=args.keep_going, frozen=args.frozen,
                       memo_context=memo_context)


def run(ws: Workspace, patterns: list[str], events: BuildEvents, *, jobs: int | None, keep_going: bool,
        frozen: bool, memo_context: str | None = None, generator: Generator | None = None) -> int:
    """Build the selected assets. Returns the exit code (0 ok, 1 an asset failed, 130 interrupted).

    ``memo_context`` (full builds only): record the no-op memo when everything ends fresh. ``generator``
    (the Python API's): make images with it instead of the one the server settings select; it is closed
    at the end. The workspace's planner must have been opened with its ``kind``.
    """
    from .. import cacheusers, generators, noop
    from ..events import Failure, Summary
    from ..plan import State, closure
    from .interrupt import INTERRUPTED_EXIT, on_interrupt
    from .select import select

    started = time.monotonic()
    project = ws.project
    targets = closure(project, select(project, patterns))
    statuses = ws.planner.plan(targets)
    # Assets of the tables the no-op memo proved fresh (not loaded: ``ws.partial``) count as fresh.
    proven = len(ws.partial.fresh_targets) if ws.partial is not None else 0
    total = len(targets) + proven
    # Made now (it contacts nothing until it is used) so that bad settings, such as unusable credentials,
    # stop the run with exit 2 before any work rather than failing inside a task.
    chosen = generator if generator is not None else generators.create(project.server)
    truth = None
    run_on_client = getattr(chosen, "run_on_client", None)  # only a SwarmUI generator has a server
    try:
        if ws.partial is not None and _needs_whole(ws.partial, run_on_client):
            ws, project, targets, statuses, proven, total = _replan_whole(ws, patterns)
        if not frozen and run_on_client is not None:
            # The server's own truth before any generation: parameters, exact model names, model hashes
            # (also of the models of the tables the memo proved fresh: only the server can vouch for them).
            from ..servercheck import models_changed, verify

            pairs = ws.partial.model_pairs if ws.partial is not None else frozenset()
            statuses, truth = verify(ws, targets, statuses, events, run_on_client, pairs)
            if pairs and truth is not None and models_changed(truth.hashes, pairs):
                # A model of a table the memo proved fresh has another hash now: the full plan decides (it
                # rebuilds or warns, as [server] model_changes says), and checks again.
                ws, project, targets, statuses, proven, total = _replan_whole(ws, patterns)
                statuses, truth = verify(ws, targets, statuses, events, run_on_client)
        prepare = getattr(chosen, "prepare", None)  # a SwarmUI generator: capacity and sessions, meanwhile
        to_generate = sum(1 for s in statuses if s.state is State.GENERATE) if not frozen else 0
        if prepare is not None and to_generate:
            prepare(to_generate)
    except BaseException:
        chosen.close()
        raise
    for warning in project.warnings:
        if truth is None or not _server_knows(warning, truth):
            events.warning(warning)
    summary = Summary(orphans=[s.target for s in ws.planner.orphans()] if not patterns else [])
    pending = [s for s in statuses if s.state is not State.FRESH]
    # The team store is opened only when there is work: a misconfigured one stops the run here (exit 2),
    # before the display starts; an outage's warning is shown once it has.
    early: list[str] = []
    remote = ws.open_remote(early.append) if pending else None
    events.run_started(total, len(pending))
    if remote is not None:
        remote.set_warn(events.warning)
    for text in early:
        events.warning(text)
    missing = _must_generate(ws, pending, remote) if frozen else []
    if missing:  # --frozen: fail before doing anything, naming every asset that would be generated
        for status in missing:
            failure = Failure(status.target, f"stale ({_why_stale(status)}) and not in the cache",
                              "--frozen forbids generating: build and commit the images and assets.lock")
            summary.failures.append(failure)
            summary.failed += 1
            events.asset_failed(status.target, failure)
        chosen.close()
        summary.fresh = sum(1 for s in statuses if s.state is State.FRESH) + proven
        _count_not_built(summary, total, "--frozen builds nothing while an asset must be generated")
        return _finish(ws, events, summary, started)

    # With model hashes in the lock, only the server can say that nothing changed: the memo then never
    # answers alone, and the next run asks the server about the tables it proves fresh (noop.Partial).
    memo_allowed = memo_context is not None
    if not pending:
        chosen.close()
        summary.fresh = total
        code = _finish(ws, events, summary, started)
        cacheusers.register(project)  # also when nothing was built: a project fresh since before registration
        if memo_allowed:  # the memo was missing or stale (else cli would not be here)
            assert memo_context is not None
            noop.record(project, memo_context, summary.orphans, ws.hashes.verified_stamp, ws.partial,
                        _lock_hashes(ws))
        return code

    # Generations in flight are capped by server.concurrency when it is set, else they follow the server's
    # capacity (swarm/capacity.py); -n/--jobs sets how many assets doit processes at once (restores and
    # derivations included), so it bounds generations in flight too. (``chosen`` was made above.)
    cacheusers.register(project)  # so gc run from any project sharing the cache keeps what this one needs
    ws.cache.defer_sync()  # each entry is a copy of a target fsynced before its lock entry; settle() syncs all
    from ..builder import Builder  # only when there is work: a run that finds everything fresh never needs it

    builder = Builder(ws, lambda: chosen, events, frozen=frozen, remote=remote)
    jobs = jobs or project.server.default_jobs
    try:
        with on_interrupt(builder.cancel) as interrupted:
            # The first images are on their way before doit is imported and its threads started.
            builder.start_early(pending, jobs)
            from ..tasks import run as run_doit  # doit: imported only when there is work

            # Only the stale assets become doit tasks: after one edit in a big manifest, doit handles
            # one task, not every asset, and nothing is planned twice.
            summary.fresh += total - len(pending)
            stale = [s.target for s in pending]
            # The builder decides each asset again as it starts: the plan's statuses (each with its
            # canonical inputs, ~1 KB an asset) need not live through the build.
            del statuses, pending
            run_doit(builder, stale, jobs=jobs, keep_going=keep_going, summary=summary)
    finally:
        builder.finish_early()
        builder.close()
        if remote is not None:  # the run ends when its uploads have (Ctrl-C: those in flight; `push` resumes)
            remote.finish(interrupted=builder.cancelled.is_set())
    _count_not_built(summary, total, "interrupted; run again to build the rest" if interrupted.is_set()
                     else "stopped after the first failure; --keep-going builds the rest")
    code = _finish(ws, events, summary, started)
    if interrupted.is_set():
        events.warning("interrupted: finished assets are kept; run again to build the rest")
        return INTERRUPTED_EXIT
    if memo_allowed and code == 0:
        assert memo_context is not None
        noop.record(project, memo_context, summary.orphans, ws.hashes.verified_stamp, ws.partial, _lock_hashes(ws))
    return code


def rebuild_targets(project: Project, patterns: list[str]) -> list[str]:
    """The targets ``run --rebuild`` generates again: those named (all of them must be named, so that a
    stray flag never regenerates a whole project)."""
    from ..errors import UsageError
    from .select import select

    if not patterns:
        raise UsageError("--rebuild generates the named targets again: name them",
                         hint="e.g. assetbuild run --rebuild sprites/hero.png (globs work: 'sprites/*.png')")
    return select(project, patterns)


def _count_not_built(summary: Summary, total: int, reason: str) -> None:
    """Assets the run never reached (doit reports nothing for them) are counted, with why and what to do."""
    summary.not_built = max(0, total - summary.accounted)
    summary.not_built_reason = reason if summary.not_built else None


def _lock_hashes(ws: Workspace) -> Callable[[str], dict[str, str]]:
    """Each target's model hashes in the lock (for the no-op memo's records)."""
    def of(target: str) -> dict[str, str]:
        entry = ws.lock.get(target)
        return entry.model_hashes if entry is not None else {}
    return of


def _needs_whole(partial: Partial, run_on_client: object) -> bool:
    """Whether the tables the memo proved fresh must be planned after all, before asking the server."""
    if run_on_client is None:
        # The placeholder records no model hashes: hashes in the lock were made by another generator.
        return bool(partial.model_pairs)
    # A lock from before hashes were recorded: the full plan records them when it generates
    # (servercheck.adopt_hashes), which it can do only for the assets it loaded.
    return partial.unhashed


def _replan_whole(ws: Workspace, patterns: list[str]) -> tuple[Workspace, Project, list[str], list[Status], int, int]:
    """The whole manifest's workspace, targets and plan (``run``'s locals) for a run that began with only
    the tables the memo could not prove fresh (the project lock is already held)."""
    from ..plan import closure
    from ..workspace import load_project, workspace_of
    from .select import select

    whole = load_project(str(ws.project.manifest), server=ws.project.server.url)
    ws = workspace_of(whole, force=ws.planner.force)
    targets = closure(whole, select(whole, patterns))
    return ws, whole, targets, ws.planner.plan(targets), 0, len(targets)


def _server_knows(warning: str, truth: object) -> bool:
    from ..servercheck import ServerTruth, server_knows

    return isinstance(truth, ServerTruth) and server_knows(warning, truth)


def _must_generate(ws: Workspace, pending: list[Status], remote: Remote | None = None) -> list[Status]:
    """Pending assets that cannot be restored: stale and not cached (here or in the team store), or downstream
    of such an asset."""
    from ..plan import State, Status

    missing = [s for s in pending if s.state is State.GENERATE]
    if remote is not None and missing:
        from ..remote.remote import bounded_map

        in_store = {s.target for s, has in bounded_map(lambda s: remote.has(s.key or ""), missing) if has}
        missing = [s for s in missing if s.target not in in_store]
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
    from ..plan import explain

    if status.entry is None or status.form is None:
        return status.reason
    changes = explain(status.entry.inputs, status.form)
    return f"{status.reason}: {'; '.join(changes)}" if changes else status.reason
