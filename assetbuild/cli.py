"""The ``assetbuild`` command line: parses arguments, runs a command, maps errors to exit codes.

Exit codes: 0 success, 1 an asset failed, 2 bad usage or manifest. A user error prints one line (and
a hint); anything unexpected is a bug and prints a traceback only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from . import __version__
from .errors import AssetbuildError
from .safetext import safe_text

COMMANDS = ("run", "clean", "list", "status", "why", "gc",
            "generate", "models", "config", "server", "cancel", "init", "completion")

DESCRIPTION = """\
Declarative, incremental builds of generated image assets.

assetbuild reads assets.toml (in this folder or a parent), works out which images are stale, and
generates only those on a SwarmUI server (or the offline placeholder), restoring from its cache where
it can. assets.lock records what was built; commit it with the images.
"""

EPILOG = """\
commands:
  run [TARGET...]      build everything, or the named targets (paths or globs); the default command
  status, list         the state of each asset: fresh, stale, modified, orphan
  why TARGET|FILE      which fields changed since the asset was built
  clean [TARGET...]    delete generated images and orphans (never hand-made or edited files)
  gc                   prune the cache to what assets.lock (and --keep-ref REFs) need
  init                 write a commented starter assets.toml
  generate --prompt T  one-off images: prints their URLs, or writes them with --save-images
  models               the server's models (name, architecture, resolution, loaded)
  server status        is the server reachable? version, backends, queue (exit 1 if not)
  cancel               stop your generations on the server (InterruptAll, all your sessions)
  config set|get|view|unset KEY [VALUE]
                       user settings: server, api-key, token, cache-dir (secrets shown masked)
  completion bash|zsh|fish
                       print a shell completion script

exit codes: 0 success, 1 an asset failed, 2 bad usage or manifest.
Run `assetbuild COMMAND --help` for a command's options.
"""


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-f", "--file", metavar="FILE", help="the manifest (default: assets.toml here or above)")
    common.add_argument("--server", metavar="URL", help="SwarmUI URL, or 'placeholder' (overrides the manifest)")
    common.add_argument("-v", "--verbose", action="store_true", help="more detail; tracebacks on errors")
    common.add_argument("-q", "--quiet", action="store_true", help="only failures and the summary")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="assetbuild", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"assetbuild {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="build stale assets (default)",
                         description="Build everything, or the named targets and what they need.")
    run.add_argument("targets", nargs="*", metavar="TARGET", help="target paths or globs (default: all)")
    run.add_argument("-n", "--jobs", type=_positive, metavar="N",
                     help="assets processed at once (default: server.concurrency); SwarmUI generations in "
                          "flight stay capped at server.concurrency")
    run.add_argument("--force", action="store_true", help="replace files assetbuild did not write or that were edited")
    run.add_argument("--keep-going", action="store_true", help="build the others when one asset fails")
    run.add_argument("--frozen", action="store_true",
                     help="fail, generating nothing, if an asset is stale and not in the cache (for CI)")
    run.add_argument("--dry-run", action="store_true",
                     help="show what would happen to each asset, without building or contacting the server")
    run.add_argument("--json", action="store_true", help="one JSON object per event on stdout")

    for name, text in (("status", "show the state of each asset"), ("list", "same as status")):
        cmd = sub.add_parser(name, parents=[common], help=text, description=text.capitalize() + ".")
        cmd.add_argument("targets", nargs="*", metavar="TARGET")
        cmd.add_argument("--json", action="store_true", help="one JSON object per asset")

    why = sub.add_parser("why", parents=[common], help="explain why an asset is stale",
                         description="Which fields changed since TARGET was built (or which asset made FILE).")
    why.add_argument("name", metavar="TARGET|FILE")

    clean = sub.add_parser("clean", parents=[common], help="delete generated images and orphans",
                           description="Delete generated images (never hand-made or edited files) and "
                                       "orphans of removed entries. The cache is kept.")
    clean.add_argument("targets", nargs="*", metavar="TARGET")
    clean.add_argument("--dry-run", action="store_true", help="say what would be removed")

    gc = sub.add_parser("gc", parents=[common], help="prune the cache",
                        description="Remove cache entries that assets.lock does not need (the cache folder may "
                                    "be shared: see [project] cache_dir and ASSETBUILD_CACHE_DIR).")
    gc.add_argument("--keep-days", type=float, metavar="N", help="also keep entries used in the last N days")
    gc.add_argument("--keep-ref", action="append", default=[], metavar="REF",
                    help="also keep what assets.lock needs at git REF (repeatable), e.g. origin/main")
    gc.add_argument("--dry-run", action="store_true", help="say what would be removed, with sizes")

    from .commands.parsers import add_commands

    add_commands(sub, common)  # generate, models, config, server, cancel, init, completion
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _with_default_command(argv: list[str]) -> list[str]:
    """``assetbuild`` and ``assetbuild sprites/*.png`` mean ``assetbuild run ...``."""
    if not argv:
        return ["run"]
    first = argv[0]
    if first in COMMANDS or first in ("-h", "--help", "--version"):
        return argv
    if first.startswith("-"):
        # Options before the command (`assetbuild -v status`): the command word goes first for argparse.
        word = next((i for i, token in enumerate(argv) if token in COMMANDS), None)
        if word is not None:
            return [argv[word], *argv[:word], *argv[word + 1:]]
    return ["run", *argv]


def main(argv: Sequence[str] | None = None) -> int:
    args_list = _with_default_command(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(args_list)
    try:
        return _dispatch(args)
    except AssetbuildError as exc:
        if args.verbose:
            traceback.print_exc()
        hint = f"\n  hint: {safe_text(exc.hint)}" if exc.hint else ""
        print(f"assetbuild: error: {safe_text(exc.message)}{hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("assetbuild: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`assetbuild --json | head`): stop quietly, like other command-line tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    from .commands import parsers

    if args.command in parsers.COMMANDS:
        return parsers.dispatch(args)
    from . import noop
    from .display import forward_logs, make_display
    from .layout import find_manifest

    out = sys.stdout
    memo_context = None
    if args.command == "run" and not (args.targets or args.dry_run or args.force):
        manifest = find_manifest(args.file)
        memo_context = noop.context(manifest, args.server)
        memo = noop.check(manifest, memo_context)
        if memo is not None:  # nothing changed since everything was last fresh: skip planning
            return noop.report(make_display(json_output=args.json, quiet=args.quiet, stream=out), memo)
    # Imported only now: a no-op answered by the memo never pays for pydantic, doit or Pillow.
    from .commands import clean, gc, run, status
    from .workspace import open_workspace

    if args.command == "run":
        ws = open_workspace(args.file, server=args.server, force=args.force)
        if args.dry_run:
            return status.show_status(ws, args.targets, out, as_json=args.json)
        jobs = args.jobs or ws.project.server.concurrency
        events = make_display(json_output=args.json, quiet=args.quiet, verbose=args.verbose, stream=out,
                              jobs=jobs)
        with forward_logs(events, verbose=args.verbose):
            return run.run(ws, args.targets, events, jobs=jobs, keep_going=args.keep_going, frozen=args.frozen,
                           memo_context=memo_context)
    ws = open_workspace(args.file, server=args.server)
    if args.command in ("status", "list"):
        return status.show_status(ws, args.targets, out, as_json=args.json)
    if args.command == "why":
        return status.why(ws, args.name, out)
    if args.command == "clean":
        return clean.clean(ws, args.targets, out, dry_run=args.dry_run)
    if args.command == "gc":
        return gc.gc(ws, out, keep_days=args.keep_days, keep_refs=args.keep_ref, dry_run=args.dry_run)
    raise AssertionError(f"unhandled command {args.command}")
