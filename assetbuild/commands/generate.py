"""``assetbuild generate --prompt TEXT``: one-off images, outside any manifest (the work: ``generate_ops``)."""

from __future__ import annotations

import argparse
import sys

from ._args import decimal, whole_number

HELP = "make one-off images (no manifest entry)"
DESCRIPTION = ("Generate one-off images with SwarmUI (or the placeholder). Prints each image's URL on the server, "
               "or with --save-images the file written. Progress goes to stderr.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--prompt", required=True, metavar="TEXT", help="what to draw")
    add("--negative-prompt", metavar="TEXT", help="what to avoid")
    add("--model", metavar="NAME", help="model name (`assetbuild models` lists them)")
    add("--width", type=int, metavar="PX", help="image width (SwarmUI default 512)")
    add("--height", type=int, metavar="PX", help="image height (SwarmUI default 512)")
    add("--steps", type=int, metavar="N", help="sampling steps (SwarmUI default 20)")
    add("--seed", type=int, metavar="N", help="seed; -1 random (default); images of a batch get seed, seed+1, ...")
    add("--cfg-scale", type=decimal, metavar="X", help="CFG scale (SwarmUI default 7)")
    add("--batch", type=whole_number(1, 100), default=1, metavar="N", help="how many images (1..100)")
    add("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
        help="any other SwarmUI parameter, e.g. sampler=dpmpp_2m (repeatable)")
    add("--websocket", action=argparse.BooleanOptionalAction, default=None,
        help="live progress over the WebSocket (default: server.websocket, true)")
    add("--save-images", action="store_true", help="download the images and write them to files")
    add("--output-dir", metavar="DIR", help="folder for --save-images (default: here; implies it)")
    add("--json", action="store_true", help="JSON events and one {'event': 'image'} object per image")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .generate_ops import GenerateOptions, generate, parse_param
    from .server_ops import resolve

    opts = GenerateOptions(
        prompt=args.prompt, negative_prompt=args.negative_prompt, model=args.model, width=args.width,
        height=args.height, steps=args.steps, seed=args.seed, cfg_scale=args.cfg_scale, batch=args.batch,
        extra=dict(parse_param(p) for p in args.param), websocket=args.websocket,
        save_images=args.save_images, output_dir=Path(args.output_dir) if args.output_dir else None)
    return generate(resolve(args.file, args.server), opts, out=sys.stdout, err=sys.stderr, as_json=args.json,
                    quiet=args.quiet, verbose=args.verbose)
