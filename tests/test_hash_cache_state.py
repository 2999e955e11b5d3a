"""``.assetbuild/hashes.json`` (file hashes by absolute path and stamp) does not grow forever: a save keeps
the files the run used and this project's unchanged files, not those of a deleted target or of the folder a
project was copied from. A damaged or forged entry is never used."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest

from assetbuild.fsutil import HashCache

pytestmark = pytest.mark.timeout(120)

MANIFEST = """\
[server]
url = "placeholder"

[defaults]
width = 64
height = 64
seed = 1

[assets."a.png"]
prompt = "first"

[assets."b.png"]
prompt = "second"

[assets."sub/c.png"]
prompt = "third"
"""


NOOP_FILES = ("noop.json", "noop-tables.json")


def stored(root: Path) -> dict[str, list[object]]:
    loaded = json.loads((root / ".assetbuild" / "hashes.json").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def built(tmp_path: Path) -> Path:
    root = tmp_path / "game"
    root.mkdir()
    write_manifest(root, MANIFEST)
    done = run_cli(root)
    assert done.returncode == 0, done.stderr
    assert str(root / "a.png") in stored(root)
    return root


def test_a_copied_project_drops_the_entries_of_the_original(built: Path) -> None:
    copy = built.parent / "game-copy"  # (a name the original's is a prefix of)
    shutil.copytree(built, copy, symlinks=True)
    assert all(name.startswith(str(built) + os.sep) for name in stored(copy))  # the copy's file, as copied
    done = run_cli(copy)
    assert done.returncode == 0, done.stderr
    names = set(stored(copy))
    assert names == {str(copy / "a.png"), str(copy / "b.png"), str(copy / "sub" / "c.png")}
    assert set(stored(built)) == {str(built / "a.png"), str(built / "b.png"), str(built / "sub" / "c.png")}


def test_a_deleted_target_loses_its_entry_at_the_next_save(built: Path) -> None:
    write_manifest(built, MANIFEST.replace('[assets."b.png"]\nprompt = "second"\n', "")
                   .replace('prompt = "first"', 'prompt = "first, edited"'))
    (built / "b.png").unlink()
    for name in NOOP_FILES:  # a full plan (one of a few tables reads and saves no file hashes)
        (built / ".assetbuild" / name).unlink()
    done = run_cli(built)  # a.png is made again: the file of hashes changes and is saved
    assert done.returncode == 0, done.stderr
    assert "1 generated" in done.stdout
    assert set(stored(built)) == {str(built / "a.png"), str(built / "sub" / "c.png")}


def test_an_entry_the_run_did_not_use_stays_while_it_is_right(tmp_path: Path) -> None:
    """A save after a run that used few files keeps the others of the project while their stamps hold,
    and drops the changed one, the missing one and the one outside the project."""
    root = tmp_path / "proj"
    (root / ".assetbuild").mkdir(parents=True)
    kept, changed, used = root / "kept.png", root / "changed.png", root / "used.png"
    for path in (kept, changed, used):
        path.write_bytes(path.name.encode())
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"outside")
    first = HashCache(root / ".assetbuild" / "hashes.json")
    for path in (kept, changed, used, outside):
        assert first.hash(path) is not None
    first.remember(root / "gone.png", "0" * 32, kept.stat())
    first.save()
    changed.write_bytes(b"changed, and longer")
    second = HashCache(root / ".assetbuild" / "hashes.json")
    used.write_bytes(b"used again")
    assert second.hash(used) is not None  # a new hash: the file is saved
    second.save()
    assert set(stored(root)) == {str(kept), str(used)}


@pytest.mark.parametrize("forged", ["not a list", "three items", "a list as hash", "a number"])
def test_a_forged_entry_is_not_used(built: Path, forged: str) -> None:
    """An entry whose stamp matches the file but is not [size, mtime_ns, inode, hash] is hashed again."""
    st = (built / "a.png").stat()
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    entry = {"not a list": {"size": 1}, "three items": stamp, "a list as hash": [*stamp, ["x"]],
             "a number": 5}[forged]
    entries = stored(built)
    entries[str(built / "a.png")] = entry
    (built / ".assetbuild" / "hashes.json").write_text(json.dumps(entries))
    for name in NOOP_FILES:  # the plan asks for every file's hash
        (built / ".assetbuild" / name).unlink()
    done = run_cli(built)
    assert done.returncode == 0, done.stderr
    assert "0 generated" in done.stdout and "3 fresh" in done.stdout
    assert stored(built)[str(built / "a.png")][:3] == stamp
