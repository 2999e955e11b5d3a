"""The messages of SwarmUI's generation WebSocket, parsed into what the client needs.

Dispatch is on the key present (swarmui-api.md §4.2): ``status``, ``gen_progress``, ``image`` (flat:
``{"image", "batch_index", "request_id", "metadata"}``), ``discard_indices``, ``keep_alive``,
``socket_intention``, ``error``. Anything else (``raw_backend_data``...) is ignored. ``batch_index``
comes as a string, sometimes an int; ``metadata`` is a string of JSON, or null.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from ..generators.base import Progress


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StatusCounters(_Loose):
    waiting_gens: int = 0
    loading_models: int = 0
    waiting_backends: int = 0
    live_gens: int = 0


class GenProgress(_Loose):
    batch_index: int = 0
    overall_percent: float | None = None
    current_percent: float | None = None
    preview: str | None = None

    @field_validator("batch_index", mode="before")
    @classmethod
    def _index(cls, value: Any) -> int:
        return int(value)


class ImageMessage(_Loose):
    image: str
    batch_index: int = 0
    metadata: str | None = None

    @field_validator("batch_index", mode="before")
    @classmethod
    def _index(cls, value: Any) -> int:
        return int(value)

    def seed(self) -> int | None:
        """The seed the server actually used, from the image's metadata, when it says."""
        if not self.metadata:
            return None
        try:
            params = json.loads(self.metadata).get("sui_image_params", {})
            seed = params.get("seed")
            return int(seed) if seed is not None else None
        except (ValueError, TypeError, AttributeError):
            return None


@dataclass(frozen=True)
class Frame:
    """One parsed frame: ``kind`` plus the parsed payload (or None)."""

    kind: str  # status | progress | image | discard | keep_alive | close_intent | error | other
    payload: Any = None
    error_id: str | None = None


def parse(text: str | bytes) -> Frame:
    try:
        data = json.loads(text)
    except ValueError:
        return Frame("other")
    if not isinstance(data, dict):
        return Frame("other")
    if "error" in data or "error_id" in data:
        return Frame("error", str(data.get("error") or data.get("error_id")), data.get("error_id"))
    if "gen_progress" in data:
        return Frame("progress", GenProgress.model_validate(data["gen_progress"]))
    if "image" in data:
        return Frame("image", ImageMessage.model_validate(data))
    if "status" in data:
        return Frame("status", StatusCounters.model_validate(data["status"]))
    if "discard_indices" in data:
        return Frame("discard", {int(i) for i in data["discard_indices"] or []})
    if "keep_alive" in data:
        return Frame("keep_alive")
    if data.get("socket_intention") == "close":
        return Frame("close_intent")
    return Frame("other")


def phase_of(counters: StatusCounters) -> Progress | None:
    """The phase a status frame implies for a session that runs one generation at a time."""
    if counters.live_gens:
        return Progress("generating")
    if counters.loading_models:
        return Progress("loading", detail="loading model")
    if counters.waiting_backends:
        return Progress("waiting", detail="waiting for a backend")
    if counters.waiting_gens:
        return Progress("queued")
    return None


def progress_of(update: GenProgress) -> Progress:
    fraction = update.overall_percent if update.overall_percent is not None else update.current_percent
    if fraction is not None:
        fraction = min(1.0, max(0.0, fraction))
    return Progress("generating", fraction)
