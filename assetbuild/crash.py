"""An unexpected exception is a bug: its traceback goes to a crash log, secrets removed, and the user is
told where in one line (exit code 3).

The log is ``.assetbuild/crash.log`` in the project when there is one, else ``crash.log`` in the user's
cache folder (``$XDG_CACHE_HOME/assetbuild``, ``~/.cache/assetbuild``...) or, failing that, a per-user
folder in the temporary folder. It is replaced atomically (a rename never follows a symlink at the log's
place), never written through a state folder that is a symlink, and holds only the newest crash.
"""

from __future__ import annotations

import os
import platform
import re
import tempfile
import time
import traceback
from pathlib import Path

from . import __version__
from .layout import MANIFEST_NAME, STATE_DIR

CRASH_LOG = "crash.log"
BUG_EXIT = 3
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@")


def report(exc: BaseException, *, manifest: str | None, command: str | None) -> tuple[str, Path | None]:
    """Write the crash log for ``exc``; return the redacted traceback and where it went (None: nowhere)."""
    text = redact("".join(traceback.format_exception(exc)))
    header = (f"assetbuild {__version__} crashed {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
              f"command: {command or '?'}\npython {platform.python_version()} on {platform.platform()}\n\n")
    data = (header + text).encode("utf-8", "replace")
    for folder, is_state_dir in _candidate_folders(manifest):
        try:
            return text, _write(folder, data, is_state_dir=is_state_dir)
        except OSError:
            continue
    return text, None


def redact(text: str) -> str:
    """``text`` without the secrets assetbuild knows of: credentials from the environment and the user
    config, anything in an environment variable named like a secret, and passwords in URLs."""
    for secret in sorted(_known_secrets(), key=len, reverse=True):
        text = text.replace(secret, "****")
    return _URL_PASSWORD.sub(r"\g<head>****@", text)


def _known_secrets() -> set[str]:
    secrets = {value for name, value in os.environ.items() if _SECRET_ENV.search(name)}
    try:
        from . import userconfig

        settings = userconfig.load(strict=False)
        secrets |= {settings[k.name] for k in userconfig.KEYS.values() if k.secret and settings.get(k.name)}
    except Exception:  # a broken config must not hide the crash being reported
        pass
    return {s for s in secrets if len(s) >= 4}


def _candidate_folders(manifest: str | None) -> list[tuple[Path, bool]]:
    """Where the log may go, best first, each with whether it is a project's state folder."""
    folders = []
    project = _project_state_dir(manifest)
    if project is not None:
        folders.append((project, True))
    from .userconfig import user_cache_dir

    folders.append((user_cache_dir(), False))
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    folders.append((Path(tempfile.gettempdir()) / f"assetbuild-{uid}", False))
    return folders


def _project_state_dir(manifest: str | None) -> Path | None:
    """The state folder of the project the command ran in, when there is a project."""
    try:
        path = Path(manifest) if manifest else _nearest_manifest()
        if path is None or not path.is_file():
            return None
        return path.absolute().parent / STATE_DIR
    except OSError:
        return None


def _nearest_manifest() -> Path | None:
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / MANIFEST_NAME).is_file():
            return folder / MANIFEST_NAME
    return None


def _write(folder: Path, data: bytes, *, is_state_dir: bool) -> Path:
    """Write ``folder/crash.log`` atomically, readable by the user only. A folder that is a symlink, or
    (shared temporary folder) belongs to someone else, is refused; a symlink at the log's own place is
    replaced by the rename, not followed."""
    from .errors import StateError
    from .fsutil import atomic_write, make_state_dir

    if folder.is_symlink():
        raise OSError(f"{folder} is a symlink")
    if is_state_dir:
        try:
            make_state_dir(folder)  # with the .gitignore that keeps the state folder (and this log) out of git
        except StateError as exc:  # it holds a planted symlink: the log goes to the next folder
            raise OSError(str(exc)) from None
    else:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if folder.is_symlink() or not folder.is_dir() or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        raise OSError(f"{folder} is not a folder of this user")

    path = folder / CRASH_LOG
    atomic_write(path, data, mode=0o600)
    return path
