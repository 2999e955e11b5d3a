"""The resolved project: what a loaded manifest is to the rest of assetbuild (plain dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..layout import LOCK_NAME, STATE_DIR
from ..postspec import Postprocess
from .quick import ServerShape

if TYPE_CHECKING:
    from .memo import ResolvedMemo
    from .schema import ServerTable

PLACEHOLDER = "placeholder"


@dataclass(frozen=True, slots=True)
class ImageInput:
    """An image-valued parameter: the bytes of ``path`` go to the generator and into the key."""

    param: str
    reference: str  # as written in the manifest (normalised)
    path: Path
    asset: str | None  # the producing asset's target, or None for a source file in the repo


@dataclass(frozen=True, slots=True)  # slots: a manifest may hold 100,000 of them
class Asset:
    """One target image and everything that determines it."""

    target: str  # posix path relative to the output folder, normalised
    output_dir: Path  # the output folder (absolute): the target file is ``path``
    params: dict[str, Any]  # normalised SwarmUI params, prompt resolved, image params excluded
    inputs: tuple[ImageInput, ...]
    post: Postprocess
    source: str | None = None  # derived asset: post-processing of this asset's output, no generation
    line: int | None = None
    variant: int | None = None  # n of a `count = N` entry (keeps random-seed variants apart in keys)
    _path: Path | None = field(default=None, init=False, repr=False, compare=False)  # ``path``, once made

    @property
    def path(self) -> Path:
        """Absolute path of the target file. Made on first use, not by the load: a load of 100,000 assets
        holding a Path each would hold ~28 MB more (``run --dry-run`` of one asset needs one Path)."""
        made = self._path
        if made is None:
            made = self.output_dir / self.target
            object.__setattr__(self, "_path", made)  # a cache of a function of the fields: still frozen
        return made

    @property
    def upstream(self) -> list[str]:
        """Targets of the assets this one needs built first."""
        ups = [i.asset for i in self.inputs if i.asset]
        if self.source:
            ups.append(self.source)
        return ups


PLACEHOLDER_JOBS = 4  # the placeholder draws on this machine's CPU
FOLLOW_SERVER_JOBS = 64  # the SwarmUI client admits only what the server can take (swarm/capacity.py)

_SERVER_DEFAULTS = ServerShape()


@dataclass(frozen=True)
class ServerSettings:
    """The ``[server]`` settings in force. The defaults are ServerTable's (both take them from ``quick``)."""

    url: str = _SERVER_DEFAULTS.url
    websocket: bool = _SERVER_DEFAULTS.websocket
    concurrency: int | None = _SERVER_DEFAULTS.concurrency  # generations in flight; None: follow the server
    timeout: float = _SERVER_DEFAULTS.timeout
    save_images: bool = _SERVER_DEFAULTS.save_images  # also keep images in SwarmUI's output history (/View)
    model_changes: str = _SERVER_DEFAULTS.model_changes  # a model's hash changed: "rebuild" its assets, or "warn"
    unused_params: str = _SERVER_DEFAULTS.unused_params  # parameters the server reports unused: "error"/"warn"

    @classmethod
    def of(cls, table: ServerTable | ServerShape) -> ServerSettings:
        """The settings a validated ``[server]`` table gives."""
        return cls(**table.model_dump())

    @property
    def is_placeholder(self) -> bool:
        return self.url == PLACEHOLDER

    @property
    def default_jobs(self) -> int:
        """Assets processed at once without -n: enough threads to keep any server's slots filled."""
        if self.concurrency is not None:
            return self.concurrency
        return PLACEHOLDER_JOBS if self.is_placeholder else FOLLOW_SERVER_JOBS


@dataclass
class Project:
    """A loaded manifest: where things live and the assets in dependency order."""

    manifest: Path
    root: Path
    output_dir: Path
    cache_dir: Path
    server: ServerSettings
    assets: dict[str, Asset]
    warnings: list[str] = field(default_factory=list)
    explicit: frozenset[str] = frozenset()  # settings the file itself sets, e.g. "server.url"
    remote: str | None = None  # [cache] remote, as written (the environment may override it: remote.settings)
    push: bool = True  # [cache] push
    tables: dict[str, str] = field(default_factory=dict)  # target -> its [assets."..."] key as written
    # [assets."..."] key as written -> the xxh3-128 of its table's text, when the file was read table by
    # table (``sections``); empty otherwise. The no-op memo keeps per-table records by it.
    table_hashes: dict[str, str] = field(default_factory=dict)
    global_hash: str = ""  # xxh3-128 of the text of every non-asset table, when read table by table
    text_hash: str = ""  # xxh3-128 of the manifest's bytes as loaded ("" when not known)
    # The asset tables resolved by this load and earlier ones, saved at the end of a build (manifest.memo).
    memo: ResolvedMemo | None = field(default=None, repr=False, compare=False)

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def target_path(self, target: str) -> Path:
        return self.output_dir / target

    def display(self, target: str) -> str:
        return target
