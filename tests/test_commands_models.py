"""`assetbuild models` (ListModels) and the "did you mean" for unknown model names."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import pytest
from helpers import cli, free_port

from assetbuild import userconfig
from assetbuild.cli import main
from assetbuild.errors import ServerError
from assetbuild.servermodels import closest_model, suggest_model, with_model_suggestion
from assetbuild.swarm.client import SwarmClient
from assetbuild.testing import FakeSwarm

MODELS = [
    "OfficialStableDiffusion/sd_xl_base_1.0.safetensors",
    "sd15/v1-5-pruned-emaonly.safetensors",
    "pixel/deep/pixel-art-xl.safetensors",
]
UNKNOWN_MODEL = ("Invalid value for parameter Model: Invalid model value for param Model - 'sdxl_base_1' - are "
                 "you sure that model name is correct?")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, latency=0.02, steps=2, close_delay=0.05, models=MODELS) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeSwarm) -> None:
    fake.reset_records()


def rows(out: str) -> dict[str, list[str]]:
    table = {}
    for line in out.splitlines()[1:]:
        cells = line.split()
        if len(cells) == 4:
            table[cells[0]] = cells[1:]
    return table


# --- the table and JSON -------------------------------------------------------------------------------


def test_models_table(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "models", "--server", fake.url)
    assert code == 0
    assert out.splitlines()[0].split() == ["name", "architecture", "resolution", "loaded"]
    table = rows(out)
    assert table["OfficialStableDiffusion/sd_xl_base_1.0.safetensors"] == [
        "stable-diffusion-xl-v1-base", "1024x1024", "no"]
    assert table["sd15/v1-5-pruned-emaonly.safetensors"][1:] == ["512x512", "no"]
    assert "pixel/deep/pixel-art-xl.safetensors" in table  # depth 4 by default reaches it
    assert "3 model(s)" in out
    assert [r.body for r in fake.requests if r.route == "ListModels"] == [
        {"path": "", "depth": 4, "subtype": "Stable-Diffusion"}]


def test_loaded_column_follows_the_server(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = cli(capsys, "generate", "--server", fake.url, "--prompt", "x", "--model", "v1-5-pruned-emaonly",
                     "-q")
    assert code == 0
    table = rows(cli(capsys, "models", "--server", fake.url)[1])
    assert table["sd15/v1-5-pruned-emaonly.safetensors"][2] == "yes"
    assert table["OfficialStableDiffusion/sd_xl_base_1.0.safetensors"][2] == "no"


def test_path_and_depth(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "models", "--server", fake.url, "--path", "pixel", "--depth", "1")
    assert code == 0 and "no Stable-Diffusion models under 'pixel'" in out and "folders: pixel/deep" in out
    code, out, _ = cli(capsys, "models", "--server", fake.url, "--path", "pixel", "--depth", "2")
    assert list(rows(out)) == ["pixel/deep/pixel-art-xl.safetensors"]
    assert [r.body["depth"] for r in fake.requests if r.route == "ListModels"] == [1, 2]


def test_json_is_the_servers_answer(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "models", "--server", fake.url, "--json")
    data = json.loads(out)
    assert code == 0
    assert sorted(f["name"] for f in data["files"]) == sorted(MODELS)
    assert {"architecture", "resolution", "loaded", "title"} <= set(data["files"][0])
    assert "OfficialStableDiffusion" in data["folders"]


@pytest.mark.parametrize("depth", ["0", "21", "x"])
def test_bad_depth_is_a_usage_error(depth: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["models", "--depth", depth])
    assert exc.value.code == 2


def test_other_model_types_and_a_typo(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "models", "--server", fake.url, "--type", "LoRA")
    assert code == 0 and "no LoRA models" in out
    code, out, _ = cli(capsys, "models", "--server", fake.url, "--type", "lora")
    assert code == 0 and "no LoRA models" in out  # case does not matter
    code, _, err = cli(capsys, "models", "--server", fake.url, "--type", "lorra")
    assert code == 2 and "did you mean 'LoRA'" in err


def test_placeholder_has_no_models(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "models", "--server", "placeholder")
    assert code == 2 and "placeholder" in err


def test_unreachable_server_exits_1_with_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = cli(capsys, "models", "--server", url)
    assert code == 1 and out == "" and url in err and "hint:" in err


def test_api_key_from_the_user_config_is_sent_and_never_shown(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "models-secret-key-42"
    with FakeSwarm(required_authorization=f"Bearer {secret}", close_delay=0.05) as locked:
        code, _, err = cli(capsys, "models", "--server", locked.url)
        assert code == 1 and "refused" in err
        userconfig.save({"api-key": secret})
        code, out, err = cli(capsys, "models", "--server", locked.url, "-v")
        assert code == 0 and "sd_xl_base_1.0" in out
        assert secret not in out + err


# --- did you mean ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("sdxl_base_1.0", "OfficialStableDiffusion/sd_xl_base_1.0"),
    ("sd_xl_base_10", "OfficialStableDiffusion/sd_xl_base_1.0"),
    ("OfficialStableDiffusion/sd_xl_base_1.0.ckpt", "OfficialStableDiffusion/sd_xl_base_1.0"),
    ("v1-5-pruned", "sd15/v1-5-pruned-emaonly"),
    ("SD15/V1-5-PRUNED-EMAONLY", "sd15/v1-5-pruned-emaonly"),
    ("pixelart-xl", "pixel/deep/pixel-art-xl"),
    ("flux-dev-fp8", None),
    ("", None),
])
def test_closest_model(name: str, expected: str | None) -> None:
    assert closest_model(name, MODELS) == expected


def test_closest_model_of_nothing() -> None:
    assert closest_model("sd_xl", []) is None


def test_suggest_model_from_a_url(fake: FakeSwarm) -> None:
    assert suggest_model(fake.url, "sdxl_base_1") == "OfficialStableDiffusion/sd_xl_base_1.0"
    assert suggest_model(fake.url, "nothing-like-it-at-all") is None
    assert suggest_model("placeholder", "sd_xl") is None
    assert suggest_model(f"http://127.0.0.1:{free_port()}", "sd_xl") is None  # never raises


def test_suggest_model_with_a_client_on_another_threads_loop(fake: FakeSwarm) -> None:
    """How a build's SwarmUIGenerator would call it: its client lives on a loop in a background thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        async def make() -> SwarmClient:
            return SwarmClient(fake.url)

        client = asyncio.run_coroutine_threadsafe(make(), loop).result(5)
        assert suggest_model(client, "v1-5-pruned", loop=loop) == "sd15/v1-5-pruned-emaonly"
        assert suggest_model(client, "v1-5-pruned") is None  # without its loop a client cannot be used safely

        error = ServerError("sprites/hero.png", UNKNOWN_MODEL, hint="`assetbuild models` lists the server's models")
        assert with_model_suggestion(error, "sdxl_base_1", client, loop) is error
        assert error.hint == ("did you mean 'OfficialStableDiffusion/sd_xl_base_1.0'? "
                              "(`assetbuild models` lists the server's models)")
        assert "did you mean" in str(error)

        other = ServerError("sprites/hero.png", "No backends available!", hint="h")
        assert with_model_suggestion(other, "sdxl_base_1", client, loop).hint == "h"  # not a model error
        asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert fake.request_count("ListModels") == 2


def test_with_model_suggestion_without_a_client_keeps_the_error() -> None:
    error = ServerError("a.png", UNKNOWN_MODEL, hint="h")
    assert with_model_suggestion(error, "sdxl", None, None).hint == "h"
    assert with_model_suggestion(error, None, None, None).hint == "h"
