"""``assetbuild explore TARGET``: N candidates of an asset, each with its own seed, into the cache only,
and a contact sheet to compare them. ``assetbuild pick TARGET SEED`` then pins one."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TextIO

if TYPE_CHECKING:  # the heavy modules are imported when the command runs, not when the parser is built
    from ..events import BuildEvents, Summary
    from ..generators import Generator
    from ..manifest import Asset, Project
    from ..remote.remote import Remote
    from ..workspace import Workspace

from ..safetext import safe_text
from ._args import add_no_wait

HELP = "make N candidates of an asset (distinct seeds) and a contact sheet; never touches the target"
DEFAULT_COUNT = 4
DEFAULT_MAX_ASSETS = 8


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError("must be between 1 and 100")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="the asset (a target path or a glob)")
    parser.add_argument("-k", "--count", type=_count, metavar="N",
                        help=f"how many candidates, with random seeds (default {DEFAULT_COUNT})")
    parser.add_argument("--seeds", metavar="S1,S2,...", help="the candidates' seeds (instead of random ones)")
    parser.add_argument("--max-assets", type=_count, default=DEFAULT_MAX_ASSETS, metavar="N",
                        help=f"refuse globs matching more assets than this (default {DEFAULT_MAX_ASSETS})")
    add_no_wait(parser)


def main(args: argparse.Namespace) -> int:
    import sys

    from ..display import forward_logs, make_display
    from ..projectlock import workspace

    with workspace(args, writes=True) as ws:  # one writer per project (it may build input assets)
        events = make_display(quiet=args.quiet, verbose=args.verbose, stream=sys.stdout,
                              jobs=ws.project.server.default_jobs)
        with forward_logs(events, verbose=args.verbose):
            return explore(ws, args.targets, events, sys.stdout, count=args.count, seeds_text=args.seeds,
                           max_assets=args.max_assets)


def explore(ws: Workspace, patterns: list[str], events: BuildEvents, out: TextIO, *, count: int | None = None,
            seeds_text: str | None = None, max_assets: int = DEFAULT_MAX_ASSETS) -> int:
    """Make the candidates and their contact sheets. Returns the exit code (0, 1 a candidate failed, 130)."""
    import time

    from .. import candidates as cand
    from .. import generators
    from ..errors import UsageError
    from ..events import Summary
    from ..fsutil import make_state_dir
    from ..lock import checked
    from .run import run as run_build
    from .select import select

    project = ws.project
    chosen = select(project, patterns)
    if len(chosen) > max_assets:
        raise UsageError(f"{len(chosen)} assets match; explore makes candidates of at most {max_assets} at once",
                         hint="name fewer assets, or raise the limit with --max-assets N")
    for target in chosen:
        source = project.assets[target].source
        if source:
            raise UsageError(f"{target} is derived from {source} (no generation, no seed)",
                             hint=f"explore {source} instead")
    if seeds_text is not None:
        seeds = cand.parse_seeds(seeds_text)
        if count is not None and count != len(seeds):
            raise UsageError(f"-k {count} but {len(seeds)} seeds given", hint="give one or the other")
    else:
        seeds = cand.random_seeds(count or DEFAULT_COUNT)

    # The team store: a misconfigured one stops here (exit 2) before any work; an outage is one warning.
    remote = ws.open_remote(events.warning)

    # Candidates need their input images as they are now: build the input assets (a normal build).
    upstream = [t for t in _upstream(project, chosen) if t not in chosen]
    if upstream and any(s.state.needs_work for s in ws.planner.plan(upstream)):
        code = run_build(ws, upstream, events, jobs=None, keep_going=False, frozen=False)
        if code != 0:
            return code

    make_state_dir(project.state_dir)
    started = time.monotonic()
    for target in chosen:
        out.write(f"exploring {safe_text(target)}: {len(seeds)} candidate(s), seeds {', '.join(map(str, seeds))}\n")
    out.flush()
    work: list[Candidate] = []
    for target in chosen:
        asset = project.assets[target]
        entry = ws.lock.get(target)
        if entry is not None:
            checked(entry)  # the contact sheet shows its seed at the end: a damaged entry stops us before any work
        for seed in seeds:
            identity = cand.candidate_identity(ws.planner, asset, seed)
            if identity is None:
                raise UsageError(f"{target}: an input image is missing; its candidates cannot be made",
                                 hint="build its input assets first: `assetbuild run` (or create the file)")
            key, inputs = identity
            # The pinned seed's candidate is the asset's own image: the store's copy must be the lock's.
            expected = entry.hash if entry is not None and entry.key == key else None
            work.append(Candidate(cand.label(target, seed), cand.with_seed(asset, seed), key, inputs, expected))
    summary = Summary()
    to_make = [c.asset for c in work if not ws.cache.has(c.key)]
    generator = generators.create(project.server)
    try:
        _check_server(ws, generator, to_make, events)
    except BaseException:
        generator.close()
        raise
    events.run_started(len(work), len(to_make))
    interrupted = _make_all(ws, work, events, summary, generator, remote)
    summary.seconds = time.monotonic() - started
    events.run_finished(summary)
    out.write(_counts(summary, remote) + "\n")
    if remote is not None and remote.push and remote.breaker.warned and (summary.generated or summary.fresh):
        events.warning(f"candidates made while the team store {remote.name} was unavailable were not pushed: "
                       "explore the same seeds again (--seeds) when it is back to push them")
    for target in chosen:
        _sheet(ws, target, seeds, out)
    ws.hashes.save()
    if interrupted:
        from .interrupt import INTERRUPTED_EXIT

        events.warning("interrupted: finished candidates are kept in the cache")
        return INTERRUPTED_EXIT
    return 0 if summary.ok else 1


def _upstream(project: Project, targets: list[str]) -> list[str]:
    from ..plan import closure

    return closure(project, targets)


def _check_server(ws: Workspace, generator: Generator, assets: list[Asset], events: BuildEvents) -> None:
    """Before the first generation, as `run` does: the candidates' parameters and model names against the
    server's own lists (``ServerCheckError``, exit 2, nothing generated). Offline generators skip it."""
    run_on_client = getattr(generator, "run_on_client", None)
    if run_on_client is None or not assets:
        return
    from ..servercheck import ServerCheckError, ask_with, check
    from ..swarm.errors import SwarmError

    try:
        truth = ask_with(run_on_client, ws, assets)
        problems = check(ws.project, assets, truth.params)
        if truth.from_cache and any(p.about_models for p in problems):  # models may have been added since
            truth = ask_with(run_on_client, ws, assets, refresh=True)
            problems = check(ws.project, assets, truth.params)
    except SwarmError:
        events.warning("cannot check the candidates against the server; generating them unchecked")
        return
    if problems:
        raise ServerCheckError(f"{len(problems)} problem(s) against the server; nothing was generated:\n  "
                               + "\n  ".join(str(p) for p in problems),
                               hint="use the exact names the server lists (`assetbuild models`)")


class Candidate(NamedTuple):
    label: str
    asset: Asset  # the manifest's asset with the candidate's seed
    key: str
    inputs: dict[str, str]  # the input hashes ``key`` was computed from
    expected_hash: str | None  # the image assets.lock records for ``key``, if it does


def _counts(summary: Summary, remote: Remote | None) -> str:
    """``candidates: 2 generated, 1 from the local cache, 1 from the team store s3://..., 2 pushed``."""
    parts = [f"{summary.generated} generated", f"{summary.fresh} from the local cache"]
    if remote is not None:
        parts.append(f"{summary.restored} from the team store {remote.name}")
        parts.append(f"{remote.uploaded} pushed" if remote.push else "none pushed (push is off)")
    return "candidates: " + ", ".join(parts)


def _make_all(ws: Workspace, work: list[Candidate], events: BuildEvents, summary: Summary, generator: Generator,
              remote: Remote | None) -> bool:
    """Make every candidate, as many at once as a build would: each is looked for in the local cache, then
    in the team store, then generated (and pushed). Returns whether the run was interrupted; returns once
    the uploads have ended (on Ctrl-C, those in flight)."""
    from concurrent.futures import ThreadPoolExecutor

    from ..builder import Builder, Cancelled
    from ..errors import AssetError
    from ..events import Failure
    from .interrupt import on_interrupt

    project = ws.project
    builder = Builder(ws, lambda: generator, events, remote=remote)

    def make(candidate: Candidate) -> None:
        label = candidate.label
        events.asset_started(label)
        try:
            outcome = builder.make_candidate(label, candidate.asset, candidate.key, candidate.inputs,
                                             expected_hash=candidate.expected_hash)
        except Cancelled:
            summary.skipped += 1
            failure = Failure(label, "interrupted", skipped=True)
            summary.failures.append(failure)
            events.asset_failed(label, failure)
            return
        except AssetError as exc:
            summary.failed += 1
            failure = Failure(label, exc.reason, exc.hint)
            summary.failures.append(failure)
            events.asset_failed(label, failure)
            return
        summary.count(outcome)
        events.asset_finished(label, outcome, builder.seconds(label))

    try:
        with on_interrupt(builder.cancel) as interrupted, \
                ThreadPoolExecutor(max_workers=max(1, min(len(work), project.server.default_jobs))) as pool:
            for future in [pool.submit(make, item) for item in work]:
                future.result()
    finally:
        builder.close()
        if remote is not None:  # like a build: the uploads end before the command (Ctrl-C: those in flight)
            remote.finish(interrupted=builder.cancelled.is_set())
    return interrupted.is_set()


def _sheet(ws: Workspace, target: str, seeds: list[int], out: TextIO) -> None:
    """Record the explored seeds, write the contact sheet of every candidate still valid, print paths."""
    from .. import candidates as cand
    from .. import contactsheet
    from ..cache import CorruptEntry

    project = ws.project
    asset = project.assets[target]
    folder = cand.explore_dir(project, target)
    explored = [s for s in cand.explored_seeds(project, target) if s not in seeds] + seeds
    shown: list[contactsheet.Sheet] = []
    for seed in explored:
        key = cand.candidate_key(ws.planner, asset, seed)
        try:
            hit = ws.cache.get(key) if key else None
        except CorruptEntry:
            hit = None  # removed by get(): the candidate is simply gone
        if key and hit is not None:
            shown.append(contactsheet.Sheet(seed, key, hit.data))
    cand.record_seeds(project, target, [c.seed for c in shown])
    entry = ws.lock.get(target)
    page = contactsheet.write(project, asset, folder, shown, entry.seed if entry else None)
    for candidate in shown:
        if candidate.seed in seeds:
            image = folder / contactsheet.image_name(candidate.seed, target)
            out.write(f"{safe_text(target)}  seed {candidate.seed}: {safe_text(_shown(image))}\n")
    earlier = len(shown) - sum(1 for c in shown if c.seed in seeds)
    more = f" (and {earlier} earlier candidate(s))" if earlier else ""
    out.write(f"contact sheet{more}: {safe_text(_shown(page))}\n")
    out.write(f"pin one with: assetbuild pick {safe_text(_quote(target))} SEED\n")
    out.flush()


def _shown(path: Path) -> str:
    import os

    text = str(path)
    try:
        relative = os.path.relpath(text)
    except ValueError:
        return text
    return text if relative.startswith("..") else relative


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
