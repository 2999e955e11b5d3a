"""The ``assetbuild`` command line: one registry of commands, the parser built from it, errors to exit codes.

Each command lives in ``assetbuild/commands/<module>.py`` and declares ``HELP`` (its line in ``--help``),
``add_arguments(parser)`` and ``main(args) -> int``; optionally ``DESCRIPTION`` (its ``--help`` text),
``OPTIONS`` (which shared options it takes, see ``commands._args``; default -f, --server, -v, -q) and
``WANTS_PARSER = True`` (``main`` gets the whole parser as ``args.root_parser``). Command modules import
their heavy dependencies inside ``main``: ``assetbuild --help`` imports every one of them.

Exit codes: 0 success, 1 an asset failed, 2 bad usage or manifest, 3 a bug, 130 interrupted. A user error
prints one line (and a hint); anything unexpected is a bug (exit 3): one line says where its traceback
was written (``assetbuild.crash``), and the traceback is shown only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import datetime  # noqa: F401  (see below)
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import cast

# `datetime` is imported first, while nothing can be interrupted half-way: pydantic-core (a Rust module) loads
# datetime's C API as it is imported, and a Ctrl-C landing inside that import turns into a Rust panic
# (PanicException, not KeyboardInterrupt) with a traceback. Already imported, the lookup runs no Python code.
from . import __version__
from .commands._args import Options, parents
from .errors import AssetbuildError, UsageError
from .safetext import safe_text

# Every command, in the order `assetbuild --help` lists them: command word -> module in assetbuild.commands.
# A word whose module is another command's is an alias (`list` is `status`).
COMMANDS: dict[str, str] = {
    "run": "run",
    "status": "status",
    "list": "status",
    "why": "why",
    "clean": "clean",
    "gc": "gc",
    "explore": "explore",
    "pick": "pick",
    "watch": "watch",
    "push": "push",
    "pull": "pull",
    "generate": "generate",
    "models": "models",
    "config": "config",
    "server": "server",
    "cancel": "cancel",
    "init": "init",
    "completion": "completion",
    "review": "review",
}

DESCRIPTION = """\
Declarative, incremental builds of generated image assets.

assetbuild reads assets.toml (in this folder or a parent), works out which images are stale, and
generates only those on a SwarmUI server (or the offline placeholder), restoring from its cache where
it can. assets.lock records what was built; commit it with the images.
"""

EPILOG = """\
`assetbuild TARGET...` is `assetbuild run TARGET...`; TARGET is a target path or glob (sprites/*.png).
exit codes: 0 success, 1 an asset failed, 2 bad usage or manifest, 3 a bug (see crash.log), 130 interrupted.
Run `assetbuild COMMAND --help` for a command's options.
"""


def command_module(name: str) -> ModuleType:
    """The module of command ``name`` (imported on first use)."""
    return importlib.import_module(f"{__package__}.commands.{COMMANDS[name]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``only`` of that command alone: parsing a known command
    word needs no other, and skipping them keeps start-up (the no-op build) fast."""
    parser = argparse.ArgumentParser(
        prog="assetbuild", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"assetbuild {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    shared: dict[str, list[argparse.ArgumentParser]] = {}  # parent parsers of the shared options, by kind
    for name in COMMANDS if only is None else (only,):
        module, module_name = command_module(name), COMMANDS[name]
        if name == module_name:
            help_text: str = module.HELP
            description: str = getattr(module, "DESCRIPTION", help_text.capitalize() + ".")
        else:
            help_text = f"same as {module_name}"
            description = help_text.capitalize() + "."
        options: Options = getattr(module, "OPTIONS", "common")
        if options not in shared:
            shared[options] = parents(options)
        cmd = sub.add_parser(name, parents=shared[options], help=help_text, description=description)
        module.add_arguments(cmd)
    return parser


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


def _check_command_typo(word: str, manifest: str | None) -> None:
    """``assetbuild statsu`` runs target 'statsu'. When no target matches it and it is close to a command
    word, it was most likely a mistyped command: say so (exit 2) rather than "no asset matches"."""
    import difflib

    guess = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.7)
    if not guess:
        return
    from .layout import find_manifest

    try:
        path = find_manifest(manifest)
    except UsageError:
        path = None  # no manifest, so no target either
    if path is not None:
        from .commands.select import select
        from .manifest import load

        try:
            select(load(path), [word])  # a broken manifest raises its own error here, as `run` would
            return
        except UsageError:
            pass
    raise UsageError(f"unknown command {word!r}; did you mean {guess[0]!r}?",
                     hint="`assetbuild --help` lists the commands")


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the command line's own process (not a caller's, which may well use trio)
        _without_trio()
        _escape_what_stdout_cannot_encode()
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while the parser's modules are still being imported: never a traceback
        print("assetbuild: interrupted", file=sys.stderr)
        return 130


def _escape_what_stdout_cannot_encode() -> None:
    """A target named ``日.png`` printed to a stream whose encoding cannot take it (a pipe on Windows is
    cp1252; a Latin-1 locale) is shown as ``\u65e5.png``, as stderr does by default, not a crash (exit 3)."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


def _without_trio() -> None:
    """httpcore imports ``trio`` whenever it is installed (selenium, for one, brings it), only to learn which
    event loop it runs under. The command line always runs asyncio, and that import took 40-100 ms of the
    start of every build that contacts a server: marked absent, httpcore goes straight to anyio."""
    # None in sys.modules: "import trio" raises ImportError, which httpcore expects when trio is missing.
    sys.modules.setdefault("trio", None)  # type: ignore[arg-type]


def _main(argv: Sequence[str] | None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args_list = _with_default_command(given)
    first = args_list[0]
    whole = first not in COMMANDS or getattr(command_module(first), "WANTS_PARSER", False)
    parser = build_parser(None if whole else first)
    args = parser.parse_args(args_list)
    args.root_parser = parser  # the whole parser for a command that sets WANTS_PARSER (`completion`)
    implicit_run = args_list == ["run", *given]  # `assetbuild TARGET`, not `assetbuild run TARGET`
    try:
        if implicit_run and args.targets:
            _check_command_typo(args.targets[0], args.file)
        command_main = cast(Callable[[argparse.Namespace], int], command_module(args.command).main)
        if argv is None and args.command != "watch":  # the command line's own process: one command, then it ends
            from .gcpause import one_shot

            with one_shot():
                return command_main(args)
        return command_main(args)
    except AssetbuildError as exc:
        if getattr(args, "verbose", False):
            import traceback  # only for -v: every other run does without the module

            traceback.print_exc()
        hint = f"\n  hint: {safe_text(exc.hint)}" if exc.hint else ""
        print(f"assetbuild: error: {safe_text(exc.message)}{hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("assetbuild: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`assetbuild status | head -1`): it has what it wanted, so stop quietly and
        # successfully, like other command-line tools (not exit 1, which scripts with pipefail take for a
        # failure). Builds never get here: their displays drop output once the reader is gone.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # anything else is a bug in assetbuild
        return _report_bug(exc, args)


def _report_bug(exc: Exception, args: argparse.Namespace) -> int:
    """One line naming the bug and where its traceback was written; the traceback itself only with -v."""
    from . import crash

    text, log = crash.report(exc, manifest=getattr(args, "file", None), command=args.command)
    if getattr(args, "verbose", False):
        sys.stderr.write(text)
    summary = crash.redact(f"{type(exc).__name__}: {exc}".splitlines()[0])
    where = f"the traceback is in {log}" if log is not None else "the traceback could not be written (run with -v)"
    print(f"assetbuild: bug: {summary}. This is a bug in assetbuild: {where}; please report it with that file.",
          file=sys.stderr)
    return crash.BUG_EXIT
