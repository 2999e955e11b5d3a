"""The content-addressed cache: entries, verification, restores instead of generations, gc, --frozen."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest
from helpers import QUICKSTART, TARGETS, generations

from assetbuild.cache import Cache, CorruptEntry
from assetbuild.keys import hash_bytes

HERO, ATTACK, ICON = TARGETS


# --- the store itself ---------------------------------------------------------------------------------


def test_put_get_round_trip_and_metadata(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    digest = cache.put("ab" * 16, b"\x89PNG fake bytes", seed=7, model="m")
    hit = cache.get("ab" * 16)
    assert hit is not None
    assert (hit.data, hit.hash, hit.seed, hit.model) == (b"\x89PNG fake bytes", digest, 7, "m")
    assert digest == hash_bytes(b"\x89PNG fake bytes")
    assert cache.get("cd" * 16) is None


def synced_inodes(monkeypatch: pytest.MonkeyPatch) -> set[tuple[int, int]]:
    """(device, inode) of every file or folder fsynced from now on (the real fsync still runs)."""
    seen: set[tuple[int, int]] = set()
    real = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        seen.add((st.st_dev, st.st_ino))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


@pytest.mark.parametrize("later", [False, True], ids=["now", "later"])
def test_entries_reach_the_disk_before_put_returns_or_by_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               later: bool) -> None:
    """Issue 16.4: a build's entry is flushed in the background (its image is written durably to the
    target anyway); ``flush`` waits for it. Every other put flushes before returning."""
    synced = synced_inodes(monkeypatch)
    cache = Cache(tmp_path / "cache")
    keys = [f"{n:02x}" * 16 for n in (0xab, 0xcd, 0xab + 1)]
    for n, key in enumerate(keys):
        cache.put(key, b"\x89PNG image %d" % n, seed=n, model=None, sync_later=later)
    cache.flush()
    for n, key in enumerate(keys):
        path = cache.path_of(key)
        assert identity(path) in synced and identity(path.parent) in synced
        hit = cache.get(key)
        assert hit is not None and hit.data == b"\x89PNG image %d" % n


def test_flush_without_pending_entries_and_a_vanished_entry(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    cache.flush()  # nothing was put: returns at once
    key = "ef" * 16
    cache.put(key, b"\x89PNG gone soon", seed=None, model=None, sync_later=True)
    cache.remove(cache.path_of(key))  # e.g. gc from another project sharing the cache
    cache.flush()  # no error: nothing left to flush
    assert cache.get(key) is None


def test_damaged_entry_is_removed_and_never_returned(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    key = "ab" * 16
    cache.put(key, b"0123456789" * 100, seed=1, model=None)
    path = cache.path_of(key)
    raw = path.read_bytes()
    path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))  # one flipped byte
    with pytest.raises(CorruptEntry):
        cache.get(key)
    assert not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw[: len(raw) // 2])  # a truncated entry (as a non-atomic copy could leave)
    with pytest.raises(CorruptEntry):
        cache.get(key)
    assert cache.get(key) is None


_WRITER = """
import sys
from pathlib import Path
from assetbuild.cache import Cache
cache = Cache(Path(sys.argv[1]))
payload = sys.argv[2].encode() * 20000
for round in range(40):
    for k in range(8):
        cache.put(f"{k:02d}" * 16, payload, seed=round, model=sys.argv[2])
"""


def test_two_processes_sharing_a_cache_only_ever_see_whole_entries(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(folder), name]) for name in ("A", "B")]
    cache = Cache(folder)
    seen = 0
    while any(w.poll() is None for w in writers):
        for k in range(8):
            hit = cache.get(f"{k:02d}" * 16)  # raises CorruptEntry on a torn entry
            if hit is not None:
                seen += 1
                assert hit.data in (b"A" * 20000, b"B" * 20000)
                assert hit.model == hit.data[:1].decode()
    assert [w.wait() for w in writers] == [0, 0]
    assert seen > 0
    assert not list(folder.glob("*/.*.tmp"))


# --- restores instead of generations (through the real CLI) -------------------------------------------


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root.parent / f"{root.name}.log"

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = run_cli(self.root, *args, env={"ASSETBUILD_PLACEHOLDER_LOG": str(self.log), **(env or {})})
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def generated(self) -> list[str]:
        names = generations(self.log)
        self.log.unlink(missing_ok=True)
        return names

    def edit(self, old: str, new: str) -> None:
        manifest = self.root / "assets.toml"
        text = manifest.read_text(encoding="utf-8")
        assert old in text
        manifest.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def proj(project: Path) -> Project:
    write_manifest(project, QUICKSTART)
    built = Project(project)
    assert built.run().returncode == 0
    assert sorted(built.generated()) == sorted(TARGETS)
    return built


def test_reverting_a_prompt_restores_instead_of_generating(proj: Project) -> None:
    before = (proj.root / ICON).read_bytes()
    proj.edit("a steel sword icon", "a bronze sword icon")
    assert proj.run().returncode == 0
    assert proj.generated() == [ICON]
    proj.edit("a bronze sword icon", "a steel sword icon")
    result = proj.run()
    assert result.returncode == 0
    assert proj.generated() == []
    assert "restored" in result.stdout
    assert (proj.root / ICON).read_bytes() == before


def test_clean_then_build_restores_everything(proj: Project) -> None:
    assert proj.run("clean").returncode == 0
    assert not any((proj.root / t).exists() for t in TARGETS)
    result = proj.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert proj.generated() == []
    assert all((proj.root / t).is_file() for t in TARGETS)
    assert "3 restored" in result.stdout


def test_renaming_a_target_costs_no_generation(proj: Project) -> None:
    proj.edit('[assets."ui/icon_sword.png"]', '[assets."ui/sword.png"]')
    result = proj.run()
    assert result.returncode == 0
    assert proj.generated() == []
    assert (proj.root / "ui/sword.png").read_bytes() == (proj.root / ICON).read_bytes()


def test_switching_git_branches_costs_no_generation(proj: Project) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]

    def sh(*args: str) -> None:
        subprocess.run([*git, *args], cwd=proj.root, check=True, capture_output=True)

    sh("init", "-q", "-b", "main")
    sh("add", "-A")
    sh("commit", "-qm", "main art")
    sh("checkout", "-qb", "bigger-hero")
    proj.edit("seed = 42", "seed = 43")
    assert proj.run().returncode == 0
    assert sorted(proj.generated()) == sorted([HERO, ATTACK])  # the attack pose reads the hero
    sh("commit", "-qam", "new hero")
    for branch in ("main", "bigger-hero", "main"):
        sh("checkout", "-q", branch)
        result = proj.run()
        assert result.returncode == 0
        assert proj.generated() == [], branch


def test_a_damaged_cache_entry_is_regenerated_with_a_warning(proj: Project) -> None:
    lock = json.loads((proj.root / "assets.lock").read_text())
    key = lock["assets"][ICON]["key"]
    entry = Cache(proj.root / ".assetbuild" / "cache").path_of(key)
    entry.write_bytes(entry.read_bytes()[:-10])
    (proj.root / ICON).unlink()
    result = proj.run()
    assert result.returncode == 0
    assert proj.generated() == [ICON]
    assert "damaged" in result.stdout
    assert hash_bytes((proj.root / ICON).read_bytes()) == json.loads(
        (proj.root / "assets.lock").read_text())["assets"][ICON]["hash"]


# --- --frozen -------------------------------------------------------------------------------------------


def test_frozen_fails_generating_nothing_and_says_why(proj: Project) -> None:
    proj.edit("steps = 20", "steps = 30")
    before = {t: (proj.root / t).read_bytes() for t in TARGETS}
    lock_before = (proj.root / "assets.lock").read_bytes()
    result = proj.run("--frozen")
    assert result.returncode == 1
    assert proj.generated() == []
    for target in TARGETS:
        assert target in result.stdout
    assert "steps: 20 -> 30" in result.stdout
    assert {t: (proj.root / t).read_bytes() for t in TARGETS} == before
    assert (proj.root / "assets.lock").read_bytes() == lock_before


def test_frozen_restores_what_the_cache_has(proj: Project) -> None:
    proj.edit("a steel sword icon", "a bronze sword icon")
    assert proj.run().returncode == 0
    assert proj.generated() == [ICON]
    proj.edit("a bronze sword icon", "a steel sword icon")
    result = proj.run("--frozen")
    assert result.returncode == 0, result.stdout
    assert proj.generated() == []


def test_frozen_uses_a_shared_cache_from_the_environment(proj: Project, tmp_path: Path) -> None:
    shared = tmp_path / "ci-cache"
    shutil.copytree(proj.root / ".assetbuild" / "cache", shared)
    shutil.rmtree(proj.root / ".assetbuild")
    for target in TARGETS:
        (proj.root / target).unlink()
    assert proj.run("--frozen").returncode == 1  # no cache: nothing can be restored
    result = proj.run("--frozen", env={"ASSETBUILD_CACHE_DIR": str(shared)})
    assert result.returncode == 0, result.stdout
    assert proj.generated() == []
    assert "3 restored" in result.stdout


# --- gc -------------------------------------------------------------------------------------------------


def cache_keys(root: Path) -> set[str]:
    return {entry.key for entry in Cache(root / ".assetbuild" / "cache").entries()}


def lock_keys(root: Path) -> set[str]:
    return {e["key"] for e in json.loads((root / "assets.lock").read_text())["assets"].values()}


def test_gc_keeps_what_the_lock_needs_and_dry_run_removes_nothing(proj: Project) -> None:
    proj.edit("a steel sword icon", "a bronze sword icon")
    assert proj.run().returncode == 0
    assert len(cache_keys(proj.root)) == 4
    dry = proj.run("gc", "--dry-run")
    assert dry.returncode == 0
    assert "would remove 0 entries" in dry.stdout  # used today: kept by the default 14-day grace period
    dry = proj.run("gc", "--dry-run", "--keep-days", "0")
    assert "would remove 1 entry" in dry.stdout
    assert re.search(r"\d+(\.\d)? (B|KiB)", dry.stdout)
    assert len(cache_keys(proj.root)) == 4
    assert proj.run("gc", "--keep-days", "0").returncode == 0
    assert cache_keys(proj.root) == lock_keys(proj.root)


def test_gc_keep_days_keeps_recently_used_entries(proj: Project) -> None:
    proj.edit("a steel sword icon", "a bronze sword icon")
    assert proj.run().returncode == 0
    old = cache_keys(proj.root) - lock_keys(proj.root)
    assert proj.run("gc", "--keep-days", "1").returncode == 0
    assert old <= cache_keys(proj.root)
    stale = Cache(proj.root / ".assetbuild" / "cache").path_of(old.pop())
    long_ago = time.time() - 3 * 86400
    os.utime(stale, (long_ago, long_ago))
    assert proj.run("gc", "--keep-days", "1").returncode == 0
    assert cache_keys(proj.root) == lock_keys(proj.root)


def test_gc_keep_ref_keeps_another_branch_lock(proj: Project) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "art"]):
        subprocess.run([*git, *args], cwd=proj.root, check=True, capture_output=True)
    main_keys = lock_keys(proj.root)
    proj.edit("steps = 20", "steps = 21")
    assert proj.run().returncode == 0
    assert proj.run("gc", "--keep-ref", "main", "--keep-days", "0").returncode == 0
    assert cache_keys(proj.root) == main_keys | lock_keys(proj.root)
    bad = proj.run("gc", "--keep-ref", "no-such-branch")
    assert bad.returncode == 2
    assert "no-such-branch" in bad.stderr
    assert proj.run("gc", "--keep-days", "0").returncode == 0
    assert cache_keys(proj.root) == lock_keys(proj.root)



def test_gc_removes_abandoned_temporary_files_but_not_fresh_ones(proj: Project) -> None:
    state = proj.root / ".assetbuild"
    shard = next(p for p in (state / "cache").iterdir() if p.is_dir())
    (state / "tmp").mkdir(exist_ok=True)
    old = [shard / ".abc.img.x1.tmp", state / "tmp" / ".hero.png.x2.tmp"]
    new = [shard / ".def.img.x3.tmp", state / "tmp" / ".hero.png.x4.tmp"]
    long_ago = time.time() - 2 * 3600
    for path in old + new:
        path.write_bytes(b"partial")
    for path in old:
        os.utime(path, (long_ago, long_ago))
    assert proj.run("gc").returncode == 0
    assert [p.exists() for p in old] == [False, False]
    assert [p.exists() for p in new] == [True, True]  # a live writer may still be using them
