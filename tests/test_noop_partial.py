"""The no-op memo's per-table records (issue 16.2): after an edit, the tables it proves fresh are not
loaded or planned, and the outcome is always the one the full plan gives.

Two copies of a project live through the same history of edits. In one, the memo is kept (so the partial
path is taken where it applies); in the other it is deleted before every run (the full plan). After each
step both must agree on everything a user can see: exit code, the events (--json), the lock's bytes, the
images and which assets were generated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest
from helpers import QUICKSTART, generations

from assetbuild import noop
from assetbuild.cli import main

EXTRA = """
[assets."props/crate.png"]
prompt = "a wooden crate"
width = 64
height = 64

[assets."props/barrel.png"]
prompt = "a barrel"
width = 64
height = 64

[assets."props/chest.png"]
prompt = "a chest"
width = 64
height = 64
"""


def _replace(old: str, new: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / "assets.toml"
        text = path.read_text(encoding="utf-8")
        assert old in text, f"the step's text is missing: {old!r}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return edit


def _append(extra: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        with (root / "assets.toml").open("a", encoding="utf-8") as handle:
            handle.write(extra)
    return edit


def _touch(target: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / target
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # same bytes, another stamp
    return edit


def _overwrite(target: str, source: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        (root / target).write_bytes((root / source).read_bytes())  # edited by hand: not ours any more
    return edit


# (name, edit, whether the memo must prove the other tables fresh for this step)
STEPS: list[tuple[str, Callable[[Path], None], bool]] = [
    ("one prompt edited", _replace("a steel sword icon", "a bronze sword icon"), True),
    ("a target touched", _touch("props/crate.png"), True),
    ("an upstream prompt edited", _replace("a knight in silver armor", "a knight in golden armor"), False),
    ("a table added", _append('\n[assets."props/lamp.png"]\nprompt = "a lamp"\nwidth = 64\nheight = 64\n'), True),
    ("a table removed", _replace('[assets."props/barrel.png"]\nprompt = "a barrel"\nwidth = 64\nheight = 64\n',
                                 ""), True),
    ("a duplicate target", _append('\n[assets."props/x/../lamp.png"]\nprompt = "again"\n'), False),
    # Back to the text the memo was recorded with: it answers alone (a no-op), nothing is loaded.
    ("the duplicate removed", _replace('\n[assets."props/x/../lamp.png"]\nprompt = "again"\n', ""), False),
    ("a case twin of a fresh target", _append('\n[assets."props/Crate.png"]\nprompt = "twin"\n'), False),
    ("the twin removed", _replace('\n[assets."props/Crate.png"]\nprompt = "twin"\n', ""), False),
    ("an input naming a fresh target",
     _append('\n[assets."props/crate_open.png"]\nprompt = "open"\ninitimage = "props/crate.png"\n'), False),
    ("a multi-line string left open", _replace('prompt = "a chest"', 'prompt = """a chest'), False),
    ("the string closed", _replace('prompt = """a chest', 'prompt = "a chest"'), False),
    ("a table renamed", _replace('[assets."props/lamp.png"]', '[assets."props/lantern.png"]'), True),
    ("an image edited by hand", _overwrite("props/chest.png", "props/crate.png"), True),
    ("[defaults] changed", _replace("steps = 20", "steps = 21"), False),
]


def _run(root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    monkeypatch.chdir(root)
    monkeypatch.setenv("ASSETBUILD_PLACEHOLDER_LOG", str(root / ".." / f"{root.name}.log"))
    log = root.parent / f"{root.name}.log"
    log.unlink(missing_ok=True)
    capsys.readouterr()
    code = main(["--json", "--keep-going"])
    captured = capsys.readouterr()
    events = []
    for line in captured.out.replace(str(root), "<project>").splitlines():
        event = json.loads(line)
        if event["event"] == "progress":
            continue  # as many as the generator's steps happen to report
        for timing in ("seconds", "time", "elapsed"):
            event.pop(timing, None)
        events.append(event)
    # Assets are built concurrently: their events interleave in any order, the first and last stay put.
    if len(events) > 2:
        events = [events[0], *sorted(events[1:-1], key=lambda e: json.dumps(e, sort_keys=True)), events[-1]]
    images = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))
              if ".assetbuild" not in p.parts}
    lock = (root / "assets.lock").read_bytes() if (root / "assets.lock").exists() else b""
    return {"code": code, "events": events, "err": captured.err.replace(str(root), "<project>"), "lock": lock,
            "images": images, "generated": sorted(generations(log))}


def test_every_edit_ends_as_the_full_plan_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    kept, planned = tmp_path / "kept", tmp_path / "planned"
    accepted: list[bool] = []
    original_accepts = noop.Partial.accepts

    def recording(self: noop.Partial, project: Any) -> bool:
        result = original_accepts(self, project)
        accepted.append(result)
        return result

    monkeypatch.setattr(noop.Partial, "accepts", recording)
    for root in (kept, planned):
        root.mkdir()
        write_manifest(root, QUICKSTART + EXTRA)
        first = _run(root, monkeypatch, capsys)
        assert first["code"] == 0
        assert len(first["generated"]) == 6
    memo = planned / ".assetbuild" / noop.MEMO_NAME
    for name, edit, proven in STEPS:
        edit(kept)
        edit(planned)
        accepted.clear()
        with_memo = _run(kept, monkeypatch, capsys)
        if proven:
            assert accepted == [True], f"{name}: the memo did not prove the other tables fresh"
        else:
            assert accepted in ([], [False]), f"{name}: planned in part where the full plan must decide"
        memo.unlink(missing_ok=True)
        accepted.clear()
        full = _run(planned, monkeypatch, capsys)
        assert accepted == []
        for part in full:
            assert with_memo[part] == full[part], f"{name}: {part}"


def test_an_edit_loads_only_its_table(project: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str], counted: list[str]) -> None:
    write_manifest(project, QUICKSTART + EXTRA)
    first = _run(project, monkeypatch, capsys)
    assert first["code"] == 0
    made = counted
    made.clear()
    _replace('prompt = "a barrel"', 'prompt = "a red barrel"')(project)
    result = _run(project, monkeypatch, capsys)
    assert made == ["props/barrel.png"]
    assert result["generated"] == ["props/barrel.png"]
    finished = result["events"][-1]
    assert (finished["event"], finished["fresh"], finished["generated"]) == ("run_finished", 5, 1)
    memo = json.loads((project / ".assetbuild" / noop.MEMO_NAME).read_bytes())
    records = json.loads((project / ".assetbuild" / noop.TABLES_NAME).read_bytes())
    assert memo["count"] == 6 and len(records["tables"]) + len(records["common"]) == 6 and "tables" not in memo
    assert len(records["common"]) == 5  # each table of one target with no inputs: its target alone
    made.clear()
    again = _run(project, monkeypatch, capsys)  # and the memo it wrote answers the next run alone
    assert made == [] and again["generated"] == []
    assert again["events"][-1]["fresh"] == 6


def test_tables_that_do_not_belong_to_the_memo_are_not_used(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The records are tied to the memo written with them: a pair from two different runs (a crash between
    the two writes) means a full plan."""
    write_manifest(project, QUICKSTART + EXTRA)
    assert _run(project, monkeypatch, capsys)["code"] == 0
    state = project / ".assetbuild"
    old_records = (state / noop.TABLES_NAME).read_bytes()
    _replace('prompt = "a barrel"', 'prompt = "a red barrel"')(project)
    assert _run(project, monkeypatch, capsys)["generated"] == ["props/barrel.png"]
    _replace('prompt = "a chest"', 'prompt = "a gold chest"')(project)
    manifest_path = project / "assets.toml"
    context = noop.context(manifest_path, None)
    assert isinstance(noop.check(manifest_path, context), noop.Partial)
    (state / noop.TABLES_NAME).write_bytes(old_records)  # the memo is the new one, the records the old ones
    assert noop.check(manifest_path, context) is None
    result = _run(project, monkeypatch, capsys)
    assert result["generated"] == ["props/chest.png"] and result["events"][-1]["fresh"] == 5


def test_a_lock_changed_before_the_project_lock_is_held_means_a_full_load(project: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Between the memo's check and holding the project lock, another run may have rewritten the lock."""
    write_manifest(project, QUICKSTART + EXTRA)
    assert _run(project, monkeypatch, capsys)["code"] == 0
    _replace('prompt = "a barrel"', 'prompt = "a red barrel"')(project)
    from assetbuild import projectlock

    original = projectlock.hold
    loads: list[int] = []

    def hold_after_another_run(*args: Any, **kwargs: Any) -> Any:
        lock = project / "assets.lock"
        lock.write_bytes(lock.read_bytes().replace(b'"version"', b'"version" '))  # same entries, other bytes
        return original(*args, **kwargs)

    from assetbuild import workspace as workspace_module

    original_load = workspace_module.load_project

    def counting_load(*args: Any, **kwargs: Any) -> Any:
        project_loaded = original_load(*args, **kwargs)
        loads.append(len(project_loaded.assets))
        return project_loaded

    monkeypatch.setattr(projectlock, "hold", hold_after_another_run)
    monkeypatch.setattr(workspace_module, "load_project", counting_load)
    result = _run(project, monkeypatch, capsys)
    assert loads == [1, 6]  # the partial load, then the whole manifest once the lock was found changed
    assert result["code"] == 0 and result["generated"] == ["props/barrel.png"]
    assert result["events"][-1]["fresh"] == 5


def test_a_plan_of_a_few_tables_does_not_read_or_rewrite_the_hash_cache(project: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    write_manifest(project, QUICKSTART + EXTRA)
    assert _run(project, monkeypatch, capsys)["code"] == 0
    cache = project / ".assetbuild" / "hashes.json"
    before = cache.read_bytes()
    assert str(project / "props" / "barrel.png") in json.loads(before)
    cache.write_bytes(before.replace(b"[", b"[ ", 1))  # the same entries; a rewrite would normalise it
    planted = cache.read_bytes()
    _replace('prompt = "a barrel"', 'prompt = "a red barrel"')(project)
    result = _run(project, monkeypatch, capsys)
    assert result["generated"] == ["props/barrel.png"] and result["code"] == 0
    assert cache.read_bytes() == planted


def test_an_unloaded_hash_cache_hashes_files_and_never_saves(tmp_path: Path) -> None:
    from assetbuild.fsutil import HashCache, hash_file

    image = tmp_path / "a.png"
    image.write_bytes(b"bytes")
    stored = tmp_path / "hashes.json"
    stored.write_text(json.dumps({str(image): [5, 0, 0, "0" * 32]}))  # a stale entry: never trusted anyway
    hashes = HashCache(stored, load=False)
    assert hashes.hash(image) == hash_file(image)
    st = image.stat()
    assert hashes.verified_stamp(image) == [st.st_size, st.st_mtime_ns, st.st_ino]
    hashes.remember(image, "f" * 32)
    hashes.save()
    assert json.loads(stored.read_text()) == {str(image): [5, 0, 0, "0" * 32]}
    loaded = HashCache(stored)
    assert loaded.hash(image) == hash_file(image)  # the stamp differs: read again
    loaded.save()
    assert json.loads(stored.read_text())[str(image)][3] == hash_file(image)


@pytest.mark.parametrize("count", [0, 1, 1999, 2000, 2001, 4500])
def test_state_files_encoded_in_pieces_are_the_json_of_the_whole(count: int) -> None:
    """The memo, its records and the hash cache are encoded a batch at a time (memory at 100,000 assets):
    the bytes must be exactly what one ``json.dumps`` of the whole gives."""
    from assetbuild.fsutil import JsonPieces, json_document

    members = sorted({f"file{n}": [n, 2, 3, "0" * 32] for n in range(count)}.items())
    for as_object in (True, False):
        items = dict(members) if as_object else [list(m) for m in members]
        encoded = JsonPieces(as_object=as_object)
        for member in members:
            encoded.add(member if as_object else list(member))
        assert b"".join(encoded.whole()) == json.dumps(items, separators=(",", ":")).encode()
        head = {"format": 3, "of": "x"}
        assert json.loads(b"".join(json_document(head, {"items": encoded}))) == {**head, "items": items}
        assert encoded.count == count


VARIANTS = """
[server]
url = "placeholder"

[assets."a.png"]
prompt = "a"

[assets."v_{n}.png"]
prompt = "variants"
count = 2
"""


@pytest.mark.parametrize("forge", [
    lambda record: record.__setitem__(1, [5, 6]),  # targets that are not names
    lambda record: record.__setitem__(2, None),  # files that are not a list
    lambda record: record.__setitem__(4, [["model:x"]]),  # a pair that is not one
    lambda record: record.__setitem__(5, "yes"),
])
def test_a_forged_table_record_means_the_full_plan(project: Path, forge: Callable[[list[Any]], None]) -> None:
    """The memo's records are state files anyone who can write the project can write: one not made as
    ``record`` writes it is not used (the run plans in full and ends as it would), never a bug exit."""
    write_manifest(project, VARIANTS)
    assert run_cli(project, "-q").returncode == 0
    path = project / ".assetbuild" / "noop-tables.json"
    records = json.loads(path.read_text(encoding="utf-8"))
    [record] = records["tables"].values()
    forge(record)
    path.write_text(json.dumps(records), encoding="utf-8")
    write_manifest(project, VARIANTS.replace('prompt = "a"', 'prompt = "a, edited"'))  # the other table
    result = run_cli(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 generated" in result.stdout and "2 fresh" in result.stdout, result.stdout


@pytest.mark.parametrize(("field", "value"), [("count", -7), ("count", "3"), ("warnings", [5]),
                                              ("orphans", "x.png")])
def test_a_forged_memo_answer_is_not_shown(project: Path, field: str, value: Any) -> None:
    """The memo's answer is printed as it is recorded: a forged count, warning or orphan list is not
    shown; the run plans in full instead."""
    write_manifest(project, VARIANTS)
    assert run_cli(project, "-q").returncode == 0
    path = project / ".assetbuild" / "noop.json"
    memo = json.loads(path.read_text(encoding="utf-8"))
    memo[field] = value
    path.write_text(json.dumps(memo), encoding="utf-8")
    result = run_cli(project)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = result.stdout + result.stderr
    assert "3 fresh" in result.stdout and "-7" not in shown and "warning" not in shown and "orphan" not in shown, shown
