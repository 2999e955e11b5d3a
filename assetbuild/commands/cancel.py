"""``assetbuild cancel``: stop every generation of your SwarmUI user (the work: ``server_ops.cancel``)."""

from __future__ import annotations

import argparse
import sys

from ._args import timeout_option

HELP = "stop your generations on the server (InterruptAll)"
DESCRIPTION = ("Interrupt every queued and running generation of your SwarmUI user, in all of its sessions "
               "(InterruptAll with other_sessions=true). Other users are not affected.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Only --timeout (besides the common ones: -f, --server, -v, -q)."""
    timeout_option(parser)


def main(args: argparse.Namespace) -> int:
    from .server_ops import cancel, resolve

    return cancel(resolve(args.file, args.server, args.timeout), sys.stdout)
