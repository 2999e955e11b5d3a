"""``assetbuild models``: the server's models (ListModels) as a table or JSON (the work: ``models_ops``)."""

from __future__ import annotations

import argparse
import sys

from ._args import timeout_option, whole_number

HELP = "list the server's models"
DESCRIPTION = "List the models on the SwarmUI server (ListModels)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", default="", metavar="FOLDER", help="only models under this folder")
    parser.add_argument("--depth", type=whole_number(1, 20), default=4, metavar="N",
                        help="how many folder levels deep to look (1..20, default 4)")
    parser.add_argument("--type", dest="subtype", default="Stable-Diffusion", metavar="TYPE",
                        help="Stable-Diffusion (default), LoRA, VAE, Embedding, ControlNet, Clip, ClipVision")
    parser.add_argument("--json", action="store_true", help="the server's answer as JSON")
    timeout_option(parser)


def main(args: argparse.Namespace) -> int:
    from .models_ops import models
    from .server_ops import resolve

    return models(resolve(args.file, args.server, args.timeout), sys.stdout, path=args.path, depth=args.depth,
                  subtype=args.subtype, as_json=args.json)
