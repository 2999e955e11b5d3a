"""``assetbuild completion bash|zsh|fish``: a static completion script generated from the argparse parser.

The script knows every command (and ``server status``), each command's options, which options take a
value, and the fixed words of positionals (``config set|get|...``, config keys, shells). Anything else
(targets, files) falls back to the shell's file completion. Regenerate it after upgrading assetbuild.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from ._args import Options

FILE_OPTIONS = ("-f", "--file", "--output-dir")
SHELLS = ("bash", "zsh", "fish")

HELP = "print a shell completion script"
DESCRIPTION = ("Print a completion script. bash: `eval \"$(assetbuild completion bash)\"` in ~/.bashrc; zsh: save "
               "it as _assetbuild in your $fpath; fish: save it as ~/.config/fish/completions/assetbuild.fish.")
OPTIONS: Options = "verbose"
WANTS_PARSER = True  # cli hands the whole parser over as args.root_parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS)


def main(args: argparse.Namespace) -> int:
    # The command line's own parser, handed over by cli.main (importing cli here would be a cycle).
    sys.stdout.write(script(args.root_parser, args.shell))
    return 0


@dataclass
class Command:
    path: str  # "" for the top level, "server status" for a nested command
    help: str = ""
    options: list[tuple[list[str], str, bool]] = field(default_factory=list)  # flags, help, takes a value
    positionals: list[tuple[str, ...]] = field(default_factory=list)  # fixed words per position (() = any)
    children: list[str] = field(default_factory=list)


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every command of ``parser`` (depth first), the top level first."""
    found: list[Command] = []

    def walk(p: argparse.ArgumentParser, path: str, help_text: str) -> None:
        cmd = Command(path, help_text)
        found.append(cmd)
        nested: list[tuple[str, argparse.ArgumentParser, str]] = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help or "" for a in action._choices_actions}
                for name, child in action.choices.items():
                    nested.append((name, child, helps.get(name, "")))
            elif action.option_strings:
                takes_value = action.nargs != 0 and not isinstance(
                    action, argparse._HelpAction | argparse._VersionAction | argparse.BooleanOptionalAction)
                cmd.options.append((list(action.option_strings), action.help or "", takes_value))
            else:
                words = getattr(action, "complete_words", None) or action.choices or ()
                cmd.positionals.append(tuple(str(w) for w in words))
        for name, child, child_help in nested:
            cmd.children.append(name)
            walk(child, f"{path} {name}".strip(), child_help)

    walk(parser, "", parser.description or "")
    return found


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    cmds = commands(parser)
    if shell == "bash":
        return _bash(cmds)
    if shell == "zsh":
        return _zsh(cmds)
    if shell == "fish":
        return _fish(cmds)
    raise ValueError(f"unknown shell {shell!r}")


def _value_options(cmds: list[Command]) -> list[str]:
    return sorted({flag for c in cmds for flags, _, takes in c.options if takes for flag in flags})


def _flags(cmd: Command) -> str:
    return " ".join(flag for flags, _, _ in cmd.options for flag in flags)


def _paths(cmds: list[Command]) -> str:
    return "|".join(f'"{c.path}"' for c in cmds if c.path)


def _bash(cmds: list[Command]) -> str:
    value_opts = "|".join(_value_options(cmds))
    file_opts = "|".join(FILE_OPTIONS)
    lines = [
        "# bash completion for assetbuild. Load it with: eval \"$(assetbuild completion bash)\"",
        "_assetbuild() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local cmdpath="" npos=0 skip=0 word next i words=""',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        word="${COMP_WORDS[i]}"',
        "        if ((skip)); then skip=0; continue; fi",
        '        case "$word" in',
        f"            {value_opts}) skip=1; continue ;;",
        "            -*) continue ;;",
        "        esac",
        '        next="${cmdpath:+$cmdpath }$word"',
        '        case "$next" in',
        f'            {_paths(cmds)}) cmdpath="$next"; npos=0 ;;',
        "            *) ((npos++)) ;;",
        "        esac",
        "    done",
        '    case "$prev" in',
        f"        {file_opts}) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;",
        f"        {value_opts}) COMPREPLY=(); return ;;",
        "    esac",
        '    if [[ "$cur" == -* ]]; then',
        '        case "$cmdpath" in',
    ]
    for cmd in cmds:
        lines.append(f'            "{cmd.path}") words="{_flags(cmd)}" ;;')
    lines += [
        "        esac",
        "    else",
        '        case "$cmdpath" in',
    ]
    for cmd in cmds:
        if cmd.children:
            lines.append(f'            "{cmd.path}") words="{" ".join(cmd.children)}" ;;')
        elif any(cmd.positionals):
            cases = " ".join(f'{i}) words="{" ".join(w)}" ;;' for i, w in enumerate(cmd.positionals) if w)
            lines.append(f'            "{cmd.path}") case "$npos" in {cases} esac ;;')
    lines += [
        "        esac",
        "    fi",
        '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "}",
        "complete -o default -F _assetbuild assetbuild",
        "",
    ]
    return "\n".join(lines)


def _zsh(cmds: list[Command]) -> str:
    value_opts = "|".join(_value_options(cmds))
    file_opts = "|".join(FILE_OPTIONS)
    lines = [
        "#compdef assetbuild",
        "# zsh completion for assetbuild. Save as _assetbuild in a folder of your $fpath, or:",
        "#   source <(assetbuild completion zsh)",
        "_assetbuild() {",
        '    local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}"',
        '    local cmdpath="" npos=0 skip=0 word next i',
        "    local -a candidates",
        "    for ((i = 2; i < CURRENT; i++)); do",
        '        word="${words[i]}"',
        "        if ((skip)); then skip=0; continue; fi",
        '        case "$word" in',
        f"            ({value_opts}) skip=1; continue ;;",
        "            (-*) continue ;;",
        "        esac",
        '        next="${cmdpath:+$cmdpath }$word"',
        '        case "$next" in',
        f'            ({_paths(cmds)}) cmdpath="$next"; npos=0 ;;',
        "            (*) ((npos++)) ;;",
        "        esac",
        "    done",
        '    case "$prev" in',
        f"        ({file_opts}) _files; return ;;",
        f"        ({value_opts}) return ;;",
        "    esac",
        '    if [[ "$cur" == -* ]]; then',
        '        case "$cmdpath" in',
    ]
    for cmd in cmds:
        lines.append(f'            ("{cmd.path}") candidates=({_flags(cmd)}) ;;')
    lines += [
        "        esac",
        "        compadd -- $candidates",
        "        return",
        "    fi",
        '    case "$cmdpath" in',
    ]
    for cmd in cmds:
        if cmd.children:
            lines.append(f'        ("{cmd.path}") candidates=({" ".join(cmd.children)}) ;;')
        elif any(cmd.positionals):
            cases = " ".join(f"({i}) candidates=({' '.join(w)}) ;;" for i, w in enumerate(cmd.positionals) if w)
            lines.append(f'        ("{cmd.path}") case "$npos" in {cases} esac ;;')
    lines += [
        "    esac",
        "    if (( ${#candidates} )); then",
        "        compadd -- $candidates",
        '        [[ -n "$cmdpath" ]] && return',
        "    fi",
        "    _files",
        "}",
        'if [[ "$funcstack[1]" == "_assetbuild" ]]; then _assetbuild "$@"; else compdef _assetbuild assetbuild; fi',
        "",
    ]
    return "\n".join(lines)


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish(cmds: list[Command]) -> str:
    lines = ["# fish completion for assetbuild. Save as ~/.config/fish/completions/assetbuild.fish, or:",
             "#   assetbuild completion fish | source", "complete -c assetbuild -e"]
    by_path = {c.path: c for c in cmds}
    for cmd in cmds:
        if not cmd.path:
            condition = "__fish_use_subcommand"
        else:
            parts = cmd.path.split()
            condition = "; and ".join(f"__fish_seen_subcommand_from {p}" for p in parts)
            if cmd.children:
                condition += "; and not __fish_seen_subcommand_from " + " ".join(cmd.children)
        for child in cmd.children:
            child_cmd = by_path[f"{cmd.path} {child}".strip()]
            no_files = " -f" if cmd.path else ""  # top level: a bare TARGET means `run TARGET`
            lines.append(f"complete -c assetbuild -n {_fish_quote(condition)}{no_files} -a {child} "
                         f"-d {_fish_quote(child_cmd.help)}")
        for flags, help_text, takes in cmd.options:
            spec = []
            for flag in flags:
                spec.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
            extra = (" -r -F" if any(f in FILE_OPTIONS for f in flags) else " -x") if takes else ""
            lines.append(f"complete -c assetbuild -n {_fish_quote(condition)} {' '.join(spec)}{extra} "
                         f"-d {_fish_quote(help_text)}")
        previous: tuple[str, ...] = ()
        for words in cmd.positionals:
            if words and cmd.path:
                cond = condition
                cond += ("; and __fish_seen_subcommand_from " + " ".join(previous)) if previous else (
                    "; and not __fish_seen_subcommand_from " + " ".join(words))
                lines.append(f"complete -c assetbuild -n {_fish_quote(cond)} -f -a {_fish_quote(' '.join(words))}")
            previous = words
    return "\n".join(lines) + "\n"
