"""Building one asset: restore from the cache or generate, post-process, write, record.

The order of writes is what makes a killed run safe at any instant:
1. the final bytes go into the cache (atomic), then
2. to the target (temporary file, fsync, rename), then
3. the lock entry is committed (atomic rewrite).
A kill between 2 and 3 leaves our bytes at the target without a lock entry; the next run sees that
they equal the cache entry for the asset's key and only records the entry (no generation, and the file
is not mistaken for a hand-made one). No step ever leaves a partial image at a target.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from . import events as ev
from . import postprocess
from .cache import CacheHit, CorruptEntry
from .errors import AssetError, GenerationError, ImageError, ModifiedFileError
from .events import BuildEvents
from .fsutil import atomic_write_when
from .generators.base import GenerationRequest, GenerationResult, Generator, Progress, ProgressCallback
from .intents import Announced
from .keys import hash_bytes
from .lock import LockEntry
from .manifest import Asset, Project
from .plan import State, Status, modified_hint

if TYPE_CHECKING:
    from .remote.remote import Remote
    from .workspace import Workspace


log = logging.getLogger("assetbuild")

EARLY_SEND_WAIT = 0.5  # seconds start_early waits at most for its requests to go out

# Helper threads proving images whole and writing cache entries and intents while the tasks' threads write
# targets (Builder._write): used only while at most one other image is being written, so a few are enough.
HELPER_THREADS = 6


class Made(NamedTuple):
    """An image made for an asset (generated or derived, post-processed), not yet stored anywhere."""

    data: bytes
    seed: int | None
    model: str | None
    outcome: str  # GENERATED or DERIVED
    model_hashes: dict[str, str]
    # The check of ``data`` left to run (it proves a chunk-stripped PNG whole; raises ImageError), or None:
    # _write runs it beside the target's write and renames nothing before it passed.
    prove: Callable[[], None] | None = None


class Early(NamedTuple):
    """A generation started before its asset's task (``Builder.start_early``)."""

    key: str
    collect: Callable[[], GenerationResult]  # waits for the image; raises what ``Generator.generate`` raises


class Cancelled(AssetError):
    """The run was interrupted before this asset finished."""


class FrozenError(AssetError):
    """--frozen: the asset would have to be generated."""


class Outcomes(Protocol):
    """What is known of an asset once its build ended: all the doit reporter (tasks.Reporter) reads."""

    def outcome(self, target: str) -> str:
        """How ``target`` was brought up to date (events.GENERATED, ...); FRESH when it was not built."""
        ...

    def error(self, target: str) -> AssetError | None:
        """Why ``target`` failed, or None (not built, built, or failed by something else than the asset)."""
        ...

    def seconds(self, target: str) -> float:
        """Time since ``target``'s build started (0 when it did not start)."""
        ...

    def forget(self, target: str) -> None:
        """``target``'s end has been reported: what was kept of it for the reporter may go."""
        ...


class Builder:
    """Builds assets on request; shared by every doit task of a run (thread-safe). Implements ``Outcomes``.

    The project, lock, cache, file hashes and planner are the ``workspace``'s (``workspace.open_workspace``).
    """

    def __init__(self, workspace: Workspace, generator_factory: Callable[[], Generator], events: BuildEvents, *,
                 frozen: bool = False, remote: Remote | None = None) -> None:
        self.workspace = workspace
        self.events = events
        self.frozen = frozen
        self.remote = remote  # the team store: read after the local cache, written after each generation
        self._factory = generator_factory
        self._generator: Generator | None = None
        self._generator_lock = threading.Lock()
        self.cancelled = threading.Event()
        self._outcomes: dict[str, str] = {}
        self._errors: dict[str, AssetError] = {}
        self._started: dict[str, float] = {}
        self._helpers: concurrent.futures.ThreadPoolExecutor | None = None  # see _in_background
        self._helpers_lock = threading.Lock()
        self._writing = 0  # images in Builder._write now
        self._building = 0  # assets in Builder.build now
        self._early: dict[str, Early] = {}  # generations started before their tasks, by target
        self._early_left: list[tuple[str, Early]] = []  # ... that their task did not take
        self._early_lock = threading.Lock()

    @property
    def project(self) -> Project:
        return self.workspace.project

    # -- Outcomes: written by worker threads, read once a task has ended --

    def outcome(self, target: str) -> str:
        return self._outcomes.get(target, ev.FRESH)

    def error(self, target: str) -> AssetError | None:
        return self._errors.get(target)

    def seconds(self, target: str) -> float:
        started = self._started.get(target)
        return 0.0 if started is None else time.monotonic() - started

    def forget(self, target: str) -> None:
        # A first build of 100,000 assets would otherwise hold three entries per asset to its end (~10 MB).
        self._outcomes.pop(target, None)
        self._errors.pop(target, None)
        self._started.pop(target, None)

    # -- the shared generator, created on first need (a no-op build never contacts a server) --

    @property
    def generator(self) -> Generator:
        with self._generator_lock:
            # Checked under the lock cancel() also takes: a generator made after Ctrl-C would never be
            # interrupted.
            if self.cancelled.is_set():
                raise Cancelled("(run)", "interrupted")
            if self._generator is None:
                self._generator = self._factory()
            return self._generator

    def close(self) -> None:
        with self._generator_lock:
            if self._generator is not None:
                self._generator.close()
        with self._helpers_lock:
            helpers, self._helpers = self._helpers, None
        if helpers is not None:
            helpers.shutdown()

    def cancel(self) -> None:
        """Stop: no new writes, and server-side work interrupted."""
        self.cancelled.set()
        with self._generator_lock:
            generator = self._generator
        if generator is not None:
            generator.interrupt()

    # -- generations started before their tasks --

    def start_early(self, statuses: Iterable[Status], limit: int) -> int:
        """Start generating the first ``limit`` assets of ``statuses`` that will surely be generated (stale,
        not in the cache, no image inputs, no team store to look in first), before doit is even set up:
        the run's own preparations (importing doit, starting its threads) then overlap with the server's
        first images instead of delaying them. Each asset's task takes its image over (``_produce``);
        ``finish_early`` keeps any that no task took. Only with a generator that can start an image without
        waiting for it (``submit``, the SwarmUI one). Returns how many were started."""
        if self.frozen or self.remote is not None or limit <= 0:
            return 0
        generator = self.generator
        submit = getattr(generator, "submit", None)
        collect = getattr(generator, "result", None)
        if submit is None or collect is None:
            return 0
        started = 0
        for status in statuses:
            if started >= limit:
                break
            asset = self.project.assets[status.target]
            if status.state is not State.GENERATE or status.key is None or asset.source or asset.inputs:
                continue
            request = GenerationRequest(status.target, dict(asset.params), {})
            try:
                future = submit(request, self._early_progress(status.target))
            except AssetError:  # interrupted meanwhile: the tasks report it
                break
            with self._early_lock:
                self._early[status.target] = Early(status.key, functools.partial(collect, request, future))
            started += 1
        wait_sent = getattr(generator, "wait_sent", None)
        if started and wait_sent is not None:
            # Nothing else runs in this process until those requests are out (or a moment has passed): the
            # client's thread then needs no turn of the interpreter from a thread importing doit.
            wait_sent(started, EARLY_SEND_WAIT)
        return started

    def _early_progress(self, target: str) -> ProgressCallback:
        def report(update: Progress) -> None:
            if target in self._started:  # shown once the asset's task has started (and the display knows it)
                self.events.asset_progress(target, update)
        return report

    def _take_early(self, target: str, key: str) -> Early | None:
        with self._early_lock:
            early = self._early.pop(target, None)
            if early is not None and early.key != key:  # made for other inputs: kept by finish_early
                self._early_left.append((target, early))
                return None
        return early

    def finish_early(self) -> None:
        """The images started early that no task took (the run stopped first, or the asset turned out not to
        need one): each that finishes is kept in the cache under its key, so the next run restores it rather
        than generating it again. Interrupted ones end at once."""
        with self._early_lock:
            left = [*self._early.items(), *self._early_left]
            self._early, self._early_left = {}, []
        for target, early in left:
            asset = self.project.assets[target]
            try:
                result = early.collect()
                self._check_unused(target, result)
                final = postprocess.apply(result.data, asset.post, key=early.key, prompt=asset.params.get("prompt"))
                self.workspace.cache.put(early.key, final, seed=result.seed,
                                         model=result.model or asset.params.get("model"))
            except (AssetError, ValueError, OSError) as exc:
                log.debug("%s: the image started early was not kept: %s", target, exc)

    # -- per asset --

    def status(self, target: str) -> Status:
        return self.workspace.planner.status(self.project.assets[target])

    def is_fresh(self, target: str) -> bool:
        return self.status(target).state is State.FRESH

    def build(self, target: str) -> str:
        """Bring ``target`` up to date; returns the outcome (also kept: ``outcome``). Raises ``AssetError``
        (also kept: ``error``)."""
        with self._helpers_lock:
            self._building += 1
        try:
            outcome = self._build(target)
        except OSError as exc:  # disk full, read-only folder, a folder where the image should go...
            error = self._disk_error(target, exc)
            self._errors[target] = error
            raise error from None
        except AssetError as exc:
            self._errors[target] = exc
            raise
        finally:
            with self._helpers_lock:
                self._building -= 1
        self._outcomes[target] = outcome
        return outcome

    def _disk_error(self, target: str, exc: OSError) -> AssetError:
        where = f" ({exc.filename})" if exc.filename else ""
        return AssetError(target, f"{exc.strerror or exc}{where}", hint=self._folder_hint(exc))

    def _folder_hint(self, exc: OSError) -> str:
        """Name the folder that failed: the cache, assetbuild's state folder or the output folder."""
        name = str(exc.filename or "")
        for folder, what, fix in (
            (self.workspace.cache.folder, "the cache folder",
             "make it writable, or choose another with [project] cache_dir or ASSETBUILD_CACHE_DIR"),
            (self.project.state_dir, "assetbuild's state folder", "make it writable"),
        ):
            if name == str(folder) or name.startswith(str(folder) + os.sep):
                return f"check the disk and the permissions of {what} {folder}: {fix}"
        return f"check the disk and the permissions of the output folder {self.project.output_dir}"

    def _build(self, target: str) -> str:
        self._started[target] = time.monotonic()
        self._check_cancel(target)
        asset = self.project.assets[target]
        status = self.status(target)
        if status.state is State.FRESH:
            return ev.FRESH
        if status.state is State.UPSTREAM:
            raise AssetError(target, f"cannot build: {status.reason}",
                             hint="build its input assets first (they may have failed)")
        if status.state is State.MODIFIED:
            raise ModifiedFileError(target, f"{asset.path} was {status.reason}; not overwriting it",
                                    hint=modified_hint(asset.path))
        assert status.key is not None and status.form is not None
        if status.state in (State.RESTORE, State.ADOPT):
            hit = self._cache_get(target, status.key)
            if hit is None and status.state is State.ADOPT:
                hit = self._from_intent(target, asset, status)
            if hit is not None and status.state is State.ADOPT:  # the right bytes are already in place
                self.workspace.lock.commit(target, LockEntry(status.key, hit.hash, hit.seed, hit.model, status.form))
                return ev.RECORDED
            if hit is not None:
                self._write(target, asset, hit.data, status, hit.seed, hit.model, cache=False)
                return ev.RESTORED
        hit = self._remote_get(status)
        if hit is not None:
            self._write(target, asset, hit.data, status, hit.seed, hit.model, cache=False)
            return ev.RESTORED
        if self.frozen:
            raise FrozenError(target, f"stale ({status.reason}) and not in the cache; --frozen forbids generating",
                              hint="build without --frozen and commit the images and assets.lock")
        return self._generate(target, asset, status)

    def _cache_get(self, target: str, key: str) -> CacheHit | None:
        try:
            return self.workspace.cache.get(key)
        except CorruptEntry as exc:
            self.events.warning(f"{target}: {exc}; building it again")
            return None

    def _remote_get(self, status: Status) -> CacheHit | None:
        """The team store's verified entry for a stale asset not in the local cache (now cached locally)."""
        if self.remote is None or status.state not in (State.GENERATE, State.RESTORE) or status.key is None:
            return None
        if self.workspace.planner.model_change(self.project.assets[status.target], status.entry) is not None:
            return None  # the store has images by key, and a model replaced on the server keeps keys
        expected = status.entry.hash if status.entry is not None and status.entry.key == status.key else None
        return self.remote.restore(status.key, expected)

    def _generate(self, target: str, asset: Asset, status: Status) -> str:
        assert status.key is not None
        made = self._produce(target, asset, status.key, (status.form or {}).get("inputs"), proven=False)
        self._write(target, asset, made.data, status, made.seed, made.model, cache=True,
                    model_hashes=made.model_hashes, prove=made.prove)
        self.workspace.planner.rebuild.discard(target)  # rebuilt once (run --rebuild): fresh from now on
        return made.outcome

    def make_candidate(self, label: str, asset: Asset, key: str, inputs: Mapping[str, str] | None = None, *,
                       expected_hash: str | None = None) -> str:
        """Make ``asset`` (a variation of a manifest asset, e.g. with another seed, whose key is ``key``)
        into the cache only: no target is written and the lock is not touched. ``label`` names it in
        events and errors; ``inputs`` are the input hashes ``key`` was computed from. Returns FRESH when the
        local cache already holds it, RESTORED when the team store had it (verified, then cached locally,
        as a build restores; ``expected_hash``: the image assets.lock records for ``key``, if it does),
        else GENERATED.

        With a team store that takes pushes, what is generated here is uploaded in the background as a
        build's images are, and so is a candidate found only in the local cache (made before the store was
        configured, or while it was down): exploring the same seeds again makes them pickable by the team.

        Crash safety is the cache's: an entry is written atomically once the final bytes exist, so a kill
        at any instant leaves either no entry or a whole one.
        """
        self._started[label] = time.monotonic()
        try:
            self._check_cancel(label)
            if self._cache_get(label, key) is not None:
                if self.remote is not None:
                    self.remote.push_later(key, look_first=True)  # uploaded only if the store lacks it
                return ev.FRESH
            if self.remote is not None and self.remote.restore(key, expected_hash) is not None:
                return ev.RESTORED
            if self.frozen:
                raise FrozenError(label, "not in the cache; --frozen forbids generating")
            made = self._produce(label, asset, key, inputs)
            self._check_cancel(label)
            self.workspace.cache.put(key, made.data, seed=made.seed, model=made.model)
        except OSError as exc:
            raise self._disk_error(label, exc) from None
        if self.remote is not None:
            self.remote.push_later(key)  # in the background, as a build's generations
        return made.outcome

    def _produce(self, target: str, asset: Asset, key: str,
                 planned: Mapping[str, str] | None, *, proven: bool = True) -> Made:
        """Generate (or derive) and post-process: the final bytes, the seed and model used, the outcome.
        ``proven`` False: the last check of the bytes may be left to the caller (``Made.prove``).

        ``planned`` holds the hashes of the input images the key was computed from: an input that changed
        since (an edit during a build, e.g. under ``watch``) must not produce an image filed under the old
        key, so the asset fails and the next build makes it from the new input.
        """
        if asset.source:
            data = self._input(self.project.target_path(asset.source), target, "source", planned)
            result = GenerationResult(data, None, None)
            outcome = ev.DERIVED
        else:
            images = {image.param: self._input(image.path, target, image.param, planned) for image in asset.inputs}
            request = GenerationRequest(target, dict(asset.params), images)
            self._check_cancel(target)

            def progress(update: Progress) -> None:
                self.events.asset_progress(target, update)

            early = self._take_early(target, key)
            try:
                result = early.collect() if early is not None else self.generator.generate(request, progress)
            except GenerationError:
                # After Ctrl-C the server may answer "Generation session interrupted." first: that is us.
                self._check_cancel(target)
                raise
            self._check_unused(target, result)
            outcome = ev.GENERATED
        self._check_cancel(target)
        self.events.asset_progress(target, Progress("postprocessing"))
        origin = f"its source {asset.source}" if asset.source else "the generator's image"
        try:
            final = postprocess.apply_unproven(result.data, asset.post, key=key, prompt=asset.params.get("prompt"))
        except ValueError as exc:
            raise ImageError(target, f"{origin} is unusable: {exc}") from None
        check = final.prove
        prove: Callable[[], None] | None = None
        if check is not None:
            def proof() -> None:
                try:
                    check()
                except ValueError as exc:
                    raise ImageError(target, f"{origin} is unusable: {exc}") from None

            if proven:
                proof()
            else:
                prove = proof
        model = result.model or asset.params.get("model")
        hashes = self._model_hashes(asset, result) if not asset.source else {}
        return Made(final.data, result.seed, model, outcome, hashes, prove)

    def _input(self, path: Path, target: str, param: str, planned: Mapping[str, str] | None) -> bytes:
        data = self._read(path, target)
        if planned is not None and param in planned and hash_bytes(data) != planned[param]:
            raise AssetError(target, f"its input {path.name} changed since the build started; not using it",
                             hint="build again: the asset will be made from the new input")
        return data

    def _check_unused(self, target: str, result: GenerationResult) -> None:
        """The server's metadata lists parameters it did not use: the image does not match the manifest."""
        if not result.unused:
            return
        names = ", ".join(result.unused)
        if self.project.server.unused_params == "warn":
            self.events.warning(f"{target}: the server did not use {names} (sui_extra_data.unused_parameters)")
            return
        raise GenerationError(target, f"the server did not use {names} (the image's metadata lists it as "
                              "unused), so the image would not match the manifest; it was not kept",
                              hint="remove it from the asset, or add what it works with (initimagecreativity "
                                   "needs an initimage, refiner settings a refiner model); [server] unused_params "
                                   "= \"warn\" keeps such images")

    def _model_hashes(self, asset: Asset, result: GenerationResult) -> dict[str, str]:
        from .servercheck import hashes_for

        return hashes_for(asset, result.models, self.workspace.planner.model_hashes)

    def _read(self, path: Path, target: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise GenerationError(target, f"cannot read input {path}: {exc.strerror}") from None

    def _check_target_unchanged(self, target: str, asset: Asset, status: Status) -> None:
        """A file created or edited at the target while the asset was being made is the user's: keep it."""
        now = self.workspace.hashes.hash(asset.path)
        if now != status.on_disk and not self.workspace.planner.force:
            what = "appeared" if status.on_disk is None else "changed"
            raise ModifiedFileError(target, f"{asset.path} {what} while the asset was being made; not "
                                    "overwriting it", hint=modified_hint(asset.path))

    def _check_cancel(self, target: str) -> None:
        if self.cancelled.is_set():
            raise Cancelled(target, "interrupted")

    def _from_intent(self, target: str, asset: Asset, status: Status) -> CacheHit | None:
        """The image at ``target`` that an interrupted run made for this key, put back into the cache (which
        lost it: see intents.py); None when the intent or the file does not prove that."""
        assert status.key is not None and status.on_disk is not None
        made = self.workspace.planner.intents.made_for(target, status.on_disk, status.key)
        try:
            data = asset.path.read_bytes()
        except OSError:
            return None
        if made is None or hash_bytes(data) != status.on_disk:
            return None
        self.workspace.cache.put(status.key, data, seed=made.seed, model=made.model)
        return CacheHit(data, status.on_disk, made.seed, made.model)

    def _salvage(self, target: str, asset: Asset, status: Status) -> None:
        """Before replacing an image an interrupted run left at ``target`` for other inputs (see intents.py):
        keep it in the cache under its own key if a power loss cost that entry. It was generated; it is not
        lost because the manifest changed before the next run."""
        if status.on_disk is None or (status.entry is not None and status.entry.hash == status.on_disk):
            return
        made = self.workspace.planner.intents.announced(target, status.on_disk)
        if made is None or made.key is None or made.key == status.key or self.workspace.cache.has(made.key):
            return
        try:
            data = asset.path.read_bytes()
        except OSError:
            return
        if hash_bytes(data) == status.on_disk:
            self.workspace.cache.put(made.key, data, seed=made.seed, model=made.model)

    def _write(self, target: str, asset: Asset, data: bytes, status: Status, seed: int | None,
               model: str | None, *, cache: bool, model_hashes: dict[str, str] | None = None,
               prove: Callable[[], None] | None = None) -> None:
        """Store ``data`` for ``target``: cache entry (``cache``), intent, target, lock entry.

        The order that matters for a crash is kept (module docstring): the cache entry and the durable
        intent both exist before the target's rename, which is durable before the lock commit. What does
        not depend on each other runs at once: the cache entry and the intent are written by helper threads
        while this one writes and flushes the target's temporary file (each fsync waits for the disk, not
        for the GIL), so an image's durable writes take about the longest of them instead of their sum.

        ``prove`` (the inflate that proves a chunk-stripped PNG whole, ``Made.prove``) runs on a helper
        thread too, beside those writes, when this is the only asset being built (``-n 1``, or the end of a
        run: the image's path is what the next one waits for); neither the cache entry nor the target is
        renamed into place before it passed. When it fails, its ImageError is raised and nothing is left:
        no target, no temporary file, no cache entry, no lock entry. While other assets are being built,
        it runs first, here: their work overlaps this image's anyway, and more threads only contend for
        the CPU and the GIL with the generations in flight."""
        assert status.key is not None and status.form is not None
        self._check_cancel(target)
        digest = hash_bytes(data)
        with self._helpers_lock:
            self._writing += 1
            overlap = self._building <= 1
        try:
            if prove is not None and not overlap:
                prove()
                prove = None
            proven = self._in_background(prove) if prove is not None else _DONE
            if proven.done() and proven.exception() is not None:  # checked here and now (see _in_background)
                proven.result()
            stored = (self._in_background(self.workspace.cache.put, status.key, data, seed=seed, model=model,
                                          ready=proven.result) if cache else proven)
            try:
                written = self._place(target, asset, data, status, digest, seed, model, stored)
            finally:
                concurrent.futures.wait([proven, stored])  # the cache holds the image before we return or raise
        finally:
            with self._helpers_lock:
                self._writing -= 1
        stored.result()
        self.workspace.hashes.remember(asset.path, digest, written)  # the stamp of our bytes, not of a later edit
        self.workspace.lock.commit(target, LockEntry(status.key, digest, seed, model, status.form, model_hashes or {}))
        self.workspace.planner.intents.covered(target, digest)
        if cache and self.remote is not None:
            self.remote.push_later(status.key)  # in the background: generation never waits for uploads

    def _place(self, target: str, asset: Asset, data: bytes, status: Status, digest: str, seed: int | None,
               model: str | None, stored: concurrent.futures.Future[Any]) -> os.stat_result:
        """The target's durable write, renamed into place once ``stored`` (the cache entry, made once the
        image was proven whole) and the intent are done; its stat."""
        assert status.key is not None
        self._check_target_unchanged(target, asset, status)
        self._salvage(target, asset, status)
        announced = self._in_background(self.workspace.planner.intents.record, target, digest,
                                        Announced(status.key, seed, model))

        def ready() -> None:
            stored.result()
            announced.result()

        try:
            # The temporary file lives in the state folder: a kill mid-write leaves nothing among the assets.
            return atomic_write_when(asset.path, data, tmp_dir=self.project.state_dir / "tmp", ready=ready)
        finally:
            concurrent.futures.wait([announced])  # never left running after a failed write

    def _in_background(self, work: Callable[..., Any], *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """``work(*args, **kwargs)`` on a helper thread (created on first need, shared by the run's tasks),
        or done here and now when other images are being written at the same moment: their writes
        already overlap, and handing work to another thread costs CPU (a wake-up, GIL hand-offs)."""
        helpers = None
        with self._helpers_lock:
            if self._writing <= 1:
                if self._helpers is None:
                    self._helpers = concurrent.futures.ThreadPoolExecutor(HELPER_THREADS,
                                                                          thread_name_prefix="assetbuild-write")
                helpers = self._helpers
        if helpers is not None:
            return helpers.submit(work, *args, **kwargs)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(work(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed over to whoever waits, as a helper thread would
            future.set_exception(exc)
        return future


# A finished future: "no cache entry to wait for".
_DONE: concurrent.futures.Future[Any] = concurrent.futures.Future()
_DONE.set_result(None)
