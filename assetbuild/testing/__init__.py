"""Test support for assetbuild: a faithful SwarmUI test double.

``FakeSwarm`` serves SwarmUI's HTTP API, the ``GenerateText2ImageWS`` WebSocket and ``/View`` downloads
on loopback, with fault injection and recording for tests::

    from assetbuild.testing import FakeSwarm

    with FakeSwarm(backends=2, latency=0.05) as fake:
        ...  # point a client at fake.url

The names are imported lazily so that ``import assetbuild.testing`` does not need aiohttp, and so that
``python -m assetbuild.testing.fakeswarm`` does not import the module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assetbuild.testing.fakeswarm import (
        ActiveJob,
        FakeSwarm,
        FakeSwarmConfig,
        GenerationRecord,
        RecordedRequest,
    )

__all__ = ["ActiveJob", "FakeSwarm", "FakeSwarmConfig", "GenerationRecord", "RecordedRequest"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from assetbuild.testing import fakeswarm

        return getattr(fakeswarm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
