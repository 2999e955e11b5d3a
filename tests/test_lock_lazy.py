"""A lock file assetbuild wrote itself is read lazily (issue 16): split into its entries' texts at load,
each entry parsed and checked when first used, unused texts written back verbatim; and a changed entry,
once durable, is held as its text alone."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest
from helpers import QUICKSTART, generations

from assetbuild import lock as lock_module
from assetbuild.errors import ManifestError
from assetbuild.keys import hash_bytes
from assetbuild.lock import Lock, LockEntry, render


def entry(n: int, prompt: str = "p") -> LockEntry:
    return LockEntry(key=f"{n:032x}", hash=f"{n + 100:032x}", seed=n, model="m",
                     inputs={"v": 1, "params": {"prompt": prompt, "seed": n}})


def written(path: Path, entries: dict[str, LockEntry]) -> Path:
    """``entries`` in ``path``, written by a Lock (so its note says it rendered the file)."""
    lock = Lock(path, entries)
    lock._dirty = True
    lock.flush()
    return path


def plant(path: Path, text: str) -> None:
    """Replace the lock file by ``text`` and note it as rendered: what a forged archive could carry."""
    data = text.encode("utf-8")
    path.write_bytes(data)
    (path.parent / ".assetbuild" / lock_module.RENDERED_NAME).write_text("v1:" + hash_bytes(data))


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every entry checked (``LockEntry.from_json`` calls), as they happen."""
    calls: list[Any] = []
    real = LockEntry.from_json.__func__  # type: ignore[attr-defined]

    def counting(cls: type[LockEntry], data: dict[str, Any]) -> LockEntry:
        calls.append(data.get("key") if isinstance(data, dict) else data)
        return real(cls, data)  # type: ignore[no-any-return]

    monkeypatch.setattr(LockEntry, "from_json", classmethod(counting))
    return calls


def test_load_and_targets_parse_nothing_and_each_used_entry_is_parsed_once(tmp_path: Path,
                                                                            parses: list[Any]) -> None:
    entries = {f"set/{n:03d}.png": entry(n) for n in range(60)}
    path = written(tmp_path / "assets.lock", entries)
    lock = Lock.load(path)
    assert lock.targets() == sorted(entries)
    assert parses == []  # neither load nor targets() parsed an entry
    assert lock.get("set/007.png") == entries["set/007.png"]
    assert lock.get("set/007.png") == entries["set/007.png"]
    assert lock.get("absent.png") is None
    assert len(parses) == 1
    assert lock.entries() == entries
    assert len(parses) == 60  # the one already parsed is not parsed again
    lock.commit("set/008.png", entries["set/008.png"])  # unchanged: nothing written, nothing parsed again
    assert len(parses) == 60 and not lock._dirty


def test_a_file_that_does_not_split_as_rendered_is_read_in_full(tmp_path: Path) -> None:
    """Names out of order or twice under a valid note: not as rendered, so the full read decides."""
    entries = {"a.png": entry(1), "b.png": entry(2)}
    path = written(tmp_path / "assets.lock", entries)
    text = path.read_text(encoding="utf-8")
    plant(path, text.replace('"a.png"', '"c.png"'))  # c, b: out of order
    lock = Lock.load(path)
    assert all(isinstance(slot, LockEntry) for slot in lock._slots.values())
    assert lock.entries() == {"c.png": entry(1), "b.png": entry(2)}
    plant(path, text.replace('"a.png"', '"b.png"'))  # b twice: read as both sides of a merge conflict
    lock = Lock.load(path)
    assert lock.merged and lock.targets() == ["b.png"]
    assert lock.choose("b.png", entry(1).hash) == entry(1)


def test_a_valid_lock_read_whole_is_noted_so_the_next_load_splits_it(tmp_path: Path, parses: list[Any]) -> None:
    """A fresh clone's lock has no note: its first run parses and checks it whole, then notes it (a run that
    changes nothing too), and the next load splits it like one it rendered, checking entries when used."""
    (tmp_path / ".assetbuild").mkdir()
    entries = {f"set/{n:03d}.png": entry(n) for n in range(20)}
    path = written(tmp_path / "assets.lock", entries)
    (tmp_path / ".assetbuild" / lock_module.RENDERED_NAME).unlink()  # as cloned
    before = path.read_bytes()
    lock = Lock.load(path)
    assert len(parses) == len(entries) and not lock._raw  # parsed and checked whole
    lock.flush()  # nothing changed: the file stays as it is, and is noted
    assert path.read_bytes() == before
    parses.clear()
    again = Lock.load(path)
    assert again._raw == before and not parses  # split, nothing parsed yet
    assert again.entries() == entries and len(parses) == len(entries)


def test_a_valid_lock_in_another_layout_is_noted_and_still_read_in_full(tmp_path: Path) -> None:
    """Noted after a whole read, a file that does not split as rendered (another indentation) is read whole
    again next time: the note only ever lets the split be tried."""
    import json

    (tmp_path / ".assetbuild").mkdir()
    entries = {"a.png": entry(1), "b.png": entry(2)}
    path = tmp_path / "assets.lock"
    path.write_text(json.dumps({"assets": {t: e.to_json() for t, e in entries.items()}, "version": 1}, indent=1))
    lock = Lock.load(path)
    lock.flush()
    assert (tmp_path / ".assetbuild" / lock_module.RENDERED_NAME).exists()
    again = Lock.load(path)
    assert not again._raw and again.entries() == entries


def test_an_invalid_lock_read_whole_is_refused_and_not_noted(tmp_path: Path) -> None:
    (tmp_path / ".assetbuild").mkdir()
    path = written(tmp_path / "assets.lock", {"a.png": entry(1)})
    (tmp_path / ".assetbuild" / lock_module.RENDERED_NAME).unlink()
    path.write_text(path.read_text(encoding="utf-8").replace(f'"key": "{1:032x}"', '"key": "../x"'))
    with pytest.raises(ManifestError, match="32 hexadecimal digits"):
        Lock.load(path)
    assert not (tmp_path / ".assetbuild" / lock_module.RENDERED_NAME).exists()


@pytest.mark.parametrize(("old", "new", "problem"), [
    (f'"key": "{3:032x}"', '"key": "../../../etc/passwd"', "32 hexadecimal digits"),
    ('"seed": 3', '"seed": ,', "Expecting value"),
    ('"seed": 3', '"seed": NaN', "not a number JSON allows"),
    ('"model": "m"', '"model": "m"\n    },\n     "other.png": {"x": 1', "not one entry of that name"),
])
def test_an_invalid_entry_in_a_file_it_wrote_is_refused_when_used(tmp_path: Path, old: str, new: str,
                                                                   problem: str) -> None:
    entries = {f"t{n}.png": entry(n) for n in range(6)}
    path = written(tmp_path / "assets.lock", entries)
    text = path.read_text(encoding="utf-8")
    start = text.index('    "t3.png"')
    plant(path, text[:start] + text[start:].replace(old, new, 1))
    lock = Lock.load(path)  # nothing is parsed yet
    assert lock.targets() == sorted(entries)
    assert lock.get("t2.png") == entries["t2.png"]
    # (``get`` itself refuses a text whose key or hash cannot be read off; the rest, when a field is used.)
    for use in (lambda: lock.get("t3.png").seed, lock.entries):
        with pytest.raises(ManifestError, match=problem) as info:
            use()
        message = str(info.value)
        assert message.startswith(str(path)) and "entry 't3.png'" in message and "not valid" in message
    lock.commit("t3.png", entry(30))  # replacing it needs no parse of the old text
    assert Lock.load(path).get("t3.png") == entry(30)


def test_a_forged_entry_stops_the_build_with_exit_2_naming_it(project: Path) -> None:
    write_manifest(project, QUICKSTART)
    assert run_cli(project, "-q").returncode == 0
    path = project / "assets.lock"
    text = path.read_text(encoding="utf-8")
    start = text.index('    "sprites/hero.png"')
    key_at = text.index('"key": "', start) + len('"key": "')
    plant(path, text[:key_at] + "../../../../etc/passwd" + text[key_at + 32:])
    (project / ".assetbuild" / "noop.json").unlink(missing_ok=True)  # no memo: the plan reads the lock
    result = run_cli(project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "assets.lock" in result.stderr and "sprites/hero.png" in result.stderr
    assert "32 hexadecimal digits" in result.stderr


def test_texts_not_used_are_written_back_verbatim(tmp_path: Path) -> None:
    """A valid text in another spelling and an invalid one, both unused, survive rewrites byte for byte
    (the invalid one is still refused when used after the next load)."""
    entries = {f"t{n}.png": entry(n) for n in range(6)}
    path = written(tmp_path / "assets.lock", entries)
    text = path.read_text(encoding="utf-8")
    odd = text.replace('"model": "m",\n      "seed": 1\n', '"model": "\\u006d",\n      "seed": 1\n')
    odd = odd.replace(f'"hash": "{104:032x}"', '"hash": "not a hash"')  # t4
    assert odd.count("\\u006d") == 1 and "not a hash" in odd
    plant(path, odd)
    lock = Lock.load(path)
    lock.commit("t2.png", entry(20))
    lock.commit("t0.png", None)
    lock.commit("t9.png", entry(9))
    lock.flush()
    kept = path.read_text(encoding="utf-8")
    assert "\\u006d" in kept and "not a hash" in kept
    chunk = lock_module._chunk
    expected = odd.replace(chunk("t2.png", entry(2)), chunk("t2.png", entry(20)))
    expected = expected.replace(chunk("t0.png", entry(0)) + ",\n", "")
    last = chunk("t5.png", entry(5))
    expected = expected.replace(last, last + ",\n" + chunk("t9.png", entry(9)))
    assert kept == expected
    again = Lock.load(path)
    assert again.get("t1.png") == entry(1)  # "\u006d" is "m"
    with pytest.raises(ManifestError, match="entry 't4.png'"):
        again.get("t4.png")


def test_rewrites_of_a_lazily_read_lock_are_byte_identical_to_render(tmp_path: Path) -> None:
    """Runs of texts copied from the loaded file (across pieces of the stream) and rendered entries,
    changed at the first, the last and in the middle, added and removed: ``render``'s bytes."""
    entries = {f"set/{n:05d}.png": entry(n) for n in range(1300)}
    path = written(tmp_path / "assets.lock", entries)
    lock = Lock.load(path)
    changes: dict[str, LockEntry | None] = {"set/00000.png": entry(5000), "set/00700.png": entry(5001),
                                            "set/01299.png": entry(5002), "set/00650x.png": entry(5003),
                                            "set/00001.png": None, "set/00900.png": None, "a.png": entry(5004),
                                            "z.png": entry(5005)}
    for target, value in changes.items():
        lock.commit(target, value)
        if value is None:
            del entries[target]
        else:
            entries[target] = value
    lock.flush()
    assert path.read_bytes() == render(entries)
    assert Lock.load(path).entries() == entries


def test_a_durable_entry_is_held_as_its_text_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Structural memory bound (issue 16.3): once a commit returns, its entry is held as the text the next
    rewrite needs, not as a LockEntry too; used again, it is parsed from that text."""
    path = tmp_path / "assets.lock"
    lock = Lock.load(path)
    lock.commit("small.png", entry(1))  # a small lock: rewritten on each commit
    assert lock._slots["small.png"] == lock_module._chunk("small.png", entry(1)).encode()
    monkeypatch.setattr(lock_module, "COMPACT_MIN_BYTES", 0)  # as if the lock were big: by ratio alone

    def commits(k: int) -> None:
        for n in range(k, 400, 8):
            lock.commit(f"new/{n:04d}.png", entry(n, prompt=f"prompt {n}"))

    threads = [threading.Thread(target=commits, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (tmp_path / ".assetbuild" / "lock.journal").exists()
    assert all(isinstance(slot, bytes) for slot in lock._slots.values())  # no LockEntry held, nor twice
    assert lock._parsed == {}
    assert lock.get("new/0123.png") == entry(123, prompt="prompt 123")
    assert lock._parsed == {}  # a text it rendered is parsed again when used, not kept twice
    lock.flush()
    assert all(isinstance(slot, bytes) for slot in lock._slots.values())
    assert path.read_bytes() == render({"small.png": entry(1),
                                        **{f"new/{n:04d}.png": entry(n, prompt=f"prompt {n}") for n in range(400)}})


def _reference_parse(target: str, text: bytes) -> LockEntry:
    """How an entry's text was always read: wrapped in braces, decoded whole, one member of that name."""
    import json

    data = json.loads("{" + text.decode("utf-8") + "}", parse_constant=lambda name: 1 / 0)
    assert isinstance(data, dict) and list(data) == [target]
    return LockEntry.from_json(data[target])


@pytest.mark.parametrize(("target", "edit"), [
    ("a.png", lambda text: text),
    ("a.png", lambda text: text + "  \n"),  # trailing whitespace: still one entry
    ("é \u2028.png", lambda text: text),  # an escaped (or unprintable) name takes the full parse
    ('q"x.png', lambda text: text.replace('q\\"x', 'q"x', 1)),  # the name as the target, but not JSON
    ("t\\x.png", lambda text: text.replace("t\\\\x", "t\\x", 1)),  # a lone backslash: not JSON either
    ("a.png", lambda text: text.replace('"seed": 5', '"seed": 5.0')),
    ("a.png", lambda text: text + ',\n    "b.png": {}'),  # two members
    ("a.png", lambda text: text.replace('"model": "m"', '"model": "m", "model": 3')),  # the last one counts
])
def test_an_entry_text_reads_as_the_whole_text_decoded_would(target: str, edit: Any) -> None:
    """The scan of a text as rendered gives what decoding the text wrapped in braces gives, entry or error."""
    text = edit(lock_module._chunk(target, entry(5))).encode("utf-8")
    try:
        expected: LockEntry | str = _reference_parse(target, text)
    except (ValueError, TypeError, KeyError, AssertionError, ZeroDivisionError):
        expected = "refused"
    try:
        found: LockEntry | str = lock_module._parse_chunk(Path("assets.lock"), target, text)
    except ManifestError as exc:
        assert str(exc).startswith("assets.lock") and repr(target) in str(exc)
        found = "refused"
    assert found == expected


def varied_entries() -> dict[str, LockEntry]:
    """Entries with and without model hashes, seeds and models, and names that need escaping or not."""
    return {
        "plain.png": entry(1),
        "hashes.png": LockEntry(key=f"{2:032x}", hash=f"{102:032x}", seed=None, model=None,
                                inputs={"v": 1, "params": {"prompt": 'say "hi"\n', "model": "x"}},
                                model_hashes={"model:x": "abc", "lora:y": "def"}),
        "é \u2028 q\"x.png": entry(3, prompt="key: \"key\": no"),
        "nested.png": LockEntry(key=f"{4:032x}", hash=f"{104:032x}", seed=-1, model="m",
                                inputs={"v": 1, "params": {"key": "0" * 32, "hash": "1" * 32}, "post": {}}),
    }


def test_get_reads_key_and_hash_off_the_text_and_parses_the_rest_when_used(tmp_path: Path,
                                                                          parses: list[Any]) -> None:
    """Issue 16.2: a plan compares each entry's key and hash, and they are read off the text; any other
    field parses and checks the whole entry once, and then the entry equals the one parsed whole."""
    entries = varied_entries()
    path = written(tmp_path / "assets.lock", entries)
    lock = Lock.load(path)
    got = {target: lock.get(target) for target in entries}
    assert {t: (e.key, e.hash) for t, e in got.items() if e} == {t: (e.key, e.hash) for t, e in entries.items()}
    assert got["plain.png"].model_hashes == {}  # known from the text: it has none
    assert parses == []  # (an escaped name too: the split decoded it)
    assert got["hashes.png"].model_hashes == entries["hashes.png"].model_hashes
    assert got == entries and len(parses) == len(entries)  # each parsed once, by the comparison
    assert lock.get("nested.png") is got["nested.png"]  # kept: not read again
    assert lock.entries() == entries and len(parses) == len(entries)
    with pytest.raises(AttributeError):
        got["plain.png"].no_such_field  # noqa: B018
    changed = dataclasses.replace(got["hashes.png"], model_hashes={"model:x": "new"})
    assert changed.model_hashes == {"model:x": "new"} and changed.inputs == entries["hashes.png"].inputs


@pytest.mark.parametrize(("old", "new"), [
    # A line as at the entry's level, after its key but inside another object (a rendered text never has
    # one there): the key read off is not the entry's.
    ('"model": "m",', f'"model": "m",\n      "other": {{\n      "key": "{9:032x}",\n "x": 1}},'),
    # Model hashes the read-off did not see (they are not at the entry's level).
    ('"model": "m",', '"model": "m",\n "model_hashes": {"model:m": "h"},'),
])
def test_a_text_whose_parse_disagrees_with_what_was_read_off_is_refused(tmp_path: Path, old: str,
                                                                         new: str) -> None:
    entries = {"t1.png": entry(1), "t2.png": entry(2)}
    path = written(tmp_path / "assets.lock", entries)
    text = path.read_text(encoding="utf-8")
    start = text.index('    "t2.png"')
    plant(path, text[:start] + text[start:].replace(old, new, 1))
    lock = Lock.load(path)
    found = lock.get("t2.png")
    assert found is not None
    for use in (lambda: found.inputs, lock.entries):
        with pytest.raises(ManifestError, match="entry 't2.png'") as info:
            use()
        assert str(info.value).startswith(str(path))
    assert lock.get("t1.png") == entries["t1.png"]


@pytest.mark.parametrize("model_hashes", [False, True])
def test_a_fresh_asset_uses_only_its_entrys_key_and_hash(project: Path, model_hashes: bool) -> None:
    """A damaged field other than the key and hash of a fresh asset's entry does not stop a build (it is
    not used: the asset is fresh), and stops a command that uses it (``why`` of a copy of the image shows
    the seed) with exit 2, naming the file and the entry. With model hashes in the entry (which the memo's
    record reads, after the summary), the build still ends with exit 0: only the memo is not written."""
    write_manifest(project, QUICKSTART)
    assert run_cli(project, "-q").returncode == 0
    path = project / "assets.lock"
    text = path.read_text(encoding="utf-8")
    start = text.index('    "sprites/hero.png"')
    seed_at = text.index('\n      "seed": ', start) + 1  # the entry's own seed (the params have one too)
    hashes = '      "model_hashes": {\n        "model:x": "h"\n      },\n' if model_hashes else ""
    plant(path, text[:seed_at] + hashes + '      "seed": "forged"' + text[text.index("\n", seed_at):])
    (project / ".assetbuild" / "noop.json").unlink(missing_ok=True)  # no memo: the plan reads the lock
    images = {p: p.read_bytes() for p in project.rglob("*.png") if ".assetbuild" not in p.parts}
    assert project / "sprites" / "hero.png" in images
    result = run_cli(project, "run", "--dry-run", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"state": "fresh"' in result.stdout and '"stale' not in result.stdout
    build = run_cli(project)
    assert build.returncode == 0 and "3 fresh" in build.stdout, build.stdout + build.stderr
    assert (project / ".assetbuild" / "noop.json").exists() != model_hashes  # no memo over an unreadable entry
    copy = project / "copy.png"
    copy.write_bytes(images[project / "sprites" / "hero.png"])
    why = run_cli(project, "why", "copy.png")
    assert why.returncode == 2, why.stdout + why.stderr
    assert "assets.lock" in why.stderr and "sprites/hero.png" in why.stderr and "seed" in why.stderr
    assert {p: p.read_bytes() for p in images} == images and path.read_text(encoding="utf-8") != text


def test_read_off_entries_never_differ_from_the_whole_parse() -> None:
    """Mutated entry texts (planted entry-level lines, quotes, braces, cuts): a text whose key and hash are
    read off either parses to exactly the fields of the whole parse, or is refused with the ManifestError
    when a field is used, never anything else."""
    import random

    rng = random.Random(16)
    bases = [LockEntry(key=f"{n:032x}", hash=f"{n + 7:032x}", seed=n if n % 3 else None,
                       model="m" if n % 2 else None,
                       inputs={"v": 1, "params": {"prompt": f'p {n} "key": x', "seed": n}, "post": {}},
                       model_hashes={"model:m": "abc"} if n % 4 == 0 else {}) for n in range(8)]
    pieces = ['\n      "key": "' + "a" * 32 + '",', '\n      "model_hashes": {},', '\n      "hash": "' + "b" * 32
              + '",', '"', "{", "}", ",", "\n", " ", "\\", "x", "0", '\n      "seed": 3',
              '\n        "key": "' + "c" * 32 + '",']
    outcomes = {"not read off": 0, "same": 0, "refused when used": 0}
    for _ in range(4000):
        text = lock_module._chunk("t.png", rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            at, cut = rng.randint(0, len(text)), rng.choice((0, rng.randint(1, 20)))
            text = text[:at] + (rng.choice(pieces) if rng.random() < 0.7 else "") + text[at + cut:]
        raw = text.encode("utf-8")
        read = lock_module._read_off(Path("assets.lock"), "t.png", raw, 0, len(raw))
        if read is None:
            outcomes["not read off"] += 1
            continue
        try:
            fields = lock_module._fields(read)
        except ManifestError as exc:
            assert str(exc).startswith("assets.lock") and "'t.png'" in str(exc)
            outcomes["refused when used"] += 1
            continue
        whole = lock_module._parse_chunk(Path("assets.lock"), "t.png", raw)  # must parse: read off and used
        assert lock_module._fields(whole) == fields, text
        outcomes["same"] += 1
    assert min(outcomes.values()) > 100, outcomes  # every kind of outcome was exercised


def test_two_threads_first_using_one_entry_both_read_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock is used from several threads: two that parse the same read-off entry at once (held after
    their parse by a barrier, as a preemption there would) both get its fields, with model hashes too."""
    with_hashes = LockEntry(key=f"{1:032x}", hash=f"{101:032x}", seed=1, model="m", inputs={"v": 1},
                            model_hashes={"model:m": "abc"})
    path = written(tmp_path / "assets.lock", {"a.png": with_hashes})
    found = Lock.load(path).get("a.png")
    assert found is not None and "model_hashes" not in found.__dict__  # read off: not parsed yet
    real, barrier = lock_module._parse_chunk, threading.Barrier(2, timeout=20)

    def parse_then_wait(*args: Any) -> LockEntry:
        entry = real(*args)
        barrier.wait()
        return entry

    monkeypatch.setattr(lock_module, "_parse_chunk", parse_then_wait)
    results: dict[str, Any] = {}

    def use(name: str) -> None:
        try:
            results[name] = getattr(found, name)
        except ManifestError as exc:
            results[name] = exc

    threads = [threading.Thread(target=use, args=(name,)) for name in ("model_hashes", "inputs")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"model_hashes": {"model:m": "abc"}, "inputs": {"v": 1}}


def test_entries_and_get_then_use_apply_the_same_rule(tmp_path: Path) -> None:
    """Model hashes at another indent than a render's: refused by ``entries()`` straight after a load, as
    by a field used after ``get``."""
    path = written(tmp_path / "assets.lock", {"a.png": entry(1)})
    text = path.read_text(encoding="utf-8")
    plant(path, text.replace('"model": "m",', '"model": "m",\n "model_hashes": {"model:m": "h"},', 1))
    with pytest.raises(ManifestError, match="not as assetbuild writes it"):
        Lock.load(path).entries()
    found = Lock.load(path).get("a.png")
    assert found is not None
    with pytest.raises(ManifestError, match="not as assetbuild writes it"):
        found.inputs  # noqa: B018


def test_a_copy_of_a_read_off_entry_is_a_plain_entry(tmp_path: Path) -> None:
    """Pickled or copied, an entry does not carry the lock file's bytes along."""
    import copy
    import pickle

    entries = {f"t{n:04d}.png": entry(n, prompt="p" * 200) for n in range(300)}
    path = written(tmp_path / "assets.lock", entries)
    found = Lock.load(path).get("t0007.png")
    assert found is not None
    data = pickle.dumps(found)
    assert len(data) < 2000 < path.stat().st_size
    assert type(pickle.loads(data)) is LockEntry and pickle.loads(data) == entries["t0007.png"]
    assert type(copy.copy(found)) is LockEntry and copy.deepcopy(found) == entries["t0007.png"]


def test_explore_refuses_a_damaged_entry_before_making_any_candidate(project: Path, tmp_path: Path) -> None:
    """The contact sheet shows the lock's seed of the asset at the end: a damaged entry is refused first,
    with nothing generated (GPU time is spent only on a run that can finish)."""
    write_manifest(project, QUICKSTART)
    assert run_cli(project, "-q").returncode == 0
    path = project / "assets.lock"
    text = path.read_text(encoding="utf-8")
    start = text.index('    "sprites/hero.png"')
    seed_at = text.index('\n      "seed": ', start) + 1
    plant(path, text[:seed_at] + '      "seed": "forged"' + text[text.index("\n", seed_at):])
    log = tmp_path / "generations.log"
    result = run_cli(project, "explore", "sprites/hero.png", "-k", "3", env={"ASSETBUILD_PLACEHOLDER_LOG": str(log)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "sprites/hero.png" in result.stderr and "seed" in result.stderr
    assert generations(log) == []
