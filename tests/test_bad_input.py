"""Inputs that used to crash (issue 12.13) exit 2 with a clear message naming the file, and write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest

ONE = """
[server]
url = "placeholder"
[assets."a.png"]
prompt = "x"
width = 64
height = 64
"""


@pytest.mark.parametrize(("extra", "expected"), [
    ("foo = " + "[" * 600 + "]" * 600, "nested too deeply"),
    ("foo = nan", "assets.toml:7: asset 'a.png': foo must be a finite number, not nan"),
    ("foo = -inf", "foo must be a finite number, not -inf"),
    ("foo = [1.5, +inf]", "foo must be a finite number, not inf"),
])
def test_manifest_values_that_crashed_exit_2(project: Path, extra: str, expected: str) -> None:
    write_manifest(project, ONE + extra + "\n")
    for command in ((), ("status",)):
        result = run_cli(project, *command)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "assets.toml" in result.stderr and expected in result.stderr
        assert "Traceback" not in result.stderr
    assert not (project / "assets.lock").exists() and not (project / "a.png").exists()


def test_a_nul_byte_in_a_target_or_input_exits_2(project: Path) -> None:
    for body in (ONE.replace('"a.png"', '"a\\u0000b.png"'), ONE + 'initimage = "in\\u0000put.png"\n'):
        write_manifest(project, body)
        result = run_cli(project)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "assets.toml" in result.stderr and "NUL byte" in result.stderr and "Traceback" not in result.stderr


def built(project: Path) -> dict[str, object]:
    write_manifest(project, ONE)
    assert run_cli(project, "-q").returncode == 0
    return json.loads((project / "assets.lock").read_text())


@pytest.mark.parametrize("damage", ["deep", "params-5", "inputs-list", "key-object", "nan"])
def test_lock_files_that_crashed_exit_2_in_every_command(project: Path, damage: str) -> None:
    lock = built(project)
    entry = lock["assets"]["a.png"]  # type: ignore[index]
    if damage == "deep":
        text = '{"assets": ' + "[" * 100_000 + "]" * 100_000 + "}"
    else:
        if damage == "params-5":
            entry["inputs"]["params"] = 5
        elif damage == "inputs-list":
            entry["inputs"] = [1, 2]
        elif damage == "key-object":
            entry["key"] = {"k": 1}
        text = json.dumps(lock)
        if damage == "nan":
            text = text.replace('"seed": ', '"seed": NaN, "x": ', 1)
    (project / "assets.lock").write_text(text)
    for command in (("why", "a.png"), ("--frozen",), ("status",), ()):
        result = run_cli(project, *command)
        assert result.returncode == 2, f"{command}: {result.stdout}{result.stderr}"
        assert "assets.lock" in result.stderr and "not valid" in result.stderr
        assert "Traceback" not in result.stderr
    assert (project / "assets.lock").read_text() == text  # nothing overwritten


def test_a_lock_key_that_is_not_a_digest_is_refused_before_it_can_name_a_file(tmp_path: Path) -> None:
    """A cloned assets.lock with key "../../victim" must not steer a cache read or delete outside the cache."""
    from assetbuild.lock import LockEntry

    good = {"key": "0" * 32, "hash": "1" * 32, "seed": 1, "model": None, "inputs": {}}
    assert LockEntry.from_json(good).key == "0" * 32
    for bad in ("../../../../tmp/victim", "/tmp/victim", "0" * 31, "G" * 32):
        with pytest.raises(TypeError, match="32 hexadecimal"):
            LockEntry.from_json({**good, "key": bad})
    with pytest.raises(TypeError, match="32 hexadecimal"):
        LockEntry.from_json({**good, "hash": "../x"})
