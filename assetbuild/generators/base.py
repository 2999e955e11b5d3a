"""The interface every generator implements.

The build code knows only this module: a generator takes a fully resolved request (prompt, normalised
SwarmUI parameters, the bytes of image inputs) and returns image bytes. It is created once per run and
shared by every task, so ``generate`` must be safe to call from several threads at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..events import Progress as Progress  # re-exported: the generator protocol reports progress with it

ProgressCallback = Callable[[Progress], None]


def ignore_progress(_: Progress) -> None:
    """A progress callback that drops everything."""


@dataclass(frozen=True)
class GenerationRequest:
    """What to make.

    ``asset`` names the target (for messages). ``params`` are normalised SwarmUI T2I parameters
    (``prompt``, ``negativeprompt``, ``seed``, ``width``...), without image-valued parameters, which are
    in ``images`` as raw bytes keyed by parameter id.
    """

    asset: str
    params: Mapping[str, Any]
    images: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.params.get("width", 512))

    @property
    def height(self) -> int:
        return int(self.params.get("height", 512))


@dataclass(frozen=True)
class UsedModelHash:
    """A model the server says it used for the image, with its hash (None: not given)."""

    param: str  # "model", "vae", "loras", ...
    name: str  # the server's full name
    hash: str | None


@dataclass(frozen=True)
class GenerationResult:
    """What was made: encoded image bytes, and what the generator actually used.

    ``models`` and ``unused`` come from the server's metadata of the image: the models (with hashes) it
    used, and the parameters it was given but did not use.
    """

    data: bytes
    seed: int | None = None
    model: str | None = None
    models: tuple[UsedModelHash, ...] = ()
    unused: tuple[str, ...] = ()


class Generator(Protocol):
    """A source of images. ``kind`` is part of every asset key."""

    kind: str

    def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationResult:
        """Make one image. Raises ``GenerationError`` (or a subclass) on failure."""
        ...

    def interrupt(self) -> None:
        """Stop server-side work started by this generator (Ctrl-C). Best effort, never raises."""
        ...

    def close(self) -> None:
        """Release connections. Called once at the end of a run."""
        ...
