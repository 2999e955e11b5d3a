"""The offline placeholder generator: a deterministic PNG of the requested size showing name and prompt."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont

from assetbuild.errors import GenerationError
from assetbuild.generators import create, kind_for, placeholder
from assetbuild.generators.base import GenerationRequest, Progress
from assetbuild.generators.placeholder import LOG_ENV, PlaceholderGenerator, render
from assetbuild.manifest import ServerSettings


def request(asset: str = "sprites/hero.png", **params: Any) -> GenerationRequest:
    images = params.pop("images", {})
    base = {"prompt": "a knight in silver armor", "seed": 42, "width": 96, "height": 64}
    return GenerationRequest(asset, {**base, **params}, images)


def generate(req: GenerationRequest) -> bytes:
    return PlaceholderGenerator().generate(req, lambda _: None).data


def pixels(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image


def test_selected_by_the_placeholder_url() -> None:
    settings = ServerSettings(url="placeholder")
    assert kind_for(settings) == "placeholder"
    assert isinstance(create(settings), PlaceholderGenerator)
    assert kind_for(ServerSettings(url="http://localhost:7801")) == "swarmui"


@pytest.mark.parametrize(("width", "height"), [(64, 64), (96, 64), (64, 200), (1024, 1024)])
def test_png_of_the_requested_size(width: int, height: int) -> None:
    assert pixels(generate(request(width=width, height=height))).size == (width, height)


def test_default_size_when_none_is_given() -> None:
    req = GenerationRequest("a.png", {"prompt": "p"})
    assert pixels(generate(req)).size == (512, 512)


def test_deterministic_bytes() -> None:
    first = generate(request())
    assert generate(request()) == first
    assert PlaceholderGenerator().generate(request(), lambda _: None).data == first


@pytest.mark.parametrize(
    "change",
    [{"prompt": "a knight in golden armor"}, {"seed": 43}, {"asset": "sprites/villain.png"}],
    ids=["prompt", "seed", "name"],
)
def test_pixels_depend_on_prompt_seed_and_name(change: dict[str, Any]) -> None:
    base = pixels(generate(request())).tobytes()
    asset = change.pop("asset", "sprites/hero.png")
    assert pixels(generate(request(asset, **change))).tobytes() != base


def test_draws_the_name_and_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[str] = []
    real = placeholder.draw_line

    def spy(image: Image.Image, xy: tuple[int, int], text: str, size: int, *, stroke: int) -> None:
        drawn.append(text)
        real(image, xy, text, size, stroke=stroke)

    monkeypatch.setattr(placeholder, "draw_line", spy)
    image = render("ui/icon_sword.png", "a steel sword icon, flat shading", 1, 512, 256)
    assert "ui/icon_sword.png" in drawn
    assert "a steel sword icon, flat shading" in " ".join(drawn)
    # And the text really is on the image: white glyph pixels exist.
    assert (255, 255, 255) in {colour for _, colour in image.getcolors(512 * 256) or []}


def test_long_prompts_wrap_inside_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    boxes: list[tuple[float, float, float, float]] = []
    real = placeholder.draw_line

    def spy(image: Image.Image, xy: tuple[int, int], text: str, size: int, *, stroke: int) -> None:
        left, top, right, bottom = placeholder.GLYPHS.bbox(text, size)
        boxes.append((xy[0] + left, xy[1] + top, xy[0] + right, xy[1] + bottom))
        real(image, xy, text, size, stroke=stroke)

    monkeypatch.setattr(placeholder, "draw_line", spy)
    render("a.png", "word " * 200, 1, 256, 256)
    assert len(boxes) > 2
    assert all(box[2] <= 256 + 8 and box[3] <= 256 for box in boxes)


@pytest.mark.parametrize(("text", "size", "stroke"), [("icon_sword", 85, 10), ("a steel sword, flat", 18, 1),
                                                      ("set000/asset00001.png", 8, 1)])
def test_cached_glyphs_draw_what_pillow_draws(text: str, size: int, stroke: int) -> None:
    """The glyph cache is an optimisation only: the line looks like Pillow's own outlined text."""
    width, height = 1200, size * 2
    ours = Image.new("RGB", (width, height), (40, 90, 160))
    placeholder.draw_line(ours, (size // 2, size // 3), text, size, stroke=stroke)
    pillows = Image.new("RGB", (width, height), (40, 90, 160))
    ImageDraw.Draw(pillows).text((size // 2, size // 3), text, fill=(255, 255, 255),
                                 font=ImageFont.load_default(size), stroke_width=stroke, stroke_fill=(0, 0, 0))
    assert ours.getbbox() == pillows.getbbox()
    diff = ImageChops.difference(ours, pillows).convert("L")
    assert diff.getextrema()[1] <= 8, diff.getbbox()
    plain = Image.new("RGB", (width, height), (40, 90, 160))
    light = [sum(level * count for level, count in enumerate(im.convert("L").histogram()))
             for im in (ours, pillows, plain)]
    assert light[0] != light[2] and abs(light[0] - light[1]) <= light[1] // 1000  # as much ink, to 0.1 %


def test_glyph_cache_is_bounded_and_gives_the_same_pixels_after_eviction(monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = placeholder.GlyphCache(budget_pixels=2000)
    monkeypatch.setattr(placeholder, "GLYPHS", tiny)
    first = render("ui/icon_sword.png", "a steel sword icon, flat shading", 1, 256, 128).tobytes()
    assert tiny._pixels <= 2000 or len(tiny._glyphs) == 1
    assert render("ui/icon_sword.png", "a steel sword icon, flat shading", 1, 256, 128).tobytes() == first
    monkeypatch.setattr(placeholder, "GLYPHS", placeholder.GlyphCache())
    assert render("ui/icon_sword.png", "a steel sword icon, flat shading", 1, 256, 128).tobytes() == first


def test_threads_sharing_the_glyph_cache_draw_the_same_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placeholder, "GLYPHS", placeholder.GlyphCache())
    names = [f"set/asset{i}.png" for i in range(16)]
    serial = {name: render(name, f"prompt of {name}", 1, 96, 96).tobytes() for name in names}
    monkeypatch.setattr(placeholder, "GLYPHS", placeholder.GlyphCache())
    results: dict[str, bytes] = {}

    def work(part: list[str]) -> None:
        for name in part:
            results[name] = render(name, f"prompt of {name}", 1, 96, 96).tobytes()

    threads = [threading.Thread(target=work, args=(names[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == serial


def test_init_image_is_blended_in() -> None:
    init = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 255, 0)).save(init, "PNG")
    plain = pixels(generate(request())).tobytes()
    blended = pixels(generate(request(images={"initimage": init.getvalue()})))
    assert blended.tobytes() != plain
    assert blended.size == (96, 64)
    # Unreadable init bytes are ignored rather than failing the placeholder.
    assert generate(request(images={"initimage": b"not an image"})) == generate(request())


def test_result_carries_seed_and_model_and_reports_progress() -> None:
    updates: list[Progress] = []
    result = PlaceholderGenerator().generate(request(model="sdxl"), updates.append)
    assert result.seed == 42 and result.model == "sdxl"
    assert [u.phase for u in updates] == ["generating", "generating"]
    assert [u.fraction for u in updates] == [0.0, 1.0]
    assert PlaceholderGenerator().generate(request(), lambda _: None).model == "placeholder"


def test_refuses_impossible_sizes() -> None:
    with pytest.raises(GenerationError, match="8x64"):
        generate(request(width=8, height=64))


def test_log_gets_one_line_per_generation_across_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "gen.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    generator = PlaceholderGenerator()
    threads = [threading.Thread(target=generator.generate, args=(request(f"t{i}.png", width=64, height=64),
                                                                  lambda _: None)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = log.read_text().splitlines()
    assert sorted(lines) == sorted(f"t{i}.png" for i in range(12))
    assert generator.count == 12


def test_no_log_without_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    generate(request())
    assert list(tmp_path.iterdir()) == []


def test_a_placeholder_run_with_nothing_to_draw_never_imports_pillow(project: Path) -> None:
    """Pillow (~50 ms of imports) is loaded when an image is drawn: a run whose plan finds every asset
    fresh (here with the no-op memo deleted, so the whole plan runs and the generator is created) never
    pays it; a run that draws one does."""
    import subprocess
    import sys

    from conftest import write_manifest

    probe = ("import sys, runpy\n"
             "sys.argv = ['assetbuild', 'run', '-q']\n"
             "try:\n    runpy.run_module('assetbuild', run_name='__main__')\n"
             "except SystemExit as exc:\n    code = exc.code\n"
             "print('EXIT', code, 'PIL' in sys.modules)\n")

    def run() -> str:
        result = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True,
                                timeout=60)
        return str(result.stdout.strip().splitlines()[-1])

    write_manifest(project, '[server]\nurl = "placeholder"\n[assets."a.png"]\nprompt = "a"\n')
    assert run() == "EXIT 0 True"  # drew a.png
    (project / ".assetbuild" / "noop.json").unlink()
    assert run() == "EXIT 0 False"
    assert (project / "a.png").is_file()
