"""docs/commands.md and the parser agree: every option is documented, and no documented option is made up."""

from __future__ import annotations

import re
from pathlib import Path

from assetbuild.cli import build_parser
from assetbuild.commands.completion import commands
from assetbuild.userconfig import KEYS

DOC = (Path(__file__).resolve().parent.parent / "docs" / "commands.md").read_text(encoding="utf-8")


def parser_options() -> set[str]:
    return {flag for cmd in commands(build_parser()) for flags, _, _ in cmd.options for flag in flags}


def test_every_command_and_option_is_documented() -> None:
    for cmd in commands(build_parser()):
        if cmd.path:
            assert f"assetbuild {cmd.path}" in DOC or f"`{cmd.path}`" in DOC, cmd.path
    missing = {flag for flag in parser_options() if f"`{flag}" not in DOC and f" {flag}" not in DOC}
    assert missing == set()


def test_no_documented_option_is_made_up() -> None:
    documented = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", DOC))
    assert documented - parser_options() == set()


def test_config_keys_and_their_variables_are_documented() -> None:
    for key in KEYS.values():
        assert f"`{key.name}`" in DOC and f"`{key.env}`" in DOC
