"""assetbuild: declarative, incremental, cached builds of generated image assets.

The public Python API (docs/api.md) is what ``__all__`` lists; every other module is internal. Names are
imported on first use, so ``import assetbuild`` stays cheap (the command line's no-op path relies on it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it (imported when the name is first used).
_EXPORTS = {
    "AssetError": "errors",
    "AssetResult": "api",
    "AssetStatus": "api",
    "AssetbuildError": "errors",
    "BuildEvents": "events",
    "GenerationError": "errors",
    "GenerationRequest": "generators.base",
    "GenerationResult": "generators.base",
    "Generator": "generators.base",
    "ManifestError": "errors",
    "Outcome": "api",
    "Progress": "events",
    "Project": "manifest",
    "State": "plan",
    "Summary": "api",
    "UsageError": "errors",
    "build": "api",
    "load_manifest": "api",
    "status": "api",
}

__all__ = [
    "AssetError",
    "AssetResult",
    "AssetStatus",
    "AssetbuildError",
    "BuildEvents",
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "ManifestError",
    "Outcome",
    "Progress",
    "Project",
    "State",
    "Summary",
    "UsageError",
    "__version__",
    "build",
    "load_manifest",
    "status",
]

if TYPE_CHECKING:
    from .api import AssetResult, AssetStatus, Outcome, Summary, build, load_manifest, status
    from .errors import AssetbuildError, AssetError, GenerationError, ManifestError, UsageError
    from .events import BuildEvents, Progress
    from .generators.base import GenerationRequest, GenerationResult, Generator
    from .manifest import Project
    from .plan import State


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'assetbuild' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
