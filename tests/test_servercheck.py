"""The pieces of issue 15 without a server: SwarmUI's name matching, checks against a ListT2IParams
listing, image metadata parsing, the ``loras`` table and lock compatibility."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import pytest
from conftest import write_manifest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from assetbuild.errors import ManifestError
from assetbuild.lock import Lock, LockEntry, render
from assetbuild.manifest import load
from assetbuild.servercheck import check, describe_change, hashes_for, load_cached, model_refs, store
from assetbuild.swarm import metadata
from assetbuild.swarm.names import best_in_list, match_lora, match_model, match_value
from assetbuild.swarm.params import ServerParams
from assetbuild.testing._fake_params import WITH_EXTENSIONS, params_listing

XL = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
SD15 = "sd15/v1-5-pruned-emaonly.safetensors"
MODELS = [XL, SD15]


def server(**models: list[str]) -> ServerParams:
    """The test double's ListT2IParams answer, parsed the way a run parses it."""
    lists = {"Stable-Diffusion": MODELS, "LoRA": ["pixel-art-xl.safetensors", "styles/outline.safetensors"],
             "VAE": ["sdxl_vae.safetensors"], **{k.replace("_", "-"): v for k, v in models.items()}}
    listing = params_listing(lists, lambda name: "arch", WITH_EXTENSIONS.values())
    return ServerParams.from_listing(json.loads(json.dumps(listing)), version="v", server_id="s")


# ------------------------------------------------------------------------------------------- matching


@pytest.mark.parametrize(("name", "picked"), [
    ("OfficialStableDiffusion/sd_xl_base_1.0", XL), ("officialstablediffusion/SD_XL_BASE_1.0.safetensors", XL),
    ("xl", XL), ("v1-5", SD15), ("nothing", None), ("sd", SD15),
])
def test_best_in_list_is_swarmuis_pick(name: str, picked: str | None) -> None:
    from assetbuild.swarm.names import clean_model

    assert best_in_list(name, MODELS, clean_model) == picked


@pytest.mark.parametrize(("name", "exact"), [
    ("OfficialStableDiffusion/sd_xl_base_1.0", XL),  # the full name, without the extension
    (XL, XL),
    ("Official Stable Diffusion/SD_XL_BASE_1.0", XL),  # SwarmUI's cleaning ignores case and spaces
    ("sd_xl_base_1.0", XL),  # the file name alone: one model has it, and SwarmUI picks it
    ("xl", None), ("sd_xl_base", None), ("sdxl_bse", None), ("other/sd_xl_base_1.0", None),
])
def test_exact_model_names(name: str, exact: str | None) -> None:
    assert match_model(name, MODELS).exact == exact


def test_file_name_alone_must_be_unambiguous_and_what_swarmui_picks() -> None:
    assert match_model("m", ["a/m.safetensors", "b/m.safetensors"]).exact is None
    # SwarmUI picks the shortest name containing "base": not the one whose file name is "base".
    shadowed = ["very/long/folder/base.safetensors", "base_v2.safetensors"]
    found = match_model("base", shadowed)
    assert found.exact is None and found.picked == "base_v2.safetensors"


def test_lora_and_dropdown_matching() -> None:
    loras = ["pixel-art-xl-v2", "pixel-art-xl.safetensors"]
    assert match_lora("pixel-art-xl-v2", loras).exact == "pixel-art-xl-v2"
    # SwarmUI's first, generic pass picks the shorter "pixel-art-xl-v2" for "pixel-art-xl".
    found = match_lora("pixel-art-xl", loras)
    assert found.exact is None and found.picked == "pixel-art-xl-v2"
    assert match_value("DPMPP_2M", ["dpmpp_2m", "dpmpp_2m_sde"]).exact == "dpmpp_2m"
    assert match_value("dpmpp_2m_s", ["dpmpp_2m", "dpmpp_2m_sde"]).picked == "dpmpp_2m_sde"


# ---------------------------------------------------------------------------------- checking assets


def project_with(root: Path, assets: str) -> object:
    write_manifest(root, '[server]\nurl = "http://127.0.0.1:9"\n[defaults]\nmodel = "sd_xl_base_1.0"\n\n' + assets)
    return load(root / "assets.toml")


def test_check_names_lines_and_choices(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    loaded = project_with(project, '[assets."a.png"]\nprompt = "x"\nmodel = "sdxl_bse"\n\n'
                                   '[assets."b.png"]\nprompt = "y"\nvae = "sdxl"\nsampler = "euler"\n\n'
                                   '[assets."c.png"]\nprompt = "z"\nvae = "None"\nfoo_bar = 1\n')
    problems = check(loaded, loaded.assets.values(), server())  # type: ignore[attr-defined]
    text = [str(p) for p in problems]
    assert text[0] == ("assets.toml:6: asset 'a.png': model 'sdxl_bse' is not a model on the server; did you "
                       "mean 'OfficialStableDiffusion/sd_xl_base_1.0'? choices: "
                       "'OfficialStableDiffusion/sd_xl_base_1.0', 'sd15/v1-5-pruned-emaonly'")
    assert text[1].startswith("assets.toml:10: asset 'b.png': vae 'sdxl' is not an exact model name: SwarmUI "
                              "would pick 'sdxl_vae'")
    assert text[2] == ("assets.toml:15: asset 'c.png': the server does not know parameter 'foobar' (SwarmUI would "
                       "skip it silently); is the extension that adds it installed?")
    assert len(problems) == 3 and problems[0].about_models and not problems[2].about_models


def test_model_refs_and_recorded_hashes() -> None:
    params = {"model": "sd_xl_base_1.0", "vae": "None", "loras": ["outline", "pixel-art-xl"], "steps": 4}
    assert model_refs(params) == [("lora:outline", "LoRA", "outline"), ("lora:pixel-art-xl", "LoRA", "pixel-art-xl"),
                                  ("model:sd_xl_base_1.0", "Stable-Diffusion", "sd_xl_base_1.0")]
    used = [metadata.UsedModel("model", XL, "0xaa"), metadata.UsedModel("loras", "styles/outline.safetensors", None)]

    class Asset:
        pass

    asset = Asset()
    asset.params = params  # type: ignore[attr-defined]
    recorded = hashes_for(asset, used, {"lora:outline": "0xbb", "lora:pixel-art-xl": None})  # type: ignore[arg-type]
    assert recorded == {"model:sd_xl_base_1.0": "0xaa", "lora:outline": "0xbb"}
    assert describe_change("model:x", "0x3f2a9c", "0x9c1d00") == "model hash: 3f2a… -> 9c1d…"
    assert describe_change("lora:outline", "ab", "cd") == "lora outline hash: ab -> cd"


def test_params_cache_roundtrip_and_replacement(tmp_path: Path) -> None:
    state = tmp_path / ".assetbuild"
    first = server()
    store(state, first)
    assert load_cached(state, "s", "v") == first
    assert load_cached(state, "s", "other") is None
    second = first.model_copy(update={"version": "v2"})
    store(state, second)
    assert [p.name for p in (state / "server").iterdir()] != [] and load_cached(state, "s", "v") is None
    assert load_cached(state, "s", "v2") == second
    assert list((state / "tmp").glob("*")) == []  # written through the temporary-file helper


# -------------------------------------------------------------------------------------------- metadata


def png_with(text: str, kind: str) -> bytes:
    out = io.BytesIO()
    info = PngInfo()
    if kind == "tEXt":
        info.add_text("parameters", text)
    elif kind == "iTXt":
        info.add_itxt("parameters", text, zip=True)
    else:
        info.add(b"zTXt", b"parameters\x00\x00" + zlib.compress(text.encode("latin-1")))
    Image.new("RGB", (4, 4)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["tEXt", "iTXt", "zTXt"])
def test_metadata_from_png_chunks(kind: str) -> None:
    doc = {"sui_image_params": {"seed": 1234, "model": "m"},
           "sui_extra_data": {"unused_parameters": ["initimagecreativity"]},
           "sui_models": [{"name": XL, "param": "model", "hash": "0xabc"}, {"name": "x", "param": "vae"}]}
    found = metadata.parse(metadata.png_text(png_with(json.dumps(doc), kind)))
    assert found == metadata.ImageMetadata(1234, ("initimagecreativity",),
                                           (metadata.UsedModel("model", XL, "0xabc"),
                                            metadata.UsedModel("vae", "x", None)))


@pytest.mark.parametrize("text", [None, "", "not json", "[]", '{"other": 1}', '{"sui_image_params": {"seed": "x"}}'])
def test_metadata_that_is_not_swarmuis(text: str | None) -> None:
    found = metadata.parse(text)
    assert found is None or found.seed is None
    assert metadata.png_text(b"GIF89a...") is None


# ------------------------------------------------------------------------------- manifest and lock


def test_loras_table_becomes_two_lists_in_name_order(project: Path) -> None:
    loaded = project_with(project, '[assets."a.png"]\nprompt = "x"\nloras = { "b" = 0.5, "a" = 1 }\n')
    assert loaded.assets["a.png"].params["loras"] == ["a", "b"]  # type: ignore[attr-defined]
    assert loaded.assets["a.png"].params["loraweights"] == [1, 0.5]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("table", "message"), [
    ('loras = { "a" = "x" }', "the weight of LoRA 'a' must be a number from -10 to 10"),
    ('loras = { "a" = 10.5 }', "must be a number from -10 to 10, not 10.5"),
    ('loras = { "a" = 1 }\nloraweights = [1]', "`loras` as a table gives the weights already"),
    ('loras = { " " = 1 }', "a LoRA name in `loras` is empty"),
])
def test_loras_table_errors(project: Path, table: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        project_with(project, f'[assets."a.png"]\nprompt = "x"\n{table}\n')


def test_old_lock_without_model_hashes_is_read_and_written_unchanged(tmp_path: Path) -> None:
    old = LockEntry("a" * 32, "b" * 32, 1, "m", {"v": 1, "params": {"prompt": "p"}})
    data = render({"a.png": old})
    assert b"model_hashes" not in data
    path = tmp_path / "assets.lock"
    path.write_bytes(data)
    lock = Lock.load(path)
    assert lock.get("a.png") == old
    lock.commit("b.png", LockEntry("c" * 32, "d" * 32, 2, "m", {}, {"model:m": "0x1"}))
    lock.flush()  # the end of the run writes the file
    text = path.read_text(encoding="utf-8")
    assert text.count("model_hashes") == 1
    assert Lock.load(path).get("b.png").model_hashes == {"model:m": "0x1"}  # type: ignore[union-attr]
