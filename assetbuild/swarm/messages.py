"""The messages of SwarmUI's generation WebSocket, parsed into what the client needs.

Dispatch is on the key present (swarmui-api.md §4.2): ``status``, ``gen_progress``, ``image`` (flat:
``{"image", "batch_index", "request_id", "metadata"}``), ``discard_indices``, ``keep_alive``,
``socket_intention``, ``error``. Anything else (``raw_backend_data``...) is ignored. ``batch_index``
comes as a string, sometimes an int; ``metadata`` is a string of JSON, or null.

Everything read from the server is validated here, at the edge: a message of a known kind whose content
does not fit (``{"gen_progress": "x"}``, ``{"image": 5}``, a seed of ``1e400``, JSON nested too deep
to parse) raises ``SwarmBadAnswer``, which fails that asset with a clear message; nothing further in
assetbuild sees unvalidated server data. The HTTP answers that are read field by field
(GenerateText2Image, GetCurrentStatus) have their models here too.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic_core import from_json

from ..events import Progress
from ..safetext import safe_text
from .errors import SwarmBadAnswer

SEED_RANGE = (-1, 2**63 - 1)  # SwarmUI's seeds are C# longs; -1 means random


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


_M = TypeVar("_M", bound=_Loose)


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
        """The seed the server actually used, from the image's metadata, when it says.

        Metadata that is not a JSON object, or has no numeric seed, gives None (the requested seed is
        recorded instead); a number SwarmUI could not have used (``1e400``, ``2**64``) is a malformed
        answer.
        """
        if not self.metadata:
            return None
        try:
            data = loads(self.metadata)
        except SwarmBadAnswer:
            raise SwarmBadAnswer("the server sent image metadata nested too deep to read") from None
        except ValueError:
            return None
        params = data.get("sui_image_params") if isinstance(data, dict) else None
        seed = params.get("seed") if isinstance(params, dict) else None
        if seed is None:
            return None
        return checked_seed(seed)


def checked_seed(seed: Any) -> int | None:
    """An image metadata's seed: None when it is not a number (lenient, like a missing one); a number
    SwarmUI could not have used (``1e400`` parses as infinity, ``2**64`` overflows a long) is a
    malformed answer."""
    value = _integer(seed)
    if value is None and not (isinstance(seed, float) and not math.isfinite(seed)):
        return None
    if value is None or not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
        raise SwarmBadAnswer(f"the server's image metadata has an invalid seed: {_excerpt(seed)}")
    return value


def _integer(value: Any) -> int | None:
    """``value`` as an integer when it is one (also written as "42" or 42.0), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 30:
        return int(value)
    return None


@dataclass(frozen=True)
class Frame:
    """One parsed frame: ``kind`` plus the parsed payload (or None)."""

    kind: str  # status | progress | image | discard | keep_alive | close_intent | error | other
    payload: Any = None
    error_id: str | None = None


_INDICES = TypeAdapter(list[int] | None)


# Texts from this size on are parsed by pydantic-core's JSON parser first: an image frame (a data URL
# of 1.3 MB for a 1 MiB PNG) takes ~0.06 ms there against ~0.6 ms in ``json``, which scans its long
# string character by character. Small frames (progress, status) stay with ``json``.
_BIG_JSON = 64 * 1024


def loads(text: str | bytes) -> Any:
    """``json.loads``, with JSON nested too deep for Python's parser as ``SwarmBadAnswer`` (not the
    RecursionError it raises); ValueError for text that is not JSON.

    A big text is parsed by pydantic-core instead (same values for valid JSON); whatever it refuses
    (invalid JSON, lone surrogates, another encoding than UTF-8) goes to ``json``, so what is accepted,
    and the errors raised, are ``json``'s."""
    if len(text) >= _BIG_JSON:
        try:
            return from_json(text)
        except ValueError:
            pass
    try:
        return json.loads(text)
    except RecursionError:
        raise SwarmBadAnswer(f"the server sent JSON nested too deep to read ({len(text)} bytes)") from None


@functools.cache
def _base64_adapter() -> TypeAdapter[bytes] | None:
    """pydantic-core's base64 decoder (pydantic >= 2.9: ``val_json_bytes``), or None where the setting is
    unknown (older versions ignore it and would return the text itself)."""
    try:
        adapter = TypeAdapter(bytes, config=ConfigDict(val_json_bytes="base64"))
        return adapter if adapter.validate_json('"aGk="') == b"hi" else None
    except Exception:  # noqa: BLE001 - any failure here only means: use the base64 module
        return None


def decode_base64(text: str) -> bytes:
    """``base64.b64decode(text, validate=True)`` (``binascii.Error``, a ValueError, for text that is not
    strict base64), 2-3 x faster for well-formed text: pydantic-core decodes it (0.6 ms instead of 1.4-1.9
    ms for a 1 MiB image). pydantic-core also takes the URL-safe alphabet and missing padding, so those
    go to ``base64``, which refuses them, as does anything pydantic-core refuses (``base64`` accepts a
    few non-canonical endings it does not)."""
    plain = len(text) % 4 == 0 and not any(c in text for c in '-_\\"')  # (JSON escapes would be decoded)
    adapter = _base64_adapter() if plain else None
    if adapter is not None:
        try:
            return adapter.validate_json(f'"{text}"')
        except ValidationError:
            pass
    return base64.b64decode(text, validate=True)


def _excerpt(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str | bytes) else json.dumps(value, default=str)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return safe_text(text[:limit] + ("..." if len(text) > limit else ""))


def parse(text: str | bytes) -> Frame:
    """One WebSocket frame. Text that is not a JSON object is ignored (``other``); a frame of a known
    kind that does not validate raises ``SwarmBadAnswer``."""
    try:
        data = loads(text)
    except ValueError:
        return Frame("other")
    if not isinstance(data, dict):
        return Frame("other")
    try:
        if "error" in data or "error_id" in data:
            error_id = data.get("error_id")
            return Frame("error", str(data.get("error") or error_id), error_id if isinstance(error_id, str) else None)
        if "gen_progress" in data:
            return Frame("progress", GenProgress.model_validate(data["gen_progress"]))
        if "image" in data:
            return Frame("image", ImageMessage.model_validate(data))
        if "status" in data:
            return Frame("status", StatusCounters.model_validate(data["status"]))
        if "discard_indices" in data:
            return Frame("discard", set(_INDICES.validate_python(data["discard_indices"]) or []))
    except (ValidationError, ValueError, TypeError):
        kind = next(k for k in ("gen_progress", "image", "status", "discard_indices") if k in data)
        raise SwarmBadAnswer(f"the server sent a malformed {kind} message: {_excerpt(text)}") from None
    if "keep_alive" in data:
        return Frame("keep_alive")
    if data.get("socket_intention") == "close":
        return Frame("close_intent")
    return Frame("other")


# --- HTTP answers read field by field ------------------------------------------------------------------


class GenerateAnswer(_Loose):
    """GenerateText2Image's answer: image references (``View/...`` paths or ``data:`` URLs)."""

    images: list[str] = Field(min_length=1)


class BackendStatus(_Loose):
    status: str | None = None
    message: str | None = None


class CurrentStatus(_Loose):
    """GetCurrentStatus: this session's counters, the backends' state, the server's features."""

    status: dict[str, float] = Field(default_factory=dict)
    backend_status: BackendStatus = Field(default_factory=BackendStatus)
    supported_features: list[str] = Field(default_factory=list)


class ModelList(_Loose):
    """ListModels: sub-folders and model objects (only what is printed is checked)."""

    folders: list[str] = Field(default_factory=list)
    files: list[dict[str, Any]] = Field(default_factory=list)


def validated(model: type[_M], data: Any, what: str) -> _M:
    """``data`` as ``model``, or ``SwarmBadAnswer`` naming ``what`` and the first problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "(the answer)"
        raise SwarmBadAnswer(f"the server sent a malformed {what} answer: {where}: {problem['msg']} "
                             f"(got {_excerpt(problem.get('input'))})") from None


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
