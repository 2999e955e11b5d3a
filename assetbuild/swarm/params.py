"""What a SwarmUI server says about itself: its parameters and models (ListT2IParams), model hashes
(DescribeModel).

``ListT2IParams`` lists every text-to-image parameter the server knows, including the ones its
extensions add, with SwarmUI's type names (``integer``, ``decimal``, ``boolean``, ``text``, ``dropdown``,
``model``, ``list``, ``image``...), limits and dropdown values, and ``models`` as ``{subtype: [[name,
architecture], ...]}``. ``DescribeModel`` gives a model's ``hash`` (SHA-256 of its tensors), or "" while
the server has not computed it yet (it does so lazily).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from .client import SwarmClient
from .errors import SwarmAPIError


class ServerParam(BaseModel):
    """One parameter of ``ListT2IParams``' ``list`` (the fields assetbuild checks against)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str = ""
    type: str = "text"
    subtype: str | None = None
    default: str | None = None
    min: float = 0
    max: float = 0
    step: float = 1
    values: list[str] | None = None
    feature_flag: str | None = None
    group: str | None = None

    @field_validator("group", mode="before")
    @classmethod
    def _group_id(cls, value: Any) -> Any:
        # SwarmUI sends the group's id; some versions (and the route's documentation) an object.
        return value.get("id") if isinstance(value, dict) else value

    @field_validator("values", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("default", mode="before")
    @classmethod
    def _default_text(cls, value: Any) -> Any:
        return None if value is None else str(value)


class ServerParams(BaseModel):
    """A server's parameters by id and its model names by sub-type, with the server it came from."""

    model_config = ConfigDict(extra="ignore")

    params: dict[str, ServerParam]
    models: dict[str, list[str]]
    version: str = ""
    server_id: str = ""

    @classmethod
    def from_listing(cls, data: dict[str, Any], *, version: str = "", server_id: str = "") -> ServerParams:
        """Parse ``ListT2IParams``' answer. Raises ``SwarmAPIError`` when it is not that shape."""
        try:
            raw_list = data["list"]
            params = {}
            for item in raw_list:
                param = ServerParam.model_validate(item)
                params[param.id] = param
            models: dict[str, list[str]] = {}
            for subtype, entries in (data.get("models") or {}).items():
                # [[name, architecture], ...]; plain names are accepted too
                models[str(subtype)] = [str(e[0] if isinstance(e, list) and e else e) for e in entries or []]
        except (KeyError, TypeError, ValueError) as exc:
            raise SwarmAPIError(f"ListT2IParams answered in an unexpected shape ({type(exc).__name__}: "
                                f"{str(exc)[:200]})") from None
        return cls(params=params, models=models, version=version, server_id=server_id)

    def names(self, subtype: str | None) -> list[str]:
        return list(self.models.get(subtype or "Stable-Diffusion", []))


async def fetch_params(client: SwarmClient, *, version: str = "", server_id: str = "") -> ServerParams:
    """``ListT2IParams`` on the client's control session."""
    data = await client.call("ListT2IParams", {})
    return ServerParams.from_listing(data, version=version, server_id=server_id)


async def model_hash(client: SwarmClient, name: str, subtype: str = "Stable-Diffusion") -> str | None:
    """The server's hash of model ``name`` (its full name), or None while it has not computed it (or the
    model has none, e.g. a ``.gguf``). Raises ``SwarmAPIError`` ("Model not found.") for an unknown name."""
    data = await client.call("DescribeModel", {"modelName": name, "subtype": subtype})
    model = data.get("model")
    if not isinstance(model, dict):
        raise SwarmAPIError(f"DescribeModel answered without a model: {str(data)[:200]}")
    value = model.get("hash_sha256") or model.get("hash")
    return str(value) if value else None
