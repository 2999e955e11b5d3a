"""Where the team store is and how to talk to it; never prints a secret.

Precedence: ``ASSETBUILD_REMOTE`` > ``[cache] remote``; ``ASSETBUILD_REMOTE_PUSH=0`` turns pushing off
whatever ``[cache] push`` says (pull-request CI). Credentials only come from the environment:
``AWS_*`` / ``GOOGLE_*`` / ``AZURE_*`` for the cloud stores (read by obstore), ``ASSETBUILD_REMOTE_TOKEN``
(a bearer token) for the HTTP backend, ``ASSETBUILD_REMOTE_SIGNING_KEY`` for signed objects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..errors import AssetbuildError
from ..layout import home_path

REMOTE_ENV = "ASSETBUILD_REMOTE"
PUSH_ENV = "ASSETBUILD_REMOTE_PUSH"
TOKEN_ENV = "ASSETBUILD_REMOTE_TOKEN"
SIGNING_KEY_ENV = "ASSETBUILD_REMOTE_SIGNING_KEY"

SCHEMES = ("s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "http", "https", "file")
FALSE_WORDS = ("0", "false", "no", "off")


class RemoteConfigError(AssetbuildError):
    """The team store is misconfigured (unknown scheme, missing bucket, refused credentials): exit 2."""


@dataclass(frozen=True)
class RemoteSettings:
    url: str  # as obstore takes it (a folder became file://...), secrets included: never print it
    push: bool = True
    token: str | None = field(default=None, repr=False)
    signing_key: bytes | None = field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def shown(self) -> str:
        """The URL as it may be printed: no password, no query string (it may hold a SAS token)."""
        return shown_url(self.url)

    def __repr__(self) -> str:
        return f"RemoteSettings({self.shown!r}, push={self.push})"


def shown_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # as written (reading .port would raise on a bad one)
    if parts.username:
        host = f"{parts.username}:****@{host}" if parts.password else f"{parts.username}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def resolve(manifest_remote: str | None, manifest_push: bool, root: Path,
            where: str = "assets.toml") -> RemoteSettings | None:
    """The team store settings, or None when there is no remote. Raises ``RemoteConfigError``."""
    from_env = (os.environ.get(REMOTE_ENV) or "").strip()
    written = from_env or (manifest_remote or "").strip()  # blank is unset (never the project folder)
    if not written:
        return None
    origin = REMOTE_ENV if from_env else f"{where}: [cache] remote"
    try:
        url = _as_url(written, root, origin)
        shown_url(url)  # every URL assetbuild keeps must also be printable (a bad port raises here)
    except ValueError as exc:  # urlsplit: "Port out of range", an unclosed "[" of an IPv6 host...
        raise RemoteConfigError(f"{origin}: the team store URL is malformed ({exc})",
                                hint="write it like s3://bucket/prefix, https://host/path or a folder") from None
    push = manifest_push and os.environ.get(PUSH_ENV, "").strip().lower() not in FALSE_WORDS
    token = (os.environ.get(TOKEN_ENV) or "").strip() or None
    if token is not None and not token.isprintable():
        raise RemoteConfigError(f"{TOKEN_ENV} holds characters that cannot go into an HTTP header")
    signing = (os.environ.get(SIGNING_KEY_ENV) or "").strip()
    return RemoteSettings(url, push, token, signing.encode() if signing else None)


def _as_url(written: str, root: Path, origin: str) -> str:
    scheme, sep, _ = written.partition("://")
    if not sep:  # a folder (relative to the manifest's folder)
        try:
            folder = home_path(written)
        except ValueError as exc:
            raise RemoteConfigError(f"{origin}: team store folder {exc}") from None
        folder = folder if folder.is_absolute() else root / folder
        return folder.resolve().as_uri()
    if scheme.lower() not in SCHEMES:
        raise RemoteConfigError(f"{origin}: unknown scheme {scheme + '://'!r} in the team store URL "
                                f"{shown_url(written)}",
                                hint="use s3://, gs://, az://, http(s)://, file:// or a folder path")
    parts = urlsplit(written)
    if scheme.lower() in ("s3", "s3a", "gs") and not parts.hostname:
        raise RemoteConfigError(f"{origin}: {shown_url(written)} names no bucket",
                                hint=f"write it as {scheme}://BUCKET/PREFIX")
    return written
