"""Configuration and test-visible records of the SwarmUI test double.

:class:`Recorder` is the only object that other threads touch (under its lock).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

DEFAULT_MODELS = [
    "OfficialStableDiffusion/sd_xl_base_1.0.safetensors",
    "sd15/v1-5-pruned-emaonly.safetensors",
]


@dataclass
class FakeSwarmConfig:
    """Behaviour knobs of the double. Read live, so changes (via ``FakeSwarm.configure``) apply at once."""

    backends: int = 1  # each backend has MaxUsages=2 slots; 0 -> "No backends available!"
    latency: float = 0.05  # seconds of "generation" per image (split over ``steps``)
    steps: int = 4  # gen_progress messages per image
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    vaes: list[str] = field(default_factory=list)
    loras: list[str] = field(default_factory=list)
    user_id: str = "local"
    required_authorization: str | None = None  # exact Authorization header, else plain 401 "Unauthorized"
    accounts: dict[str, str] | None = None  # username -> password; enables swarm_token cookie mode
    noise: bool = False  # incompressible PNGs (~3 bytes/pixel; 592x592 is ~1 MiB)
    loading: bool = False  # backends stuck "loading": requests wait
    loading_timeout: float | None = None  # then fail with "Timeout! All backends are occupied..."
    no_backend_delay: float = 1.0  # how long a request waits with 0 backends before failing
    model_load_delay: float = 0.05  # simulated model load, first time a backend uses a model
    slot_parallel: bool = False  # True: a backend's 2 slots generate at once (default: one at a time, like ComfyUI)
    close_delay: float = 2.0  # WS pause after socket_intention=close before the final status
    websocket: bool = True  # False: WS upgrades get HTTP 400 bad_request_method (a proxy without upgrades)
    first_frame_timeout: float = 60.0  # WS: how long to wait for the request frame
    max_receive_bytes: int = 200 * 1024 * 1024
    max_t2i_simultaneous: int = 32  # role limit in min(32, 2 x sum(MaxUsages))
    list_backends_allowed: bool = True  # the user has SwarmUI's view_backends_list permission (owners do)
    version: str = "0.9.7.2.GIT-fakeswar"
    global_status: bool = True  # False: GetGlobalStatus refused (no read_server_info_panels permission)
    extensions: bool = True  # the "Dynamic Thresholding" extension's parameters exist (ListT2IParams lists them)
    lazy_hashes: bool = False  # True: DescribeModel/ListModels give hash "" until a generation used the model
    model_hashes_in_metadata: bool = True  # ImageMetadataIncludeModelHash: sui_models in image metadata
    unused_params: list[str] = field(default_factory=list)  # ids the "workflow" never reads (unused_parameters)


class RecordedRequest(NamedTuple):
    """One API call as the double saw it: canonical route name and the body minus ``session_id``."""

    route: str
    body: dict[str, Any]


@dataclass(frozen=True)
class GenerationRecord:
    """One finished image."""

    prompt: str
    seed: int
    model: str | None
    width: int
    height: int
    session_id: str
    user: str
    request_id: int
    batch_index: str
    image: str  # View/... path or data: URL (truncated to 80 chars for data URLs)
    transport: str  # "http" or "ws"


@dataclass(frozen=True)
class ActiveJob:
    """A generation request that has not finished yet."""

    request_id: int
    session_id: str
    user: str
    prompt: str
    images: int
    finished: int
    transport: str


class Recorder:
    """Everything tests read from another thread, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: list[RecordedRequest] = []
            self.generation_log: list[GenerationRecord] = []
            self.interrupts = 0
            self.injected_failures = 0
            self.websockets_opened = 0  # WebSocket connections accepted (a socket can carry several requests)
            self.downloads: list[str] = []
            self.debug_messages: list[str] = []
            self.live = 0
            self.peak_live = 0
            self.in_flight = 0  # generation requests received and not finished (live or waiting)
            self.peak_in_flight = 0

    def add_request(self, route: str, body: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(RecordedRequest(route, body))

    def add_generation(self, record: GenerationRecord) -> None:
        with self.lock:
            self.generation_log.append(record)

    def in_flight_delta(self, delta: int) -> None:
        with self.lock:
            self.in_flight += delta
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def live_delta(self, delta: int) -> None:
        with self.lock:
            self.live += delta
            self.peak_live = max(self.peak_live, self.live)
