"""``Remote``: the team store as the build and the commands use it.

- ``fetch``: a verified entry, or None (absent, refused, or the store is down);
- ``upload``: write-once upload of a local cache entry (or of a file with the lock's hash);
- ``push_later`` / ``finish``: the bounded background uploader of a build: images go up as they are
  generated, on their own threads, so generation never waits for the network; the run waits for the
  uploads before it exits, and on Ctrl-C only for those in flight (``assetbuild push`` does the rest);
- an outage breaker (like Turborepo's): the first failure gives one warning naming the store, and after
  ``BREAKER_LIMIT`` failures in a row the store is left alone for the rest of the run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any, TypeVar

from ..cache import Cache, CacheHit, CorruptEntry
from ..keys import hash_bytes
from .objects import BadObject, Entry, View, decode_view, encode, path_of
from .settings import RemoteConfigError, RemoteSettings
from .store import RemoteDown, Store

BREAKER_LIMIT = 3
UPLOAD_THREADS = 4
TRANSFER_JOBS = 16  # concurrent transfers of push / pull / status --remote

T = TypeVar("T")
R = TypeVar("R")

UPLOADED, PRESENT, NOT_LOCAL, SKIPPED = "uploaded", "present", "not in the local cache", "skipped"


class Breaker:
    """Counts failures in a row; warns once; opens (stops all traffic) after ``limit`` of them."""

    def __init__(self, name: str, warn: Callable[[str], None], *, limit: int = BREAKER_LIMIT,
                 advice: str = "") -> None:
        self.name = name
        self.limit = limit
        self.advice = advice
        self._warn = warn
        self._lock = threading.Lock()
        self._in_a_row = 0
        self.failures = 0
        self.is_open = False
        self.warned = False

    def failed(self, exc: Exception) -> None:
        with self._lock:
            self.failures += 1
            self._in_a_row += 1
            if self._in_a_row >= self.limit:
                self.is_open = True
            if self.warned:
                return
            self.warned = True
        kind = "refused us" if isinstance(exc, RemoteConfigError) else "is unavailable"
        detail = exc.message if isinstance(exc, RemoteConfigError) else str(exc)
        self._warn(f"team store {self.name} {kind} ({detail}); going on without it: local cache, then "
                   f"generation{self.advice}")

    def set_warn(self, warn: Callable[[str], None]) -> None:
        self._warn = warn

    def succeeded(self) -> None:
        with self._lock:
            self._in_a_row = 0


class Remote:
    def __init__(self, settings: RemoteSettings, cache: Cache, warn: Callable[[str], None], *,
                 upload_threads: int = UPLOAD_THREADS) -> None:
        self.settings = settings
        self.cache = cache
        self.warn = warn
        self.store = Store(settings)
        advice = "; run `assetbuild push` when it is back" if settings.push else ""
        self.breaker = Breaker(settings.shown, warn, advice=advice)
        self.refused: list[str] = []  # keys of objects that failed verification
        self.uploaded = 0
        self._upload_threads = upload_threads
        self._queue: queue.Queue[tuple[str, bool] | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._workers_lock = threading.Lock()
        self._abandon = threading.Event()

    @property
    def name(self) -> str:
        return self.settings.shown

    def set_warn(self, warn: Callable[[str], None]) -> None:
        """Send warnings to ``warn`` from now on (e.g. the display, once it has started)."""
        self.warn = warn
        self.breaker.set_warn(warn)

    @property
    def push(self) -> bool:
        return self.settings.push

    # -- before any work --

    def probe(self) -> None:
        """Raise ``RemoteConfigError`` for a misconfigured store; an outage is only a warning."""
        try:
            self.store.probe()
        except RemoteDown as exc:
            self.breaker.failed(exc)

    # -- reads --

    def _call(self, action: Callable[[], T]) -> T | None:
        """``action`` through the breaker: None when the store is down (or given up on)."""
        if self.breaker.is_open:
            return None
        try:
            result = action()
        except (RemoteDown, RemoteConfigError) as exc:
            self.breaker.failed(exc)
            return None
        self.breaker.succeeded()
        return result

    def fetch(self, key: str, expected_hash: str | None) -> Entry | None:
        """The verified entry for ``key``; None if absent, refused (reported by key) or unreachable."""
        view = self.fetch_view(key, expected_hash)
        return None if view is None else Entry(bytes(view.data), view.hash, view.seed, view.model)

    def fetch_view(self, key: str, expected_hash: str | None) -> View | None:
        """``fetch`` without copying the image bytes out of the downloaded object (verified all the same)."""
        raw = self._call(lambda: self.store.get_view(path_of(key)))
        if raw is None:
            return None
        try:
            return decode_view(key, raw, expected_hash=expected_hash, signing_key=self.settings.signing_key)
        except BadObject as exc:
            self.refused.append(key)
            self.warn(f"team store object {key} refused: {exc}; not restoring it")
            return None

    def restore(self, key: str, expected_hash: str | None) -> CacheHit | None:
        """Fetch ``key`` and put it into the local cache (verified first). None if not possible."""
        entry = self.fetch(key, expected_hash)
        if entry is None:
            return None
        self.cache.put(key, entry.data, seed=entry.seed, model=entry.model)
        return CacheHit(entry.data, entry.hash, entry.seed, entry.model)

    def has(self, key: str) -> bool | None:
        """Whether the store holds ``key`` (None: unknown, the store is down)."""
        return self._call(lambda: self.store.exists(path_of(key)))

    # -- writes --

    def upload(self, key: str, *, fallback: Path | None = None, expected_hash: str | None = None,
               seed: int | None = None, model: str | None = None, look_first: bool = False) -> str:
        """Upload the local cache entry of ``key`` unless the store has it (write-once).

        Without a cache entry, ``fallback`` (a target file) is uploaded when its bytes have
        ``expected_hash`` (the lock's), with the lock's ``seed`` and ``model``. ``look_first``: ask the
        store first (a HEAD) and send the image only when it lacks it: for entries that are probably there
        already (not just generated), so that the common case costs no image upload.
        """
        if look_first:
            there = self.has(key)
            if there is None:
                return SKIPPED
            if there:
                return PRESENT
        try:
            hit = self.cache.get(key)
        except CorruptEntry as exc:
            self.warn(str(exc))
            hit = None
        if hit is not None and expected_hash is not None and hit.hash != expected_hash:
            # The cache holds other bytes under this key (a --rebuild whose lock was then reverted):
            # the store is write-once, so only the image the lock records may go there.
            hit = None
        if hit is None and fallback is not None and expected_hash is not None:
            try:
                data = fallback.read_bytes()
            except OSError:
                data = b""
            if data and hash_bytes(data) == expected_hash:
                hit = CacheHit(data, expected_hash, seed, model)
        if hit is None:
            return NOT_LOCAL
        body = encode(key, hit.data, seed=hit.seed, model=hit.model, signing_key=self.settings.signing_key)
        created = self._call(lambda: self.store.create(path_of(key), body, whole=lambda raw: self._whole(key, raw)))
        if created is None:
            return SKIPPED
        if created:
            self.uploaded += 1
        return UPLOADED if created else PRESENT

    def _whole(self, key: str, raw: memoryview) -> bool:
        """Whether ``raw``, found in the store under ``key``, is a whole object (signature aside: a whole
        object is never replaced, write-once)."""
        try:
            decode_view(key, raw, expected_hash=None, signing_key=None)
        except BadObject as exc:
            self.warn(f"team store object {key} is damaged ({exc}): replacing it")
            return False
        return True

    def push_later(self, key: str, *, look_first: bool = False) -> None:
        """Queue ``key`` for upload in the background (when push is on). Never blocks. ``look_first``: see
        ``upload``."""
        if not self.settings.push or self.breaker.is_open:
            return
        self._start_workers()
        self._queue.put((key, look_first))

    def _start_workers(self) -> None:
        with self._workers_lock:
            if self._workers:
                return
            for n in range(self._upload_threads):
                worker = threading.Thread(target=self._work, name=f"assetbuild-upload-{n}", daemon=True)
                worker.start()
                self._workers.append(worker)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            key, look_first = item
            if self._abandon.is_set() or self.breaker.is_open:
                continue
            try:
                self.upload(key, look_first=look_first)
            except Exception as exc:  # a bug must not kill the thread silently and hang the run's end
                self.warn(f"team store upload of {key} failed: {exc!r}")

    def finish(self, *, interrupted: bool = False) -> None:
        """Wait for the queued uploads (only those in flight when ``interrupted``)."""
        if interrupted:
            self._abandon.set()
        with self._workers_lock:
            workers = list(self._workers)
            self._workers.clear()
        for _ in workers:
            self._queue.put(None)
        for worker in workers:
            worker.join()


def bounded_map(action: Callable[[T], R], items: Iterable[T],
                jobs: int = TRANSFER_JOBS) -> Generator[tuple[T, R], None, None]:
    """``(item, action(item))`` as they complete, at most ``jobs`` running and ``2 * jobs`` taken from
    ``items`` and not yet handed to the consumer: memory stays flat however many items there are.

    Each of the ``jobs`` threads takes its next item itself as soon as it is free (no dispatcher to wake
    per item, no future per item); an error raised by ``action`` (or by ``items``) is raised to the
    consumer. When the consumer stops (an error, Ctrl-C, ``close``), no new item is taken and the ones
    running are waited for."""
    source = iter(items)
    taking = threading.Lock()
    room = threading.Semaphore(2 * jobs)
    stop = threading.Event()
    done: queue.SimpleQueue[tuple[T, R] | BaseException | None] = queue.SimpleQueue()

    def work() -> None:
        try:
            while room.acquire() and not stop.is_set():
                with taking:
                    item = next(source, _END)
                if item is _END:
                    return
                try:
                    done.put((item, action(item)))
                except BaseException as exc:
                    done.put(exc)
        except BaseException as exc:  # ``items`` raised
            done.put(exc)
        finally:
            done.put(None)  # this thread ends

    threads: list[threading.Thread] = []
    try:  # (a Ctrl-C while the threads start stops those started too)
        for n in range(jobs):
            threads.append(threading.Thread(target=work, name=f"assetbuild-transfer-{n}", daemon=True))
            threads[-1].start()
        running = jobs
        while running:
            got = done.get()
            if got is None:
                running -= 1
            elif isinstance(got, BaseException):
                raise got
            else:
                room.release()
                yield got
    finally:
        stop.set()
        for _ in threads:  # wake the threads waiting for room: they see ``stop`` and end
            room.release()
        for thread in threads:
            if thread.ident is not None:  # started
                thread.join()


_END: Any = object()


def open_remote(settings: RemoteSettings | None, cache: Cache, warn: Callable[[str], None], *,
                probe: bool = True) -> Remote | None:
    """The ``Remote`` for ``settings`` (None: no remote), probed unless ``probe`` is False."""
    if settings is None:
        return None
    remote = Remote(settings, cache, warn)
    if probe:
        remote.probe()
    return remote
