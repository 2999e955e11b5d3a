"""assets.lock: deterministic and diff-friendly, committed per asset after its image is in place."""

from __future__ import annotations

import difflib
import errno
import json
import os
import re
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
from conftest import write_manifest
from helpers import QUICKSTART, TARGETS, png_size

import assetbuild
from assetbuild import fsutil
from assetbuild import lock as lock_module
from assetbuild.cli import main
from assetbuild.errors import ManifestError, StateError
from assetbuild.generators.base import GenerationRequest, GenerationResult, ProgressCallback
from assetbuild.generators.placeholder import PlaceholderGenerator
from assetbuild.keys import hash_bytes
from assetbuild.lock import Lock, LockEntry, render


def entry(n: int, prompt: str = "p") -> LockEntry:
    return LockEntry(key=f"{n:032x}", hash=f"{n + 100:032x}", seed=n, model="m",
                     inputs={"v": 1, "params": {"prompt": prompt, "seed": n}})


def build(root: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.chdir(root)
    return main(["run", "-q", *args])


def test_render_is_sorted_and_independent_of_insertion_order() -> None:
    forward = {f"t{i}.png": entry(i) for i in range(5)}
    backward = {f"t{i}.png": entry(i) for i in reversed(range(5))}
    assert render(forward) == render(backward)
    text = render(forward).decode()
    assert text.endswith("}\n")
    data = json.loads(text)
    assert list(data["assets"]) == sorted(data["assets"])
    assert data["version"] == lock_module.LOCK_VERSION
    for block in data["assets"].values():
        assert list(block) == sorted(block)


def test_roundtrip_commit_remove_and_load(tmp_path: Path) -> None:
    path = tmp_path / "assets.lock"
    lock = Lock.load(path)
    assert lock.targets() == [] and not path.exists()
    lock.commit("b.png", entry(2))
    lock.commit("a.png", entry(1))
    assert (tmp_path / ".assetbuild" / "lock.journal").exists()  # durable before commit returns: in the journal
    loaded = Lock.load(path)  # the file (none yet) and the journal
    assert loaded.targets() == ["a.png", "b.png"]
    assert loaded.get("a.png") == entry(1)
    lock.commit("a.png", None)
    assert Lock.load(path).targets() == ["b.png"]
    lock.flush()  # the end of a run: the file, and no journal
    assert render({"b.png": entry(2)}) == path.read_bytes()
    assert not (tmp_path / ".assetbuild" / "lock.journal").exists()


def test_committing_an_unchanged_entry_does_not_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "assets.lock"
    lock = Lock.load(path)
    lock.commit("a.png", entry(1))
    path.write_bytes(b"sentinel")  # any rewrite would replace this
    lock.commit("a.png", entry(1))
    lock.commit("absent.png", None)
    assert path.read_bytes() == b"sentinel"


@pytest.mark.parametrize("text", ["{not json", '{"assets": {"a.png": {"hash": "x"}}}', '{"assets": []}', "[]"])
def test_corrupt_lock_is_a_manifest_error_with_a_hint(tmp_path: Path, text: str) -> None:
    path = tmp_path / "assets.lock"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        Lock.load(path)
    assert str(path) in str(info.value)
    assert info.value.hint and "git checkout" in info.value.hint


def test_concurrent_commits_all_land(tmp_path: Path) -> None:
    path = tmp_path / "assets.lock"
    lock = Lock.load(path)
    threads = [
        threading.Thread(target=lambda k=k: [lock.commit(f"t{k}_{i}.png", entry(k * 100 + i)) for i in range(25)])
        for k in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    on_disk = Lock.load(path)
    assert len(on_disk.targets()) == 200
    assert all(on_disk.get(t) == lock.get(t) for t in lock.targets())
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_lock_rewrites_leave_no_temporary_file_beside_the_lock(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # A kill during a rewrite can leave its temporary file behind: it must not be beside assets.lock
    # (where it would show up in `git status`), but in assetbuild's state folder.
    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(str(src))
        real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", spy)
    lock = Lock.load(tmp_path / "assets.lock")
    lock.commit("a.png", entry(1))
    lock.flush()
    assert len(seen) == 1
    assert Path(seen[0]).parent == tmp_path / ".assetbuild" / "tmp"


def test_same_project_built_twice_gives_identical_lock_bytes(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    locks = []
    for name in ("one", "two"):
        root = tmp_path / name
        root.mkdir()
        write_manifest(root, QUICKSTART)
        assert build(root, monkeypatch) == 0
        locks.append((root / "assets.lock").read_bytes())
    assert locks[0] == locks[1]
    text = locks[0].decode()
    # No timestamps, no absolute paths, nothing machine-specific.
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}", text)
    assert str(tmp_path) not in text
    data = json.loads(text)
    assert sorted(data["assets"]) == sorted(TARGETS)
    hero = data["assets"]["sprites/hero.png"]
    assert hero["seed"] == 42 and hero["model"] == "placeholder"
    assert hero["inputs"]["params"]["prompt"].startswith("pixel art of a knight")


def test_lock_records_hash_of_the_bytes_on_disk(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(project, QUICKSTART)
    assert build(project, monkeypatch) == 0
    lock = Lock.load(project / "assets.lock")
    for target in TARGETS:
        data = (project / target).read_bytes()
        recorded = lock.get(target)
        assert recorded is not None and recorded.hash == hash_bytes(data)
        png_size(data)


def test_changing_one_asset_changes_only_its_block(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(project, QUICKSTART)
    assert build(project, monkeypatch) == 0
    before = (project / "assets.lock").read_text().splitlines()
    write_manifest(project, QUICKSTART.replace("a steel sword icon", "a golden sword icon"))
    assert build(project, monkeypatch) == 0
    after = (project / "assets.lock").read_text().splitlines()
    changed = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed, "the lock must change"
    assert len(changed) == 6  # key, hash, prompt: one line out, one line in each
    # Every changed line lies inside the icon's block.
    start = next(i for i, line in enumerate(after) if '"ui/icon_sword.png"' in line)
    for line in changed:
        if line.startswith("+"):
            assert after.index(line[1:]) > start
    assert any("golden" in line for line in changed)


def test_each_asset_is_committed_after_its_image_is_in_place(project: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(project, QUICKSTART)
    real_commit = Lock.commit
    commits: list[str] = []

    def checked(self: Lock, target: str, new: LockEntry | None) -> None:
        if new is not None:
            # The image must already be at its target, complete, when the lock records it.
            path = project / target
            assert path.is_file(), f"lock entry for {target} committed before its image was written"
            assert hash_bytes(path.read_bytes()) == new.hash
        real_commit(self, target, new)
        commits.append(target)
        # Each commit is on disk right away (what any command reads: the file and its journal), and
        # names only files that exist with their hashes.
        for name, recorded in Lock.load(self.path).entries().items():
            assert hash_bytes((project / name).read_bytes()) == recorded.hash

    monkeypatch.setattr(Lock, "commit", checked)
    assert build(project, monkeypatch, "-n", "1") == 0
    assert sorted(commits) == sorted(TARGETS)  # one commit per asset, not one at the end


def test_finished_assets_stay_recorded_when_another_fails(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # The crop is larger than the generated image: that asset fails after generation.
    write_manifest(project, QUICKSTART + '\n[assets."broken.png"]\nprompt = "x"\ncrop = [0, 0, 4000, 4000]\n')
    assert build(project, monkeypatch, "--keep-going", "-n", "1") == 1
    assert "broken.png" in capsys.readouterr().out
    lock = Lock.load(project / "assets.lock")
    assert lock.targets() == sorted(TARGETS)
    assert not (project / "broken.png").exists()


def test_lock_and_images_are_created_with_the_umask_mode(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Like any tool: 0666 minus the umask (mkstemp alone would make every committed file 0600).
    expected = fsutil._umask_mode()
    if expected & 0o044 != 0o044:
        pytest.skip("the umask hides group/other read bits: 0600 would be right here")
    write_manifest(project, QUICKSTART)
    assert build(project, monkeypatch) == 0
    for path in [project / "assets.lock", *(project / t for t in TARGETS)]:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_atomic_write_mode_override_and_no_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "secret.json"
    fsutil.atomic_write(target, b"one", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    fsutil.atomic_write(target, b"two", tmp_dir=tmp_path / "state")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["secret.json"]
    assert list((tmp_path / "state").iterdir()) == []


def test_atomic_write_failure_keeps_the_old_file_and_cleans_up(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"old")

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "replace", boom)
    with pytest.raises(OSError):
        fsutil.atomic_write(target, b"new", tmp_dir=tmp_path / "state")
    assert target.read_bytes() == b"old"
    assert list((tmp_path / "state").iterdir()) == []


def test_lock_grows_while_the_run_goes_on(project: Path) -> None:
    # Serial run: when each generation starts, every asset finished before it is already in the lock (as
    # any command reads it: the file and its journal, which the end of the run folds into the file).
    write_manifest(project, QUICKSTART)
    seen: list[list[str]] = []
    inner = PlaceholderGenerator()

    class Watching:
        kind = "placeholder"

        def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationResult:
            seen.append(Lock.load(project / "assets.lock").targets())
            return inner.generate(request, progress)

        def interrupt(self) -> None:
            pass

        def close(self) -> None:
            pass

    summary = assetbuild.build(project / "assets.toml", generator=Watching(), jobs=1)
    assert summary.exit_code == 0
    assert seen == [[], [TARGETS[0]], [TARGETS[0], TARGETS[1]]]


def test_images_are_renamed_into_place_from_a_complete_temporary_file(project: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(project, QUICKSTART)
    renames: dict[str, tuple[Path, bytes]] = {}
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        renames[Path(dst).relative_to(project).as_posix()] = (Path(src), Path(src).read_bytes())
        real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", spy)
    assert build(project, monkeypatch) == 0
    for target in TARGETS:
        assert target in renames, f"{target} was not renamed into place"
        src, data = renames[target]
        assert data == (project / target).read_bytes()
        png_size(data)
        # The temporary file was not among the user's assets.
        assert src.parent == project / ".assetbuild" / "tmp"


def test_atomic_write_falls_back_when_the_state_folder_is_on_another_filesystem(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    real_replace = os.replace
    sources: list[Path] = []

    def cross_device(src: str, dst: str) -> None:
        sources.append(Path(src).parent)
        if Path(src).parent == state:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", cross_device)
    target = tmp_path / "art" / "a.png"
    fsutil.atomic_write(target, b"bytes", tmp_dir=state)
    assert target.read_bytes() == b"bytes"
    assert sources == [state, target.parent]
    assert list(state.iterdir()) == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.png"]
    # Data given in pieces (a generator, consumed by the first attempt) lands whole too.
    fsutil.atomic_write(target, (part for part in (b"in ", b"pieces")), tmp_dir=state)
    assert target.read_bytes() == b"in pieces"
    assert list(state.iterdir()) == []


def test_a_big_locks_rewrites_grow_geometrically_and_a_kill_loses_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: the journal is compacted when it reaches a share of the file, so a build's lock I/O is
    linear in its assets (a rewrite every half second made it quadratic)."""
    path = tmp_path / "assets.lock"
    Lock(path, {f"old/{n:04d}.png": entry(n) for n in range(200)}).flush()
    path.write_bytes(render({f"old/{n:04d}.png": entry(n) for n in range(200)}))
    written: list[int] = []
    real_write = lock_module.atomic_write

    def counting_write(target: Path, data: Iterable[bytes], **kwargs: object) -> None:
        parts = list(data)  # the lock streams its rewrites in pieces
        written.append(sum(len(part) for part in parts))
        real_write(target, parts, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lock_module, "atomic_write", counting_write)
    monkeypatch.setattr(lock_module, "COMPACT_MIN_BYTES", 0)  # as if the lock were big: by ratio alone
    lock = Lock.load(path)
    for n in range(2000):
        lock.commit(f"new/{n:04d}.png", entry(n, prompt=f"new {n}"))
    final_size = len(render(lock.entries()))
    assert 3 <= len(written) <= 12  # ~log_1.5(2200 / 200) compactions, not one per commit or per tick
    assert sum(written) <= 4 * final_size  # linear: the rewrites add up to a few times the final file
    journal = tmp_path / ".assetbuild" / "lock.journal"
    assert journal.exists()  # the commits since the last compaction are in the journal...
    reloaded = Lock.load(path)  # ...which a run killed now would leave behind: nothing is lost
    assert reloaded.entries() == lock.entries()
    lock.flush()
    assert not journal.exists()
    assert Lock.load(path).entries() == lock.entries()


def test_a_big_lock_is_streamed_byte_for_byte_as_rendered_and_its_journal_is_recognised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewrites stream the file in pieces of a few hundred entries (a 100,000-asset lock is never held
    whole): the bytes are those of ``render``, and the hash the journal names is that of the file."""
    path = tmp_path / "assets.lock"
    entries = {f"set/{n:05d}.png": entry(n) for n in range(1300)}  # two pieces and a part
    lock = Lock.load(path)
    lock.commit("only.png", entry(1))
    lock.commit("only.png", None)
    lock.flush()
    assert path.read_bytes() == render({})
    lock = Lock(path, entries)
    lock._dirty = True  # as after a journal was replayed: the next flush writes the file
    lock.flush()
    assert path.read_bytes() == render(entries)
    lock.commit("set/new.png", entry(5000))  # into the journal, whose header names the file's hash
    assert (tmp_path / ".assetbuild" / "lock.journal").exists()
    assert Lock.load(path).get("set/new.png") == entry(5000)


def test_journal_commits_waiting_together_share_one_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit: commits that arrive while an append is being synced are covered by the next one."""
    path = tmp_path / "assets.lock"
    path.write_bytes(render({f"old/{n:04d}.png": entry(n) for n in range(50)}))
    monkeypatch.setattr(lock_module, "COMPACT_RATIO", 1000.0)  # journal only
    lock = Lock.load(path)
    release = threading.Event()
    syncing = threading.Event()
    syncs: list[int] = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        syncs.append(fd)
        syncing.set()
        release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(lock_module.os, "fsync", slow_fsync)
    first = threading.Thread(target=lock.commit, args=("new/first.png", entry(900)))
    first.start()
    assert syncing.wait(10)  # the first append is in its fsync: the next commits queue behind it
    waiting = [threading.Thread(target=lock.commit, args=(f"new/{n}.png", entry(1000 + n))) for n in range(6)]
    for t in waiting:
        t.start()
    while sum(1 for target in lock.targets() if target.startswith("new/")) < 7:
        threading.Event().wait(0.01)  # every change is in memory (each commit sets it before waiting)
    release.set()
    for t in [first, *waiting]:
        t.join()
    assert len(syncs) == 2  # one append for the first commit, one for the six that waited
    assert Lock.load(path).entries() == lock.entries()


# --- a lock this class rendered is read back fast and re-rendered only where it changes (issue 16) ------------


def _rendered_lock(tmp_path: Path, count: int = 5) -> tuple[Path, dict[str, LockEntry]]:
    path = tmp_path / "assets.lock"
    lock = Lock.load(path)
    entries = {f"dir/t{i}.png": entry(i, prompt=f"p {i}, with \"quotes\", commas,\n    and é") for i in range(count)}
    # Names the encoder escapes (a quote, a backslash, a control character) or leaves as they are (é).
    entries.update({name: entry(50 + n) for n, name in enumerate(['q"uote.png', "back\\slash.png", "c\x01.png",
                                                                   "café.png", "nbsp\u00a0.png", "del\x7f.png"])})
    for target, value in entries.items():
        lock.commit(target, value)
    lock.flush()
    return path, entries


def test_a_lock_it_rendered_is_read_with_its_rendered_entries(tmp_path: Path) -> None:
    path, entries = _rendered_lock(tmp_path)
    loaded = Lock.load(path)
    assert all(isinstance(slot, int) for slot in loaded._slots.values())  # texts from the file, not parsed yet
    assert {t: loaded._entry_of(t, slot) for t, slot in loaded._slots.items()} == entries
    assert loaded.entries() == entries
    changed = entry(7, prompt="new")
    loaded.commit("dir/t2.png", changed)
    loaded.flush()
    assert path.read_bytes() == render({**entries, "dir/t2.png": changed})
    assert Lock.load(path).entries() == {**entries, "dir/t2.png": changed}


def test_a_hand_edited_lock_is_checked_in_full(tmp_path: Path) -> None:
    path, _ = _rendered_lock(tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(f'"key": "{3:032x}"', '"key": "../../etc/passwd"'), encoding="utf-8")
    with pytest.raises(ManifestError, match="32 hexadecimal digits"):
        Lock.load(path)


@pytest.mark.parametrize("note", [b"", b"garbage", b"\xff\xfe", b"v1:" + b"0" * 32])
def test_a_damaged_or_stale_rendered_note_only_costs_a_full_read(tmp_path: Path, note: bytes) -> None:
    path, entries = _rendered_lock(tmp_path)
    (tmp_path / ".assetbuild" / lock_module.RENDERED_NAME).write_bytes(note)
    loaded = Lock.load(path)
    assert all(isinstance(slot, LockEntry) for slot in loaded._slots.values())  # read in full
    assert loaded.entries() == entries
    loaded.commit("dir/t0.png", entry(9))
    loaded.flush()
    assert path.read_bytes() == render({**entries, "dir/t0.png": entry(9)})


def test_a_note_planted_next_to_a_forged_lock_vouches_for_nothing(tmp_path: Path) -> None:
    """An archive may carry .assetbuild/lock.rendered naming the hash of a forged assets.lock: the entries are
    still checked when used (a key must stay 32 hex digits: it names a cache file), with the error a full
    read gives, naming the file and the entry."""
    path, entries = _rendered_lock(tmp_path)
    forged = path.read_text(encoding="utf-8").replace(f'"key": "{3:032x}"', '"key": "../../../etc/passwd"').encode()
    path.write_bytes(forged)
    (tmp_path / ".assetbuild" / lock_module.RENDERED_NAME).write_text("v1:" + hash_bytes(forged))
    lock = Lock.load(path)
    assert lock.get("dir/t1.png") == entries["dir/t1.png"]  # the others are usable
    for use in (lambda: lock.get("dir/t3.png"), lock.entries):
        with pytest.raises(ManifestError, match="32 hexadecimal digits") as info:
            use()
        assert str(path) in str(info.value) and "entry 'dir/t3.png'" in str(info.value)
        assert info.value.hint and "git checkout" in info.value.hint


def test_a_rendered_note_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    path, entries = _rendered_lock(tmp_path)
    note = tmp_path / ".assetbuild" / lock_module.RENDERED_NAME
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(note.read_bytes())
    note.unlink()
    note.symlink_to(elsewhere)
    loaded = Lock.load(path)
    assert all(isinstance(slot, LockEntry) for slot in loaded._slots.values())  # read in full
    assert loaded.entries() == entries
    with pytest.raises(StateError, match="symlink"):  # a journal append refuses the planted state folder...
        loaded.commit("dir/t1.png", entry(8))
    loaded.flush()  # ...and the rewrite does not write the note through the symlink either
    assert elsewhere.read_text() == "v1:" + hash_bytes(render(entries))
    assert Lock.load(path).entries()["dir/t1.png"] == entry(8)
