"""The asset graph and post-processing, end to end: image inputs, variants, derived outputs, formats,
clean metadata, tracing a file to its entry, and size limits on every image read."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest
from helpers import generations
from PIL import Image

from assetbuild import postprocess
from assetbuild.postprocess import KEY_CHUNK, Postprocess

GRAPH = """
[server]
url = "placeholder"

[defaults]
width = 64
height = 64
seed = 10

[assets."chars/sheet.png"]
prompt = "a character sheet of a fox ranger"

[assets."chars/pose_run.png"]
prompt = "the fox ranger running"
initimage = "chars/sheet.png"

[assets."chars/pose_bow.png"]
prompt = "the fox ranger drawing a bow"
initimage = "chars/sheet.png"
maskimage = "refs/mask.png"

[assets."trees/oak_{n}.png"]
prompt = "an oak tree"
count = 3
seed = 100

[assets."ui/gem.png"]
prompt = "a blue gem icon"
width = 128
height = 128

[assets."ui/gem_16.png"]
source = "ui/gem.png"
resize = {size = [16, 16], filter = "nearest"}

[assets."ui/gem_32.webp"]
source = "ui/gem.png"
resize = [32, 32]
quality = 80

[assets."ui/gem_64.jpg"]
source = "ui/gem.png"
resize = [64, 64]
quality = 70
"""


def mask_png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (64, 64), 255).save(out, "PNG")
    return out.getvalue()


class Graph:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root.parent / "graph.log"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = run_cli(self.root, *args, env={"ASSETBUILD_PLACEHOLDER_LOG": str(self.log)})
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def generated(self) -> list[str]:
        names = sorted(generations(self.log))
        self.log.unlink(missing_ok=True)
        return names

    def edit(self, old: str, new: str) -> None:
        path = self.root / "assets.toml"
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def lock(self) -> dict[str, dict]:
        return json.loads((self.root / "assets.lock").read_text(encoding="utf-8"))["assets"]


@pytest.fixture
def graph(project: Path) -> Graph:
    write_manifest(project, GRAPH)
    (project / "refs").mkdir()
    (project / "refs" / "mask.png").write_bytes(mask_png())
    built = Graph(project)
    result = built.run()
    assert result.returncode == 0, result.stdout + result.stderr
    return built


def test_first_build_generates_each_generation_once_and_derives_the_rest(graph: Graph) -> None:
    assert graph.generated() == sorted([
        "chars/sheet.png", "chars/pose_run.png", "chars/pose_bow.png",
        "trees/oak_1.png", "trees/oak_2.png", "trees/oak_3.png", "ui/gem.png",
    ])
    assert set(graph.lock()) == {
        "chars/sheet.png", "chars/pose_run.png", "chars/pose_bow.png", "trees/oak_1.png", "trees/oak_2.png",
        "trees/oak_3.png", "ui/gem.png", "ui/gem_16.png", "ui/gem_32.webp", "ui/gem_64.jpg",
    }


def test_upstream_change_rebuilds_consumers_consumer_change_rebuilds_only_itself(graph: Graph) -> None:
    graph.generated()
    graph.edit("a character sheet of a fox ranger", "a character sheet of a red fox ranger")
    assert graph.run().returncode == 0
    assert graph.generated() == ["chars/pose_bow.png", "chars/pose_run.png", "chars/sheet.png"]
    graph.edit("the fox ranger running", "the fox ranger sprinting")
    assert graph.run().returncode == 0
    assert graph.generated() == ["chars/pose_run.png"]


def test_a_source_file_input_is_part_of_the_key(graph: Graph) -> None:
    graph.generated()
    out = io.BytesIO()
    Image.new("L", (64, 64), 0).save(out, "PNG")
    (graph.root / "refs" / "mask.png").write_bytes(out.getvalue())
    why = graph.run("why", "chars/pose_bow.png")
    assert "input maskimage: bytes changed" in why.stdout
    assert graph.run().returncode == 0
    assert graph.generated() == ["chars/pose_bow.png"]


def test_variants_get_consecutive_seeds_and_their_own_entries(graph: Graph) -> None:
    lock = graph.lock()
    assert [lock[f"trees/oak_{n}.png"]["seed"] for n in (1, 2, 3)] == [100, 101, 102]
    keys = {lock[f"trees/oak_{n}.png"]["key"] for n in (1, 2, 3)}
    assert len(keys) == 3
    cache = graph.root / ".assetbuild" / "cache"
    assert all((cache / key[:2] / f"{key}.img").is_file() for key in keys)
    graph.generated()
    graph.edit("count = 3", "count = 4")
    assert graph.run().returncode == 0
    assert graph.generated() == ["trees/oak_4.png"]
    assert graph.lock()["trees/oak_4.png"]["seed"] == 103


def test_derived_outputs_have_their_sizes_formats_and_need_no_generation(graph: Graph) -> None:
    expected = {"ui/gem_16.png": ("PNG", (16, 16)), "ui/gem_32.webp": ("WEBP", (32, 32)),
                "ui/gem_64.jpg": ("JPEG", (64, 64))}
    for target, (fmt, size) in expected.items():
        with Image.open(graph.root / target) as image:
            assert (image.format, image.size) == (fmt, size), target
    graph.generated()
    graph.edit('resize = [32, 32]', 'resize = [24, 24]')
    assert graph.run().returncode == 0
    assert graph.generated() == []  # only the derived asset was redone, from the gem on disk
    with Image.open(graph.root / "ui/gem_32.webp") as image:
        assert image.size == (24, 24)


def test_nearest_filter_keeps_pixel_art_hard_edges() -> None:
    source = Image.new("RGB", (2, 2))
    source.putdata([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)])
    data = io.BytesIO()
    source.save(data, "PNG")
    nearest = postprocess.apply(data.getvalue(), Postprocess(resize=(8, 8), resize_filter="nearest"), key="k")
    smooth = postprocess.apply(data.getvalue(), Postprocess(resize=(8, 8), resize_filter="lanczos"), key="k")
    with Image.open(io.BytesIO(nearest)) as image:
        colours = {image.getpixel((x, y)) for x in range(8) for y in range(8)}
    assert colours == {(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)}
    with Image.open(io.BytesIO(smooth)) as image:
        assert len({image.getpixel((x, y)) for x in range(8) for y in range(8)}) > 4


def _png_with_text(pixels: Image.Image, **text: str) -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for name, value in text.items():
        info.add_text(name, value)
    out = io.BytesIO()
    pixels.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def test_generator_metadata_is_stripped_so_identical_pixels_give_identical_bytes() -> None:
    pixels = Image.new("RGB", (32, 32), (10, 20, 30))
    monday = _png_with_text(pixels, parameters='{"date": "2026-11-23", "generation_time": "1.2 s"}')
    tuesday = _png_with_text(pixels, parameters='{"date": "2026-11-24", "generation_time": "0.9 s"}')
    assert monday != tuesday
    post = Postprocess()
    first = postprocess.apply(monday, post, key="abc")
    assert first == postprocess.apply(tuesday, post, key="abc")
    with Image.open(io.BytesIO(first)) as image:
        assert image.text == {KEY_CHUNK: "abc"}


def test_embed_prompt_adds_the_prompt_chunk(project: Path) -> None:
    write_manifest(project, """
        [server]
        url = "placeholder"
        [assets."a.png"]
        prompt = "a lantern"
        width = 64
        height = 64
        embed_prompt = true
    """)
    assert run_cli(project).returncode == 0
    with Image.open(project / "a.png") as image:
        assert image.text[postprocess.PROMPT_CHUNK] == "a lantern"
        assert image.text[KEY_CHUNK] == json.loads((project / "assets.lock").read_text())["assets"]["a.png"]["key"]


def test_why_traces_a_copied_file_to_its_manifest_entry(graph: Graph, tmp_path: Path) -> None:
    copy = tmp_path / "somewhere" / "mystery.png"
    copy.parent.mkdir()
    shutil.copy(graph.root / "chars/pose_run.png", copy)
    result = graph.run("why", str(copy))
    assert result.returncode == 0, result.stderr
    assert "chars/pose_run.png" in result.stdout
    assert "the fox ranger running" in result.stdout
    stranger = tmp_path / "stranger.png"
    Image.new("RGB", (4, 4)).save(stranger)
    refused = graph.run("why", str(stranger))
    assert refused.returncode == 2
    assert "not written by assetbuild" in refused.stderr


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (the pixels are never decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(
        b"IEND", b"")


def test_image_inputs_that_claim_a_huge_size_are_refused_before_decoding(project: Path) -> None:
    write_manifest(project, """
        [server]
        url = "placeholder"
        [assets."big.png"]
        prompt = "x"
        width = 64
        height = 64
        [assets."small.png"]
        source = "big.png"
        resize = [8, 8]
    """)
    assert run_cli(project).returncode == 0
    (project / "big.png").write_bytes(_bomb_png(200_000, 200_000))
    lock = json.loads((project / "assets.lock").read_text())["assets"]
    # Make the bomb look like assetbuild's own file so the derived asset reads it.
    from assetbuild.keys import hash_bytes

    lock["big.png"]["hash"] = hash_bytes((project / "big.png").read_bytes())
    (project / "assets.lock").write_text(json.dumps({"version": 1, "assets": lock}), encoding="utf-8")
    before = (project / "small.png").read_bytes()
    result = run_cli(project, "run", "small.png")
    assert result.returncode == 1
    assert "pixel limit" in result.stdout
    assert (project / "small.png").read_bytes() == before


def test_a_generator_returning_a_non_image_fails_the_asset_and_writes_nothing(project: Path) -> None:
    import assetbuild
    from assetbuild.generators.base import GenerationResult

    class Garbage:
        kind = "placeholder"

        def generate(self, request, progress):  # type: ignore[no-untyped-def]
            return GenerationResult(b"<html>502 Bad Gateway</html>")

        def interrupt(self) -> None: ...

        def close(self) -> None: ...

    write_manifest(project, """
        [server]
        url = "placeholder"
        [assets."a.png"]
        prompt = "x"
    """)
    summary = assetbuild.build(project / "assets.toml", generator=Garbage())
    assert summary.exit_code == 1
    [failure] = summary.failures
    assert failure.target == "a.png" and failure.outcome is assetbuild.Outcome.FAILED and failure.message
    assert not (project / "a.png").exists()
    assert not (project / "assets.lock").exists()
