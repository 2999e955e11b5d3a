"""The command registry: one list of commands, each a module with HELP, add_arguments and main; a mistyped
command word gets a hint, a target that looks like a command word is still built."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import run_cli, write_manifest
from helpers import heavy_imports

from assetbuild import cli

COMMANDS_DIR = Path(cli.__file__).resolve().parent / "commands"


def test_every_command_module_declares_help_arguments_and_main() -> None:
    for name in cli.COMMANDS:
        module = cli.command_module(name)
        assert isinstance(module.HELP, str) and module.HELP, name
        assert callable(module.add_arguments) and callable(module.main), name
    choices = next(a for a in cli.build_parser()._actions if a.dest == "command").choices
    assert choices is not None and list(choices) == list(cli.COMMANDS)


def test_no_command_module_imports_cli() -> None:
    """cli imports the commands; a command importing cli back would be a cycle."""
    for path in COMMANDS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [alias.name for alias in node.names]
                assert "cli" not in names and not (node.module or "").endswith(".cli"), path.name


def test_building_the_parser_imports_no_heavy_dependency() -> None:
    assert heavy_imports("from assetbuild.cli import build_parser; build_parser()") == []


def test_a_mistyped_command_gets_a_hint(project: Path) -> None:
    write_manifest(project, """
        [server]
        url = "placeholder"

        [assets."sprites/hero.png"]
        prompt = "a hero"
    """)
    result = run_cli(project, "statsu")
    assert result.returncode == 2
    assert "unknown command 'statsu'; did you mean 'status'?" in result.stderr
    # Options first, and with no manifest at all: the same hint.
    assert "did you mean 'status'?" in run_cli(project, "-q", "statsu").stderr
    bare = project / "empty"
    bare.mkdir()
    assert "unknown command 'clena'; did you mean 'clean'?" in run_cli(bare, "clena").stderr
    # An explicit `run` asks for a target: no command hint.
    explicit = run_cli(project, "run", "statsu")
    assert explicit.returncode == 2
    assert "no asset matches 'statsu'" in explicit.stderr and "unknown command" not in explicit.stderr
    # Far from every command word: the usual unknown-target error.
    far = run_cli(project, "sprites/villain.png")
    assert far.returncode == 2 and "no asset matches" in far.stderr and "unknown command" not in far.stderr
    assert not (project / "sprites").exists()


def test_a_target_close_to_a_command_word_is_built(project: Path) -> None:
    write_manifest(project, """
        [server]
        url = "placeholder"

        [assets."status.png"]
        prompt = "a status icon"
        width = 64
        height = 64

        [assets."sprites/hero.png"]
        prompt = "a hero"
        width = 64
        height = 64
    """)
    glob = run_cli(project, "-q", "statu*")
    assert glob.returncode == 0, glob.stderr
    assert (project / "status.png").is_file() and not (project / "sprites" / "hero.png").exists()
    path = run_cli(project, "-q", "sprites/hero.png")
    assert path.returncode == 0, path.stderr
    assert (project / "sprites" / "hero.png").is_file()


def test_the_swarm_package_is_a_client_library_only() -> None:
    """Issue 13: assetbuild/swarm/ imports neither the generator interface nor the application's errors,
    commands or workspace; only the progress value type and the text escaper from outside itself."""
    import re
    from pathlib import Path

    swarm = Path(__file__).resolve().parent.parent / "assetbuild" / "swarm"
    outside = set()
    for path in swarm.glob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"\s*from \.\.(\w+)", line)
            if match:
                outside.add(match.group(1))
    assert outside <= {"events", "safetext"}, outside
