"""Sessions and the per-image generation loop of the SwarmUI test double (runs on the server loop)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from assetbuild.testing._fake_backends import GenError, Scheduler, Slot
from assetbuild.testing._fake_faults import Faults
from assetbuild.testing._fake_images import (
    ImageSpec,
    build_metadata,
    data_url,
    format_info,
    output_path,
    preview_data_url,
    render_file,
)
from assetbuild.testing._fake_params import (
    PARAMS,
    WITH_EXTENSIONS,
    ParamContext,
    ParamError,
    ParamSpec,
    ParsedParams,
    clean_model_name,
    parse_params,
)
from assetbuild.testing._fake_state import ActiveJob, FakeSwarmConfig, GenerationRecord, Recorder

INTERRUPTED = "Generation session interrupted."
NO_MODEL = "No model input given. Did your UI load properly?"

Emit = Callable[[dict[str, Any]], None]


# ------------------------------------------------------------------------------------------ sessions


@dataclass(eq=False)
class Session:
    id: str
    user: str
    requests: set[GenRequest] = field(default_factory=set)

    def counters(self) -> dict[str, int]:
        counts = {"waiting_gens": 0, "loading_models": 0, "waiting_backends": 0, "live_gens": 0}
        for req in self.requests:
            counts["waiting_gens"] += req.gens
            counts["loading_models"] += req.loading
            counts["waiting_backends"] += req.waiting
            counts["live_gens"] += req.live
        return counts


@dataclass(eq=False)
class GenRequest:
    """One GenerateText2Image[WS] call: its claim counters, image tasks and error state."""

    session: Session
    raw: dict[str, Any]
    images: int
    emit: Emit
    transport: str
    batch_offset: int = 0
    request_id: int = 0
    params: ParsedParams | None = None
    seed: int = 0
    gens: int = 0
    loading: int = 0
    waiting: int = 0
    live: int = 0
    finished: int = 0
    error: str | None = None
    stopped: bool = False
    interrupted: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def is_ws(self) -> bool:
        return self.transport == "ws"

    @property
    def continue_after_errors(self) -> bool:
        return bool(self.params and self.params.get("continueaftererrors"))

    def fail(self, message: str) -> None:
        """SwarmUI's ``setError``: report once, then cancel the rest of this request."""
        if self.error is not None and not self.continue_after_errors:
            return
        self.error = message
        self.emit({"error": message})
        if not self.continue_after_errors or self.interrupted:
            self.stop()

    def stop(self) -> None:
        self.stopped = True
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    def interrupt(self) -> None:
        self.interrupted = True
        self.stop()

    def snapshot(self) -> ActiveJob:
        prompt = str(self.params.get("prompt", "")) if self.params else str(self.raw.get("prompt", ""))
        return ActiveJob(self.request_id, self.session.id, self.session.user, prompt, self.images,
                         self.finished, self.transport)


class Rendered(NamedTuple):
    """An image the engine made, not sent yet."""

    data: bytes
    inline: str | None  # its data URL when the request said donotsave
    metadata: str
    extension: str
    mime: str


@dataclass
class StoredFile:
    data: bytes
    mime: str


class Engine:
    """Server state: sessions, tokens, stored outputs, the scheduler and running generations."""

    def __init__(self, config: FakeSwarmConfig, recorder: Recorder, faults: Faults | None = None) -> None:
        self.config = config
        self.recorder = recorder
        self.faults = faults or Faults()
        self.scheduler = Scheduler(config)
        self.sessions: dict[str, Session] = {}
        self.tokens: dict[str, str] = {}
        self.files: dict[str, StoredFile] = {}
        self.server_id = str(uuid.uuid4())
        self.requests: set[GenRequest] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._request_ids: dict[str, int] = {}
        self._path_counters: dict[str, tuple[str, int]] = {}
        self.model_revisions: dict[tuple[str, str], int] = {}  # (subtype, name) -> times its file was replaced
        self.hashed: set[tuple[str, str]] = set()  # models whose hash was computed (lazy_hashes)

    # -- models and parameters

    def specs(self) -> dict[str, ParamSpec]:
        """Every T2I parameter this server knows: the built-in ones plus installed extensions'."""
        return WITH_EXTENSIONS if self.config.extensions else PARAMS

    def model_names(self, subtype: str) -> list[str]:
        lists = {"Stable-Diffusion": self.config.models, "VAE": self.config.vaes, "LoRA": self.config.loras}
        return list(lists.get(subtype, []))

    def model_hash(self, subtype: str, name: str, *, compute: bool = False) -> str:
        """``0x`` + SHA-256 of the model "file" (its name and revision). With ``lazy_hashes`` it is "" until
        computed, which a generation does (``compute=True``), as SwarmUI's GetOrGenerateTensorHashSha256."""
        key = (subtype, name)
        if compute:
            self.hashed.add(key)
        if self.config.lazy_hashes and key not in self.hashed:
            return ""
        revision = self.model_revisions.get(key, 0)
        return "0x" + hashlib.sha256(f"{subtype}/{name}#{revision}".encode()).hexdigest()

    def replace_model(self, name: str, subtype: str = "Stable-Diffusion") -> None:
        """A new file under the same name: a new hash (computed again lazily) and different images."""
        if name not in self.model_names(subtype):
            raise KeyError(f"no {subtype} model {name!r}")
        key = (subtype, name)
        self.model_revisions[key] = self.model_revisions.get(key, 0) + 1
        self.hashed.discard(key)

    # -- sessions and tokens

    def create_session(self, user: str) -> Session:
        session = Session(secrets.token_hex(20), user)  # 40 lower-case hex chars
        self.sessions[session.id] = session
        return session

    def forget_sessions(self) -> None:
        self.sessions.clear()

    def issue_token(self, username: str) -> str:
        """``<hex(utf8(username))>.<32 hex>.<32 hex>``, the swarm_token shape."""
        token = f"{username.encode().hex()}.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self.tokens[token] = username
        return token

    def status_payload(self, session: Session | None) -> dict[str, Any]:
        """GetCurrentStatus for ``session``; with None, GetGlobalStatus (the counters of every session)."""
        if session is not None:
            counters = session.counters()
        else:
            counters = {"waiting_gens": 0, "loading_models": 0, "waiting_backends": 0, "live_gens": 0}
            for each in self.sessions.values():
                for name, value in each.counters().items():
                    counters[name] += value
        return {"status": counters, "backend_status": self.scheduler.backend_status(),
                "supported_features": self.scheduler.features()}

    # -- generation

    def start_generation(self, session: Session, raw: dict[str, Any], images: int, emit: Emit,
                         transport: str, batch_offset: int = 0) -> asyncio.Task[None]:
        """Run one generation request as its own task (so a dropped client does not cancel it)."""
        req = GenRequest(session, raw, images, emit, transport, batch_offset, gens=images)
        task = asyncio.create_task(self._run_request(req))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def interrupt(self, session: Session, other_sessions: bool) -> None:
        targets = [s for s in self.sessions.values() if s.user == session.user] if other_sessions else [session]
        if session not in targets:
            targets.append(session)
        for target in targets:
            for req in list(target.requests):
                req.interrupt()
        with self.recorder.lock:
            self.recorder.interrupts += 1

    async def cancel_all(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def active_jobs(self) -> list[ActiveJob]:
        return [req.snapshot() for req in sorted(self.requests, key=lambda r: r.request_id)]

    async def _run_request(self, req: GenRequest) -> None:
        self.requests.add(req)
        req.session.requests.add(req)
        self.recorder.in_flight_delta(1)
        try:
            await self._generate(req)
        finally:
            self.recorder.in_flight_delta(-1)
            for task in req.tasks:
                task.cancel()
            if req.tasks:
                await asyncio.gather(*req.tasks, return_exceptions=True)
            self.requests.discard(req)
            req.session.requests.discard(req)

    async def _generate(self, req: GenRequest) -> None:
        """GenT2I_Internal: status, validate, fan out image tasks under the cap, keep_alive, discards."""
        self._status(req)
        try:
            req.params = parse_params(req.raw, self._param_context(req.session.user))
        except ParamError as exc:
            req.fail(str(exc))
            return  # no discard_indices after a validation error
        images = int(req.params.get("images", 1))
        req.images = req.gens = images
        req.request_id = self._next_request_id(req.session.user)
        seed = int(req.params.get("seed", -1))
        req.seed = random.randint(0, 2**31 - 1) if seed == -1 else seed
        cap = self.scheduler.max_degrees()
        pending: set[asyncio.Task[None]] = set()
        for index in range(images):
            while len(pending) >= cap:
                _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if req.stopped:
                break
            task = asyncio.create_task(self._image_task(req, index))
            req.tasks.add(task)
            pending.add(task)
        while pending:
            _done, pending = await asyncio.wait(pending, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            req.emit({"keep_alive": True})
        req.emit({"discard_indices": []})

    async def _image_task(self, req: GenRequest, index: int) -> None:
        """One image (or batch): wait for a slot, maybe load the model, generate, release."""
        phase = "queued"
        slot: Slot | None = None
        req.waiting += 1
        self._status(req)
        try:
            model = req.params.get("model") if req.params else None
            slot = await self.scheduler.acquire(model)
            await self._ensure_model(req, slot)
            req.waiting -= 1
            phase = "live"
            self._status(req)
            req.live += 1
            self.recorder.live_delta(1)
            self._status(req)
            if model is None:
                raise GenError(NO_MODEL)
            await self._produce(req, index, slot, model)
        except GenError as exc:
            req.fail(str(exc))
        except asyncio.CancelledError:
            if not req.stopped:
                raise  # shutdown, not an interrupt
            if phase == "live" and req.interrupted:
                req.fail(INTERRUPTED)
        finally:
            if phase == "queued":
                req.waiting -= 1
            else:
                req.live -= 1
                self.recorder.live_delta(-1)
            if slot is not None:
                self.scheduler.release(slot)
            req.gens -= 1
            self._status(req)

    async def _ensure_model(self, req: GenRequest, slot: Slot) -> None:
        backend = slot.backend
        if slot.needs_load:
            req.loading += 1
            self._status(req)
            try:
                async with backend.gpu:
                    await asyncio.sleep(self.config.model_load_delay)
            finally:
                req.loading -= 1
                backend.finish_load()
        elif backend.load_done is not None and not backend.load_done.done():
            await asyncio.shield(backend.load_done)

    async def _produce(self, req: GenRequest, index: int, slot: Slot, model: str) -> None:
        assert req.params is not None
        params = req.params
        batch = int(params.get("batchsize", 1))
        local = index * batch
        seed = req.seed if params.get("noseedincrement") else req.seed + local
        width, height = int(params.get("width", 512)), int(params.get("height", 512))
        prompt = str(params.get("prompt", ""))
        salt = hashlib.sha256(str(params.get("initimage", "")).encode()).hexdigest()[:16]
        revision = self.model_revisions.get(("Stable-Diffusion", model), 0)
        if revision:  # a replaced model file makes other pictures
            salt += f"#r{revision}"
        # A backend's GPU runs one image at a time (its 2nd slot's job waits, as with ComfyUI), unless
        # ``slot_parallel`` lets both slots generate at once (benchmarks of an ideal 2-per-backend server).
        gpu = contextlib.nullcontext() if self.config.slot_parallel else slot.backend.gpu
        async with gpu:
            specs = [ImageSpec(prompt, seed, model, width, height, f"{salt}:{k}" if k else salt) for k in range(batch)]
            # Each image is rendered while its steps run, so a generation takes ``latency`` as configured
            # (benchmarks compare with an ideal of exactly that), not latency plus the render, which one
            # process renders for all slots in turn when a wave of images ends together.
            rendered = [asyncio.ensure_future(self._render(req, spec)) for spec in specs]
            try:
                await self._run_steps(req, str(req.batch_offset + local), specs[0])
            except BaseException:
                for future in rendered:
                    future.cancel()
                raise
        for k, (spec, future) in enumerate(zip(specs, rendered, strict=True)):
            self._emit_image(req, spec, str(req.batch_offset + local + k), await future)

    async def _run_steps(self, req: GenRequest, batch_index: str, spec: ImageSpec) -> None:
        steps = max(0, int(self.config.steps))
        latency = max(0.0, float(self.config.latency))
        if steps == 0:
            await asyncio.sleep(latency)
            return
        previews = not (req.params and req.params.get("nopreviews"))
        preview: str | None = None
        loop = asyncio.get_running_loop()
        began = loop.time()
        for step in range(1, steps + 1):
            # Sleep to each step's deadline, not a fixed slice, so timer overshoot does not add up: an
            # image takes ``latency``, not latency plus ``steps`` overshoots (benchmarks compare against L).
            await asyncio.sleep(max(0.0, began + latency * step / steps - loop.time()))
            progress: dict[str, Any] = {"batch_index": batch_index, "request_id": str(req.request_id)}
            if previews and step % 2 == 0:  # like ComfyUI, only some updates carry a preview
                preview = preview or preview_data_url(spec)
                progress["preview"] = preview
            progress["overall_percent"] = step / steps
            progress["current_percent"] = step / steps
            req.emit({"gen_progress": progress})

    async def _render(self, req: GenRequest, spec: ImageSpec) -> Rendered:
        """One image rendered in a worker thread (with its data URL when it is sent inline); its
        ``generation_time`` is the configured latency (the time the image is meant to take)."""
        assert req.params is not None
        params = req.params
        image_format = str(params.get("imageformat", "PNG"))
        extension, mime = format_info(image_format)
        unused = self._unused(params)
        shown = {k: v for k, v in self._metadata_params(params, spec).items() if k not in unused}
        models = self._metadata_models(params) if self.config.model_hashes_in_metadata else None
        metadata = build_metadata(shown, params.extra_metadata, version=self.config.version, models=models,
                                  unused=unused, prep_seconds=0.01, gen_seconds=max(0.0, float(self.config.latency)))
        size = self.faults.image_sizes.pop(0) if self.faults.image_sizes else None
        if size is not None:
            with self.recorder.lock:
                self.recorder.injected_failures += 1
        inline = bool(params.get("donotsave"))

        def make() -> tuple[bytes, str | None]:
            data = render_file(spec, image_format, metadata, self.config.noise, size)
            return data, data_url(data, mime) if inline else None

        data, url = await asyncio.to_thread(make)
        return Rendered(data, url, metadata, extension, mime)

    def _emit_image(self, req: GenRequest, spec: ImageSpec, batch_index: str, image: Rendered) -> None:
        """Send a finished image (saved to the output folder first unless it goes inline)."""
        url = image.inline or self._store(req.session.user, spec.prompt, spec.model, image.extension, image.data,
                                          image.mime)
        req.emit({"image": url, "batch_index": batch_index, "request_id": str(req.request_id),
                  "metadata": image.metadata})
        req.finished += 1
        self.recorder.add_generation(GenerationRecord(
            spec.prompt, spec.seed, spec.model, spec.width, spec.height, req.session.id, req.session.user,
            req.request_id, batch_index, url if len(url) < 200 else url[:80] + "...", req.transport))

    # -- helpers

    def _status(self, req: GenRequest) -> None:
        if req.is_ws:
            req.emit(self.status_payload(req.session))

    def _param_context(self, user: str) -> ParamContext:
        return ParamContext(self.config.models, self.config.vaes, self.config.loras,
                            lambda path: f"{user}/{path}" in self.files, self.specs())

    def _unused(self, params: ParsedParams) -> list[str]:
        """Parameters given but never read by the "workflow" (SwarmUI's ``unused_parameters``): the ids in
        ``config.unused_params``, and ``initimagecreativity`` without an init image."""
        unused = [k for k in params.values if k in self.config.unused_params]
        if "initimagecreativity" in params.values and not params.get("initimage"):
            unused.append("initimagecreativity")
        return unused

    def _metadata_models(self, params: ParsedParams) -> list[dict[str, str]]:
        """``sui_models``: each model the image used, with its (now computed) hash."""
        used: list[tuple[str, str, str]] = []
        if params.get("model"):
            used.append(("model", "Stable-Diffusion", str(params.get("model"))))
        if params.get("vae") and params.get("vae") not in ("None", "Automatic"):
            used.append(("vae", "VAE", str(params.get("vae"))))
        used += [("loras", "LoRA", str(name)) for name in params.get("loras") or []]
        return [{"name": name, "param": param, "hash": self.model_hash(subtype, name, compute=True)}
                for param, subtype, name in used]

    def _next_request_id(self, user: str) -> int:
        value = self._request_ids.get(user, 1000) + 1
        self._request_ids[user] = value
        return value

    @staticmethod
    def _metadata_params(params: ParsedParams, spec: ImageSpec) -> dict[str, Any]:
        shown = {k: v for k, v in params.values.items() if not WITH_EXTENSIONS[k].hide_from_metadata}
        shown.update(prompt=spec.prompt, seed=spec.seed, width=spec.width, height=spec.height,
                     model=clean_model_name(spec.model))
        return shown

    def _store(self, user: str, prompt: str, model: str, extension: str, data: bytes, mime: str) -> str:
        now = datetime.now()
        minute = now.strftime("%Y-%m-%d %H%M")
        last_minute, counter = self._path_counters.get(user, ("", 0))
        counter = counter + 1 if last_minute == minute else 1
        self._path_counters[user] = (minute, counter)
        rel = output_path(now, counter, prompt, model, extension)
        full, suffix = f"{user}/{rel}", 1
        while full in self.files:  # SwarmUI appends -N on a name collision
            suffix += 1
            stem, ext = rel.rsplit(".", 1)
            full = f"{user}/{stem}-{suffix}.{ext}"
        self.files[full] = StoredFile(data, mime)
        return f"View/{full}"
