"""aiohttp application of the SwarmUI test double: the API dispatcher, routes, WebSocket and /View.

One catch-all handler serves ``POST /API/<Route>`` (case-insensitive), the WebSocket upgrade on
``/API/GenerateText2ImageWS`` and ``GET /View/<user>/<path>``, checking things in the same order as
SwarmUI's ``API.HandleAsyncRequest`` (see ``swarmui-api.md`` §1.2 and §11.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import WSMsgType, web

from assetbuild.testing._fake_engine import Engine, Session
from assetbuild.testing._fake_faults import Faults
from assetbuild.testing._fake_images import ImageSpec, preview_data_url
from assetbuild.testing._fake_params import (
    RouteParamError,
    clean_key,
    params_listing,
    route_param,
    token_str,
)
from assetbuild.testing._fake_state import Recorder

log = logging.getLogger("assetbuild.testing.fakeswarm")

INVALID_SESSION = "Invalid session ID. You may need to refresh the page."
PERMISSIONS = ["*", "fundamental", "basic_image_generation", "model_params", "param_model", "user_settings",
               "view_others_outputs", "manage_users"]
SESSIONLESS = {"getnewsession", "login", "registerbasic", "registeroauth"}
T2I_ROUTES = {"GenerateText2Image", "GenerateText2ImageWS"}
SORT_MODES = {"Name", "Title", "DateCreated", "DateModified"}
MODEL_SUBTYPES = {"Stable-Diffusion", "VAE", "LoRA", "Embedding", "ControlNet", "Clip", "ClipVision", "Wildcards"}
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def dumps(obj: Any) -> str:
    """Compact JSON, keys in insertion order, non-ASCII kept (like Newtonsoft's default)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def json_response(status: int, obj: Any) -> web.Response:
    return web.Response(status=status, text=dumps(obj), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


def api_error(status: int, error_id: str, message: str) -> web.Response:
    """The dispatcher's own errors: ``{"error_id": ..., "error": ...}`` in that order."""
    return json_response(status, {"error_id": error_id, "error": message})


def parse_object(data: str | bytes) -> dict[str, Any] | None:
    """``JObject.Parse``: a JSON object or nothing."""
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def model_architecture(name: str) -> str:
    return "stable-diffusion-xl-v1-base" if "xl" in name.lower() else "stable-diffusion-v1"


@dataclass
class ApiCall:
    request: web.Request
    body: dict[str, Any]
    session: Session | None


@dataclass(frozen=True)
class Route:
    name: str
    handler: Callable[[ApiCall], Awaitable[Any]] | None
    websocket: bool = False


class WSConnection:
    """One client socket: an ordered outbound queue, so the generator never blocks on the network."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.queue: asyncio.Queue[dict[str, Any] | str | None] = asyncio.Queue()
        self.dead = False
        self.drop_after: int | None = None
        self.progress_sent = 0
        self.writer = asyncio.create_task(self._write_loop())

    def emit(self, message: dict[str, Any]) -> None:
        if not self.dead:
            self.queue.put_nowait(message)

    def emit_raw(self, text: str) -> None:
        """Send ``text`` as it is (fault injection: frames no real server would send)."""
        if not self.dead:
            self.queue.put_nowait(text)

    async def flush(self) -> None:
        self.queue.put_nowait(None)
        await self.writer

    def abort(self) -> None:
        """Kill the TCP connection with a RST, without a close frame (a dropped network, not a close)."""
        self.dead = True
        transport = self.request.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    async def _write_loop(self) -> None:
        while (message := await self.queue.get()) is not None:
            if self.dead:
                continue
            try:
                await self.ws.send_str(message if isinstance(message, str) else dumps(message))
            except Exception:  # noqa: BLE001 - peer went away; the job keeps running (SwarmUI only logs)
                log.debug("WebSocket send failed; dropping further output", exc_info=True)
                self.dead = True
                continue
            if isinstance(message, dict) and "gen_progress" in message and self.drop_after is not None:
                self.progress_sent += 1
                if self.progress_sent >= self.drop_after:
                    self.abort()


class FakeServer:
    """Request handling; state lives in :class:`Engine`, test-visible records in :class:`Recorder`."""

    def __init__(self, engine: Engine, recorder: Recorder, faults: Faults) -> None:
        self.engine = engine
        self.config = engine.config
        self.recorder = recorder
        self.faults = faults
        self.connections: set[WSConnection] = set()
        self.handlers: set[asyncio.Task[Any]] = set()
        self.http_generations: set[asyncio.Transport] = set()  # transports of HTTP generate calls
        self.runner: web.AppRunner | None = None
        self.routes = {route.name.lower(): route for route in [
            Route("GetNewSession", self.get_new_session),
            Route("Login", self.login),
            Route("GenerateText2Image", self.generate),
            Route("GenerateText2ImageWS", None, websocket=True),
            Route("ListModels", self.list_models),
            Route("DescribeModel", self.describe_model),
            Route("ListLoadedModels", self.list_loaded_models),
            Route("ListT2IParams", self.list_t2i_params),
            Route("GetCurrentStatus", self.get_current_status),
            Route("GetGlobalStatus", self.get_global_status),
            Route("ListBackends", self.list_backends),
            Route("InterruptAll", self.interrupt_all),
            Route("ServerDebugMessage", self.server_debug_message),
        ]}

    # ------------------------------------------------------------------------------------ lifecycle

    async def start(self, host: str, port: int) -> int:
        app = web.Application(client_max_size=self.config.max_receive_bytes + 1)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        return int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        await self.engine.cancel_all()
        await self.drop_connections()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def drop_connections(self) -> None:
        """Reset every WebSocket and in-flight HTTP generation, then end their handlers (stop/restart)."""
        for conn in list(self.connections):
            conn.abort()
        for transport in list(self.http_generations):
            transport.abort()
        handlers = list(self.handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    # ------------------------------------------------------------------------------------- dispatch

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        lowered = path.lower()
        route = lowered[5:] if lowered.startswith("/api/") else None
        injected = self._injected_failure(route)
        if injected is not None:
            return injected
        dribble = self._take(self.faults.dribbles, route)
        if dribble is not None:
            return await self._dribble(request, dribble.interval)
        raw = self._take(self.faults.raw_answers, route)
        if raw is not None:
            return web.Response(status=raw.status, body=raw.body, content_type="application/json")
        wanted = self.config.required_authorization
        if wanted and request.headers.get("Authorization") != wanted:
            return web.Response(status=401, text="Unauthorized")
        if route is not None:
            return await self._handle_api(request, path[5:])
        if lowered.startswith("/view/"):
            return self._handle_view(request)
        if path == "/":
            return web.Response(status=302, headers={"Location": "/Text2Image"})
        return web.Response(status=404, text="404 Not Found")

    def _injected_failure(self, route: str | None) -> web.Response | None:
        for rule in self.faults.fail_rules:
            if rule.route is None or rule.route == route:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self.faults.fail_rules.remove(rule)
                with self.recorder.lock:
                    self.recorder.injected_failures += 1
                reason = _REASONS.get(rule.status, "Injected Failure")
                return web.Response(status=rule.status, text=f"{rule.status} {reason}")
        return None

    def _take(self, rules: list[Any], route: str | None) -> Any:
        """The first armed rule of ``rules`` for ``route`` (consumed once), counted as injected."""
        for rule in rules:
            if rule.route is None or rule.route == route:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    rules.remove(rule)
                with self.recorder.lock:
                    self.recorder.injected_failures += 1
                return rule
        return None

    async def _dribble(self, request: web.Request, interval: float) -> web.StreamResponse:
        """HTTP 200 headers, then one space every ``interval`` seconds until the client gives up."""
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        current = asyncio.current_task()
        if current is not None:
            self.handlers.add(current)
        try:
            await response.prepare(request)
            while True:
                await response.write(b" ")
                await asyncio.sleep(interval)
        except (ConnectionError, asyncio.CancelledError):
            return response
        finally:
            if current is not None:
                self.handlers.discard(current)

    async def _handle_api(self, request: web.Request, raw_route: str) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if self.faults.ws_redirects:
                location = self.faults.ws_redirects.pop(0)
                with self.recorder.lock:
                    self.recorder.injected_failures += 1
                return web.Response(status=302, headers={"Location": location})
            if not self.config.websocket:  # a proxy that does not pass upgrades: Swarm sees plain HTTP
                return api_error(400, "bad_request_method", "API route needs websocket, request is HTTP")
            return await self._handle_ws(request, raw_route)
        if request.method != "POST":
            return web.Response(status=302, headers={"Location": "/Error/NoGetAPI"})
        content_type = request.content_type.lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            return api_error(400, "basic_api", "Wrong content type")
        length = request.content_length
        if length is None or length <= 0 or length >= self.config.max_receive_bytes:
            return api_error(400, "basic_api", "bad content length")
        body = parse_object(await request.read())
        if body is None:
            return api_error(400, "internal_error", "An internal error occurred")
        route = self.routes.get(raw_route.lower())
        self._record(route.name if route else raw_route, body)
        session: Session | None = None
        if raw_route.lower() not in SESSIONLESS:
            session_id = body["session_id"] if "session_id" in body else request.headers.get("X-Session-ID")
            if session_id is None:
                return api_error(400, "basic_api", "missing session id")
            session = self.engine.sessions.get(token_str(session_id))
            if session is None:
                return json_response(401, {"error": INVALID_SESSION, "error_id": "invalid_session_id"})
        if route is None:
            return api_error(400, "bad_route", "Unknown API route")
        if route.handler is None:
            return api_error(400, "bad_request_method", "API route needs websocket, request is HTTP")
        try:
            result = await route.handler(ApiCall(request, body, session))
        except RouteParamError as exc:
            result = {"error": str(exc)}
        except Exception:
            log.exception("handler for %s failed", route.name)
            return api_error(400, "internal_error", "An internal error occurred")
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return api_error(400, "no_result", "API call did not return any output")
        return json_response(200, result)

    def _record(self, route: str, body: dict[str, Any]) -> None:
        """Record the body minus session_id; T2I keys are normalised (``cfg_scale`` -> ``cfgscale``)."""
        if route in T2I_ROUTES:
            recorded = {clean_key(k): v for k, v in body.items() if k != "session_id"}
        else:
            recorded = {k: v for k, v in body.items() if k != "session_id"}
        self.recorder.add_request(route, recorded)

    def _request_user(self, request: web.Request) -> str | None:
        """Who a GetNewSession or /View request acts as (None = not authorized in accounts mode)."""
        if self.config.accounts is not None:
            return self.engine.tokens.get(request.cookies.get("swarm_token", ""))
        return request.headers.get("X-SWARM-USER_ID") or self.config.user_id

    # ------------------------------------------------------------------------------------ WebSocket

    async def _handle_ws(self, request: web.Request, raw_route: str) -> web.StreamResponse:
        # Like SwarmUI (.NET), a client's close is answered only when the handler ends: after the pause
        # for more requests that follows the close intent (§4.2 g), not at once as aiohttp would.
        ws = web.WebSocketResponse(max_msg_size=self.config.max_receive_bytes, autoclose=False)
        await ws.prepare(request)
        conn = WSConnection(ws, request)
        self.connections.add(conn)
        with self.recorder.lock:
            self.recorder.websockets_opened += 1
        current = asyncio.current_task()
        if current is not None:
            self.handlers.add(current)
        try:
            await self._ws_session(conn, raw_route)
            await conn.flush()
            if not conn.dead:
                await ws.close(code=1000)
        finally:
            conn.writer.cancel()
            self.connections.discard(conn)
            if current is not None:
                self.handlers.discard(current)
        return ws

    async def _ws_session(self, conn: WSConnection, raw_route: str) -> None:
        """Pre-handler checks (one error frame, then close) and then the generation."""
        body = await self._first_frame(conn.ws)
        if body is None:
            return
        if not body:
            conn.emit({"error_id": "internal_error", "error": "An internal error occurred"})
            return
        route = self.routes.get(raw_route.lower())
        self._record(route.name if route else raw_route, body)
        session_id = body["session_id"] if "session_id" in body else conn.request.headers.get("X-Session-ID")
        session = self.engine.sessions.get(token_str(session_id)) if session_id is not None else None
        if session_id is None:
            conn.emit({"error_id": "basic_api", "error": "missing session id"})
        elif session is None:
            conn.emit({"error": INVALID_SESSION, "error_id": "invalid_session_id"})
        elif route is None:
            conn.emit({"error": "Unknown API route.", "error_id": "bad_route"})
        elif not route.websocket:
            conn.emit({"error_id": "bad_request_method", "error": "API route needs HTTP, request is websocket"})
        else:
            try:
                images = route_param(body, "images", int)
            except RouteParamError as exc:
                conn.emit({"error": str(exc)})
                return
            await self._ws_generate(conn, session, body, images)

    async def _first_frame(self, ws: web.WebSocketResponse) -> dict[str, Any] | None:
        """The request frame; None if none came (timeout/close), {} if it was not a JSON object."""
        try:
            msg = await asyncio.wait_for(ws.receive(), self.config.first_frame_timeout)
        except TimeoutError:
            return None
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        return parse_object(msg.data) or {}

    async def _ws_generate(self, conn: WSConnection, session: Session, body: dict[str, Any], images: int) -> None:
        """Run the request plus any further ones sent on the socket, then the close tail (§4.2 g)."""
        if self.faults.drop_budget > 0:
            self.faults.drop_budget -= 1
            conn.drop_after = self.faults.drop_after
        if self.faults.ws_frames:
            with self.recorder.lock:
                self.recorder.injected_failures += 1
            for frame in self.faults.ws_frames.pop(0):
                conn.emit_raw(frame)
        raw = {k: v for k, v in body.items() if k != "session_id"}
        gens = {self.engine.start_generation(session, raw, images, conn.emit, "ws")}
        if conn.drop_after == 0:
            conn.abort()
        reader = asyncio.create_task(self._read_more(conn, session, gens, images * _batch_guess(body)))
        try:
            while True:
                while gens:
                    done, _pending = await asyncio.wait(gens, return_when=asyncio.FIRST_COMPLETED)
                    gens.difference_update(done)
                conn.emit({"socket_intention": "close"})
                await asyncio.sleep(self.config.close_delay)  # a client may send another request now
                if not gens:
                    break
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        conn.emit(self.engine.status_payload(session))

    async def _read_more(self, conn: WSConnection, session: Session, gens: set[asyncio.Task[None]],
                         offset: int) -> None:
        """Further request frames on an open socket run as more generations, indices offset."""
        async for msg in conn.ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            body = parse_object(msg.data)
            if body is None:
                return  # SwarmUI's reader dies on a bad frame; the socket lives on
            self._record("GenerateText2ImageWS", body)
            try:
                images = route_param(body, "images", int)
            except RouteParamError:
                return
            raw = {k: v for k, v in body.items() if k != "session_id"}
            gens.add(self.engine.start_generation(session, raw, images, conn.emit, "ws", offset))
            offset += images * _batch_guess(body)

    # ------------------------------------------------------------------------------------------ /View

    def _handle_view(self, request: web.Request) -> web.Response:
        rel = unquote(request.raw_path.split("?", 1)[0][len("/View/"):])
        user = self._request_user(request)
        if user is None:
            return json_response(400, {"error": "invalid or unauthorized", "error_id": "invalid_user"})
        if rel.split("/", 1)[0] != user:
            return json_response(400, {"error": "unauthorized - you may not view other users' outputs",
                                       "error_id": "unauthorized"})
        stored = self.engine.files.get(rel)
        if stored is None:
            return json_response(404, {"error": "404, file not found.", "error_id": "file_not_found"})
        with self.recorder.lock:
            self.recorder.downloads.append(rel)
        return web.Response(body=stored.data, content_type=stored.mime,
                            headers={"Cache-Control": "private, max-age=30"})

    # --------------------------------------------------------------------------------------- routes

    async def get_new_session(self, call: ApiCall) -> dict[str, Any]:
        user = self._request_user(call.request)
        if user is None:
            return {"error": "Invalid or unauthorized."}
        impersonate = call.body.get("impersonateUser")
        if impersonate:
            user = str(impersonate)  # the default user is an owner, who may impersonate
        session = self.engine.create_session(user)
        return {"session_id": session.id, "user_id": user, "output_append_user": True,
                "version": self.config.version, "server_id": self.engine.server_id, "permissions": PERMISSIONS}

    async def login(self, call: ApiCall) -> Any:
        username = route_param(call.body, "username", str)
        password = route_param(call.body, "password", str)
        accounts = self.config.accounts
        if accounts is None or accounts.get(username) != password:
            return {"error_id": "invalid_login"}
        response = json_response(200, {"success": "true"})
        response.set_cookie("swarm_token", self.engine.issue_token(username), max_age=365 * 24 * 3600,
                            path="/", httponly=True, samesite="Lax")
        return response

    async def generate(self, call: ApiCall) -> Any:
        images = route_param(call.body, "images", int)
        assert call.session is not None
        outputs: list[dict[str, Any]] = []
        raw = {k: v for k, v in call.body.items() if k != "session_id"}
        task = self.engine.start_generation(call.session, raw, images, outputs.append, "http")
        transport = call.request.transport
        if transport is not None:
            self.http_generations.add(transport)
        try:
            await asyncio.wait({task})  # not cancelled with the handler: SwarmUI finishes the job anyway
        finally:
            if transport is not None:
                self.http_generations.discard(transport)
        if task.cancelled():
            return api_error(400, "internal_error", "An internal error occurred")
        found: list[tuple[str, str]] = []
        discards: set[int] = set()
        for obj in outputs:
            if "error" in obj:
                return obj
            if "image" in obj and "batch_index" in obj:
                found.append((obj["batch_index"], obj["image"]))
            if "discard_indices" in obj:
                discards = set(obj["discard_indices"])
        return {"images": [image for index, image in found if int(index) not in discards]}

    async def list_models(self, call: ApiCall) -> dict[str, Any]:
        path = route_param(call.body, "path", str).strip("/")
        depth = min(20, max(1, route_param(call.body, "depth", int)))
        subtype = route_param(call.body, "subtype", str, "Stable-Diffusion")
        sort_by = route_param(call.body, "sortBy", str, "Name")
        reverse = route_param(call.body, "sortReverse", bool, False)
        data_images = route_param(call.body, "dataImages", bool, False)
        if sort_by not in SORT_MODES:
            return {"error": f"Invalid sort mode '{sort_by}'."}
        if subtype not in MODEL_SUBTYPES:
            return {"error": "Invalid sub-type."}
        names = self.engine.model_names(subtype)
        prefix = f"{path}/" if path else ""
        folders: set[str] = set()
        files: list[str] = []
        for name in names:
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix):].split("/")
            folders.update(prefix + "/".join(parts[:k]) for k in range(1, min(len(parts), depth + 1)))
            if len(parts) <= depth:
                files.append(name)
        files.sort(key=str.lower, reverse=reverse)
        return {"folders": sorted(folders, key=str.lower),
                "files": [self._model_json(name, data_images, subtype) for name in files]}

    async def list_loaded_models(self, call: ApiCall) -> dict[str, Any]:
        loaded = {b.model for b in self.engine.scheduler.backends if b.model}
        return {"models": [self._model_json(name, False) for name in self.config.models if name in loaded]}

    async def describe_model(self, call: ApiCall) -> dict[str, Any]:
        """``{"model": {...}}`` for ``modelName`` (with or without ``.safetensors``), as ModelsAPI does."""
        name = route_param(call.body, "modelName", str).replace("\\", "/")
        subtype = route_param(call.body, "subtype", str, "Stable-Diffusion")
        if subtype not in MODEL_SUBTYPES:
            return {"error": "Invalid sub-type."}
        while "//" in name:
            name = name.replace("//", "/")
        name = name.lstrip("/")
        names = self.engine.model_names(subtype)
        for candidate in (name + ".safetensors", name):
            if candidate in names:
                return {"model": self._model_json(candidate, False, subtype)}
        return {"error": "Model not found."}

    async def list_t2i_params(self, call: ApiCall) -> dict[str, Any]:
        models = {sub: self.engine.model_names(sub) for sub in ("Stable-Diffusion", "VAE", "LoRA")}
        return params_listing(models, model_architecture, self.engine.specs().values())

    async def get_current_status(self, call: ApiCall) -> dict[str, Any]:
        assert call.session is not None
        return self.engine.status_payload(call.session)

    async def get_global_status(self, call: ApiCall) -> dict[str, Any]:
        """Server-wide counters (SwarmUI: needs the admin permission read_server_info_panels)."""
        if not self.config.global_status:
            return {"error": "You do not have permission to use this API route.", "error_id": "permission_denied"}
        return self.engine.status_payload(None)

    async def list_backends(self, call: ApiCall) -> Any:
        """BackendAPI.ListBackends: ``{"<id>": {id, type, status, enabled, max_usages, ...}}``."""
        if not self.config.list_backends_allowed:
            return api_error(400, "bad_permissions", "You lack permissions for this route.")
        scheduler = self.engine.scheduler
        status = "loading" if scheduler.loading else "running"
        return {str(b.id): {"type": "comfyui_selfstart", "status": status, "id": b.id, "settings": {},
                            "modcount": 0, "features": scheduler.features(), "enabled": True,
                            "title": f"Fake ComfyUI {b.id}", "max_usages": b.max_usages,
                            "seconds_since_used": 0, "time_since_used": "Never", "can_load_models": True}
                for b in scheduler.backends}

    async def interrupt_all(self, call: ApiCall) -> dict[str, Any]:
        assert call.session is not None
        other_sessions = route_param(call.body, "other_sessions", bool, False)
        self.engine.interrupt(call.session, other_sessions)
        return {"success": True}

    async def server_debug_message(self, call: ApiCall) -> dict[str, Any]:
        message = route_param(call.body, "message", str)
        with self.recorder.lock:
            self.recorder.debug_messages.append(message)
        log.info("ServerDebugMessage: %s", message)
        return {"success": True}

    def _model_json(self, name: str, data_images: bool, subtype: str = "Stable-Diffusion") -> dict[str, Any]:
        """A model object with the fields of T2IModel.ToNetObject (§5); ``hash`` is "" until computed."""
        xl = "xl" in name.lower()
        size = 1024 if xl else 512
        stem = name.rsplit("/", 1)[-1].removesuffix(".safetensors")
        digest = self.engine.model_hash(subtype, name)
        loaded = any(b.model == name for b in self.engine.scheduler.backends)
        preview = (preview_data_url(ImageSpec(name, 0, name, size, size)) if data_images
                   else f"/ViewSpecial/Stable-Diffusion/{name}")
        created = int(datetime(2024, 1, 1).timestamp() * 1000)
        return {
            "name": name, "title": stem, "author": "", "description": "", "preview_image": preview,
            "loaded": loaded, "architecture": model_architecture(name),
            "class": "Stable Diffusion XL 1.0-Base" if xl else "Stable Diffusion v1",
            "compat_class": "stable-diffusion-xl-v1" if xl else "stable-diffusion-v1",
            "resolution": f"{size}x{size}", "standard_width": size, "standard_height": size,
            "license": "", "date": "", "prediction_type": "", "usage_hint": "", "trigger_phrase": "",
            "merged_from": "", "tags": None, "is_supported_model_format": True, "is_negative_embedding": False,
            "lora_default_weight": "", "lora_default_confinement": "", "local": True,
            "time_created": created, "time_modified": created + self.engine.model_revisions.get((subtype, name), 0),
            "hash": digest, "hash_sha256": digest,
            "special_format": "",
        }


def _batch_guess(body: dict[str, Any]) -> int:
    try:
        return max(1, int(token_str(body.get("batchsize", 1))))
    except ValueError:
        return 1

