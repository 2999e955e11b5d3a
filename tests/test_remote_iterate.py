"""``explore`` and ``pick`` with a team store: candidates explored on one machine are fetched, verified,
on another instead of being generated again; what explore generates is pushed.

Each "machine" is its own project folder with its own local cache and placeholder log; they share only
the store (and, like a git clone, assets.toml and assets.lock). Real CLI subprocesses, real stores: a
folder, and SeaweedFS (S3) when its binary is installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port
from remote_servers import WebDAV
from test_remote_build import TOKEN, Machine, assert_no_secrets, first_machine, needs_weed, objects_in, s3_env

from assetbuild.remote.objects import decode, path_of
from assetbuild.testing.seaweedfs import SeaweedFS

pytestmark = pytest.mark.timeout(180)

HERO = "sprites/hero.png"


def label(seed: int) -> str:
    return f"{HERO} @ seed {seed}"


def output(result: object) -> str:
    return result.stdout + result.stderr  # type: ignore[attr-defined, no-any-return]


def candidate_image(m: Machine, seed: int) -> bytes:
    """The candidate's image as explore shows it on the contact sheet (the cache entry's bytes)."""
    return (m.root / ".assetbuild/explore" / HERO / f"seed-{seed}.png").read_bytes()


def store_objects(store: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in store.rglob("*.img")}


def cache_keys(m: Machine) -> set[str]:
    return {p.stem for p in Path(m.env["ASSETBUILD_CACHE_DIR"]).rglob("*.img")}


def folder_machines(tmp_path: Path, **extra: str) -> tuple[Machine, Path]:
    store = tmp_path / "shared-store"
    return first_machine(tmp_path, {"ASSETBUILD_REMOTE": str(store), **extra}), store


def test_explore_pushes_and_pick_on_another_machine_fetches_with_no_generation(tmp_path: Path) -> None:
    a, store = folder_machines(tmp_path)
    explored = a.run("explore", HERO, "--seeds", "11,12")
    assert explored.returncode == 0, output(explored)
    assert sorted(a.generated) == [label(11), label(12)]
    objects = store_objects(store)
    assert len(objects) == 2  # both uploaded before the command ended
    assert "candidates: 2 generated, 0 from the local cache, 0 from the team store" in explored.stdout
    assert "2 pushed" in explored.stdout

    b = a.clone("b")
    picked = b.run("pick", HERO, "12")
    assert picked.returncode == 0, output(picked)
    assert b.generated == []  # 0 generations: the teammate's candidate came from the store
    assert "restored" in picked.stdout
    assert (b.root / HERO).read_bytes() == candidate_image(a, 12)
    entry = json.loads((b.root / "assets.lock").read_text())["assets"][HERO]
    assert entry["seed"] == 12
    assert entry["key"] in objects  # the lock records the candidate's key, the store's object
    stored = decode(entry["key"], objects[entry["key"]], expected_hash=None, signing_key=None)
    assert stored.data == candidate_image(a, 12) and entry["hash"] == stored.hash
    assert entry["key"] in cache_keys(b)  # verified, then kept in b's local cache too
    assert "seed = 12" in (b.root / "assets.toml").read_text()


def test_explore_on_a_second_machine_fetches_what_the_first_made(tmp_path: Path) -> None:
    a, store = folder_machines(tmp_path)
    assert a.run("explore", HERO, "--seeds", "11,12").returncode == 0
    b = a.clone("b")
    result = b.run("explore", HERO, "--seeds", "11,12,13")
    assert result.returncode == 0, output(result)
    assert b.generated == [label(13)]  # 11 and 12 were fetched
    assert "candidates: 1 generated, 0 from the local cache, 2 from the team store" in result.stdout
    assert "1 pushed" in result.stdout
    assert len(store_objects(store)) == 3
    for seed in (11, 12):
        assert candidate_image(b, seed) == candidate_image(a, seed)
    again = b.run("explore", HERO, "--seeds", "11,12,13")
    assert again.returncode == 0 and b.generated == [label(13)]
    assert "candidates: 0 generated, 3 from the local cache, 0 from the team store" in again.stdout
    assert "0 pushed" in again.stdout


def test_push_off_uploads_no_candidate_and_the_teammate_cannot_pick_it(tmp_path: Path) -> None:
    a, store = folder_machines(tmp_path, ASSETBUILD_REMOTE_PUSH="0")
    result = a.run("explore", HERO, "--seeds", "11,12")
    assert result.returncode == 0, output(result)
    assert len(a.generated) == 2
    assert store_objects(store) == {}
    assert "none pushed (push is off)" in result.stdout
    b = a.clone("b")
    manifest = (b.root / "assets.toml").read_bytes()
    refused = b.run("pick", HERO, "12")
    assert refused.returncode == 2
    assert "not explored" in refused.stderr and "in neither the local cache nor the team store" in refused.stderr
    assert (b.root / "assets.toml").read_bytes() == manifest and not (b.root / "assets.lock").exists()
    assert b.generated == []


def test_local_only_candidates_are_pushed_when_the_store_lacks_them(tmp_path: Path) -> None:
    a, store = folder_machines(tmp_path)
    alone = a.run("explore", HERO, "--seeds", "11,12", ASSETBUILD_REMOTE="")  # before the store was set up
    assert alone.returncode == 0 and len(a.generated) == 2 and store_objects(store) == {}
    result = a.run("explore", HERO, "--seeds", "11,12")
    assert result.returncode == 0, output(result)
    assert len(a.generated) == 2  # nothing generated again
    assert "0 generated, 2 from the local cache" in result.stdout and "2 pushed" in result.stdout
    assert len(store_objects(store)) == 2
    b = a.clone("b")
    assert b.run("pick", HERO, "11").returncode == 0 and b.generated == []


def test_a_store_object_with_wrong_bytes_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    a, store = folder_machines(tmp_path)
    assert a.run("explore", HERO, "--seeds", "11").returncode == 0
    [(key, raw)] = store_objects(store).items()
    (store / path_of(key)).write_bytes(raw[:-10] + b"X" * 10)  # same header, other bytes

    b = a.clone("b")
    manifest = (b.root / "assets.toml").read_bytes()
    refused = b.run("pick", HERO, "11")
    assert refused.returncode == 2, output(refused)
    assert f"team store object {key} refused" in output(refused)
    assert "not explored" in refused.stderr
    assert key not in cache_keys(b)  # nothing written anywhere
    assert (b.root / "assets.toml").read_bytes() == manifest
    assert not (b.root / HERO).exists() and not (b.root / "assets.lock").exists()
    assert b.generated == []

    explored = b.run("explore", HERO, "--seeds", "11")
    assert explored.returncode == 0, output(explored)
    assert b.generated == [label(11)]  # refused, so generated, as a build does
    assert f"team store object {key} refused" in output(explored)
    assert candidate_image(b, 11) == candidate_image(a, 11)


def test_an_unreachable_store_is_a_warning_and_explore_and_pick_work_locally(tmp_path: Path) -> None:
    a = first_machine(tmp_path, {"ASSETBUILD_REMOTE": f"http://127.0.0.1:{free_port()}/nothing"})
    explored = a.run("explore", HERO, "--seeds", "11,12")
    assert explored.returncode == 0, output(explored)
    assert len(a.generated) == 2
    text = output(explored)
    assert text.count("is unavailable") == 1  # one warning naming the store, not one per candidate
    assert "explore the same seeds again" in text  # what was not pushed, and how to push it later
    picked = a.run("pick", HERO, "12")
    assert picked.returncode == 0, output(picked)
    assert len(a.generated) == 2  # restored from the local cache
    refused = a.run("pick", HERO, "13")
    assert refused.returncode == 2 and "not explored" in refused.stderr


def test_a_misconfigured_store_is_exit_2_before_any_work(tmp_path: Path) -> None:
    a = first_machine(tmp_path, {"ASSETBUILD_REMOTE": "ftp://host/x"})
    explored = a.run("explore", HERO, "--seeds", "11")
    assert explored.returncode == 2 and "scheme" in explored.stderr
    assert a.generated == [] and not (a.root / ".assetbuild/explore").exists()
    manifest = (a.root / "assets.toml").read_bytes()
    picked = a.run("pick", HERO, "11", "--generate")
    assert picked.returncode == 2 and "scheme" in picked.stderr
    assert a.generated == [] and (a.root / "assets.toml").read_bytes() == manifest


@needs_weed
def test_explore_and_pick_through_an_s3_store(weed: SeaweedFS, tmp_path: Path) -> None:
    a = first_machine(tmp_path, s3_env(weed, tmp_path))
    explored = a.run("explore", HERO, "--seeds", "21,22")
    assert explored.returncode == 0, output(explored)
    assert len(objects_in(weed, tmp_path.name)) == 2
    b = a.clone("b")
    picked = b.run("pick", HERO, "22")
    assert picked.returncode == 0, output(picked)
    assert b.generated == []
    assert (b.root / HERO).read_bytes() == candidate_image(a, 22)
    fetched = b.run("explore", HERO, "--seeds", "21,22")
    assert fetched.returncode == 0 and b.generated == []
    assert "0 generated, 1 from the local cache, 1 from the team store" in fetched.stdout
    assert_no_secrets(explored, picked, fetched)


@pytest.fixture(scope="module")
def webdav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDAV]:
    server = WebDAV(tmp_path_factory.mktemp("webdav"), TOKEN)
    yield server
    server.stop()


def test_explore_and_pick_through_an_http_store_with_a_token(webdav: WebDAV, tmp_path: Path) -> None:
    env = {"ASSETBUILD_REMOTE": webdav.url(tmp_path.name), "ASSETBUILD_REMOTE_TOKEN": TOKEN}
    a = first_machine(tmp_path, env)
    explored = a.run("explore", HERO, "--seeds", "31,32")
    assert explored.returncode == 0, output(explored)
    assert len(list((webdav.folder / tmp_path.name).rglob("*.img"))) == 2
    b = a.clone("b")
    picked = b.run("pick", HERO, "31")
    assert picked.returncode == 0, output(picked)
    assert b.generated == [] and (b.root / HERO).read_bytes() == candidate_image(a, 31)
    # Local cache first: exploring again reads no image from the store and sends none to it; it only
    # asks (HEAD) whether the store has each candidate, to push those it lacks.
    webdav.requests.clear()
    again = a.run("explore", HERO, "--seeds", "31,32")
    assert again.returncode == 0 and len(a.generated) == 2
    methods = sorted(r.split()[0] for r in webdav.requests if r.endswith(".img"))
    assert methods == ["HEAD", "HEAD"], webdav.requests
    assert_no_secrets(explored, picked, again)


def test_the_pinned_seeds_candidate_must_be_the_image_the_lock_records(tmp_path: Path) -> None:
    """A whole, self-consistent object under the key the lock records, but with another image (a forged or
    mixed-up upload), is refused for the candidate of the pinned seed as a build refuses it."""
    from assetbuild.remote.objects import encode

    a, store = folder_machines(tmp_path)
    assert a.run("run", HERO).returncode == 0  # pushed
    entry = json.loads((a.root / "assets.lock").read_text())["assets"][HERO]
    seed = entry["seed"]  # the pinned seed: its candidate is the asset's own image, under the lock's key
    assert a.run("run", "ui/icon_sword.png").returncode == 0
    other = (a.root / "ui/icon_sword.png").read_bytes()
    (store / path_of(entry["key"])).write_bytes(encode(entry["key"], other, seed=seed, model="m", signing_key=None))

    b = a.clone("b")
    picked = b.run("pick", HERO, str(seed))
    assert picked.returncode == 2 and "not the one assets.lock records" in output(picked)
    assert entry["key"] not in cache_keys(b) and not (b.root / HERO).exists() and b.generated == []
    result = b.run("explore", HERO, "--seeds", str(seed))
    assert result.returncode == 0, output(result)
    assert f"team store object {entry['key']} refused" in output(result)
    assert "not the one assets.lock records" in output(result)
    assert b.generated == [label(seed)]  # generated, as a build would
    assert "0 from the team store" in result.stdout
