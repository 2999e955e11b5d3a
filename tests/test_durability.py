"""Which fsyncs a build makes, and when (issue 16: each one has a reason; see docs/benchmarks.md).

Per generated asset: the intent (before the rename), the target's temporary file and its folder (before
the lock commit), and the lock's commit (its journal or a rewrite). Cache entries are copies of targets
made durable that way, so a build flushes them once, at its end, instead of two fsyncs each on the way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import write_manifest

from assetbuild import cache as cache_module
from assetbuild.cache import Cache
from assetbuild.cli import main


def record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every fsync from now on, as the path of what it flushed."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fsynced files")


def test_a_build_flushes_its_cache_entries_once_after_every_image_is_in_place(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("ASSETBUILD_CACHE_DIR", str(cache_dir))
    write_manifest(project, '[server]\nurl = "placeholder"\n[defaults]\nwidth = 64\nheight = 64\n'
                   + "".join(f'[assets."art/a{n}.png"]\nprompt = "asset {n}"\nseed = {n}\n' for n in range(6)))
    seen = record_fsyncs(monkeypatch)
    monkeypatch.chdir(project)
    assert main(["run", "-q", "-n", "2"]) == 0
    entries = sorted(str(p) for p in cache_dir.glob("*/*.img"))
    assert len(entries) == 6
    shards = {str(p.parent) for p in cache_dir.glob("*/*.img")}
    cache_syncs = [i for i, path in enumerate(seen)
                   if path.startswith(str(cache_dir)) and (path.endswith(".img") or path in shards or ".img." in path)]
    # Each entry once (and its folder), not the temporary file plus folder on the way...
    assert sorted(seen[i] for i in cache_syncs if seen[i].endswith(".img")) == entries
    # ...and all of them after the last image was placed (a copy flushed late loses nothing on a crash).
    target_syncs = [i for i, path in enumerate(seen) if re.search(r"/\.assetbuild/tmp/\.a\d\.png\.", path)]
    assert len(target_syncs) == 6
    assert min(cache_syncs) > max(target_syncs)
    # Per image: intent, target file, target folder; the lock (6 commits of a small lock: rewrites).
    # (Intents recorded at the same moment share one fsync: at most one per image.)
    assert 1 <= sum(1 for path in seen if path.endswith("intents.jsonl")) <= 6
    assert 1 <= sum(1 for path in seen if path == str(project / "art")) <= 6  # (shared when renames meet)


def test_few_deferred_entries_are_flushed_one_by_one_and_many_with_one_syncfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole: list[Path] = []
    monkeypatch.setattr(cache_module, "_sync_filesystem", whole.append)
    cache = Cache(tmp_path / "cache")
    cache.defer_sync()
    seen = record_fsyncs(monkeypatch)
    for n in range(3):
        cache.put(f"{n:032x}", b"image %d" % n, seed=n, model=None)
    assert seen == []  # nothing flushed while building
    cache.sync()
    entries = [str(cache.path_of(f"{n:032x}")) for n in range(3)]
    assert sorted(seen) == sorted([*entries, str(tmp_path / "cache" / "00")])
    seen.clear()
    cache.sync()
    assert seen == [] and whole == []  # nothing new: nothing to flush
    for n in range(cache_module._LISTED_UNSYNCED + 1):
        cache.put(f"{n + 100:032x}", b"image %d" % n, seed=n, model=None)
    cache.sync()
    assert seen == [] and whole == [tmp_path / "cache"]


def test_a_cache_not_deferred_flushes_each_entry_as_it_is_written(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Candidates (explore, pick) live only in the cache: their entries are durable at once."""
    cache = Cache(tmp_path / "cache")
    seen = record_fsyncs(monkeypatch)
    cache.put("0" * 32, b"only copy", seed=1, model=None)
    assert len(seen) == 2 and seen[1] == str(tmp_path / "cache" / "00")  # the temporary file, then the folder


def test_after_a_power_loss_that_cost_the_cache_entry_the_image_is_recorded_not_generated_again(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state a power loss can leave between an image's rename and its lock commit, now that cache
    entries are flushed at the end of the run: the image and its intent are on disk, the lock entry and
    the cache entry are not. The next run records the image (seed and model from the intent) and puts it
    back into the cache; it does not generate it again over the one that was made."""
    from helpers import generations

    from assetbuild.generators.placeholder import LOG_ENV
    from assetbuild.lock import Lock

    cache_dir = tmp_path / "cache"
    log = tmp_path / "generations.log"
    monkeypatch.setenv("ASSETBUILD_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv(LOG_ENV, str(log))
    write_manifest(project, '[server]\nurl = "placeholder"\n[defaults]\nwidth = 64\nheight = 64\n'
                   '[assets."art/a.png"]\nprompt = "a"\nseed = -1\n[assets."art/b.png"]\nprompt = "b"\nseed = 2\n')
    monkeypatch.chdir(project)
    assert main(["run", "-q"]) == 0
    lock = Lock.load(project / "assets.lock")
    entry = lock.get("art/a.png")
    assert entry is not None and entry.seed is not None  # a random seed: only the lock (and intent) know it
    image = (project / "art" / "a.png").read_bytes()
    # The power loss: no lock entry, no cache entry, the intent the builder wrote before the rename.
    lock.commit("art/a.png", None)
    Cache(cache_dir).path_of(entry.key).unlink()
    intent = {"t": "art/a.png", "h": entry.hash, "k": entry.key, "s": entry.seed, "m": entry.model}
    (project / ".assetbuild" / "intents.jsonl").write_text(json.dumps(intent) + "\n")
    (project / ".assetbuild" / "noop.json").unlink(missing_ok=True)
    log.unlink()
    assert main(["run", "-q"]) == 0
    assert generations(log) == []  # recorded, not generated
    assert (project / "art" / "a.png").read_bytes() == image
    assert Lock.load(project / "assets.lock").get("art/a.png") == entry
    assert Cache(cache_dir).get(entry.key) is not None
    # An intent for other inputs (the manifest changed since) proves nothing about these: generated.
    lock = Lock.load(project / "assets.lock")
    lock.commit("art/a.png", None)
    Cache(cache_dir).path_of(entry.key).unlink()
    (project / ".assetbuild" / "intents.jsonl").write_text(json.dumps({**intent, "k": "f" * 32}) + "\n")
    assert main(["run", "-q"]) == 0
    assert generations(log) == ["art/a.png"]
    # ...but the image it replaced was kept in the cache under the key its intent named.
    kept = Cache(cache_dir).get("f" * 32)
    assert kept is not None and kept.data == image and kept.seed == entry.seed


def test_intents_covered_by_the_lock_leave_memory_and_prune_keeps_the_others(tmp_path: Path) -> None:
    from assetbuild.intents import Announced, Intents
    from assetbuild.lock import Lock, LockEntry

    state = tmp_path / ".assetbuild"
    intents = Intents(state / "intents.jsonl")
    intents.record("a.png", "a" * 32, Announced("1" * 32, 7, "m"))
    intents.record("b.png", "b" * 32, Announced("2" * 32, 8, "m"))
    lock = Lock(tmp_path / "assets.lock")
    lock.commit("a.png", LockEntry("1" * 32, "a" * 32, 7, "m", {}))
    intents.covered("a.png", "a" * 32)
    assert not intents.ours("a.png", "a" * 32) and intents.ours("b.png", "b" * 32)
    assert Intents(state / "intents.jsonl").ours("a.png", "a" * 32)  # still in the file until pruned
    intents.prune(lock, lambda target: {"a.png": "a" * 32, "b.png": "b" * 32}[target])
    reloaded = Intents(state / "intents.jsonl")
    assert not reloaded.ours("a.png", "a" * 32)
    assert reloaded.made_for("b.png", "b" * 32, "2" * 32) == Announced("2" * 32, 8, "m")


def resident_bytes(paths: list[Path]) -> dict[str, int]:
    """How many bytes of each file are in the kernel's page cache (util-linux's fincore)."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES,FILE", *map(str, paths)],
                         capture_output=True, text=True, check=True).stdout
    return {file: int(res) for res, file in (line.split(" ", 1) for line in out.splitlines())}


def on_tmpfs(path: Path) -> bool:
    """Whether ``path`` is on tmpfs, whose pages are its storage: the kernel never drops them on request."""
    found = subprocess.run(["findmnt", "--noheadings", "--output", "FSTYPE", "--target", str(path)],
                           capture_output=True, text=True, check=False).stdout.strip()
    return found == "tmpfs"


@pytest.mark.skipif(shutil.which("fincore") is None or not hasattr(os, "posix_fadvise"),
                    reason="needs Linux and util-linux's fincore (apt-get install util-linux)")
def test_a_builds_images_leave_the_page_cache_once_written(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Targets (synced) and cache entries (synced at the run's end) are dropped from the page cache once
    written out: a big build does not fill memory with images nobody reads back, and each image's write
    reuses pages just released instead of taking new ones (docs/benchmarks.md, section 20). More images
    than the cache leaves being written out (``_WRITING_BACK``), to go through both of its paths."""
    if on_tmpfs(tmp_path) or on_tmpfs(project):
        pytest.skip("the test's folder is on tmpfs, whose pages are never dropped: run it on a disk")
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("ASSETBUILD_CACHE_DIR", str(cache_dir))
    count = cache_module._WRITING_BACK + 4  # noqa: SLF001
    write_manifest(project, '[server]\nurl = "placeholder"\n[defaults]\nwidth = 64\nheight = 64\n'
                   + "".join(f'[assets."art/a{n}.png"]\nprompt = "asset {n}"\nseed = {n}\n' for n in range(count)))
    monkeypatch.chdir(project)
    assert main(["run", "-q", "-n", "2"]) == 0
    targets = sorted((project / "art").glob("*.png"))
    entries = sorted(cache_dir.glob("*/*.img"))
    assert len(targets) == len(entries) == count
    resident = resident_bytes([*targets, *entries])
    assert len(resident) == 2 * count
    assert {path: size for path, size in resident.items() if size} == {}
    # (fincore itself sees pages: the manifest, just read, is still cached.)
    assert resident_bytes([project / "assets.toml"])[str(project / "assets.toml")] > 0


def test_forgetting_pages_is_best_effort_and_never_follows_a_symlink_nor_waits_on_a_fifo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``forget_pages`` runs on paths written a while ago: one gone, replaced by a symlink (to a file
    elsewhere, whose pages are not ours to drop) or by a FIFO (whose open would wait for a writer) is left
    alone and raises nothing: it must never fail, nor hold up, the build of an image."""
    from assetbuild import fsutil

    advised: list[int] = []
    monkeypatch.setattr(fsutil, "_FADVISE", lambda fd, *_args: advised.append(fd))
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(b"not ours")
    (tmp_path / "entry.img").symlink_to(elsewhere)
    fsutil.forget_pages(tmp_path / "entry.img")
    fsutil.forget_pages(tmp_path / "gone.img")
    assert advised == []  # the symlink was not followed
    fsutil.forget_pages(elsewhere)
    assert len(advised) == 1  # (a file is advised)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.img")
        fsutil.forget_pages(tmp_path / "fifo.img")  # (a blocking open would hang here: the test's timeout)
        cache_module._fsync_file(tmp_path / "fifo.img")  # noqa: SLF001
