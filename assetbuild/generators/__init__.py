"""Generators: the placeholder (offline, Pillow) and SwarmUI. ``create`` picks one from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import GenerationRequest, GenerationResult, Generator, Progress, ProgressCallback

if TYPE_CHECKING:  # importing the manifest (pydantic) here would slow down every import of .base
    from ..manifest import ServerSettings

__all__ = ["Generator", "GenerationRequest", "GenerationResult", "Progress", "ProgressCallback",
           "create", "kind_for"]


def kind_for(server: ServerSettings) -> str:
    """The generator kind a server setting selects (part of every key), without creating anything."""
    return "placeholder" if server.is_placeholder else "swarmui"


def create(server: ServerSettings) -> Generator:
    """A generator for ``server``. Creating one is cheap: connections are made on first use."""
    if server.is_placeholder:
        from .placeholder import PlaceholderGenerator

        return PlaceholderGenerator()
    from ..userconfig import credentials
    from .swarmui import SwarmUIGenerator

    return SwarmUIGenerator(server, credentials())
