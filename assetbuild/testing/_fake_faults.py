"""Pending fault injections of the SwarmUI test double (mutated only on the server loop).

Each fault is armed by a :class:`~assetbuild.testing.FakeSwarm` method and consumed by the requests it
hits, so a test says exactly how many requests misbehave. Counters of what was injected live in the
recorder (``injected_failures``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FailRule:
    """The next ``remaining`` requests (of ``route``) get a plain-text ``status``."""

    remaining: int
    status: int
    route: str | None  # lower-case API route name, or None for every request


@dataclass
class RawAnswer:
    """The next ``remaining`` calls of API ``route`` get HTTP ``status`` with ``body`` (any bytes)."""

    remaining: int
    route: str  # lower-case API route name
    body: bytes
    status: int = 200


@dataclass
class Dribble:
    """The next ``remaining`` requests (of ``route``) get headers, then one byte every ``interval``
    seconds, never finishing: a server (or proxy) that is alive but hopelessly slow."""

    remaining: int
    route: str | None
    interval: float


@dataclass
class Faults:
    fail_rules: list[FailRule] = field(default_factory=list)
    drop_budget: int = 0
    drop_after: int = 1
    raw_answers: list[RawAnswer] = field(default_factory=list)
    dribbles: list[Dribble] = field(default_factory=list)
    # Raw text frames sent first on each of the next WebSocket generations (one list per generation).
    ws_frames: list[list[str]] = field(default_factory=list)
    # Answer the next WebSocket upgrades with a redirect to this location (one entry per upgrade).
    ws_redirects: list[str] = field(default_factory=list)
    # Render the next images at this (width, height) whatever was asked (one entry per image).
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
