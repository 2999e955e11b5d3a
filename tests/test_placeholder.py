"""The offline placeholder generator: a deterministic PNG of the requested size showing name and prompt."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from assetbuild.errors import GenerationError
from assetbuild.generators import create, kind_for
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
    real = ImageDraw.ImageDraw.text

    def spy(self: ImageDraw.ImageDraw, xy: Any, text: Any, *args: Any, **kwargs: Any) -> None:
        drawn.append(str(text))
        real(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    image = render("ui/icon_sword.png", "a steel sword icon, flat shading", 1, 512, 256)
    assert "ui/icon_sword.png" in drawn
    assert "a steel sword icon, flat shading" in " ".join(drawn)
    # And the text really is on the image: white glyph pixels exist.
    assert (255, 255, 255) in {colour for _, colour in image.getcolors(512 * 256) or []}


def test_long_prompts_wrap_inside_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    boxes: list[tuple[float, float, float, float]] = []
    real = ImageDraw.ImageDraw.text

    def spy(self: ImageDraw.ImageDraw, xy: Any, text: Any, *args: Any, **kwargs: Any) -> None:
        boxes.append(self.textbbox(xy, text, font=kwargs.get("font")))
        real(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    render("a.png", "word " * 200, 1, 256, 256)
    assert len(boxes) > 2
    assert all(box[2] <= 256 + 8 and box[3] <= 256 for box in boxes)


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
