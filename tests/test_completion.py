"""`assetbuild completion bash|zsh|fish`: scripts generated from the parser, exercised in a real bash."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from assetbuild.cli import build_parser, main
from assetbuild.commands.completion import commands, script

SUBCOMMANDS = ("run", "status", "list", "why", "clean", "generate", "models", "config", "server", "cancel", "init",
               "completion")


def complete_in_bash(line: str) -> list[str]:
    """What the bash script offers for ``line`` (the cursor at its end)."""
    bash_script = script(build_parser(), "bash")
    program = bash_script + (
        '\nread -ra COMP_WORDS <<< "$LINE"\n'
        '[[ "$LINE" == *" " ]] && COMP_WORDS+=("")\n'
        "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
        "_assetbuild\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", program],
                            env={"LINE": line, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return [word for word in result.stdout.splitlines() if word]


def test_the_parser_model_knows_every_command() -> None:
    found = {c.path for c in commands(build_parser())}
    assert set(SUBCOMMANDS) <= found and "server status" in found


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_every_script_lists_the_subcommands(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    text = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in text
    assert "--save-images" in text and "api-key" in text


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(("line", "expected", "absent"), [
    ("assetbuild ", SUBCOMMANDS, ()),
    ("assetbuild ge", ("generate",), ("run",)),
    ("assetbuild generate --", ("--prompt", "--websocket", "--no-websocket", "--save-images", "--batch"), ("--force",)),
    ("assetbuild run --", ("--jobs", "--force", "--frozen"), ("--prompt",)),
    ("assetbuild server ", ("status",), ()),
    ("assetbuild server status --", ("--json", "--server"), ()),
    ("assetbuild config ", ("set", "get", "view", "unset"), ()),
    ("assetbuild config set ", ("server", "api-key", "token", "cache-dir"), ("set",)),
    ("assetbuild -v config get a", ("api-key",), ("server",)),
    ("assetbuild completion ", ("bash", "zsh", "fish"), ()),
    ("assetbuild generate --model ", (), ("run",)),  # a value: no command words
])
def test_bash_completes(line: str, expected: tuple[str, ...], absent: tuple[str, ...]) -> None:
    offered = complete_in_bash(line)
    for word in expected:
        assert word in offered, (line, offered)
    for word in absent:
        assert word not in offered, (line, offered)


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_scripts_pass_the_shells_syntax_check(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    text = script(build_parser(), shell)
    result = subprocess.run([shell, "-n"], input=text, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr


def test_bash_script_passes_the_syntax_check() -> None:
    result = subprocess.run(["bash", "-n"], input=script(build_parser(), "bash"), capture_output=True, text=True,
                            timeout=10)
    assert result.returncode == 0, result.stderr


def test_unknown_shell_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["completion", "tcsh"])
    assert exc.value.code == 2


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh")
@pytest.mark.parametrize(("line", "expected"), [
    ("assetbuild ", {"generate", "models", "server", "FILES"}),  # a bare target is `run TARGET`: files too
    ("assetbuild server ", {"status"}),
    ("assetbuild config set ", {"server", "api-key", "token", "cache-dir"}),
    ("assetbuild generate --", {"--prompt", "--save-images"}),
    ("assetbuild -f ", {"FILES"}),
])
def test_zsh_completes(line: str, expected: set[str]) -> None:
    words = line.split() + ([""] if line.endswith(" ") else [])
    program = (
        "compadd() { [[ $1 == -- ]] && shift; print -l -- \"$@\" }\n_files() { print FILES }\ncompdef() { }\n"
        + script(build_parser(), "zsh")
        + "\nwords=(" + " ".join(f"'{w}'" for w in words) + f")\nCURRENT={len(words)}\n_assetbuild\n"
    )
    result = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=10)
    assert result.returncode in (0, 1), result.stderr
    offered = set(result.stdout.split())
    assert expected <= offered, offered
