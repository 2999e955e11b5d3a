"""``assetbuild why TARGET|FILE``: which fields changed since an asset was built (see ``status.why``)."""

from __future__ import annotations

import argparse
import sys

HELP = "explain why an asset is stale"
DESCRIPTION = "Which fields changed since TARGET was built (or which asset made FILE)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="TARGET|FILE")


def main(args: argparse.Namespace) -> int:
    from ..workspace import open_workspace
    from .status import why

    return why(open_workspace(args.file, server=args.server), args.name, sys.stdout)
