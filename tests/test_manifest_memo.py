"""The manifest memo (issue 16.2): unchanged asset tables are not parsed again, and the result is always the
one the whole file gives."""

from __future__ import annotations

import datetime
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from conftest import write_manifest
from helpers import QUICKSTART

from assetbuild.cli import main
from assetbuild.errors import ManifestError
from assetbuild.manifest import Project, load
from assetbuild.manifest.memo import MEMO_NAME, ResolvedMemo
from assetbuild.manifest.sections import split
from assetbuild.workspace import load_project

BODY = """\
[server]
url = "placeholder"

[defaults]
model = "m"
steps = 20
width = 64
height = 64

[styles.pixel]
prompt = "pixel art of {prompt}, 16-bit"
negative_prompt = "blurry"

[assets."a/one.png"]
prompt = "one"
style = "pixel"
cfg_scale = 7.0

[assets."a/two.webp"]
prompt = "two"
quality = 80
resize = [32, 32]

[assets."trees/oak_{n}.png"]
prompt = "an oak"
count = 3
seed = 5

[assets."b/loras.png"]
prompt = "with loras"
loras = { "z-lora" = 0.5, "a-lora" = 1 }

[assets."b/odd.png"]
prompt = "unknown parameter"
sharpness = 3

[assets."b/derived.png"]
source = "a/one.png"
resize = [16, 16]

[assets."b/img2img.png"]
prompt = "from one"
init_image = "a/one.png"
"""


def snapshot(project: Project) -> dict[str, Any]:
    return {"assets": {t: (a.path, a.params, a.inputs, a.post, a.source, a.line, a.variant)
                       for t, a in project.assets.items()},
            "order": list(project.assets), "warnings": project.warnings, "tables": project.tables,
            "server": project.server, "output": project.output_dir, "cache": project.cache_dir}


def memo_load(root: Path, text: str | None = None) -> tuple[Project, ResolvedMemo]:
    (root / ".assetbuild").mkdir(exist_ok=True)  # as a build makes it (the memo is bound to that folder)
    memo = ResolvedMemo.open(root / ".assetbuild")
    project = load(root / "assets.toml", text=text, memo=memo)
    memo.save(root / ".assetbuild" / "tmp")
    return project, memo


def test_a_load_from_the_memo_equals_a_load_of_the_whole_file(project: Path, counted: list[str]) -> None:
    write_manifest(project, BODY)
    whole = snapshot(load(project / "assets.toml"))
    first, _ = memo_load(project)
    assert snapshot(first) == whole
    assert (project / ".assetbuild" / MEMO_NAME).is_file()
    counted.clear()
    again, _ = memo_load(project)
    assert snapshot(again) == whole
    # Only the tables that depend on other targets, files or give a warning are resolved again.
    assert counted == ["b/odd.png", "b/derived.png", "b/img2img.png"]


def test_editing_one_table_resolves_only_that_table(project: Path, counted: list[str]) -> None:
    write_manifest(project, BODY)
    memo_load(project)
    edited = BODY.replace('prompt = "two"', 'prompt = "two, edited"').replace("seed = 5", "seed = 6")
    (project / "assets.toml").write_text(edited, encoding="utf-8")
    counted.clear()
    project_now, _ = memo_load(project)
    assert sorted(set(counted) - {"b/odd.png", "b/derived.png", "b/img2img.png"}) == [
        "a/two.webp", "trees/oak_1.png", "trees/oak_2.png", "trees/oak_3.png"]
    assert snapshot(project_now) == snapshot(load(project / "assets.toml"))
    assert project_now.assets["a/two.webp"].params["prompt"] == "two, edited"
    assert project_now.assets["trees/oak_3.png"].params["seed"] == 8


@pytest.mark.parametrize("edit", [
    ('prompt = "pixel art of {prompt}, 16-bit"', 'prompt = "pixel art of {prompt}, 8-bit"'),  # a style
    ("steps = 20", "steps = 30"),  # [defaults]
    ("[defaults]", "[project]\noutput_dir = \"out\"\n\n[defaults]"),  # where targets go
    ("[defaults]", "# a comment only\n[defaults]"),  # any change to the global part
])
def test_editing_the_global_part_resolves_every_table(project: Path, counted: list[str],
                                                      edit: tuple[str, str]) -> None:
    write_manifest(project, BODY)
    memo_load(project)
    text = BODY.replace(*edit)
    assert text != BODY
    (project / "assets.toml").write_text(text, encoding="utf-8")
    counted.clear()
    project_now, _ = memo_load(project)
    assert len(counted) == len(project_now.assets)
    assert snapshot(project_now) == snapshot(load(project / "assets.toml"))


def test_lines_follow_their_tables_when_an_edit_moves_them(project: Path) -> None:
    write_manifest(project, BODY)
    memo_load(project)
    text = BODY.replace('prompt = "one"', 'prompt = """one,\nover\nthree lines"""')
    (project / "assets.toml").write_text(text, encoding="utf-8")
    project_now, _ = memo_load(project)
    assert snapshot(project_now) == snapshot(load(project / "assets.toml"))
    assert project_now.assets["a/two.webp"].line == text.splitlines().index('[assets."a/two.webp"]') + 1


class _Runs:
    """Unpickled, it would run a command (``_Plain`` must refuse it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("damage", [b"", b"{", b"not json\n{}", b'{"format": 2, "context": "x", "check": "y"}\n{}',
                                    "truncated", "flipped", "forged", "wrong shape", "runs code", "a class"])
def test_a_damaged_memo_is_ignored(project: Path, counted: list[str], damage: bytes | str, tmp_path: Path) -> None:
    write_manifest(project, BODY)
    table = memo_load(project)[0].table_hashes["a/two.webp"]
    path = project / ".assetbuild" / MEMO_NAME
    data = path.read_bytes()
    marker = tmp_path / "ran"
    if damage == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "flipped":  # a changed value: the checksum no longer matches
        assert b"two" in data
        path.write_bytes(data.replace(b"two", b"TWO"))
    elif isinstance(damage, str):  # bytes of another making, with this folder's context and a matching checksum
        from assetbuild.keys import hash_bytes

        head = json.loads(data.partition(b"\n")[0])
        body = {"forged": b'{"x": [1, 2]}',
                "wrong shape": pickle.dumps({table: ["a/two.webp", {"prompt": "forged"}, None]}),
                "runs code": pickle.dumps({table: _Runs(marker)}),
                "a class": pickle.dumps({table: ("a/two.webp", {"prompt": datetime.date(2020, 1, 1)}, None)}),
                }[damage]
        head["check"] = hash_bytes(body)
        path.write_bytes(json.dumps(head).encode() + b"\n" + body)
    else:
        path.write_bytes(damage)
    counted.clear()
    project_now, _ = memo_load(project)
    assert "a/two.webp" in counted  # not taken from it
    assert snapshot(project_now) == snapshot(load(project / "assets.toml"))
    assert project_now.assets["a/two.webp"].params["prompt"] == "two"
    assert not marker.exists()


def test_only_plain_values_are_kept(project: Path, counted: list[str]) -> None:
    """A TOML date reads back as itself only through a class lookup, which the memo's reader refuses: such a
    table is resolved on every load, and the others are still kept."""
    write_manifest(project, BODY + '\n[assets."c/dated.png"]\nprompt = "dated"\nwhen = 2020-01-01\n')
    first, _ = memo_load(project)
    counted.clear()
    again, _ = memo_load(project)
    assert "c/dated.png" in counted and "a/one.png" not in counted
    assert snapshot(again) == snapshot(first) == snapshot(load(project / "assets.toml"))


# Texts whose cut into tables is not what it seems: the memo must give what the whole file gives, or the
# same error.
TRICKY = [
    # A fake header inside a multi-line string of an asset.
    BODY + '\n[assets."c/fake.png"]\nprompt = """x\n[assets."c/inside.png"]\nprompt = "not a table"\n"""\n',
    # ... and inside a multi-line string of [defaults], closed in a later table.
    BODY.replace('model = "m"', 'model = "m"\nnegativeprompt = """\n[assets."c/ghost.png"]\nprompt = "g"\n"""'),
    # A header the cut does not recognise as an asset table: sub-tables, [assets] itself, arrays of tables.
    BODY + '\n[assets."c/sub.png"]\nprompt = "s"\n[assets."c/sub.png".loras]\n"a" = 1\n',
    BODY + '\n[assets]\n"c/inline.png" = { prompt = "i" }\n',
    # Indented headers and CRLF line ends.
    BODY + '\n  [assets."c/indented.png"]\n  prompt = "i"\n',
    BODY.replace("\n", "\r\n"),
    # No newline at the end, a comment after a header.
    BODY + '\n[assets."c/last.png"] # the last one\nprompt = "l"',
    # The same table twice (a TOML error), and a target declared twice by two spellings.
    BODY + '\n[assets."a/one.png"]\nprompt = "again"\n',
    BODY + '\n[assets."a/../a/one.png"]\nprompt = "again"\n',
    # Folded twins, a target escaping the project, a bad value, a TOML syntax error in one table.
    BODY + '\n[assets."A/One.png"]\nprompt = "twin"\n',
    BODY + '\n[assets."../escape.png"]\nprompt = "out"\n',
    BODY + '\n[assets."c/bad.png"]\nprompt = "bad"\nsteps = "many"\n',
    BODY + '\n[assets."c/syntax.png"]\nprompt = "unclosed\n',
    BODY + '\n[assets."c/time.png"]\nprompt = "a date"\nwhen = 1979-05-27\n',
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_files_give_what_the_whole_file_gives(project: Path, text: str) -> None:
    write_manifest(project, BODY)
    memo_load(project)  # the memo knows the tables of BODY
    (project / "assets.toml").write_bytes(text.encode())
    try:
        expected: Any = snapshot(load(project / "assets.toml"))
    except ManifestError as exc:
        expected = ("error", str(exc))
    for _ in range(2):  # from a memo of BODY, then from the memo this load made
        try:
            got: Any = snapshot(memo_load(project)[0])
        except ManifestError as exc:
            got = ("error", str(exc))
        assert got == expected


@pytest.mark.parametrize("chunk", [2, 3, 256])
@pytest.mark.parametrize("text", TRICKY)
def test_tables_parsed_together_give_what_the_whole_file_gives(project: Path, text: str, chunk: int,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With no memo every asset table is parsed in chunks of joined text (``loader._CHUNK``): a fake header
    inside a string, a sub-table or a duplicate in a chunk, at its edge or not, changes nothing."""
    from assetbuild.manifest import loader

    monkeypatch.setattr(loader, "_CHUNK", chunk)
    (project / "assets.toml").write_bytes(text.encode())
    try:
        expected: Any = snapshot(load(project / "assets.toml"))
    except ManifestError as exc:
        expected = ("error", str(exc))
    (project / ".assetbuild").mkdir(exist_ok=True)
    (project / ".assetbuild" / MEMO_NAME).unlink(missing_ok=True)
    try:
        got: Any = snapshot(memo_load(project)[0])
    except ManifestError as exc:
        got = ("error", str(exc))
    assert got == expected


def test_a_fake_header_that_keeps_the_count_of_tables_is_not_taken_for_one(project: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A multi-line string swallows a header-like line of the next piece; the joined text then has one table
    fewer than its pieces, and the file is read whole (which reads the string as a string)."""
    from assetbuild.manifest import loader

    monkeypatch.setattr(loader, "_CHUNK", 4)
    text = BODY + ('\n[assets."c/s.png"]\nprompt = """a\n[assets."c/in.png"]\nb"""\n'
                   '\n[assets."c/after.png"]\nprompt = "after"\n')
    write_manifest(project, text)
    project_now, _ = memo_load(project)
    assert project_now.assets["c/s.png"].params["prompt"] == 'a\n[assets."c/in.png"]\nb'
    assert "c/in.png" not in project_now.assets
    assert snapshot(project_now) == snapshot(load(project / "assets.toml"))


def test_split_cuts_before_every_header() -> None:
    cut = split(BODY)
    assert [piece.text.splitlines()[0] for piece in cut.assets] == [
        '[assets."a/one.png"]', '[assets."a/two.webp"]', '[assets."trees/oak_{n}.png"]', '[assets."b/loras.png"]',
        '[assets."b/odd.png"]', '[assets."b/derived.png"]', '[assets."b/img2img.png"]']
    assert "".join(p.text for p in sorted([*cut.global_pieces, *cut.assets], key=lambda p: p.line)) == BODY
    assert [p.line for p in cut.assets] == [n + 1 for n, line in enumerate(BODY.splitlines())
                                            if line.startswith("[assets.")]


@pytest.mark.parametrize("text", [*TRICKY, '[assets."first.png"]\nprompt = "f"\n' + BODY, "  [x]\n[assets.'y']\n",
                                  '[assets."a.png"]', "\n\n[assets.b]  # c\r\n[assets.b.c]\nx=1\n", ""])
def test_split_agrees_with_a_line_by_line_reading(text: str) -> None:
    """Pieces start exactly at the lines that begin with "[", cover the text, and asset pieces are the ones
    whose header line is one [assets.NAME] with only a comment after it."""
    import re

    asset_line = re.compile(r"""[ \t]*\[[ \t]*assets[ \t]*\.[ \t]*(?:"(?:[^"\\\r\n]|\\.)*"|'[^'\r\n]*'|"""
                            r"""[A-Za-z0-9_-]+)[ \t]*\][ \t]*(?:#[^\n]*)?\r?\n""")
    lines = text.splitlines(keepends=True)
    starts = [n + 1 for n, line in enumerate(lines) if re.match(r"[ \t]*\[", line)]
    expected_assets = [n for n in starts if asset_line.fullmatch(lines[n - 1])]
    cut = split(text)
    pieces = sorted([*cut.global_pieces, *cut.assets], key=lambda p: p.line)
    assert "".join(p.text for p in pieces) == text
    assert [p.line for p in cut.assets] == expected_assets
    assert {p.line for p in pieces} - {1} == set(starts) - {1}


def test_a_build_keeps_the_memo_and_an_edit_rebuilds_only_its_asset(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     counted: list[str]) -> None:
    write_manifest(project, QUICKSTART)
    monkeypatch.chdir(project)
    monkeypatch.setenv("ASSETBUILD_PLACEHOLDER_LOG", str(project.parent / "gen.log"))
    assert main(["-q"]) == 0
    assert (project / ".assetbuild" / MEMO_NAME).is_file()
    assert load_project(None).memo is not None
    (project.parent / "gen.log").unlink()
    text = (project / "assets.toml").read_text()
    (project / "assets.toml").write_text(text.replace("a steel sword icon", "a bronze sword icon"), encoding="utf-8")
    counted.clear()
    (project / ".assetbuild" / "noop.json").unlink()  # else it proves the other tables fresh unread (below)
    assert main(["-q"]) == 0
    # The edited table, and one with an input (made once every target is known: the order may differ).
    assert sorted(counted) == ["sprites/hero_attack.png", "ui/icon_sword.png"]
    assert len((project.parent / "gen.log").read_text().splitlines()) == 1
    assert "bronze" in (project / "assets.lock").read_text()


def test_with_the_noop_memo_an_edit_reads_only_the_edited_table(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                               counted: list[str]) -> None:
    write_manifest(project, QUICKSTART)
    monkeypatch.chdir(project)
    monkeypatch.setenv("ASSETBUILD_PLACEHOLDER_LOG", str(project.parent / "gen.log"))
    assert main(["-q"]) == 0
    (project.parent / "gen.log").unlink()
    text = (project / "assets.toml").read_text()
    (project / "assets.toml").write_text(text.replace("a steel sword icon", "a bronze sword icon"), encoding="utf-8")
    counted.clear()
    assert main(["-q"]) == 0
    assert counted == ["ui/icon_sword.png"]  # not even the table with an input: its files are unchanged
    assert len((project.parent / "gen.log").read_text().splitlines()) == 1
    assert "bronze" in (project / "assets.lock").read_text()


def test_a_memo_from_another_state_folder_is_not_used(project: Path, counted: list[str]) -> None:
    """A memo shipped in a repository or an archive (same path, same text) is not this checkout's own."""
    write_manifest(project, BODY)
    memo_load(project)
    state = project / ".assetbuild"
    saved = (state / MEMO_NAME).read_bytes()
    state.rename(project.parent / "old-state")
    state.mkdir()  # the same path, another folder (as an archive or a clone would make it)
    (state / MEMO_NAME).write_bytes(saved)
    counted.clear()
    project_now, _ = memo_load(project)
    assert len(counted) == len(project_now.assets)
    counted.clear()
    memo_load(project)  # its own memo from now on
    assert counted == ["b/odd.png", "b/derived.png", "b/img2img.png"]


# Tables are resolved one at a time as they are read (issue 16.3: a first load of 100,000 tables must not
# hold them all); what is reported, and in which order, stays the one of a load that checks every target
# before any value.
ORDER_BODY = """\
[assets."a/first.png"]
prompt = "first"
steps = "many"

[assets."b/r.png"]
prompt = "second"

[assets."b/x/../r.png"]
prompt = "the same file"
"""


@pytest.mark.parametrize("with_memo", [False, True])
def test_a_later_duplicate_target_is_reported_before_an_earlier_bad_value(project: Path, with_memo: bool) -> None:
    write_manifest(project, ORDER_BODY)
    with pytest.raises(ManifestError) as info:
        memo_load(project) if with_memo else load(project / "assets.toml")
    assert "duplicate target" in str(info.value) and info.value.where.endswith(":8")


@pytest.mark.parametrize("with_memo", [False, True])
def test_a_bad_value_in_a_derived_asset_is_reported_before_a_later_one(project: Path, with_memo: bool) -> None:
    """An asset with ``source`` is made once every target is known; its problem still comes first."""
    write_manifest(project, """\
[assets."a/derived.png"]
source = "b/base.png"
resize = "big"

[assets."b/base.png"]
prompt = "base"
steps = "many"
""")
    with pytest.raises(ManifestError) as info:
        memo_load(project) if with_memo else load(project / "assets.toml")
    assert "resize" in str(info.value) and info.value.where.endswith(":3")


@pytest.mark.parametrize("with_memo", [False, True])
def test_warnings_keep_the_order_of_the_manifest(project: Path, with_memo: bool) -> None:
    write_manifest(project, """\
[assets."a/uses.png"]
prompt = "uses b"
init_image = "b/base.png"
frobnicate = 1

[assets."b/base.png"]
prompt = "base"
wibble = 2
""")
    project_now = memo_load(project)[0] if with_memo else load(project / "assets.toml")
    assert [("frobnicate" in w, "wibble" in w) for w in project_now.warnings] == [(True, False), (False, True)]
    assert list(project_now.assets) == ["b/base.png", "a/uses.png"]


def test_a_valid_first_load_never_indexes_the_whole_file(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding a key's line indexes every line of the file (57 MB at 100,000 assets): only for messages."""
    write_manifest(project, BODY.replace('sharpness = 3', ''))  # no warning: a warning names a line

    def refuse(*_: Any) -> None:
        raise AssertionError("the file was indexed for a line")

    monkeypatch.setattr("assetbuild.manifest.lines.Locator.line", refuse)
    first, _ = memo_load(project)
    again, _ = memo_load(project)
    assert snapshot(first) == snapshot(again) and len(first.assets) == 9


def test_a_memo_of_many_one_target_tables_reads_back_the_same(project: Path) -> None:
    """Tables of one target are kept in a smaller form; saved and read back, they give the same project."""
    write_manifest(project, BODY + "".join(f'\n[assets."many/{n}.png"]\nprompt = "n {n}"\nseed = {n}\n'
                                           for n in range(50)))
    whole = snapshot(load(project / "assets.toml"))
    first, memo = memo_load(project)
    assert snapshot(first) == whole
    memo = ResolvedMemo.open(project / ".assetbuild")
    again = load(project / "assets.toml", memo=memo)
    assert snapshot(again) == whole
    entry = memo.get(again.table_hashes["many/7.png"])
    assert entry == ("many/7.png", [("many/7.png", again.assets["many/7.png"].params, {}, None)])


MANY = "".join(f'[assets."art/t{n}.png"]\nprompt = "t {n}"\n\n' for n in range(20))


@pytest.mark.parametrize("link_to", ["outside", "state"])
def test_a_target_that_became_a_symlink_is_refused_on_the_next_load(project: Path, tmp_path: Path,
                                                                     link_to: str) -> None:
    """Each folder of targets is listed once per load (not an lstat per target); a symlink among its files is
    still found, also when every table comes from the memo."""
    write_manifest(project, MANY)
    first, _ = memo_load(project)
    assert len(first.assets) == 20
    (project / "art").mkdir()
    for n in range(20):
        if n != 7:
            (project / "art" / f"t{n}.png").write_bytes(b"png")
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    (project / "art" / "t7.png").symlink_to(secret if link_to == "outside" else project / ".assetbuild" / "x.png")
    for attempt in (lambda: memo_load(project), lambda: load(project / "assets.toml")):
        with pytest.raises(ManifestError) as info:
            attempt()
        assert "art/t7.png" in str(info.value)
        assert ("leaves the project" in str(info.value)) if link_to == "outside" else "reserved" in str(info.value)


def test_a_symlink_that_stays_in_the_project_is_a_fine_target(project: Path) -> None:
    write_manifest(project, MANY)
    (project / "art").mkdir()
    (project / "elsewhere.png").write_bytes(b"png")
    (project / "art" / "t3.png").symlink_to(project / "elsewhere.png")
    first, _ = memo_load(project)
    again, _ = memo_load(project)
    assert snapshot(first) == snapshot(again) == snapshot(load(project / "assets.toml"))


@pytest.mark.parametrize("target", ["a.png", "a/b.webp", ".png", "a/.png", "a/..png", "a/b", "a.b/c", "a/b.c.d",
                                    "x/.a.b", "...", "a/.", "a/..", "a/b.", "ab."])
def test_the_suffix_of_a_memo_target_is_the_one_splitext_gives(target: str) -> None:
    import posixpath

    from assetbuild.manifest.assets import suffix_of

    assert suffix_of(target) == posixpath.splitext(target)[1]


@pytest.mark.parametrize("value", ["nan", "-inf", "[1.5, [2, +inf]]", '{ a = { b = nan } }', "[{ c = inf }]"])
def test_a_non_finite_number_anywhere_in_a_table_is_refused_as_by_the_whole_file(project: Path, value: str) -> None:
    write_manifest(project, f'[assets."a.png"]\nprompt = "a"\nfoo = {value}\n')
    with pytest.raises(ManifestError) as whole:
        load(project / "assets.toml")
    with pytest.raises(ManifestError) as by_tables:
        memo_load(project)
    assert str(by_tables.value) == str(whole.value) and "finite" in str(whole.value)


def test_an_assets_path_is_its_output_folder_and_target_also_after_replace(project: Path) -> None:
    import dataclasses

    write_manifest(project, BODY)
    loaded = load(project / "assets.toml")
    asset = loaded.assets["a/one.png"]
    assert asset.path == loaded.output_dir / "a" / "one.png" and asset.path is asset.path
    moved = dataclasses.replace(asset, target="c/three.png")
    assert moved.path == loaded.output_dir / "c" / "three.png" and asset.path.name == "one.png"
    assert dataclasses.replace(asset) == asset


def test_a_memo_of_more_tables_than_one_written_piece_reads_back_whole(project: Path, counted: list[str]) -> None:
    """The memo file is hashed and written in pieces of tables; read back, it knows every table."""
    write_manifest(project, "".join(f'[assets."x/{n}.png"]\nprompt = "n {n}"\n\n' for n in range(2500)))
    memo_load(project)
    counted.clear()
    again, _ = memo_load(project)
    assert len(again.assets) == 2500 and counted == []


def test_a_load_that_finds_nothing_new_leaves_the_memo_file_alone(project: Path) -> None:
    """A full plan of an unchanged manifest reads the memo and writes nothing (its save finds nothing new)."""
    write_manifest(project, BODY)
    memo_load(project)
    path = project / ".assetbuild" / MEMO_NAME
    before = path.stat()
    _, memo = memo_load(project)
    after = path.stat()
    assert not memo.changed and (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    (project / "assets.toml").write_text(BODY.replace('prompt = "two"', 'prompt = "two, edited"'), encoding="utf-8")
    memo_load(project)
    assert path.stat().st_ino != before.st_ino  # a new table: written again (a new file renamed over it)
