"""The manifest's TOML parser (``manifest.toml``): tomli's compiled parser when installed, the standard
library's as the reference for every error."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest

from assetbuild.manifest import toml

DOCUMENT = """
[server]
url = "placeholder"
[assets."a.png"]
prompt = \"\"\"multi
line\"\"\"
steps = 20
cfgscale = 7.5
loras = { "x" = 0.5 }
when = 1979-05-27T07:32:00Z
"""


def test_tomli_is_installed_and_used() -> None:
    import tomli

    assert toml._fast is tomli.loads


@pytest.mark.parametrize("fast", [True, False])
def test_values_are_the_standard_librarys(fast: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not fast:
        monkeypatch.setattr(toml, "_fast", None)
    assert toml.loads(DOCUMENT) == tomllib.loads(DOCUMENT)


@pytest.mark.parametrize("bad", ['a = "unclosed\n', "a = 1\na = 2\n", "[t]\n[t]\n", "a = [1,,2]\n"])
def test_an_error_is_the_standard_librarys(bad: str) -> None:
    with pytest.raises(tomllib.TOMLDecodeError) as expected:
        tomllib.loads(bad)
    with pytest.raises(tomllib.TOMLDecodeError) as got:
        toml.loads(bad)
    assert str(got.value) == str(expected.value)


def test_nesting_too_deep_is_a_recursion_error_not_a_crash() -> None:
    with pytest.raises(RecursionError):
        toml.loads("a = " + "[" * 100_000 + "]" * 100_000)


def test_a_tomli_that_reads_toml_1_1_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """tomli 2.4 and later read TOML 1.1, which tomllib (the reference) refuses up to Python 3.14."""
    import importlib

    import tomli

    monkeypatch.setattr(tomli, "__version__", "2.4.0")
    try:
        reloaded = importlib.reload(toml)
        assert reloaded._fast is None
        assert reloaded.loads(DOCUMENT) == tomllib.loads(DOCUMENT)
    finally:
        monkeypatch.undo()
        importlib.reload(toml)
    assert toml._fast is tomli.loads


def test_an_integer_longer_than_python_reads_is_a_manifest_error_naming_its_line(project: Path) -> None:
    """tomllib lets Python's ValueError for an integer of over 4,300 digits through: a manifest with one is
    a syntax error at its line (exit 2), not a bug (exit 3)."""
    write_manifest(project, '[server]\nurl = "placeholder"\n\n[assets."a.png"]\nprompt = "a"\nseed = '
                   + "9" * 5000 + "\n")
    result = run_cli(project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "assets.toml:6" in result.stderr and "4,300 digits" in result.stderr
    assert not (project / ".assetbuild" / "crash.log").exists()
