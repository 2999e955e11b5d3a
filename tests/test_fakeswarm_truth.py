"""The test double's server truth (issue 15): ListT2IParams, DescribeModel hashes, fuzzy matching, image
metadata and replacing a model file while running. Real loopback sockets, raw httpx/websockets clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from assetbuild.testing import FakeSwarm

pytestmark = pytest.mark.timeout(60)

XL = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
SD15 = "sd15/v1-5-pruned-emaonly.safetensors"
FAST: dict[str, Any] = {"latency": 0.02, "steps": 2, "close_delay": 0.05, "model_load_delay": 0.01}
LORAS = ["pixel-art-xl.safetensors", "styles/outline.safetensors", "styles/outline-thick.safetensors"]


@pytest.fixture
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, loras=list(LORAS), vaes=["sdxl_vae.safetensors"], **FAST) as server:
        yield server


@pytest.fixture
def client(fake: FakeSwarm) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=20) as http:
        yield http


@pytest.fixture
def session(client: httpx.Client) -> str:
    return str(client.post("/API/GetNewSession", json={}).json()["session_id"])


def api(client: httpx.Client, route: str, body: dict[str, Any]) -> Any:
    response = client.post(f"/API/{route}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def ws_metadata(fake: FakeSwarm, session: str, **params: Any) -> dict[str, Any]:
    """Generate one image over the WebSocket; its parsed metadata (or the error frame)."""
    body = {"session_id": session, "images": 1, "prompt": "a fox", "model": "sd_xl_base_1.0", "width": 64,
            "height": 64, **params}
    with connect(f"{fake.ws_url}/API/GenerateText2ImageWS", open_timeout=10) as ws:
        ws.send(json.dumps(body))
        while True:
            message = json.loads(ws.recv(timeout=20))
            if "error" in message:
                return message
            if "image" in message:
                return dict(json.loads(message["metadata"]))


def test_list_t2i_params_shape_and_extension(client: httpx.Client, session: str) -> None:
    listing = api(client, "ListT2IParams", {"session_id": session})
    by_id = {p["id"]: p for p in listing["list"]}
    steps = by_id["steps"]
    assert {"id", "name", "type", "default", "min", "max", "step", "values", "feature_flag", "group"} <= set(steps)
    assert (steps["type"], steps["default"], steps["min"], steps["max"]) == ("integer", "20", 0, 500)
    assert steps["group"] == "coreparameters"  # the group's id, like SwarmUI's ToNet
    assert "euler" in by_id["sampler"]["values"]
    extension = by_id["dynamicthresholdingmimicscale"]
    assert extension["feature_flag"] == "dynamic_thresholding" and extension["type"] == "decimal"
    assert by_id["vae"]["values"] == ["Automatic", "None", "sdxl_vae"]
    assert listing["models"]["Stable-Diffusion"] == [[XL, "stable-diffusion-xl-v1-base"],
                                                     [SD15, "stable-diffusion-v1"]]
    assert [name for name, _arch in listing["models"]["LoRA"]] == sorted(LORAS)
    assert {g["id"] for g in listing["groups"]} >= {"coreparameters", "dynamicthresholding"}


def test_extensions_off_removes_their_params_and_they_become_ignored() -> None:
    with FakeSwarm(backends=1, extensions=False, **FAST) as fake, httpx.Client(base_url=fake.url) as client:
        sid = str(client.post("/API/GetNewSession", json={}).json()["session_id"])
        ids = {p["id"] for p in api(client, "ListT2IParams", {"session_id": sid})["list"]}
        assert "dynamicthresholdingmimicscale" not in ids and "steps" in ids
        metadata = ws_metadata(fake, sid, dynamicthresholdingmimicscale=5)
        assert "dynamicthresholdingmimicscale" not in metadata["sui_image_params"]  # skipped, like SwarmUI
        assert fake.generations == 1


def test_describe_model_hashes_and_replacement(fake: FakeSwarm, client: httpx.Client, session: str) -> None:
    described = api(client, "DescribeModel", {"session_id": session, "modelName": XL.removesuffix(".safetensors")})
    model = described["model"]
    assert model["name"] == XL and model["hash"].startswith("0x") and model["hash"] == model["hash_sha256"]
    assert api(client, "DescribeModel", {"session_id": session, "modelName": "sd_xl_base_1.0"}) == {
        "error": "Model not found."}  # DescribeModel wants the full name: no fuzzy matching
    assert api(client, "DescribeModel", {"session_id": session, "modelName": "x", "subtype": "Nope"}) == {
        "error": "Invalid sub-type."}
    lora = api(client, "DescribeModel", {"session_id": session, "modelName": "pixel-art-xl", "subtype": "LoRA"})
    assert lora["model"]["hash"].startswith("0x") and lora["model"]["hash"] != model["hash"]

    before = ws_metadata(fake, session, seed=5)
    fake.replace_model(XL)
    after_hash = api(client, "DescribeModel", {"session_id": session, "modelName": XL})["model"]["hash"]
    assert after_hash != model["hash"] and after_hash == fake.model_hash(XL)
    after = ws_metadata(fake, session, seed=5)
    assert before["sui_models"] == [{"name": XL, "param": "model", "hash": model["hash"]}]
    assert after["sui_models"] == [{"name": XL, "param": "model", "hash": after_hash}]
    first, second = fake.generation_log
    assert first.image != second.image


def test_lazy_hashes_are_empty_until_a_generation_computes_them() -> None:
    with FakeSwarm(backends=1, lazy_hashes=True, **FAST) as fake, httpx.Client(base_url=fake.url) as client:
        sid = str(client.post("/API/GetNewSession", json={}).json()["session_id"])
        assert api(client, "DescribeModel", {"session_id": sid, "modelName": XL})["model"]["hash"] == ""
        metadata = ws_metadata(fake, sid)
        computed = api(client, "DescribeModel", {"session_id": sid, "modelName": XL})["model"]["hash"]
        assert computed.startswith("0x") and metadata["sui_models"][0]["hash"] == computed
        fake.replace_model(XL)  # a new file: its hash is not known until computed again
        assert api(client, "DescribeModel", {"session_id": sid, "modelName": XL})["model"]["hash"] == ""


@pytest.mark.parametrize(("model", "picked"), [
    ("sd_xl_base_1.0", XL),  # shortest name containing the text
    ("xl", XL),
    ("SD15/V1-5-PRUNED-EMAONLY", SD15),  # exact after cleaning (case, extension)
    ("v1", SD15),
])
def test_fuzzy_model_matching(fake: FakeSwarm, session: str, model: str, picked: str) -> None:
    metadata = ws_metadata(fake, session, model=model)
    assert metadata["sui_image_params"]["model"] == picked.removesuffix(".safetensors")
    assert fake.generation_log[-1].model == picked


def test_fuzzy_loras_dropdowns_and_metadata(fake: FakeSwarm, session: str) -> None:
    metadata = ws_metadata(fake, session, loras=["outline", "pixel-art-xl"], loraweights=[0.5, 1],
                           sampler="dpmpp_2m_sd", seed=-1, initimagecreativity=0.3)
    params = metadata["sui_image_params"]
    assert params["loras"] == ["styles/outline.safetensors", "pixel-art-xl.safetensors"]
    assert params["sampler"] == "dpmpp_2m_sde"  # the shortest value containing the text
    assert isinstance(params["seed"], int) and params["seed"] >= 0  # the real seed, not -1
    assert params["seed"] == fake.generation_log[-1].seed
    assert metadata["sui_extra_data"]["unused_parameters"] == ["initimagecreativity"]
    assert "initimagecreativity" not in params
    assert [(m["param"], m["name"]) for m in metadata["sui_models"]] == [
        ("model", XL), ("loras", "styles/outline.safetensors"), ("loras", "pixel-art-xl.safetensors")]
    bad = ws_metadata(fake, session, loras=["nothing-like-it"])
    assert bad["error"].startswith("Invalid value for parameter LoRAs: Invalid value for param LoRAs - ")


def test_unused_params_option() -> None:
    with FakeSwarm(backends=1, unused_params=["cfgscale"], **FAST) as fake, httpx.Client(base_url=fake.url) as c:
        sid = str(c.post("/API/GetNewSession", json={}).json()["session_id"])
        metadata = ws_metadata(fake, sid, cfgscale=5)
        assert metadata["sui_extra_data"]["unused_parameters"] == ["cfgscale"]
        assert "cfgscale" not in metadata["sui_image_params"]
