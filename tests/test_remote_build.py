"""The team store in real builds: SeaweedFS (S3), WebDAV (HTTP) and a folder, all real, on loopback.

Each "machine" is its own project folder and its own local cache; they share only the store (and,
like a git clone, assets.toml and assets.lock).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest
from helpers import QUICKSTART, TARGETS, generations
from remote_servers import ACCESS_KEY, SECRET_KEY, SeaweedFS, WebDAV, skip_reason

needs_weed = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
TOKEN = "dav-bearer-token-never-printed"
SIGNING = "signing-key-never-printed-42"


@pytest.fixture(scope="session")
def dav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDAV]:
    server = WebDAV(tmp_path_factory.mktemp("webdav"), TOKEN)
    yield server
    server.stop()


class Machine:
    """One checkout with its own local cache and placeholder log."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = dict(env)
        self.log = root.parent / f"{root.name}-generations.log"
        self.env.setdefault("ASSETBUILD_CACHE_DIR", str(root.parent / f"{root.name}-cache"))
        self.env["ASSETBUILD_PLACEHOLDER_LOG"] = str(self.log)

    def run(self, *args: str, **extra: str) -> Any:
        return run_cli(self.root, *args, env={**self.env, **extra}, timeout=120)

    @property
    def generated(self) -> list[str]:
        return generations(self.log)

    def clone(self, name: str, env: dict[str, str] | None = None) -> Machine:
        """A fresh clone: the manifest and the lock, no images, an empty local cache."""
        other = self.root.parent / name
        other.mkdir()
        for file in ("assets.toml", "assets.lock"):
            if (self.root / file).exists():
                shutil.copy2(self.root / file, other / file)
        return Machine(other, env if env is not None else {k: v for k, v in self.env.items()
                                                           if k != "ASSETBUILD_CACHE_DIR"})


def first_machine(tmp_path: Path, env: dict[str, str]) -> Machine:
    root = tmp_path / "a"
    root.mkdir(parents=True)
    write_manifest(root, QUICKSTART)
    return Machine(root, env)


def s3_env(weed: SeaweedFS, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**weed.env(), "ASSETBUILD_REMOTE": f"s3://team/{tmp_path.name}", **extra}


def objects_in(weed: SeaweedFS, prefix: str) -> list[str]:
    import obstore
    from obstore.store import from_url

    store = from_url(f"s3://team/{prefix}", endpoint=weed.endpoint, access_key_id=ACCESS_KEY,
                     secret_access_key=SECRET_KEY, region="us-east-1", client_options={"allow_http": True})
    return sorted(meta["path"] for batch in obstore.list(store) for meta in batch)


def assert_no_secrets(*outputs: Any) -> None:
    for out in outputs:
        text = out.stdout + out.stderr
        for secret in (SECRET_KEY, TOKEN, SIGNING):
            assert secret not in text


@needs_weed
def test_fresh_clone_with_an_empty_cache_restores_everything_from_the_store(weed: SeaweedFS, tmp_path: Path) -> None:
    a = first_machine(tmp_path, s3_env(weed, tmp_path))
    built = a.run("run")
    assert built.returncode == 0, built.stderr
    assert len(a.generated) == 3
    assert len(objects_in(weed, tmp_path.name)) == 3  # every generation was pushed before the run ended

    b = a.clone("b")
    restored = b.run("run")
    assert restored.returncode == 0, restored.stderr
    assert b.generated == []  # 0 generations
    for target in TARGETS:
        assert (b.root / target).read_bytes() == (a.root / target).read_bytes()
    assert (b.root / "assets.lock").read_text() == (a.root / "assets.lock").read_text()
    # ... and the restored objects went into b's local cache: a third run needs no store at all.
    shutil.rmtree(b.root / "sprites")
    again = b.run("run", ASSETBUILD_REMOTE=f"s3://team/{tmp_path.name}-nothing-here")
    assert again.returncode == 0 and b.generated == []
    assert_no_secrets(built, restored, again)


@needs_weed
def test_frozen_ci_run_on_a_second_machine_restores_from_the_store(weed: SeaweedFS, tmp_path: Path) -> None:
    a = first_machine(tmp_path, s3_env(weed, tmp_path))
    assert a.run("run").returncode == 0
    ci = a.clone("ci", {**s3_env(weed, tmp_path), "ASSETBUILD_REMOTE_PUSH": "0"})
    frozen = ci.run("run", "--frozen")
    assert frozen.returncode == 0, frozen.stdout + frozen.stderr
    assert ci.generated == []
    assert all((ci.root / t).is_file() for t in TARGETS)
    # Without the store, the same CI run fails before generating anything.
    bare = a.clone("ci2", {})
    refused = bare.run("run", "--frozen")
    assert refused.returncode == 1 and bare.generated == []


@needs_weed
def test_a_tampered_object_is_refused_by_key_and_the_asset_generated(weed: SeaweedFS, tmp_path: Path) -> None:
    import json

    import obstore
    from obstore.store import from_url

    a = first_machine(tmp_path, s3_env(weed, tmp_path))
    assert a.run("run").returncode == 0
    lock = json.loads((a.root / "assets.lock").read_text())
    key = lock["assets"]["ui/icon_sword.png"]["key"]
    store = from_url(f"s3://team/{tmp_path.name}", endpoint=weed.endpoint, access_key_id=ACCESS_KEY,
                     secret_access_key=SECRET_KEY, region="us-east-1", client_options={"allow_http": True})
    path = f"{key[:2]}/{key}.img"
    raw = bytes(obstore.get(store, path).bytes())
    obstore.put(store, path, raw[:-10] + b"X" * 10)  # same header, other bytes

    b = a.clone("b")
    result = b.run("run")
    assert result.returncode == 0, result.stderr
    assert b.generated == ["ui/icon_sword.png"]  # refused, so generated; the other two restored
    assert f"team store object {key} refused" in result.stdout + result.stderr
    assert (b.root / "ui/icon_sword.png").read_bytes() == (a.root / "ui/icon_sword.png").read_bytes()


@needs_weed
def test_a_signed_store_refuses_unsigned_objects(weed: SeaweedFS, tmp_path: Path) -> None:
    a = first_machine(tmp_path, s3_env(weed, tmp_path))  # a PR job without the key fills the store
    assert a.run("run").returncode == 0
    signed = {**s3_env(weed, tmp_path), "ASSETBUILD_REMOTE_SIGNING_KEY": SIGNING}
    b = a.clone("b", signed)
    result = b.run("run")
    assert result.returncode == 0
    assert sorted(b.generated) == sorted(TARGETS)  # nothing unsigned was restored
    assert "not signed" in result.stdout + result.stderr
    assert_no_secrets(result)

    c = first_machine(tmp_path / "signed", {**signed, "ASSETBUILD_REMOTE": f"s3://team/{tmp_path.name}-s"})
    assert c.run("run").returncode == 0
    d = c.clone("d")
    assert d.run("run").returncode == 0 and d.generated == []  # signed objects are accepted
    wrong = c.clone("e", {**d.env, "ASSETBUILD_REMOTE_SIGNING_KEY": "another-key"})
    wrong.env["ASSETBUILD_CACHE_DIR"] = str(wrong.root.parent / "e-cache")
    out = wrong.run("run")
    assert out.returncode == 0 and len(wrong.generated) == 3 and "signature is wrong" in out.stdout + out.stderr


@needs_weed
def test_push_off_uploads_nothing(weed: SeaweedFS, tmp_path: Path) -> None:
    a = first_machine(tmp_path, s3_env(weed, tmp_path, ASSETBUILD_REMOTE_PUSH="0"))
    result = a.run("run")
    assert result.returncode == 0 and len(a.generated) == 3
    assert objects_in(weed, tmp_path.name) == []


@needs_weed
def test_misconfigured_store_is_exit_2_before_any_work(weed: SeaweedFS, tmp_path: Path) -> None:
    cases = {
        "missing bucket": {**weed.env(), "ASSETBUILD_REMOTE": "s3://no-such-bucket/x"},
        "refused credentials": {**weed.env(), "AWS_SECRET_ACCESS_KEY": "wrong-" + SECRET_KEY,
                                "ASSETBUILD_REMOTE": "s3://team/x"},
        "unknown scheme": {"ASSETBUILD_REMOTE": "ftp://host/x"},
    }
    for n, (case, env) in enumerate(cases.items()):
        m = first_machine(tmp_path / str(n), env)
        result = m.run("run")
        assert result.returncode == 2, (case, result.stdout, result.stderr)
        assert m.generated == [] and not (m.root / "assets.lock").exists(), case
        assert "team store" in result.stderr or "scheme" in result.stderr, case
        assert SECRET_KEY not in result.stdout + result.stderr


def test_http_backend_round_trip_with_a_bearer_token(dav: WebDAV, tmp_path: Path) -> None:
    env = {"ASSETBUILD_REMOTE": dav.url(tmp_path.name), "ASSETBUILD_REMOTE_TOKEN": TOKEN}
    a = first_machine(tmp_path, env)
    built = a.run("run")
    assert built.returncode == 0, built.stderr
    assert len(list((dav.folder / tmp_path.name).rglob("*.img"))) == 3
    b = a.clone("b")
    restored = b.run("run")
    assert restored.returncode == 0 and b.generated == []
    no_token = a.clone("c", {"ASSETBUILD_REMOTE": env["ASSETBUILD_REMOTE"]})
    refused = no_token.run("run")
    assert refused.returncode == 2 and "refused the credentials" in refused.stderr
    assert no_token.generated == []
    assert_no_secrets(built, restored, refused)


def test_folder_backend_round_trip(tmp_path: Path) -> None:
    store = tmp_path / "shared-store"
    a = first_machine(tmp_path, {"ASSETBUILD_REMOTE": str(store)})
    assert a.run("run").returncode == 0
    assert len(list(store.rglob("*.img"))) == 3
    b = a.clone("b")
    assert b.run("run").returncode == 0 and b.generated == []


@needs_weed
def test_store_killed_mid_build_the_build_finishes_with_one_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, so the store can be killed exactly when the first generation starts."""
    from assetbuild import generators
    from assetbuild.commands.run import run
    from assetbuild.events import Summary
    from assetbuild.generators.placeholder import PlaceholderGenerator
    from assetbuild.workspace import open_workspace

    server = SeaweedFS(tmp_path / "weed")
    try:
        for name, value in {**server.env(), "ASSETBUILD_REMOTE": "s3://team/outage"}.items():
            monkeypatch.setenv(name, value)
        root = tmp_path / "proj"
        root.mkdir()
        write_manifest(root, QUICKSTART)
        killed = threading.Event()

        class KillingGenerator(PlaceholderGenerator):
            def generate(self, request: Any, progress: Any) -> Any:
                if not killed.is_set():
                    server.kill()
                    killed.set()
                return super().generate(request, progress)

        monkeypatch.setattr(generators, "create", lambda settings: KillingGenerator())
        events = RecordingEvents()
        ws = open_workspace(str(root / "assets.toml"))
        code = run(ws, [], events, jobs=1, keep_going=False, frozen=False)
        assert killed.is_set()
        assert code == 0
        assert all((root / t).is_file() for t in TARGETS)
        assert len(events.warnings) == 1, events.warnings
        assert "team store s3://team/outage is unavailable" in events.warnings[0]
        assert "assetbuild push" in events.warnings[0]
        assert events.summary is not None and events.summary.generated == 3
        assert isinstance(events.summary, Summary)
    finally:
        server.stop()


class RecordingEvents:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.summary: Any = None

    def run_started(self, total: int, to_build: int) -> None: ...
    def asset_started(self, target: str) -> None: ...
    def asset_progress(self, target: str, progress: Any) -> None: ...
    def asset_finished(self, target: str, outcome: str, seconds: float) -> None: ...
    def asset_failed(self, target: str, failure: Any) -> None: ...

    def warning(self, text: str) -> None:
        self.warnings.append(text)

    def run_finished(self, summary: Any) -> None:
        self.summary = summary
