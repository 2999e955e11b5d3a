"""The manifest, assets.toml: ``load`` it into a validated ``Project`` of ``Asset`` objects.

Modules, one concern each: ``schema`` (the file's tables, pydantic), ``project`` (the resolved objects),
``assets`` (asset tables -> ``Asset``), ``paths`` (path rules), ``graph`` (dependency order), ``lines``
(the line of a key, for messages) and ``loader`` (reading the file and putting the rest together).
Importing this package imports pydantic: keep it off the no-op path (``assetbuild.noop``).
"""

from __future__ import annotations

from .assets import BUILD_KEYS
from .loader import load
from .paths import inside
from .project import Asset, ImageInput, Project, ServerSettings
from .schema import ServerTable

__all__ = ["BUILD_KEYS", "Asset", "ImageInput", "Project", "ServerSettings", "ServerTable", "inside", "load"]
