"""push, pull, status --remote and gc --remote against real stores (a folder, SeaweedFS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import write_manifest
from helpers import QUICKSTART, TARGETS
from remote_servers import SECRET_KEY, SeaweedFS
from test_remote_build import Machine, first_machine, needs_weed, objects_in


def folder_machine(tmp_path: Path, **env: str) -> tuple[Machine, Path]:
    store = tmp_path / "store"
    return first_machine(tmp_path, {"ASSETBUILD_REMOTE": str(store), **env}), store


def test_push_uploads_what_a_push_off_build_made(tmp_path: Path) -> None:
    a, store = folder_machine(tmp_path, ASSETBUILD_REMOTE_PUSH="0")
    assert a.run("run").returncode == 0
    assert list(store.rglob("*.img")) == []
    refused = a.run("push")
    assert refused.returncode == 2 and "ASSETBUILD_REMOTE_PUSH" in refused.stderr
    a.env.pop("ASSETBUILD_REMOTE_PUSH")
    pushed = a.run("push", "--json")
    assert pushed.returncode == 0, pushed.stderr
    events = [json.loads(line) for line in pushed.stdout.splitlines()]
    assert sorted(e["target"] for e in events if e["event"] == "asset_finished") == sorted(TARGETS)
    assert events[-1]["event"] == "transfer_finished" and events[-1]["counts"] == {"uploaded": 3}
    assert len(list(store.rglob("*.img"))) == 3
    again = a.run("push")
    assert again.returncode == 0 and "3 present" in again.stdout  # write-once: nothing rewritten


def test_push_from_committed_images_when_the_local_cache_is_empty(tmp_path: Path) -> None:
    a, store = folder_machine(tmp_path, ASSETBUILD_REMOTE_PUSH="0")
    assert a.run("run").returncode == 0
    b = Machine(a.root, {"ASSETBUILD_REMOTE": str(store), "ASSETBUILD_CACHE_DIR": str(tmp_path / "empty")})
    pushed = b.run("push")
    assert pushed.returncode == 0 and "3 uploaded" in pushed.stdout, pushed.stdout + pushed.stderr


def test_pull_restores_missing_targets_but_never_a_modified_file(tmp_path: Path) -> None:
    a, store = folder_machine(tmp_path)
    assert a.run("run").returncode == 0
    b = a.clone("b")
    (b.root / "ui").mkdir()
    (b.root / "ui/icon_sword.png").write_bytes(b"my own drawing")
    pulled = b.run("pull")
    assert pulled.returncode == 1  # one target could not be restored: the user's file is kept
    assert (b.root / "ui/icon_sword.png").read_bytes() == b"my own drawing"
    assert "not overwriting" in pulled.stdout
    for target in ("sprites/hero.png", "sprites/hero_attack.png"):
        assert (b.root / target).read_bytes() == (a.root / target).read_bytes()
    assert "2 pulled" in pulled.stdout
    assert b.generated == []
    status = b.run("status", "--json")
    states = {json.loads(line)["target"]: json.loads(line)["state"] for line in status.stdout.splitlines()}
    assert states["sprites/hero.png"] == "fresh"


def test_status_remote_says_which_assets_the_store_holds(tmp_path: Path) -> None:
    a, store = folder_machine(tmp_path)
    assert a.run("run").returncode == 0
    key = json.loads((a.root / "assets.lock").read_text())["assets"]["ui/icon_sword.png"]["key"]
    (store / key[:2] / f"{key}.img").unlink()
    shown = a.run("status", "--remote", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = {row["target"]: row["remote"] for row in map(json.loads, shown.stdout.splitlines())}
    assert rows == {"sprites/hero.png": True, "sprites/hero_attack.png": True, "ui/icon_sword.png": False}
    text = a.run("status", "--remote")
    assert "missing   ui/icon_sword.png" in text.stdout and "2 of 3 in" in text.stdout


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


def test_gc_remote_needs_a_scope_and_keeps_every_ref_and_recent_objects(tmp_path: Path) -> None:
    a, store = folder_machine(tmp_path)
    git(a.root, "init", "-q", "-b", "main")
    assert a.run("run").returncode == 0
    git(a.root, "add", "assets.toml", "assets.lock")
    git(a.root, "commit", "-qm", "art")
    git(a.root, "branch", "keep-me")
    old = json.loads((a.root / "assets.lock").read_text())["assets"]["ui/icon_sword.png"]["key"]
    write_manifest(a.root, QUICKSTART.replace("a steel sword icon", "a golden sword icon"))
    assert a.run("run").returncode == 0  # main's lock now needs another icon; keep-me still needs `old`
    git(a.root, "commit", "-qam", "gold")
    assert len(list(store.rglob("*.img"))) == 4

    unscoped = a.run("gc", "--remote")
    assert unscoped.returncode == 2 and "explicit scope" in unscoped.stderr
    recent = a.run("gc", "--remote", "--keep-ref", "main", "--dry-run")
    assert recent.returncode == 0 and "would remove 0 object" in recent.stdout  # all within the grace period
    dry = a.run("gc", "--remote", "--keep-ref", "main", "--grace-days", "0", "--dry-run")
    assert f"would remove {old}" in dry.stdout and len(list(store.rglob("*.img"))) == 4
    kept = a.run("gc", "--remote", "--all-refs", "--grace-days", "0")
    assert kept.returncode == 0 and "removed 0 object" in kept.stdout  # branch keep-me still needs it
    git(a.root, "branch", "-D", "keep-me")
    gone = a.run("gc", "--remote", "--all-refs", "--grace-days", "0", "--json")
    assert gone.returncode == 0, gone.stderr
    events = [json.loads(line) for line in gone.stdout.splitlines()]
    assert [e["key"] for e in events if e["event"] == "object"] == [old]
    assert not (store / old[:2] / f"{old}.img").exists() and len(list(store.rglob("*.img"))) == 3


@needs_weed
def test_two_processes_pushing_the_same_key_both_succeed_and_the_object_is_intact(
        weed: SeaweedFS, tmp_path: Path) -> None:  # noqa: F811
    """Two machines that generated different bytes for the same keys push at once: one object wins per key,
    whole, and both pushes exit 0; the loser's image is not mixed in."""
    env = {**weed.env(), "ASSETBUILD_REMOTE": f"s3://team/{tmp_path.name}", "ASSETBUILD_REMOTE_PUSH": "0"}
    a = first_machine(tmp_path / "x", env)
    b = first_machine(tmp_path / "y", env)
    assert a.run("run").returncode == 0 and b.run("run").returncode == 0
    # Make b's images differ (another GPU): rewrite its cache entries with other bytes, same keys.
    from assetbuild.cache import Cache

    cache_b = Cache(Path(b.env["ASSETBUILD_CACHE_DIR"]))
    for entry in list(cache_b.entries()):
        hit = cache_b.get(entry.key)
        assert hit is not None
        cache_b.put(entry.key, hit.data + b"other-gpu", seed=hit.seed, model=hit.model)
    push_env = {k: v for k, v in env.items() if k != "ASSETBUILD_REMOTE_PUSH"}
    procs = [subprocess.Popen([sys.executable, "-m", "assetbuild", "push"], cwd=m.root,
                              env={**os.environ, **push_env, "ASSETBUILD_CACHE_DIR": m.env["ASSETBUILD_CACHE_DIR"]},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in (a, b)]
    results = [(p.wait(120), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, out + err
        assert SECRET_KEY not in out + err
    assert len(objects_in(weed, tmp_path.name)) == 3
    # Every object is whole and is one machine's image, never a mix: a fresh clone of either restores it.
    from assetbuild.remote.settings import resolve
    from assetbuild.remote.store import Store

    os.environ.update(env)
    try:
        store = Store(resolve(None, True, tmp_path) or pytest.fail("no settings"))
    finally:
        for name in env:
            os.environ.pop(name, None)
    from assetbuild.remote.objects import decode

    for entry in Cache(Path(a.env["ASSETBUILD_CACHE_DIR"])).entries():
        raw = store.get(f"{entry.key[:2]}/{entry.key}.img")
        assert raw is not None
        data = decode(entry.key, raw, expected_hash=None, signing_key=None).data
        mine, theirs = Cache(Path(a.env["ASSETBUILD_CACHE_DIR"])).get(entry.key), cache_b.get(entry.key)
        assert mine is not None and theirs is not None and data in (mine.data, theirs.data)


@needs_weed
def test_concurrent_create_of_one_key_writes_exactly_once(weed: SeaweedFS, tmp_path: Path,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from assetbuild.remote.settings import resolve
    from assetbuild.remote.store import Store

    for name, value in weed.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ASSETBUILD_REMOTE", f"s3://team/{tmp_path.name}")
    settings = resolve(None, True, tmp_path)
    assert settings is not None
    store = Store(settings)
    start = threading.Barrier(8)
    results: dict[int, bool] = {}

    def write(n: int) -> None:
        start.wait()
        results[n] = store.create("ab/abcdef.img", bytes([n]) * 200_000)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, created in results.items() if created]
    assert len(winners) == 1
    assert store.get("ab/abcdef.img") == bytes([winners[0]]) * 200_000


def test_gc_remote_never_touches_another_projects_objects_under_a_deeper_prefix(tmp_path: Path) -> None:
    """A store shared by prefix: project B under store/b, project A at store. A's gc sees only its own."""
    store = tmp_path / "store"
    b = first_machine(tmp_path / "other", {"ASSETBUILD_REMOTE": str(store / "b")})
    assert b.run("run").returncode == 0
    theirs = sorted(store.rglob("*.img"))
    assert len(theirs) == 3
    a, _ = folder_machine(tmp_path)
    git(a.root, "init", "-q", "-b", "main")
    assert a.run("run").returncode == 0
    git(a.root, "add", "assets.toml", "assets.lock")
    git(a.root, "commit", "-qm", "art")
    swept = a.run("gc", "--remote", "--keep-ref", "main", "--grace-days", "0")
    assert swept.returncode == 0, swept.stderr
    assert all(path.exists() for path in theirs)


def test_gc_remote_all_refs_stops_at_a_lock_it_cannot_read(tmp_path: Path) -> None:
    a, store = folder_machine(tmp_path)
    git(a.root, "init", "-q", "-b", "main")
    assert a.run("run").returncode == 0
    git(a.root, "add", "assets.toml", "assets.lock")
    git(a.root, "commit", "-qm", "art")
    git(a.root, "checkout", "-q", "-b", "broken")
    (a.root / "assets.lock").write_text("{ not json", encoding="utf-8")
    git(a.root, "commit", "-qam", "a lock git cannot give back as JSON")
    git(a.root, "checkout", "-q", "main")
    result = a.run("gc", "--remote", "--all-refs", "--grace-days", "0", "--dry-run")
    assert result.returncode == 2 and "broken" in result.stderr and "would remove" not in result.stdout


def test_grace_periods_refuse_values_that_would_switch_them_off(tmp_path: Path) -> None:
    a, _ = folder_machine(tmp_path)
    for args in (("gc", "--keep-days", "nan"), ("gc", "--keep-days", "-1"),
                 ("gc", "--remote", "--all-refs", "--grace-days", "nan"), ("gc", "--keep-days", "inf")):
        result = a.run(*args, "--dry-run")
        assert result.returncode == 2 and "number of days" in result.stderr, (args, result.stderr)


def test_push_never_uploads_cache_bytes_that_are_not_the_locked_image(tmp_path: Path) -> None:
    a, store = folder_machine(tmp_path, ASSETBUILD_REMOTE_PUSH="0")
    assert a.run("run").returncode == 0
    entry = json.loads((a.root / "assets.lock").read_text())["assets"][TARGETS[0]]
    cache = Path(a.env["ASSETBUILD_CACHE_DIR"])
    cached = next(cache.rglob(f"{entry['key']}.img"))
    other = tmp_path / "other.img"
    b = first_machine(tmp_path / "b", {})  # a cache entry of the same format, other bytes
    assert b.run("run").returncode == 0
    donor = next(p for p in Path(b.env["ASSETBUILD_CACHE_DIR"]).rglob("*.img") if p.name != cached.name)
    other.write_bytes(donor.read_bytes())
    os.replace(other, cached)  # as a --rebuild followed by `git checkout assets.lock` leaves it
    a.env.pop("ASSETBUILD_REMOTE_PUSH")
    assert a.run("push").returncode == 0
    clone = a.clone("fresh")
    pulled = clone.run("pull", TARGETS[0])
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr  # the store holds the locked image
    assert json.loads((a.root / "assets.lock").read_text())["assets"][TARGETS[0]]["hash"] == entry["hash"]


def test_blank_or_malformed_store_urls_are_configuration_errors(tmp_path: Path) -> None:
    a, _ = folder_machine(tmp_path)
    assert a.run("run").returncode == 0
    blank = a.run("push", ASSETBUILD_REMOTE="  ")
    assert blank.returncode == 2 and "no team store" in blank.stderr
    assert not any(p.suffix == ".img" for p in a.root.rglob("*"))  # the project folder is not a store
    for url in ("http://host:99999/x", "http://[::1/x"):
        bad = a.run("push", ASSETBUILD_REMOTE=url)
        assert bad.returncode == 2 and "bug" not in bad.stderr, (url, bad.stderr)
    secret = a.run("push", ASSETBUILD_REMOTE="http://127.0.0.1:1/p?sig=TOPSECRET123")
    assert "TOPSECRET123" not in secret.stdout + secret.stderr
