"""``assetbuild watch [TARGET...]``: build, then build again whenever assets.toml or an input file changes.

Each build is an ordinary ``assetbuild run TARGET...`` (same entry, same display, same guarantees). Builds
never overlap: changes made while one runs are collected by the watcher and start one follow-up build
when it ends, so a result made from an older manifest is written (with its own, correct lock entry)
before the newer one, never over it. A manifest that does not load prints its error and waits for the
next save. Ctrl-C (or SIGTERM) during a build interrupts this run's generations on the server, keeps what
finished, and ends with exit code 130; while waiting it simply ends (130).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # the heavy modules are imported when the command runs, not when the parser is built
    from ..manifest import Project

from ._args import add_no_wait

HELP = "build, then rebuild whenever assets.toml or an input file changes (Ctrl-C stops)"
POLL_MS = 500  # how often the wait wakes up (to notice a change made while the watcher was starting)
SETTLE_MS = 200  # a change is acted on once its files have been quiet this long (editors write in steps)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="target paths or globs (default: all)")
    parser.add_argument("--review", action="store_true",
                        help="after every build, write the review page (.assetbuild/review/index.html); "
                             "an open page reloads itself")
    add_no_wait(parser)


def main(args: argparse.Namespace) -> int:
    import sys

    return Watch(args, sys.stdout, sys.stderr).run()


Stamp = tuple[int, int, int] | None  # (size, mtime_ns, inode) of a watched file, None when missing


class Watch:
    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        from ..layout import find_manifest

        self.args = args
        self.out = out
        self.err = err
        self.manifest = find_manifest(args.file).absolute()
        self.files: set[str] = {str(self.manifest)}  # absolute paths whose changes start a build
        self.stamps: dict[str, Stamp] = {}  # those files as the last build read them
        self.stop_requested = False  # set by Ctrl-C / SIGTERM (see ``run``)

    def run(self) -> int:
        import signal

        from ..errors import UsageError

        if not self.manifest.is_file():
            raise UsageError(f"no such manifest: {self.manifest}", hint="run `assetbuild init` to write one")
        # Ctrl-C and SIGTERM end a watch. The handler also leaves a mark, checked at every turn of the loop:
        # a KeyboardInterrupt that lands inside a weakref callback (a WeakSet's, during garbage collection)
        # is printed as "Exception ignored" and dropped by Python, and the watch would go on forever.
        previous = {sig: signal.signal(sig, self._interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._loop()
        except KeyboardInterrupt:
            self._say("stopped watching")
            from .interrupt import INTERRUPTED_EXIT

            return INTERRUPTED_EXIT
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _interrupted(self, signum: int, frame: object) -> None:
        self.stop_requested = True
        raise KeyboardInterrupt

    def _check_stop(self) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt

    def _loop(self) -> int:
        import watchfiles

        code = self._build()
        if code == 130:
            return code
        while True:
            self._check_stop()
            folders = self._folders()
            announced = False
            for changes in watchfiles.watch(*folders, watch_filter=self._wanted, recursive=False, step=SETTLE_MS,
                                            rust_timeout=POLL_MS, yield_on_timeout=True):
                self._check_stop()
                changed = {path for _change, path in changes}
                if not announced:  # the watcher is live now; catch what changed since the build read it
                    announced = True
                    now = self._stamps(self.files)
                    changed |= {path for path, stamp in now.items() if self.stamps.get(path, stamp) != stamp}
                    self._say(f"watching {len(self.files)} file(s) for changes; Ctrl-C to stop")
                if not changed:
                    continue
                self._say("changed: " + ", ".join(_shown(path) for path in sorted(changed)))
                code = self._build()
                if code == 130:
                    return code
                self._check_stop()
                if self._folders() != folders:
                    break  # new input files in other folders: watch those too

    def _build(self) -> int | None:
        """One ordinary build; None when the manifest (or the command line) cannot be used."""
        from ..display import forward_logs, make_display
        from ..errors import AssetbuildError
        from ..plan import closure
        from ..projectlock import hold
        from ..workspace import load_project, workspace_of
        from .run import run
        from .select import select

        self.stamps = self._stamps([str(self.manifest)])  # before the manifest is read
        try:
            project = load_project(self.args.file, server=self.args.server)
            self._follow(project, closure(project, select(project, self.args.targets)))
            self.stamps.update(self._stamps(self.files - {str(self.manifest)}))  # before planning reads them
            # Each build holds the project lock (not the whole watch: a build in a terminal may run between).
            with hold(project.state_dir, "watch", wait=not self.args.no_wait):
                ws = workspace_of(project)
                events = make_display(quiet=self.args.quiet, verbose=self.args.verbose, stream=self.out,
                                      jobs=ws.project.server.default_jobs)
                with forward_logs(events, verbose=self.args.verbose):
                    code = run(ws, self.args.targets, events, jobs=None, keep_going=True, frozen=False)
            if self.args.review and code != 130:
                self._review(project)
        except AssetbuildError as exc:
            self.err.write(f"assetbuild: error: {exc}\n")
            self.err.flush()
            self._say(f"waiting for the next change to {_shown(str(self.manifest))}")
            return None
        return code

    def _review(self, project: Project) -> None:
        """Rewrite the review page of this watch's targets (read-only: outside the project lock)."""
        from ..workspace import workspace_of
        from .review import write_review

        _review, site = write_review(workspace_of(project), list(self.args.targets), live=True)
        self._say(f"review page: {site.index}")

    def _follow(self, project: Project, targets: list[str]) -> None:
        """Watch the manifest and every input file of ``targets`` that is not itself an asset."""
        files = {str(self.manifest)}
        for target in targets:
            files.update(os.path.abspath(i.path) for i in project.assets[target].inputs if i.asset is None)
        self.files = files

    def _folders(self) -> list[str]:
        return sorted({os.path.dirname(path) for path in self.files if os.path.isdir(os.path.dirname(path))})

    def _wanted(self, change: object, path: str) -> bool:
        return os.path.abspath(path) in self.files

    @staticmethod
    def _stamps(paths: Iterable[str]) -> dict[str, Stamp]:
        stamps: dict[str, Stamp] = {}
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                stamps[path] = None
                continue
            stamps[path] = (st.st_size, st.st_mtime_ns, st.st_ino)
        return stamps

    def _say(self, text: str) -> None:
        self.out.write(f"watch: {text}\n")
        self.out.flush()


def _shown(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else Path(relative).as_posix()
