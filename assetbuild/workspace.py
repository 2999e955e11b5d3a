"""Everything a command needs about one project: manifest, lock, cache, file hashes, planner."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .cache import Cache
from .errors import ConfigError
from .fsutil import HashCache, check_state_dir, refuse_tracked_state
from .gcpause import paused
from .generators import kind_for
from .layout import MANIFEST_NAME, STATE_DIR, find_manifest, home_path  # noqa: F401  (re-exported for commands)
from .lock import Lock
from .manifest import Project, ServerSettings, load
from .manifest.memo import ResolvedMemo
from .plan import Planner

MERGED_LOCK = ("assets.lock holds both sides of a git merge conflict: for each asset, the entry whose hash matches "
               "its image on disk is used; `assetbuild` rewrites the lock (then `git add assets.lock`)")

if TYPE_CHECKING:
    from .noop import Partial
    from .remote.remote import Remote

SERVER_ENV = "ASSETBUILD_SERVER"
FEW_TABLES = 256  # a partial plan of at most this many tables does not read the file hash cache
CACHE_ENV = "ASSETBUILD_CACHE_DIR"


@dataclass
class Workspace:
    project: Project
    lock: Lock
    cache: Cache
    hashes: HashCache
    planner: Planner
    # The project holds only the asset tables the no-op memo could not prove fresh (``noop.Partial``).
    partial: Partial | None = None

    @property
    def kind(self) -> str:
        return self.planner.kind

    def open_remote(self, warn: Callable[[str], None], *, probe: bool = True) -> Remote | None:
        """The team store (None without one). Raises ``RemoteConfigError`` (exit 2) when misconfigured."""
        from .remote.settings import resolve

        settings = resolve(self.project.remote, self.project.push, self.project.root, self.project.manifest.name)
        if settings is None:  # no team store: its client module (~15 ms of imports) is not needed
            return None
        from .remote.remote import open_remote

        return open_remote(settings, self.cache, warn, probe=probe)

    def settle(self) -> None:
        """End-of-run bookkeeping: flush the cache entries written, write the lock, drop the intents it
        now covers, keep file hashes."""
        self.cache.sync()
        self.lock.flush()
        self.planner.intents.prune(self.lock, self._hash_or_none)
        self.hashes.save()
        if self.project.memo is not None:
            self.project.memo.save(self.project.state_dir / "tmp")

    def _hash_or_none(self, target: str) -> str | None:
        try:
            return self.hashes.hash(self.project.target_path(target))
        except OSError:
            return None


def open_workspace(manifest: str | None, *, server: str | None = None, force: bool = False,
                   kind: str | None = None, rebuild: Iterable[str] = ()) -> Workspace:
    """Load the project and its state. ``server`` (from --server) beats ASSETBUILD_SERVER beats the file's
    explicit ``server.url`` beats the user config (see ``server_url``). ``kind``: the generator kind that
    keys are computed for, when a generator is passed in (default: the one the server settings select).
    ``rebuild``: targets the planner sends to generation even when fresh or cached (``run --rebuild``)."""
    return workspace_of(load_project(manifest, server=server), force=force, kind=kind, rebuild=rebuild)


def load_project(manifest: str | None, *, server: str | None = None, partial: Partial | None = None) -> Project:
    """The validated manifest with the user's settings applied; writes nothing. Asset tables unchanged
    since the last build are taken from its memo (``manifest.memo``; ``Workspace.settle`` saves it).

    ``partial`` (``noop.Partial``): load only the tables the no-op memo could not prove fresh (the others
    are blank lines in its text, so every line number stays). The manifest memo is not used then."""
    path = find_manifest(manifest)
    state = path.absolute().parent / STATE_DIR
    check_state_dir(state)  # a planted symlink is refused before anything is read there
    override = os.environ.get(CACHE_ENV) or None
    if partial is not None:
        with paused():
            project = load(path, cache_dir_override=override, text=partial.text)
        project.text_hash = partial.manifest_hash
    else:
        text, text_hash = _read_text(path)
        with paused():  # many long-lived objects, no garbage cycles (see gcpause)
            memo = ResolvedMemo.open(state)
            project = load(path, cache_dir_override=override, memo=memo, text=text)
        project.memo = memo
        project.text_hash = text_hash
    apply_user_settings(project, server)
    return project


def _read_text(path: Path) -> tuple[str | None, str]:
    """The manifest's text and the hash of its bytes (the no-op memo records what was loaded, not what the
    file holds when the build ends). ``(None, "")`` when it cannot be read: ``load`` then says why."""
    from .keys import hash_bytes
    from .layout import manifest_text

    try:
        raw = path.read_bytes()
        return manifest_text(raw), hash_bytes(raw)
    except (OSError, UnicodeDecodeError):
        return None, ""


def workspace_of(project: Project, *, force: bool = False, kind: str | None = None,
                 rebuild: Iterable[str] = (), partial: Partial | None = None) -> Workspace:
    """The project's state: lock, cache, file hashes, planner. Commands that write call this while
    holding the project lock (``projectlock``), so the lock file they read is not being rewritten."""
    # Before anything reads or writes there: a cloned repository may have planted the state folder.
    check_state_dir(project.state_dir)
    refuse_tracked_state(project.state_dir)
    # A run that plans only a few tables (the memo proved the rest fresh) hashes a few files: the file of
    # every asset's hash (megabytes at 100,000 assets) is not worth reading then.
    load_hashes = partial is None or len(partial.dirty) > FEW_TABLES
    with paused():  # the lock's texts and the file hashes: long-lived, no garbage cycles (see gcpause)
        lock = Lock.load(project.lock_path)
        hashes = HashCache(project.state_dir / "hashes.json", load=load_hashes)
    if lock.merged:
        project.warnings.append(MERGED_LOCK)
    cache = Cache(project.cache_dir)
    planner = Planner(project, lock, cache, hashes, kind or kind_for(project.server), force=force,
                      rebuild=rebuild)
    if partial is not None:
        planner.declared_elsewhere = partial.fresh_targets
    return Workspace(project, lock, cache, hashes, planner, partial)


# --- precedence of the server URL and the cache folder (user config: assetbuild.userconfig) -------------


def server_url(option: str | None, manifest_url: str | None) -> str:
    """``--server`` > ASSETBUILD_SERVER > the manifest's explicit ``server.url`` > config ``server`` > default.

    ``manifest_url`` is None when the manifest does not set ``server.url`` itself (or there is none).
    """
    from . import userconfig

    return (option or os.environ.get(SERVER_ENV) or manifest_url or userconfig.load().get("server")
            or ServerSettings().url)


def manifest_server(path: Path) -> tuple[ServerSettings, set[str]]:
    """The ``[server]`` table of the manifest at ``path`` (only that table is checked), and the names of
    the fields the file sets explicitly."""
    import tomllib

    from pydantic import ValidationError

    from .errors import ManifestError
    from .manifest import ServerTable

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(str(path), "no such file", hint="pass the manifest with -f FILE") from None
    except (OSError, ValueError) as exc:  # (TOMLDecodeError, UnicodeDecodeError, an integer of over 4,300 digits)
        raise ManifestError(str(path), f"cannot read: {exc}") from None
    except RecursionError:
        raise ManifestError(str(path), "cannot read: nested too deeply") from None
    table = raw.get("server", {})
    try:
        server = ServerTable.model_validate(table if isinstance(table, dict) else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ManifestError(str(path), f"server.{where}: {first['msg']}") from None
    return ServerSettings.of(server), set(server.model_fields_set)


def apply_user_settings(project: Project, option: str | None) -> None:
    """Apply the server and cache precedence to a loaded project (``project.explicit`` tells an explicit
    ``server.url`` / ``project.cache_dir`` from a default)."""
    from . import userconfig

    url = server_url(option, project.server.url if "server.url" in project.explicit else None)
    if url != project.server.url:
        project.server = replace(project.server, url=url)
    config_cache = userconfig.load().get("cache-dir")
    if config_cache and not os.environ.get(CACHE_ENV) and "project.cache_dir" not in project.explicit:
        try:
            project.cache_dir = home_path(config_cache)
        except ValueError as exc:
            raise ConfigError(f"{userconfig.config_path()}: cache-dir {exc}") from None
