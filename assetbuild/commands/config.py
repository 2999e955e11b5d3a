"""``assetbuild config set|get|view|unset|path``: the user config file (see ``assetbuild.userconfig``).

Secrets (``api-key``, ``token``) are never echoed: ``set`` confirms with a mask, ``get`` and ``view``
show the mask unless ``get --show-secret`` asks for the value itself (for scripts). ``set`` without a
value reads a secret from the terminal (no echo) or from stdin, which keeps it out of shell history.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from .. import userconfig
from ..errors import ConfigError, UsageError
from ..swarm.credentials import shown_url
from ._args import Options

ACTIONS = ("set", "get", "view", "unset", "path")

HELP = "get or set user settings (server, api-key, token, cache-dir)"
DESCRIPTION = "Read or change the user config file. Keys: " + "; ".join(
    f"{k.name}: {k.help} (overridden by {k.env})" for k in userconfig.KEYS.values()) + "."
OPTIONS: Options = "verbose"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS, help="set KEY [VALUE] | get KEY | view | unset KEY | path")
    key = parser.add_argument("key", nargs="?", metavar="KEY", help=", ".join(userconfig.KEYS))
    key.complete_words = tuple(userconfig.KEYS)  # type: ignore[attr-defined]  # read by `completion`
    parser.add_argument("value", nargs="?", metavar="VALUE",
                        help="the new value; for api-key/token omit it to type it hidden or pipe it on stdin")
    parser.add_argument("--show-secret", action="store_true", help="get: print a secret itself, not its mask")


def main(args: argparse.Namespace) -> int:
    return config(args.action, args.key, args.value, sys.stdout, sys.stderr, show_secret=args.show_secret)


def config(action: str, key: str | None, value: str | None, out: TextIO, err: TextIO, *,
           show_secret: bool = False, stdin: TextIO | None = None) -> int:
    if action == "view":
        return view(out, err)
    if action == "path":
        out.write(f"{userconfig.config_path()}\n")
        return 0
    if key is None:
        raise UsageError(f"`assetbuild config {action}` needs a KEY", hint=f"keys: {', '.join(userconfig.KEYS)}")
    if action == "set":
        return set_value(key, value, out, err, stdin=stdin)
    if value is not None:
        raise UsageError(f"`assetbuild config {action}` takes only a KEY, not a value")
    if action == "get":
        return get_value(key, out, err, show_secret=show_secret)
    if action == "unset":
        return unset_value(key, out)
    raise UsageError(f"unknown config action {action!r}", hint=f"actions: {', '.join(ACTIONS)}")


def set_value(name: str, value: str | None, out: TextIO, err: TextIO, *, stdin: TextIO | None = None) -> int:
    key = userconfig.check_key(name)
    from_argument = value is not None
    if value is None:
        if not key.secret:
            raise UsageError(f"`assetbuild config set {key.name}` needs a VALUE")
        value = _read_secret(key.name, stdin or sys.stdin, err)
    value = userconfig.check_value(key, value)
    settings = userconfig.load()
    settings[key.name] = value
    path = userconfig.save(settings)
    shown = userconfig.shown_value(key, value)
    out.write(f"{key.name} = {shown}  (saved in {path})\n")
    if key.secret and from_argument:
        err.write(f"tip: `assetbuild config set {key.name}` without a value reads it from stdin, "
                  "which keeps it out of your shell history\n")
    _note_override(key, err)
    return 0


def get_value(name: str, out: TextIO, err: TextIO, *, show_secret: bool = False) -> int:
    """The value in force here, as ``view`` shows it: the environment, else this project's manifest (for
    ``server`` and ``cache-dir``), else the config file. Exit 1 when it is not set."""
    key = userconfig.check_key(name)
    setting = userconfig.effective()[key.name]
    override = (None if setting.source.startswith("environment")
                else manifest_overrides(show_secret=show_secret, err=err).get(key.name))
    if override is not None:
        value, where = override
        out.write(value + "\n")
        err.write(f"(from the {where})\n")
        return 0
    if setting.value is None:
        err.write(f"{key.name} is not set (config file {userconfig.config_path()}, environment {key.env})\n")
        return 1
    out.write(_as_used(key.name, setting.shown(show_secret=show_secret), setting.source) + "\n")
    if setting.source != "config file":
        err.write(f"(from the {setting.source})\n")
    return 0


def view(out: TextIO, err: TextIO | None = None) -> int:
    """Every key's value in force here and where it comes from: the environment, else this project's
    manifest (for ``server`` and ``cache-dir``, which it may set), else the config file."""
    path = userconfig.config_path()
    exists = path.is_file()
    out.write(f"# {path}{'' if exists else ' (does not exist yet)'}\n")
    overrides = manifest_overrides(err=err)
    for name, setting in userconfig.effective().items():
        shown, source = _as_used(name, setting.shown(), setting.source), setting.source
        if name in overrides and not source.startswith("environment"):
            value, where = overrides[name]
            if setting.value is not None:
                where += f"; the config file's {setting.shown()!r} applies outside this project"
            shown, source = value, where
        out.write(f"{name:<9} = {shown:<40}  # {source}\n")
    return 0


def _as_used(name: str, shown: str, source: str) -> str:
    """A cache folder from the environment as a build here uses it: ``~`` expanded, a relative one
    taken from the current folder (manifest/loader.py). Every other value as shown."""
    if name != "cache-dir" or not source.startswith("environment"):
        return shown
    return str(_cache_folder(shown, Path.cwd()))


def manifest_overrides(*, show_secret: bool = False, err: TextIO | None = None) -> dict[str, tuple[str, str]]:
    """``server`` / ``cache-dir`` set by the manifest of the project here (it beats the config file):
    key -> (value as a build here uses it, where). A relative cache folder is resolved against the
    manifest's folder, as a build does; a password in the server URL is masked unless ``show_secret``.
    Nothing outside a project, nor when the manifest cannot be read (said on ``err``)."""
    import tomllib

    from ..layout import find_manifest

    try:
        manifest = find_manifest(None).absolute()
    except UsageError:  # not in a project
        return {}
    try:
        raw = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # (ValueError: TOMLDecodeError, UnicodeDecodeError, ...)
        if err is not None:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc) or type(exc).__name__
            err.write(f"note: {manifest} cannot be read ({reason}): a build here stops on it; "
                      "shown without it\n")
        return {}
    found: dict[str, tuple[str, str]] = {}
    url = _string_at(raw, "server", "url")
    if url:
        found["server"] = (url if show_secret else shown_url(url), f"manifest {manifest} ([server] url)")
    # [cache] dir, or its old name [project] cache_dir (manifest/loader.py: the same precedence); set but
    # empty, it still stands for the project's own cache, as in a build
    for table, field in (("cache", "dir"), ("project", "cache_dir")):
        folder = _string_at(raw, table, field)
        if folder is not None:
            where = f"manifest {manifest} ([{table}] {field})"
            found["cache-dir"] = (str(_cache_folder(folder, manifest.parent)), where)
            break
    return found


def _string_at(raw: dict[str, object], table: str, field: str) -> str | None:
    section = raw.get(table)
    value = section.get(field) if isinstance(section, dict) else None
    return value if isinstance(value, str) else None


def _cache_folder(setting: str, base: Path) -> Path:
    """The cache folder ``setting`` names as a build here resolves it (``layout.cache_folder``), relative
    ones from ``base``; a ``~nosuchuser`` one as written (a build stops on it)."""
    from ..layout import cache_folder

    try:
        return cache_folder(setting, relative_to=base, root=base)
    except ValueError:
        return base / setting


def unset_value(name: str, out: TextIO) -> int:
    settings = userconfig.load(strict=False)
    if name in settings:
        stored = name
    else:
        key = userconfig.check_key(name)  # did-you-mean for a typo that is not in the file either
        stored = key.name
    if stored not in settings:
        out.write(f"{stored} was not set in {userconfig.config_path()}\n")
        return 0
    del settings[stored]
    path = userconfig.save(settings)
    out.write(f"{stored} removed from {path}\n")
    return 0


def _read_secret(name: str, stdin: TextIO, err: TextIO) -> str:
    if hasattr(stdin, "isatty") and stdin.isatty():
        import getpass

        try:
            return getpass.getpass(f"{name} (input hidden): ", stream=err)
        except (EOFError, KeyboardInterrupt):
            raise UsageError(f"no value given for {name}") from None
    line = stdin.readline()
    if not line.strip():
        raise ConfigError(f"no value for {name} on stdin",
                          hint=f"pipe it in (`... | assetbuild config set {name}`) or pass it as an argument")
    return line.rstrip("\r\n")


def _note_override(key: userconfig.Key, err: TextIO) -> None:
    import os

    if os.environ.get(key.env):
        err.write(f"note: {key.env} is set in the environment and takes precedence over the config file\n")
    elif key.name in (overrides := manifest_overrides(err=err)):
        err.write(f"note: here the {overrides[key.name][1]} takes precedence over the config file\n")
