"""The user config file: per-user settings and secrets that never belong in a repo's assets.toml.

A flat TOML file, ``config.toml``, in the platform's config folder:

- ``$ASSETBUILD_CONFIG_DIR`` when set (tests, portable setups), else
- Linux and other Unixes: ``$XDG_CONFIG_HOME/assetbuild`` or ``~/.config/assetbuild``
- macOS: ``~/Library/Application Support/assetbuild``
- Windows: ``%APPDATA%\\assetbuild``

Keys (all strings): ``server``, ``api-key``, ``token``, ``cache-dir``. Unknown keys are refused with a
"did you mean", never silently ignored. The file is written atomically with mode 0600 (it may hold
secrets), and a file found with looser permissions is tightened when it is read. Environment variables
beat the file (``ASSETBUILD_SERVER``, ``ASSETBUILD_API_KEY``, ``ASSETBUILD_TOKEN``,
``ASSETBUILD_CACHE_DIR``).
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .layout import home_path
from .swarm.credentials import Credentials, mask, shown_url

CONFIG_DIR_ENV = "ASSETBUILD_CONFIG_DIR"
FILE_NAME = "config.toml"


@dataclass(frozen=True)
class Key:
    name: str
    env: str  # the environment variable that overrides it
    secret: bool
    help: str


KEYS: dict[str, Key] = {k.name: k for k in (
    Key("server", "ASSETBUILD_SERVER", False,
        "SwarmUI base URL (or 'placeholder') used when the manifest does not set server.url"),
    Key("api-key", "ASSETBUILD_API_KEY", True, "sent as 'Authorization: Bearer <key>' (SwarmUI network auth)"),
    Key("token", "ASSETBUILD_TOKEN", True, "SwarmUI's swarm_token cookie (accounts mode)"),
    Key("cache-dir", "ASSETBUILD_CACHE_DIR", False,
        "a shared image cache folder used when the manifest does not set project.cache_dir"),
)}


def config_dir() -> Path:
    """The folder of the user config file (it may not exist yet)."""
    explicit = os.environ.get(CONFIG_DIR_ENV)
    if explicit:
        return _home_path(f"{CONFIG_DIR_ENV}:", explicit)
    return _user_folder("APPDATA", "Roaming", "Application Support", "XDG_CONFIG_HOME", ".config")


def user_cache_dir() -> Path:
    """assetbuild's folder in the user's cache folder (crash logs made outside a project)."""
    return _user_folder("LOCALAPPDATA", "Local", "Caches", "XDG_CACHE_HOME", ".cache")


def _user_folder(windows_env: str, windows_folder: str, mac_folder: str, xdg_env: str, xdg_folder: str) -> Path:
    """``assetbuild`` in the platform's per-user folder of a kind (config, cache)."""
    if sys.platform == "win32":
        base = os.environ.get(windows_env)
        return (Path(base) if base else Path.home() / "AppData" / windows_folder) / "assetbuild"
    if sys.platform == "darwin":
        return Path.home() / "Library" / mac_folder / "assetbuild"
    xdg = os.environ.get(xdg_env)
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / xdg_folder) / "assetbuild"


def config_path() -> Path:
    return config_dir() / FILE_NAME


def check_key(name: str) -> Key:
    """The key called ``name``, or a ConfigError with a did-you-mean."""
    key = KEYS.get(name) or KEYS.get(name.lower().replace("_", "-"))
    if key is None:
        from .params import closest

        guess = closest(name.lower().replace("_", "-"), list(KEYS))
        hint = f"did you mean {guess!r}? " if guess else ""
        raise ConfigError(f"unknown config key {name!r}", hint=f"{hint}known keys: {', '.join(KEYS)}")
    return key


def check_value(key: Key, value: str) -> str:
    """``value`` cleaned for ``key``, or a ConfigError saying what is wrong."""
    value = value.strip()
    if not value:
        raise ConfigError(f"{key.name} cannot be empty", hint=f"`assetbuild config unset {key.name}` removes it")
    if key.name == "server" and value != "placeholder":
        from .swarm.client import parse_server_url
        from .swarm.errors import SwarmError

        try:
            parse_server_url(value)
        except SwarmError as exc:
            raise ConfigError(exc.message, hint=exc.hint) from None
        value = value.rstrip("/")
    if key.secret:  # the same rule as when the secret is used: it must fit in an HTTP header
        value = clean_secret(value, key.name) or value
    if key.name == "cache-dir" and not _home_path(key.name, value).is_absolute():
        raise ConfigError(f"cache-dir {value!r} must be an absolute path (or start with ~)",
                          hint="a relative path would mean a different folder in every project")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"{key.name} contains control characters")
    return value


def _home_path(label: str, value: str) -> Path:
    """``layout.home_path``, its ValueError a ConfigError that starts with ``label`` (what set ``value``)."""
    try:
        return home_path(value)
    except ValueError as exc:
        raise ConfigError(f"{label} {exc}") from None


def load(path: Path | None = None, *, strict: bool = True) -> dict[str, str]:
    """The settings in the user config file ({} when there is none).

    ``strict`` refuses unknown keys and non-string values (every command); ``config unset`` reads
    non-strictly so a bad key can be removed with the tool itself.
    """
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the user config {path}: {exc.strerror or exc}") from None
    tighten_mode(path)
    import tomllib  # only when there is a config file: most runs have none

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except ValueError as exc:  # (TOMLDecodeError, UnicodeDecodeError, and an integer of over 4,300 digits)
        raise ConfigError(f"{path}: not valid TOML: {exc}",
                          hint="fix the file, or delete it and use `assetbuild config set KEY VALUE`") from None
    settings: dict[str, str] = {}
    for name, value in data.items():
        if strict:
            try:
                key = check_key(name)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc.message}",
                                  hint=f"{exc.hint}; `assetbuild config unset {name}` removes it") from None
            if not isinstance(value, str):
                raise ConfigError(f"{path}: {name} must be a string, not {type(value).__name__}",
                                  hint=f"write it as {name} = \"...\"")
            settings[key.name] = value
        else:
            settings[name] = value if isinstance(value, str) else repr(value)
    return settings


def save(settings: dict[str, str], path: Path | None = None) -> Path:
    """Write ``settings`` atomically, mode 0600 (its folder 0700 when created)."""
    from .fsutil import atomic_write  # (imported here: `assetbuild --help` reads KEYS and no more)

    path = path or config_path()
    lines = ["# assetbuild user config: `assetbuild config set|get|view|unset`. Holds secrets: keep it private."]
    lines += [f"{_toml_key(name)} = {_toml_string(value)}" for name, value in sorted(settings.items())]
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write the config file {path}: {exc.strerror or exc}",
                          hint="set ASSETBUILD_CONFIG_DIR to a folder you can write") from None
    return path


def tighten_mode(path: Path) -> bool:
    """Make ``path`` readable by its owner only (POSIX). True when its mode was looser."""
    if os.name != "posix":
        return False
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
            return True
    except OSError:
        pass
    return False


def _toml_key(name: str) -> str:
    if name and all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
        return name
    return _toml_string(name)


def _toml_string(value: str) -> str:
    """A TOML basic string (escapes what TOML requires; non-ASCII is written as UTF-8)."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif code < 32 or code == 127:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


# --- effective values: environment > config file -------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    key: Key
    value: str | None
    source: str  # "environment (NAME)", "config file", "not set"

    def shown(self, *, show_secret: bool = False) -> str:
        if self.value is None:
            return "(not set)"
        if show_secret:
            return self.value
        return shown_value(self.key, self.value)


def shown_value(key: Key, value: str) -> str:
    """``value`` of ``key`` as it may be printed: secrets masked, a password in a server URL too."""
    if key.secret:
        return mask(value)
    if key.name == "server":
        return shown_url(value)
    return value


def effective(settings: dict[str, str] | None = None) -> dict[str, Setting]:
    """Every key's value in force and where it comes from."""
    settings = load() if settings is None else settings
    out = {}
    for key in KEYS.values():
        env = os.environ.get(key.env)
        if env:
            out[key.name] = Setting(key, env, f"environment ({key.env})")
        elif settings.get(key.name):
            out[key.name] = Setting(key, settings[key.name], "config file")
        else:
            out[key.name] = Setting(key, None, "not set")
    return out


def credentials() -> Credentials:
    """SwarmUI credentials: ``ASSETBUILD_API_KEY``/``ASSETBUILD_TOKEN``, else the config file."""
    return credentials_from_environment(fallback=load())


API_KEY_ENV = "ASSETBUILD_API_KEY"
TOKEN_ENV = "ASSETBUILD_TOKEN"


def credentials_from_environment(fallback: dict[str, str] | None = None) -> Credentials:
    """From the environment, else ``fallback`` (the user config: ``api-key``, ``token``)."""
    fallback = fallback or {}
    api_key = clean_secret(os.environ.get(API_KEY_ENV), API_KEY_ENV) or clean_secret(fallback.get("api-key"),
                                                                                       "api-key")
    token = clean_secret(os.environ.get(TOKEN_ENV), TOKEN_ENV) or clean_secret(fallback.get("token"), "token")
    return Credentials(api_key, token)


def clean_secret(value: str | None, name: str) -> str | None:
    """A credential with surrounding whitespace removed (e.g. the CR of a key saved on Windows).

    What remains must be printable ASCII, since it goes into an HTTP header; otherwise the HTTP library
    would refuse it with an error quoting the whole header, secret included. The error names the
    setting, never the value.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if not all(" " < char < "\x7f" for char in value):
        raise ConfigError(f"{name} contains spaces, control or non-ASCII characters, which cannot be sent "
                          "in an HTTP header", hint=f"set {name} again, without extra characters")
    return value
