"""``assetbuild server status``: is the server reachable, its version, backends and queue (the work:
``server_ops``, which also says how every server command finds its server)."""

from __future__ import annotations

import argparse
import sys

from ._args import Options, common_options, timeout_option

HELP = "ask the server how it is (server status)"
DESCRIPTION = "Commands about the SwarmUI server."
OPTIONS: Options = "none"  # the subcommand takes the common options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="server_command", metavar="SUBCOMMAND", required=True)
    status = sub.add_parser(
        "status", parents=[common_options()], help="reachable? version, backends, queue",
        description="Whether the server answers, its version, backend status and the whole server's queue. "
                    "Exit 0 when it can take work; 1 when it is not reachable, refuses the credentials or has no "
                    "usable backend.")
    status.add_argument("--json", action="store_true", help="one JSON object")
    timeout_option(status)


def main(args: argparse.Namespace) -> int:
    from .server_ops import resolve, status

    return status(resolve(args.file, args.server, args.timeout), sys.stdout, as_json=args.json)
