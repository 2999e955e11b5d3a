"""The team store's parts: settings, object format and verification, the breaker, the [cache] table."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import write_manifest

from assetbuild.errors import ManifestError
from assetbuild.manifest import load
from assetbuild.remote.objects import BadObject, decode, encode, key_of, path_of
from assetbuild.remote.remote import Breaker, bounded_map
from assetbuild.remote.settings import RemoteConfigError, resolve, shown_url
from assetbuild.remote.store import RemoteDown

KEY = "0123456789abcdef0123456789abcdef"


# --- settings -----------------------------------------------------------------------------------------


def test_environment_beats_the_manifest_and_push_can_be_turned_off(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    assert resolve(None, True, tmp_path) is None
    settings = resolve("s3://team/cache", True, tmp_path)
    assert settings is not None and settings.url == "s3://team/cache" and settings.push
    monkeypatch.setenv("ASSETBUILD_REMOTE", "gs://other/x")
    monkeypatch.setenv("ASSETBUILD_REMOTE_PUSH", "0")
    settings = resolve("s3://team/cache", True, tmp_path)
    assert settings is not None and settings.url == "gs://other/x" and not settings.push
    monkeypatch.setenv("ASSETBUILD_REMOTE_PUSH", "1")
    assert not resolve("s3://a/b", False, tmp_path).push  # type: ignore[union-attr]  # [cache] push = false


def test_a_folder_is_a_file_url_relative_to_the_project(tmp_path: Path) -> None:
    settings = resolve("../shared/store", True, tmp_path / "proj")
    assert settings is not None and settings.url == (tmp_path / "shared" / "store").as_uri()


@pytest.mark.parametrize("url, message", [("ftp://host/x", "unknown scheme"), ("s3:///x", "names no bucket"),
                                          ("gs://", "names no bucket")])
def test_bad_urls_are_configuration_errors(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(RemoteConfigError, match=message) as info:
        resolve(url, True, tmp_path)
    assert info.value.exit_code == 2


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert shown_url("https://user:hunter2@cache.example/ac?sig=SECRETSAS") == "https://user:****@cache.example/ac"
    monkeypatch.setenv("ASSETBUILD_REMOTE_TOKEN", "tok-123456")
    monkeypatch.setenv("ASSETBUILD_REMOTE_SIGNING_KEY", "sign-123456")
    settings = resolve("https://user:hunter2@cache.example/ac", True, tmp_path)
    text = repr(settings) + str(settings) + settings.shown  # type: ignore[union-attr]
    for secret in ("hunter2", "tok-123456", "sign-123456"):
        assert secret not in text


def test_an_unprintable_token_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSETBUILD_REMOTE_TOKEN", "abc\x01def")
    with pytest.raises(RemoteConfigError) as info:
        resolve("https://cache.example/x", True, tmp_path)
    assert "abc" not in str(info.value)


# --- objects ------------------------------------------------------------------------------------------


def test_objects_round_trip_and_share_the_local_cache_layout() -> None:
    raw = encode(KEY, b"png bytes", seed=7, model="m", signing_key=None)
    entry = decode(KEY, raw, expected_hash=None, signing_key=None)
    assert (entry.data, entry.seed, entry.model) == (b"png bytes", 7, "m")
    assert path_of(KEY) == f"01/{KEY}.img" and key_of(path_of(KEY)) == KEY
    # Only objects directly under the store's prefix are ours: a deeper one belongs to another project
    # sharing the store (gc --remote must never see it as one of its own).
    assert key_of("prefix/" + path_of(KEY)) is None
    assert key_of(f"01/{KEY}.img.tmp") is None and key_of(f"01/{KEY.upper()}.img") is None
    assert key_of("README.md") is None and key_of(f"zz/{KEY}.img") is None


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[:-1] + b"X", "do not match the hash"),
    (lambda raw: raw + b"more", "bytes where the header says"),
    (lambda raw: b"garbage", "no header"),
    (lambda raw: b"{not json\n" + raw, "unreadable header"),
])
def test_damaged_objects_are_refused(damage, message) -> None:  # type: ignore[no-untyped-def]
    raw = encode(KEY, b"png bytes", seed=None, model=None, signing_key=None)
    with pytest.raises(BadObject, match=message):
        decode(KEY, damage(raw), expected_hash=None, signing_key=None)


def test_an_object_must_be_the_image_the_lock_records() -> None:
    raw = encode(KEY, b"png bytes", seed=None, model=None, signing_key=None)
    with pytest.raises(BadObject, match="not the one assets.lock records"):
        decode(KEY, raw, expected_hash="another-hash", signing_key=None)


def test_signatures_cover_the_key_and_the_bytes() -> None:
    signed = encode(KEY, b"png", seed=None, model=None, signing_key=b"k1")
    assert decode(KEY, signed, expected_hash=None, signing_key=b"k1").data == b"png"
    assert decode(KEY, signed, expected_hash=None, signing_key=None).data == b"png"  # readers without a key
    with pytest.raises(BadObject, match="not signed"):
        decode(KEY, encode(KEY, b"png", seed=None, model=None, signing_key=None), expected_hash=None,
               signing_key=b"k1")
    with pytest.raises(BadObject, match="signature is wrong"):
        decode(KEY, signed, expected_hash=None, signing_key=b"k2")
    other = KEY[::-1]  # a signed object copied to another key's slot
    with pytest.raises(BadObject, match="signature is wrong"):
        decode(other, signed, expected_hash=None, signing_key=b"k1")


# --- breaker and bounded transfers --------------------------------------------------------------------


def test_the_breaker_warns_once_and_opens_after_three_failures_in_a_row() -> None:
    warnings: list[str] = []
    breaker = Breaker("s3://team/x", warnings.append, advice="; run `assetbuild push` when it is back")
    breaker.failed(RemoteDown("connection refused"))
    breaker.succeeded()
    breaker.failed(RemoteDown("connection refused"))
    breaker.failed(RemoteDown("timeout"))
    assert not breaker.is_open  # a success in between resets the count
    breaker.failed(RemoteDown("timeout"))
    assert breaker.is_open
    assert warnings == ["team store s3://team/x is unavailable (connection refused); going on without it: "
                        "local cache, then generation; run `assetbuild push` when it is back"]


def test_bounded_map_keeps_only_a_window_in_flight() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    gate = threading.Event()

    def work(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        gate.wait(0.01)
        with lock:
            running -= 1
        return n * 2

    produced = 0

    def items():  # type: ignore[no-untyped-def]
        nonlocal produced
        for n in range(200):
            produced += 1
            yield n

    results = {}
    for n, doubled in bounded_map(work, items(), jobs=4):
        assert produced <= len(results) + 1 + 8  # never more than 2 * jobs ahead of the consumer
        results[n] = doubled
    assert results == {n: n * 2 for n in range(200)} and peak <= 4


def test_bounded_map_raises_an_error_to_the_consumer_and_stops_taking_items() -> None:
    taken: list[int] = []

    def items():  # type: ignore[no-untyped-def]
        for n in range(1000):
            taken.append(n)
            yield n

    def work(n: int) -> int:
        if n == 5:
            raise ValueError("broken item 5")
        return n

    results = []
    with pytest.raises(ValueError, match="broken item 5"):
        for n, _ in bounded_map(work, items(), jobs=4):
            results.append(n)
    assert len(taken) < 1000  # no item taken once the consumer has stopped
    assert not [t for t in threading.enumerate() if t.name.startswith("assetbuild-transfer")]  # all joined


def test_bounded_map_closed_early_waits_for_the_running_items_only() -> None:
    started: list[int] = []
    finished: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> int:
        with lock:
            started.append(n)
        with lock:
            finished.append(n)
        return n

    results = bounded_map(work, range(10_000), jobs=4)
    next(results)
    results.close()
    assert sorted(started) == sorted(finished) and len(started) <= 1 + 2 * 4 + 4
    assert not [t for t in threading.enumerate() if t.name.startswith("assetbuild-transfer")]


# --- [cache] in assets.toml -----------------------------------------------------------------------------


def test_cache_table_and_the_old_project_cache_dir(project: Path) -> None:
    write_manifest(project, '[cache]\ndir = "c"\nremote = "s3://team/x"\npush = false\n')
    loaded = load(project / "assets.toml")
    assert loaded.cache_dir == project / "c" and loaded.remote == "s3://team/x" and loaded.push is False
    assert "project.cache_dir" in loaded.explicit
    write_manifest(project, '[project]\ncache_dir = "old"\n')
    assert load(project / "assets.toml").cache_dir == project / "old"
    write_manifest(project, '[project]\ncache_dir = "old"\n[cache]\ndir = "new"\n')
    with pytest.raises(ManifestError, match="disagree"):
        load(project / "assets.toml")
    write_manifest(project, '[cache]\nremote = 5\n')
    with pytest.raises(ManifestError):
        load(project / "assets.toml")
    write_manifest(project, '[cache]\nremtoe = "s3://x/y"\n')
    with pytest.raises(ManifestError, match="remtoe"):
        load(project / "assets.toml")


def test_the_no_op_path_does_not_import_obstore(project: Path) -> None:
    code = ("import sys; from assetbuild.cli import main; main(['status']); main(['run']); "
            "print('obstore' in sys.modules, 'assetbuild.remote.store' in sys.modules)")
    write_manifest(project, '[server]\nurl = "placeholder"\n[cache]\nremote = "s3://team/x"\n')
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "False False", out.stderr


# --- the background uploader --------------------------------------------------------------------------


def _folder_remote(tmp_path: Path, threads: int = 1):  # type: ignore[no-untyped-def]
    from assetbuild.cache import Cache
    from assetbuild.remote.remote import Remote

    cache = Cache(tmp_path / "cache")
    keys = [f"{n:02x}" * 16 for n in range(5)]
    for n, key in enumerate(keys):
        cache.put(key, bytes([n]) * 1000, seed=n, model=None)
    settings = resolve(str(tmp_path / "store"), True, tmp_path)
    assert settings is not None
    warnings: list[str] = []
    return Remote(settings, cache, warnings.append, upload_threads=threads), keys, warnings


def test_uploads_run_in_the_background_and_finish_waits_for_them(tmp_path: Path) -> None:
    remote, keys, warnings = _folder_remote(tmp_path, threads=2)
    for key in keys:
        remote.push_later(key)
    remote.finish()
    assert remote.uploaded == 5 and warnings == []
    assert sorted(p.stem for p in (tmp_path / "store").rglob("*.img")) == sorted(keys)


def test_after_ctrl_c_only_the_upload_in_flight_finishes(tmp_path: Path) -> None:
    remote, keys, _ = _folder_remote(tmp_path, threads=1)
    started, release = threading.Event(), threading.Event()
    create = remote.store.create

    def slow_create(path: str, data: bytes, **options: Any) -> bool:
        started.set()
        release.wait(10)
        return create(path, data, **options)

    remote.store.create = slow_create  # type: ignore[method-assign]
    for key in keys:
        remote.push_later(key)
    assert started.wait(10)  # the first upload is in flight, four are queued
    finisher = threading.Thread(target=remote.finish, kwargs={"interrupted": True})
    finisher.start()
    assert remote._abandon.wait(10)  # Ctrl-C is known before the upload in flight ends
    release.set()
    finisher.join(10)
    assert not finisher.is_alive()
    assert remote.uploaded == 1  # the one in flight completed (whole); `assetbuild push` does the rest
    assert len(list((tmp_path / "store").rglob("*.img"))) == 1


def test_push_off_queues_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETBUILD_REMOTE_PUSH", "0")
    remote, keys, _ = _folder_remote(tmp_path)
    remote.push_later(keys[0])
    remote.finish()
    assert remote.uploaded == 0
    assert list((tmp_path / "store").rglob("*.img")) == []
