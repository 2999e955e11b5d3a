"""The command-line parsers and dispatch of the commands that are not builds.

``generate``, ``models``, ``config``, ``server status``, ``cancel``, ``init`` and ``completion``:
``cli.build_parser`` calls ``add_commands`` and ``cli._dispatch`` hands these commands to ``dispatch``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..userconfig import KEYS

COMMANDS = ("generate", "models", "config", "server", "cancel", "init", "completion")
SHELLS = ("bash", "zsh", "fish")


def _verbose() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-v", "--verbose", action="store_true", help="more detail; tracebacks on errors")
    return parent


def _int_range(low: int, high: int) -> type[int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    parse.__name__ = "number"
    return parse  # type: ignore[return-value]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _seconds(text: str) -> float:
    value = _number(text)
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0 and 86400")
    return value


def _add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                        help="give up when the server has not finished answering after this long in all "
                             "(default 60)")


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add this module's commands to ``sub`` (``common`` holds -f, --server, -v, -q)."""
    verbose = _verbose()

    gen = sub.add_parser(
        "generate", parents=[common], help="make one-off images (no manifest entry)",
        description="Generate one-off images with SwarmUI (or the placeholder). Prints each image's URL on the "
                    "server, or with --save-images the file written. Progress goes to stderr.")
    gen.add_argument("--prompt", required=True, metavar="TEXT", help="what to draw")
    gen.add_argument("--negative-prompt", metavar="TEXT", help="what to avoid")
    gen.add_argument("--model", metavar="NAME", help="model name (`assetbuild models` lists them)")
    gen.add_argument("--width", type=int, metavar="PX", help="image width (SwarmUI default 512)")
    gen.add_argument("--height", type=int, metavar="PX", help="image height (SwarmUI default 512)")
    gen.add_argument("--steps", type=int, metavar="N", help="sampling steps (SwarmUI default 20)")
    gen.add_argument("--seed", type=int, metavar="N", help="seed; -1 random (default); images of a batch get "
                                                           "seed, seed+1, ...")
    gen.add_argument("--cfg-scale", type=_number, metavar="X", help="CFG scale (SwarmUI default 7)")
    gen.add_argument("--batch", type=_int_range(1, 100), default=1, metavar="N", help="how many images (1..100)")
    gen.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                     help="any other SwarmUI parameter, e.g. sampler=dpmpp_2m (repeatable)")
    gen.add_argument("--websocket", action=argparse.BooleanOptionalAction, default=None,
                     help="live progress over the WebSocket (default: server.websocket, true)")
    gen.add_argument("--save-images", action="store_true", help="download the images and write them to files")
    gen.add_argument("--output-dir", metavar="DIR", help="folder for --save-images (default: here; implies it)")
    gen.add_argument("--json", action="store_true", help="JSON events and one {'event': 'image'} object per image")

    models = sub.add_parser("models", parents=[common], help="list the server's models",
                            description="List the models on the SwarmUI server (ListModels).")
    models.add_argument("--path", default="", metavar="FOLDER", help="only models under this folder")
    models.add_argument("--depth", type=_int_range(1, 20), default=4, metavar="N",
                        help="how many folder levels deep to look (1..20, default 4)")
    models.add_argument("--type", dest="subtype", default="Stable-Diffusion", metavar="TYPE",
                        help="Stable-Diffusion (default), LoRA, VAE, Embedding, ControlNet, Clip, ClipVision")
    models.add_argument("--json", action="store_true", help="the server's answer as JSON")
    _add_timeout(models)

    config = sub.add_parser(
        "config", parents=[verbose], help="get or set user settings (server, api-key, token, cache-dir)",
        description="Read or change the user config file. Keys: " + "; ".join(
            f"{k.name}: {k.help} (overridden by {k.env})" for k in KEYS.values()) + ".")
    config.add_argument("action", choices=("set", "get", "view", "unset", "path"),
                        help="set KEY [VALUE] | get KEY | view | unset KEY | path")
    key = config.add_argument("key", nargs="?", metavar="KEY", help=", ".join(KEYS))
    key.complete_words = tuple(KEYS)  # type: ignore[attr-defined]  # read by `completion`
    config.add_argument("value", nargs="?", metavar="VALUE",
                        help="the new value; for api-key/token omit it to type it hidden or pipe it on stdin")
    config.add_argument("--show-secret", action="store_true", help="get: print a secret itself, not its mask")

    server = sub.add_parser("server", help="ask the server how it is (server status)",
                            description="Commands about the SwarmUI server.")
    server_sub = server.add_subparsers(dest="server_command", metavar="SUBCOMMAND", required=True)
    status = server_sub.add_parser(
        "status", parents=[common], help="reachable? version, backends, queue",
        description="Whether the server answers, its version, backend status and queue counters. Exit 0 when it "
                    "is reachable, 1 when not.")
    status.add_argument("--json", action="store_true", help="one JSON object")
    _add_timeout(status)

    cancel = sub.add_parser("cancel", parents=[common], help="stop your generations on the server (InterruptAll)",
                            description="Interrupt every queued and running generation of your SwarmUI user, in "
                                        "all of its sessions (InterruptAll with other_sessions=true). Other users "
                                        "are not affected.")
    _add_timeout(cancel)

    init = sub.add_parser("init", parents=[verbose], help="write a commented starter assets.toml",
                          description="Write a commented starter assets.toml here (or FILE). Never overwrites.")
    init.add_argument("-f", "--file", metavar="FILE", help="where to write it (default ./assets.toml)")

    completion = sub.add_parser("completion", parents=[verbose], help="print a shell completion script",
                                description="Print a completion script. bash: `eval \"$(assetbuild completion "
                                            "bash)\"` in ~/.bashrc; zsh: save it as _assetbuild in your $fpath; "
                                            "fish: save it as ~/.config/fish/completions/assetbuild.fish.")
    completion.add_argument("shell", choices=SHELLS)


def dispatch(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    command = args.command
    if command == "config":
        from .config import config

        return config(args.action, args.key, args.value, out, err, show_secret=args.show_secret)
    if command == "init":
        from .init import init

        return init(args.file, out)
    if command == "completion":
        from ..cli import build_parser
        from .completion import script

        out.write(script(build_parser(), args.shell))
        return 0

    from .server import resolve

    target = resolve(args.file, args.server)
    if getattr(args, "timeout", None) is not None:
        target = replace(target, deadline=args.timeout)
    if command == "generate":
        from .generate import GenerateOptions, generate, parse_param

        opts = GenerateOptions(
            prompt=args.prompt, negative_prompt=args.negative_prompt, model=args.model, width=args.width,
            height=args.height, steps=args.steps, seed=args.seed, cfg_scale=args.cfg_scale, batch=args.batch,
            extra=dict(parse_param(p) for p in args.param), websocket=args.websocket,
            save_images=args.save_images, output_dir=Path(args.output_dir) if args.output_dir else None)
        return generate(target, opts, out=out, err=err, as_json=args.json, quiet=args.quiet, verbose=args.verbose)
    if command == "models":
        from .models import models

        return models(target, out, path=args.path, depth=args.depth, subtype=args.subtype, as_json=args.json)
    if command == "server":
        from .server import status

        return status(target, out, as_json=args.json)
    if command == "cancel":
        from .server import cancel

        return cancel(target, out)
    raise AssertionError(f"unhandled command {command}")
