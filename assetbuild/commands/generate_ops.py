"""The work of ``assetbuild generate --prompt TEXT``: one-off images, outside any manifest.

The images go through the same SwarmUI client as a build (sessions, WebSocket progress with HTTP
fallback, retries, ``InterruptAll`` on Ctrl-C) and the same displays, shown on stderr so that stdout
carries only the results, one per line:

- without ``--save-images``: the image's absolute URL on the server (``.../View/<user>/...``). The
  request sets ``donotsave=false`` so the server keeps the image and there is a URL to give. If the
  server still answers with an inline ``data:`` URL (its user setting "SaveFiles" is off), a warning
  says so and suggests ``--save-images``.
- with ``--save-images``: the path of the file written in ``--output-dir`` (default: the current
  folder). The request sets ``donotsave=true`` (the image lives in your folder, not the server's
  history). Files are written atomically and never over an existing file: ``name.png`` is taken, so
  ``name-2.png`` is used.

Inside a project (assets.toml here or above, or ``-f FILE``) the images start from the manifest's
``[defaults]`` and a style (``--style NAME``, else the defaults' own ``style``), like an asset would;
the options override them, and a ``{prompt}`` in the style's prompts takes ``--prompt``.
``--no-manifest`` ignores the manifest (its parameters and its server). Post-processing settings
(``resize``...) and image inputs do not apply to one-off images.

``--server placeholder`` renders placeholder images locally (written with ``--save-images``).
``--batch N`` makes N images (N requests of one image each, up to ``server.concurrency`` at once); with
``--seed S`` they get seeds S, S+1, ..., like SwarmUI's own seed increment.
"""

from __future__ import annotations

import asyncio
import functools
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

from .. import params as P
from ..display import forward_logs, make_display
from ..errors import AssetbuildError, AssetError, GenerationError, UsageError
from ..events import GENERATED, BuildEvents, Failure, Summary
from ..generators.base import GenerationRequest, Progress
from ..safetext import safe_json, safe_text
from ..servercalls import check_url
from ..servermodels import is_unknown_model_error, suggest_model_async
from ..swarm.client import SwarmClient, sniff
from ..swarm.errors import SwarmError
from .newfile import create_first_free, numbered
from .server_ops import Target

MAX_BATCH = 100
NO_MODEL_TEXT = "No model input given"
_EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
_OPTION_NAMES = {"prompt": "--prompt", "negativeprompt": "--negative-prompt", "model": "--model",
                 "width": "--width", "height": "--height", "steps": "--steps", "seed": "--seed",
                 "cfgscale": "--cfg-scale"}


@dataclass(frozen=True)
class GenerateOptions:
    prompt: str
    negative_prompt: str | None = None
    model: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    seed: int | None = None
    cfg_scale: float | None = None
    batch: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # --param KEY=VALUE, normalised ids
    websocket: bool | None = None  # None: the manifest's server.websocket (default true)
    # The project's [defaults] and style (normalised ids); the options above override them. ``base_from``
    # names where they came from, for messages ("assets.toml [defaults] / [styles.pixel]").
    base: dict[str, Any] = field(default_factory=dict)
    base_from: str = ""
    save_images: bool = False
    output_dir: Path | None = None


@dataclass
class ImageResult:
    index: int
    label: str
    seed: int | None = None
    url: str | None = None  # absolute URL on the server
    inline: bool = False  # the server returned a data: URL (it did not store the image)
    path: Path | None = None  # the file written (--save-images)
    size: tuple[int, int] | None = None
    error: AssetbuildError | None = None

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"event": "image", "index": self.index, "ok": self.error is None,
                                  "seed": self.seed, "url": self.url, "inline": self.inline,
                                  "path": str(self.path) if self.path else None}
        if self.error is not None:
            record.update(message=getattr(self.error, "reason", self.error.message), hint=self.error.hint)
        return record


# --- options -> SwarmUI parameters --------------------------------------------------------------------


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from ``--param``: the key normalised like SwarmUI; the value a TOML-like scalar."""
    key, sep, raw = text.partition("=")
    norm = P.normalise(key)
    if not sep or not norm:
        raise UsageError(f"--param {text!r} is not KEY=VALUE", hint="e.g. --param sampler=dpmpp_2m")
    if norm in P.RESERVED:
        raise UsageError(f"--param {key}: `{norm}` is set by assetbuild", hint=P.RESERVED[norm])
    if norm in P.IMAGE_PARAMS:
        raise UsageError(f"--param {key}: image inputs are not supported by `generate`",
                         hint="declare the asset in assets.toml, where image inputs name files")
    value: Any = raw
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        value = lowered == "true"
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
    return norm, value


def request_params(opts: GenerateOptions, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The SwarmUI parameters of each image (validated like a manifest's); seeds increment per image."""
    if not opts.prompt.strip():
        raise UsageError("--prompt is empty")
    if not 1 <= opts.batch <= MAX_BATCH:
        raise UsageError(f"--batch must be between 1 and {MAX_BATCH}, not {opts.batch}")
    for key, value in opts.base.items():
        spec = P.KNOWN.get(key)
        problem = P.check_value(spec, value) if spec else None
        if problem:
            raise UsageError(f"{opts.base_from}: {key} {problem}",
                             hint="fix the manifest, or pass --no-manifest to ignore it")
    base: dict[str, Any] = {**opts.base, **opts.extra}
    given = {"prompt": opts.prompt.strip(), "negativeprompt": opts.negative_prompt, "model": opts.model,
             "width": opts.width, "height": opts.height, "steps": opts.steps, "seed": opts.seed,
             "cfgscale": opts.cfg_scale}
    base.update({key: value for key, value in given.items() if value is not None})
    for key, own in (("prompt", opts.prompt), ("negativeprompt", opts.negative_prompt)):
        template = opts.base.get(key)  # a style's "pixel art of {prompt}" wraps the option's text
        if isinstance(template, str) and "{prompt}" in template:
            base[key] = template.replace("{prompt}", (own or "").strip())
    for key, value in base.items():
        spec = P.KNOWN.get(key)
        if spec is None and warn is not None:  # SwarmUI ignores unknown names silently: a typo must not pass
            guess = P.closest(key)
            warn(f"--param {key}: unknown parameter" + (f" (did you mean {guess!r}?)" if guess else "")
                 + "; passed to the server as-is")
        problem = P.check_value(spec, value) if spec else None
        if problem:
            option = _OPTION_NAMES.get(key, f"--param {key}") if given.get(key) is not None else f"--param {key}"
            raise UsageError(f"{option} {problem}")
    seed = base.get("seed")
    out = []
    for i in range(opts.batch):
        image = dict(base)
        if isinstance(seed, int) and seed >= 0:
            image["seed"] = seed + i
        out.append(image)
    return out


def project_params(manifest: str | None, style: str | None, *, ignore: bool = False) -> tuple[dict[str, Any], str]:
    """The manifest's ``[defaults]`` merged with a style (``style``, else the defaults' ``style``), as
    SwarmUI ids, and a label saying where they came from. Nothing outside a project or with ``ignore``."""
    import tomllib

    from ..errors import ManifestError
    from ..layout import find_manifest
    from ..manifest import BUILD_KEYS

    if ignore:
        if style:
            raise UsageError("--style and --no-manifest exclude each other: styles live in the manifest")
        return {}, ""
    try:
        path = find_manifest(manifest)
    except UsageError:
        if manifest or style:
            raise
        return {}, ""  # not in a project: the options alone
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(str(path), f"cannot read: {exc}", hint="fix it, or pass --no-manifest") from None

    def table(value: Any) -> dict[str, Any]:
        return {P.normalise(k): v for k, v in value.items()} if isinstance(value, dict) else {}

    defaults = table(raw.get("defaults"))
    found = raw.get("styles")
    styles: dict[str, Any] = found if isinstance(found, dict) else {}
    name = style or defaults.get("style")
    chosen: dict[str, Any] = {}
    source = f"{path.name} [defaults]"
    if name is not None:
        if not isinstance(name, str) or name not in styles:
            guess = P.closest(str(name), list(styles))
            hint = f"did you mean {guess!r}?" if guess else (
                f"styles in {path.name}: {', '.join(styles)}" if styles else f"{path.name} defines no [styles.NAME]")
            raise UsageError(f"unknown style {name!r}", hint=hint)
        chosen = table(styles[name])
        source += f" / [styles.{name}]"
    merged = {**defaults, **chosen}
    skipped = set(BUILD_KEYS) | P.IMAGE_PARAMS  # post-processing and image inputs are build-only
    return {k: v for k, v in merged.items() if k not in skipped}, source


def slug(text: str, limit: int = 40) -> str:
    """A file-name stem from a prompt: lower-case words joined by ``-``."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    stem = ""
    for word in words:
        candidate = f"{stem}-{word}" if stem else word
        if len(candidate) > limit:
            break
        stem = candidate
    return stem or "image"


def absolute_url(base_url: str, reference: str) -> str:
    """The server's ``View/...`` path as an absolute, percent-encoded URL."""
    if urlsplit(reference).scheme:
        return reference
    return f"{base_url.rstrip('/')}/{quote(reference.lstrip('/'), safe='/')}"


# --- the command --------------------------------------------------------------------------------------


def generate(target: Target, opts: GenerateOptions, *, out: TextIO, err: TextIO, as_json: bool = False,
             quiet: bool = False, verbose: bool = False) -> int:
    """Make the images and print their URLs or paths. Exit 0 when all were made, 1 otherwise."""
    warnings: list[str] = []
    per_image = request_params(opts, warnings.append)
    if not target.is_placeholder:
        check_url(target.url)  # before any display output
    saving = opts.save_images or opts.output_dir is not None
    folder = opts.output_dir or Path(".")
    if saving:  # before generating: the server's work must not be lost to an unusable folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--output-dir {folder}: {exc.strerror or exc}",
                             hint="pass a folder (it is created if missing)") from None
    labels = [f"image {i}/{len(per_image)}" if len(per_image) > 1 else "image" for i in range(1, len(per_image) + 1)]
    results = [ImageResult(i + 1, label) for i, label in enumerate(labels)]
    jobs = max(1, min(len(per_image), target.settings.default_jobs))
    events = make_display(json_output=as_json, quiet=quiet, verbose=verbose, stream=out if as_json else err,
                          jobs=jobs, one_off=True)
    summary = Summary()
    started = time.monotonic()
    finished = False
    for warning in warnings:
        events.warning(warning)
    try:
        events.run_started(len(per_image), len(per_image))
        with forward_logs(events, verbose=verbose):
            if target.is_placeholder:
                _placeholder(per_image, results, events, folder if saving else None)
            else:
                _swarmui(target, opts, per_image, results, events, folder if saving else None)
        for result in results:
            if result.error is not None:
                summary.failed += 1
                reason = getattr(result.error, "reason", result.error.message)  # without the label prefix
                summary.failures.append(Failure(result.label, reason, result.error.hint))
            else:
                summary.generated += 1
        if target.is_placeholder and not saving and not as_json:
            events.warning("the placeholder generator keeps nothing: pass --save-images to write the images")
        for result in results:
            if result.inline and not saving:
                events.warning(f"{result.label}: the server returned the image inline (data URL) instead of "
                               "storing it, so there is no URL to print; pass --save-images to write it")
        if as_json:
            for result in results:
                out.write(safe_json(result.as_dict()) + "\n")
        summary.seconds = time.monotonic() - started
        events.run_finished(summary)
        finished = True
    finally:
        if not finished:  # Ctrl-C: stop the live view cleanly; the server's jobs were interrupted
            summary.seconds = time.monotonic() - started
            events.run_finished(summary)
    if not as_json:
        seeds = [f"{r.label}: seed {r.seed}" for r in results if r.error is None and r.seed is not None]
        if seeds and not quiet:
            err.write("; ".join(seeds) + "\n")
            err.flush()
        for result in results:
            if result.path is not None:
                out.write(f"{safe_text(result.path)}\n")
            elif result.url is not None and not result.inline:
                out.write(f"{safe_text(result.url)}\n")
        out.flush()
    return 0 if summary.failed == 0 else 1


def _placeholder(per_image: list[dict[str, Any]], results: list[ImageResult], events: BuildEvents,
                 folder: Path | None) -> None:
    from ..generators.placeholder import PlaceholderGenerator

    generator = PlaceholderGenerator()
    for params, result in zip(per_image, results, strict=True):
        events.asset_started(result.label)
        began = time.monotonic()
        progress = functools.partial(events.asset_progress, result.label)
        try:
            made = generator.generate(GenerationRequest(result.label, params), progress)
        except AssetbuildError as exc:
            result.error = exc
            events.asset_failed(result.label, Failure(result.label, getattr(exc, "reason", exc.message), exc.hint))
            continue
        result.seed = made.seed if made.seed is not None and made.seed >= 0 else None
        if folder is not None:
            _save(result, made.data, folder, str(params["prompt"]))
        events.asset_finished(result.label, GENERATED, time.monotonic() - began)


def _save(result: ImageResult, data: bytes, folder: Path, prompt: str) -> None:
    stem = slug(prompt) + (f"-{result.seed}" if result.seed is not None else "")
    suffix = _EXTENSIONS.get(sniff(data) or "", ".png")
    path = create_first_free(numbered(folder, stem, suffix), data)
    assert path is not None  # numbered() never runs out of names
    result.path = path


def _swarmui(target: Target, opts: GenerateOptions, per_image: list[dict[str, Any]], results: list[ImageResult],
             events: BuildEvents, folder: Path | None) -> None:
    from ..generators.swarmui import as_asset_error

    settings = target.settings
    websocket = settings.websocket if opts.websocket is None else opts.websocket
    suggestions: dict[str, asyncio.Task[str | None]] = {}

    async def one(client: SwarmClient, params: dict[str, Any], result: ImageResult) -> None:
        label = result.label
        events.asset_started(label)
        began = time.monotonic()

        def progress(update: Progress) -> None:
            events.asset_progress(label, update)

        try:
            # Without --save-images the URL is all the user asked for: the image is not downloaded.
            image = await client.generate(params, {}, progress, download=folder is not None)
            requested = params.get("seed")
            result.seed = image.seed if image.seed is not None else (
                requested if isinstance(requested, int) and requested >= 0 else None)
            result.inline = image.inline
            if not result.inline:
                result.url = absolute_url(client.shown_url, image.reference)
            if folder is not None:
                assert image.data is not None  # downloaded: download=True
                _save(result, image.data, folder, str(params["prompt"]))
        except SwarmError as exc:
            error = as_asset_error(label, exc, target.credentials)
            await _add_hint(client, error, params, suggestions)
            result.error = error
            events.asset_failed(label, Failure(label, error.reason, error.hint))
            return
        except AssetbuildError as exc:
            result.error = exc
            events.asset_failed(label, Failure(label, getattr(exc, "reason", exc.message), exc.hint))
            return
        except OSError as exc:
            result.error = GenerationError(label, f"cannot write the image: {exc}")
            events.asset_failed(label, Failure(label, result.error.reason))
            return
        events.asset_finished(label, GENERATED, time.monotonic() - began)

    async def main() -> None:
        client = SwarmClient(settings.url, target.credentials, concurrency=min(len(per_image), settings.default_jobs),
                             timeout=settings.timeout, websocket=websocket, save_images=folder is None)
        try:
            await asyncio.gather(*(one(client, params, result)
                                   for params, result in zip(per_image, results, strict=True)))
        finally:
            await client.aclose()

    # SIGTERM must stop like Ctrl-C (interrupting the server's work), not kill the process outright.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if _main_thread() else None
    try:
        asyncio.run(main())
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


async def _add_hint(client: SwarmClient, error: AssetError, params: dict[str, Any],
                    asked: dict[str, asyncio.Task[str | None]]) -> None:
    model = params.get("model")
    if NO_MODEL_TEXT in error.message and not model:
        error.hint = "pass --model NAME (`assetbuild models` lists the server's models)"
    elif isinstance(model, str) and is_unknown_model_error(error.message):
        if model not in asked:  # one ListModels for the whole batch
            asked[model] = asyncio.ensure_future(suggest_model_async(client, model))
        guess = await asked[model]
        if guess:
            error.hint = f"did you mean {guess!r}? (`assetbuild models` lists the server's models)"
