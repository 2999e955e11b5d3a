"""Deterministic image rendering, metadata and output paths for the SwarmUI test double.

The pixels depend only on (prompt, seed, model, width, height, salt); the embedded metadata carries
volatile fields (date, timings) like SwarmUI's, so byte-identical files are *not* guaranteed across runs
unless a client strips the metadata.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

# What StrictFilenameClean drops: '.', slashes, characters Windows forbids and control characters.
_UNSAFE_FILENAME = re.compile(r'[./\\:*?"<>|\x00-\x1f\x7f]')
_FORMATS = {"PNG": ("png", "image/png"), "JPG": ("jpg", "image/jpeg"), "WEBP": ("webp", "image/webp")}


@dataclass(frozen=True)
class ImageSpec:
    """Everything the rendered pixels depend on."""

    prompt: str
    seed: int
    model: str
    width: int
    height: int
    salt: str = ""  # e.g. a hash of the init image, so img2img results differ

    def digest(self) -> bytes:
        key = "\x00".join([self.prompt, str(self.seed), self.model, str(self.width), str(self.height), self.salt])
        return hashlib.sha256(key.encode()).digest()


def render(spec: ImageSpec, size: tuple[int, int] | None = None, *, noise: bool = False) -> Image.Image:
    """Draw the image: a background colour from the hash plus four shapes placed by it.

    ``size`` renders the same composition at another size (used for previews). ``noise`` fills the
    background with seeded random pixels so the PNG is incompressible (~3 bytes per pixel).
    """
    width, height = size or (spec.width, spec.height)
    digest = spec.digest()
    if noise:
        rng = random.Random(digest)
        img = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    else:
        img = Image.new("RGB", (width, height), tuple(digest[0:3]))
    draw = ImageDraw.Draw(img)
    for i in range(4):
        b = digest[3 + i * 7 : 10 + i * 7]
        x0, x1 = sorted((b[0] * width // 255, b[1] * width // 255))
        y0, y1 = sorted((b[2] * height // 255, b[3] * height // 255))
        colour = (b[4], b[5], b[6])
        box = (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))
        if noise:
            draw.rectangle(box, outline=colour, width=3)
        elif i % 2:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    return img


def encode(img: Image.Image, image_format: str, metadata: str | None) -> bytes:
    """Encode as PNG (metadata in a ``parameters`` text chunk, like SwarmUI), JPG or WEBP."""
    out = io.BytesIO()
    if image_format == "JPG":
        img.save(out, "JPEG", quality=90, comment=(metadata or "").encode())
    elif image_format == "WEBP":
        img.save(out, "WEBP", quality=90)
    else:
        info = PngInfo()
        if metadata:
            info.add_text("parameters", metadata)
        # Noise images do not compress anyway; a low level keeps big benchmark images cheap to make.
        level = 1 if img.width * img.height > 512 * 512 else 6
        img.save(out, "PNG", pnginfo=info, compress_level=level)
    return out.getvalue()


def render_file(spec: ImageSpec, image_format: str, metadata: str | None, noise: bool,
                size: tuple[int, int] | None = None) -> bytes:
    """Render and encode one output image (CPU-bound: call it in a worker thread); ``size`` overrides
    the requested size (fault injection: a server that ignores width/height)."""
    return encode(render(spec, size, noise=noise), image_format, metadata)


def preview_data_url(spec: ImageSpec) -> str:
    """A small JPEG of the same composition, as a ``data:`` URL for ``gen_progress.preview``."""
    scale = 64 / max(spec.width, spec.height)
    size = (max(1, round(spec.width * scale)), max(1, round(spec.height * scale)))
    out = io.BytesIO()
    render(spec, size).save(out, "JPEG", quality=60)
    return data_url(out.getvalue(), "image/jpeg")


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def format_info(image_format: str) -> tuple[str, str]:
    """(file extension, mime type) for an ``imageformat`` value."""
    return _FORMATS.get(image_format, _FORMATS["PNG"])


def clean_path_part(text: str, limit: int = 40) -> str:
    """Cut to ``limit`` characters, then drop what SwarmUI's strict filename cleaner drops (spaces stay)."""
    return _UNSAFE_FILENAME.sub("", text[:limit])


def output_path(now: datetime, counter: int, prompt: str, model: str, extension: str) -> str:
    """``raw/<YYYY-MM-DD>/<HHMM><nnn>-<prompt>-<model>.<ext>`` per the default OutPathBuilder template."""
    model_stem = model[: -len(".safetensors")] if model.endswith(".safetensors") else model
    name = f"{now:%H%M}{counter:03d}-{clean_path_part(prompt)}-{clean_path_part(model_stem)}"
    return f"raw/{now:%Y-%m-%d}/{name}.{extension}"


def build_metadata(
    image_params: dict[str, Any],
    extra: dict[str, Any],
    *,
    version: str,
    models: list[dict[str, str]] | None,
    unused: list[str] | None = None,
    prep_seconds: float,
    gen_seconds: float,
) -> str:
    """SwarmUI-style metadata: pretty-printed JSON with ``sui_image_params``, ``sui_extra_data``, ``sui_models``.

    ``models`` are ``{name, param, hash}`` objects (None: the server setting that adds them is off);
    ``unused`` lists parameters that were given but not used (``sui_extra_data.unused_parameters``).
    ``date`` and the timings are volatile on purpose (clients are expected to strip them).
    """
    params = dict(image_params)
    params["swarm_version"] = version
    extra_data = dict(extra)
    extra_data["date"] = datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    extra_data["prep_time"] = f"{prep_seconds:.2f} sec"
    extra_data["generation_time"] = f"{gen_seconds:.2f} sec"
    if unused:
        extra_data["unused_parameters"] = list(unused)
    doc: dict[str, Any] = {"sui_image_params": params, "sui_extra_data": extra_data}
    if models:
        doc["sui_models"] = models
    return json.dumps(doc, indent=2, ensure_ascii=False)
