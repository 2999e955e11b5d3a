"""A thin face over obstore: the five operations the team store needs, and one place for its errors.

Every obstore (or transport) error becomes one of:
- ``None`` / ``False``: the object is not there;
- ``RemoteConfigError``: the store refuses us or does not exist (a misconfiguration; exit 2 when it is
  found by ``probe`` before any work);
- ``RemoteDown``: anything else (connection refused, timeout, 5xx): an outage, which the caller's
  breaker turns into one warning.
Messages keep obstore's first line only (never its debug dump) with secrets removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .settings import RemoteConfigError, RemoteSettings

# Bounded retries: a dead store must cost seconds, not obstore's default three minutes per request.
RETRY = {"max_retries": 2, "retry_timeout": timedelta(seconds=10),
         "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=1), "base": 2}}
CLIENT = {"connect_timeout": timedelta(seconds=5), "timeout": timedelta(seconds=60)}


class RemoteDown(Exception):
    """The store could not be reached or failed (an outage, not a misconfiguration)."""


@dataclass(frozen=True)
class StoredObject:
    path: str  # relative to the store's prefix
    size: int
    modified: float  # POSIX time


class Store:
    """One store, opened from ``RemoteSettings``. Thread-safe (obstore's stores are)."""

    def __init__(self, settings: RemoteSettings) -> None:
        self.settings = settings
        self._store = self._open()
        parts = urlsplit(settings.url)
        # HTTPStore lists paths from the server's root: strip the URL's own path to get ours.
        self._list_strip = unquote(parts.path).strip("/") + "/" if parts.scheme in ("http", "https") else ""

    def _open(self) -> Any:
        from obstore.store import from_url

        s = self.settings
        options: dict[str, Any] = dict(CLIENT)
        if s.scheme == "http" or os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true":
            options["allow_http"] = True
        kwargs: dict[str, Any] = {}
        if s.scheme == "file":
            kwargs = {"mkdir": True}
        else:
            kwargs = {"client_options": options, "retry_config": RETRY}
            if s.scheme in ("http", "https") and s.token:
                options["default_headers"] = {"Authorization": f"Bearer {s.token}"}
        try:
            return from_url(s.url, **kwargs)
        except Exception as exc:  # obstore raises ValueError, its own errors, or OSError for bad settings
            raise RemoteConfigError(f"team store {s.shown}: {self._message(exc)}",
                                    hint="check the URL and the AWS_*/GOOGLE_*/AZURE_* settings") from None

    # -- the operations --

    def get(self, path: str) -> bytes | None:
        view = self.get_view(path)
        return None if view is None else bytes(view)

    def get_view(self, path: str) -> memoryview | None:
        """The object's bytes as a view into obstore's buffer: no copy (``pull`` hashes and writes them
        from there). None when the object is not there."""
        import obstore

        try:
            return memoryview(obstore.get(self._store, path).bytes())
        except Exception as exc:
            self._absent_or_raise(exc, path)
            return None

    def exists(self, path: str) -> bool:
        return self._size(path) is not None

    def create(self, path: str, data: bytes, *, whole: Callable[[memoryview], bool] | None = None) -> bool:
        """Write ``data`` at ``path`` unless an object is there (write-once). True if this call wrote it.

        ``whole`` (HTTP stores only): tells whether the bytes of an object already at ``path`` are a whole
        object. An HTTP server may write a PUT in place, so an upload cut off half-way can leave a
        truncated object under the final name; left there, every later push would take it for present
        and the image would never reach the store. Such an object is replaced; a whole one never is."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        if self.settings.scheme in ("http", "https"):
            # HTTPStore has no conditional put: look first (a narrow race remains; readers verify).
            size = self._size(path)
            if size is not None and not self._damaged(path, size, len(data), whole):
                return False
            mode = "overwrite"
        else:
            mode = "create"
        try:
            obstore.put(self._store, path, data, mode=mode, use_multipart=False)  # type: ignore[arg-type]
        except (AlreadyExistsError, PreconditionError):
            return False
        except Exception as exc:
            self._absent_or_raise(exc, path)
            raise RemoteDown(f"cannot write {path}") from None  # a 404 on a write: the bucket went away
        return True

    def _size(self, path: str) -> int | None:
        """The size of the object at ``path``; None when there is none."""
        import obstore

        try:
            return int(obstore.head(self._store, path)["size"])
        except Exception as exc:
            self._absent_or_raise(exc, path)
            return None

    def _damaged(self, path: str, size: int, ours: int, whole: Callable[[memoryview], bool] | None) -> bool:
        if whole is None or size == ours:  # the same size as ours: taken as whole without reading it
            return False
        found = self.get_view(path)
        return found is not None and not whole(found)

    def delete(self, path: str) -> None:
        import obstore

        try:
            obstore.delete(self._store, path)
        except Exception as exc:
            self._absent_or_raise(exc, path)

    def objects(self, prefix: str | None = None) -> Iterator[StoredObject]:
        import obstore

        try:
            for batch in obstore.list(self._store, prefix, chunk_size=1000):
                for meta in batch:
                    path = meta["path"]
                    if self._list_strip and path.startswith(self._list_strip):
                        path = path[len(self._list_strip):]
                    yield StoredObject(path, int(meta["size"]), meta["last_modified"].timestamp())
        except Exception as exc:
            self._absent_or_raise(exc, prefix or "")

    def probe(self) -> None:
        """Check before any work that the store exists and takes our credentials.

        Raises ``RemoteConfigError`` (exit 2) for a misconfiguration, ``RemoteDown`` for an outage.
        """
        if self.settings.scheme in ("http", "https", "file"):
            self.exists("assetbuild-probe")  # HTTP servers need not support listing; 404 is the answer
            return
        import obstore

        try:
            stream = obstore.list(self._store, "assetbuild-probe/", chunk_size=1)
            next(iter(stream), None)
        except Exception as exc:
            self._absent_or_raise(exc, "", bucket_must_exist=True)

    # -- errors --

    def _absent_or_raise(self, exc: Exception, path: str, *, bucket_must_exist: bool = False) -> None:
        """None for "not there"; otherwise raise ``RemoteConfigError`` or ``RemoteDown``."""
        from obstore.exceptions import NotFoundError, PermissionDeniedError, UnauthenticatedError

        message = self._message(exc)
        full = str(exc)
        if isinstance(exc, PermissionDeniedError | UnauthenticatedError) or " 401 " in message or " 403 " in message:
            raise RemoteConfigError(f"team store {self.settings.shown} refused the credentials ({message})",
                                    hint="check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or GOOGLE_*/AZURE_*, "
                                         "or ASSETBUILD_REMOTE_TOKEN for http) and the store's permissions")
        missing = any(word in full for word in ("NoSuchBucket", "ContainerNotFound", "bucket does not exist"))
        if missing or (bucket_must_exist and (isinstance(exc, NotFoundError | FileNotFoundError) or " 404 " in full)):
            raise RemoteConfigError(f"team store {self.settings.shown}: the bucket does not exist ({message})",
                                    hint="create the bucket, or fix [cache] remote / ASSETBUILD_REMOTE")
        if isinstance(exc, NotFoundError | FileNotFoundError):
            return None
        raise RemoteDown(message) from None

    def _message(self, exc: BaseException) -> str:
        text = str(exc).split("\n\nDebug source:")[0].strip().splitlines()
        first = text[0] if text else type(exc).__name__
        for secret in self._secrets():
            first = first.replace(secret, "****")
        return first[:300]

    def _secrets(self) -> list[str]:
        s = self.settings
        parts = urlsplit(s.url)
        found = [s.token or "", s.signing_key.decode() if s.signing_key else "", parts.password or ""]
        found += [parts.query] + [value for _name, value in parse_qsl(parts.query)]  # e.g. a signed URL's sig=
        found += [os.environ.get(name, "") for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                                        "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_KEY")]
        return [secret for secret in found if len(secret) >= 4]
