"""The manifest, assets.toml: ``load`` it into a validated ``Project`` of ``Asset`` objects.

Modules, one concern each: ``schema`` (the file's tables, pydantic), ``project`` (the resolved objects),
``assets`` (asset tables -> ``Asset``), ``paths`` (path rules), ``graph`` (dependency order), ``lines``
(the line of a key, for messages) and ``loader`` (reading the file and putting the rest together).
Loading a valid manifest does not import pydantic (``quick``); a problem to word does (``schema``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .assets import BUILD_KEYS
from .loader import load
from .paths import inside
from .project import Asset, ImageInput, Project, ServerSettings

if TYPE_CHECKING:
    from .schema import ServerTable

__all__ = ["BUILD_KEYS", "Asset", "ImageInput", "Project", "ServerSettings", "ServerTable", "inside", "load"]


def __getattr__(name: str) -> Any:
    if name == "ServerTable":  # pydantic, imported only when asked for (see ``quick``)
        from .schema import ServerTable

        return ServerTable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
