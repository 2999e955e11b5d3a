"""The errors a user can act on.

Every failure a user can fix has its own class, carrying what it is about (the manifest file and line,
or the asset) and a hint. The CLI turns them into one clear line and an exit code; anything else is a
bug: exit code 3, its traceback in a crash log (``assetbuild.crash``), on screen only with -v.

    AssetbuildError                 exit code 2 unless stated
    ├── ManifestError               assets.toml is wrong (syntax, types, styles, paths, cycles)
    ├── UsageError                  bad command line (unknown target, bad option value)
    ├── ConfigError                 the user config file is wrong
    ├── StateError                  the state folder (.assetbuild) is unsafe: a symlink, or tracked by git
    ├── BusyError                   exit code 1: another assetbuild works in this project (--no-wait)
    └── AssetError                  exit code 1: one asset could not be built
        ├── GenerationError         the generator (server) refused or failed
        │   ├── ServerError         the server answered with an error message
        │   ├── ServerUnreachable   transport failures after retries
        │   └── AuthError           the server refused our credentials
        ├── ModifiedFileError       a file at a target was not written by assetbuild (or edited since)
        └── ImageError              bytes that are not the image we expected
"""

from __future__ import annotations


class AssetbuildError(Exception):
    """Base of every error a user can act on."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ManifestError(AssetbuildError):
    """The manifest cannot be used. ``where`` is ``file:line`` or ``file`` when no line is known."""

    def __init__(self, where: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{where}: {message}", hint=hint)
        self.where = where


class UsageError(AssetbuildError):
    """The command line asks for something that cannot be done."""


class ConfigError(AssetbuildError):
    """The user config file is unreadable or holds a bad value."""


class StateError(AssetbuildError):
    """assetbuild's state folder, cache or a target path cannot be used safely (e.g. a planted symlink)."""


class BusyError(AssetbuildError):
    """Another assetbuild process holds this project's lock and the command was told not to wait."""

    exit_code = 1


class AssetError(AssetbuildError):
    """One asset failed; the run goes on with the others (with --keep-going) and exits 1."""

    exit_code = 1

    def __init__(self, asset: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{asset}: {message}", hint=hint)
        self.asset = asset
        self.reason = message


class GenerationError(AssetError):
    """The generator could not produce the image."""


class ServerError(GenerationError):
    """The server answered with its own error message (SwarmUI: ``{"error": ...}``)."""


class ServerUnreachable(GenerationError):
    """The server could not be reached, or kept failing, after bounded retries."""


class AuthError(GenerationError):
    """The server refused the credentials (or their absence)."""


class ModifiedFileError(AssetError):
    """A file at a target path was not written by assetbuild, or was edited after it was."""


class ImageError(AssetError):
    """Bytes that should be an image are not (or are too large to be safe)."""
