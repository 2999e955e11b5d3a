"""Argument helpers shared by the command parsers: the common options and value validators.

Imported when the parser is built, so it stays free of heavy imports (no pydantic, doit, Pillow...).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Literal

# Which shared options a command takes (a command module may set ``OPTIONS``; the default is "common"):
# "common" -f/--file, --server, -v, -q; "verbose" only -v; "none" nothing (the command adds its own).
Options = Literal["common", "verbose", "none"]


def common_options() -> argparse.ArgumentParser:
    """The parent parser of -f/--file, --server, -v/--verbose and -q/--quiet."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-f", "--file", metavar="FILE", help="the manifest (default: assets.toml here or above)")
    common.add_argument("--server", metavar="URL", help="SwarmUI URL, or 'placeholder' (overrides the manifest)")
    common.add_argument("-v", "--verbose", action="store_true", help="more detail; tracebacks on errors")
    common.add_argument("-q", "--quiet", action="store_true", help="only failures and the summary")
    return common


def verbose_option() -> argparse.ArgumentParser:
    """The parent parser of -v/--verbose alone (commands that read no manifest and talk to no server)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-v", "--verbose", action="store_true", help="more detail; tracebacks on errors")
    return parent


def parents(options: Options) -> list[argparse.ArgumentParser]:
    if options == "common":
        return [common_options()]
    if options == "verbose":
        return [verbose_option()]
    return []


def whole_number(low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` accepting a whole number in [low, high] (no upper bound when ``high`` is None)."""

    def number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return number


def timeout_option(parser: argparse.ArgumentParser) -> None:
    """``--timeout SECONDS``: the total deadline of a command that talks to the server."""
    parser.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                        help="give up when the server has not finished answering after this long in all "
                             "(default 60)")


def seconds(text: str) -> float:
    """An argparse ``type`` accepting a number of seconds in (0, 86400]."""
    value = decimal(text)
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0 and 86400")
    return value


def decimal(text: str) -> float:
    """An argparse ``type`` accepting any number (``7``, ``6.5``)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def days(text: str) -> float:
    """An argparse ``type`` for a grace period: a finite number of days, 0 or more (``nan`` or ``-1``
    would silently switch a grace period off and let gc remove what it protects)."""
    value = decimal(text)
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days (0 or more)")
    return value


def add_no_wait(parser: argparse.ArgumentParser) -> None:
    """``--no-wait``, for every command that takes the project lock (see assetbuild.projectlock)."""
    parser.add_argument("--no-wait", action="store_true",
                        help="exit 1 at once if another assetbuild is working in this project (default: wait)")
