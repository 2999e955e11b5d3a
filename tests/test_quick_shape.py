"""``manifest.quick``: the pydantic-free check of the file's own tables accepts exactly what ``schema`` accepts,
with the same values, and a load of a valid manifest does not import pydantic (issue 16.2)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from conftest import write_manifest
from helpers import QUICKSTART, heavy_imports
from pydantic import ValidationError

from assetbuild.manifest.quick import ServerShape, shape
from assetbuild.manifest.schema import ManifestFile, ServerTable

VALUES: list[Any] = ["x", "", ".", True, False, 0, 1, 4, 256, 257, -1, 0.5, 900.0, 0.0, -2.5, [], {}, ["a"],
                     {"a": 1}, "rebuild", "warn", "error"]
FIELDS = {
    "project": ["output_dir", "cache_dir", "outputdir"],
    "cache": ["dir", "remote", "push", "url"],
    "server": ["url", "websocket", "concurrency", "timeout", "save_images", "model_changes", "unused_params",
               "concurency"],
}


def cases() -> list[dict[str, Any]]:
    raws: list[dict[str, Any]] = [{}, {"other": {}}, {"defaults": []}, {"styles": {"s": 1}}, {"assets": {"a": "x"}},
                                  {"assets": {"a.png": {"prompt": "p"}}, "styles": {"s": {}}, "defaults": {"x": 1}},
                                  {"server": []}, {"project": "x"}]
    for table, fields in FIELDS.items():
        for name, value in itertools.product(fields, VALUES):
            raws.append({table: {name: value}})
    return raws


@pytest.mark.parametrize("raw", cases(), ids=lambda raw: repr(raw)[:60])
def test_quick_accepts_only_what_the_schema_accepts_and_reads_it_the_same(raw: dict[str, Any]) -> None:
    quick = shape(raw)
    try:
        strict = ManifestFile.model_validate(raw)
    except ValidationError:
        assert quick is None
        return
    if quick is None:
        return  # pydantic judges it (e.g. an int timeout): the schema's reading is used
    for table in ("project", "server", "cache"):
        ours, theirs = getattr(quick, table), getattr(strict, table)
        assert ours.model_fields_set == theirs.model_fields_set
        assert {k: v for k, v in vars(ours).items() if k != "model_fields_set"} == theirs.model_dump()
    assert (quick.defaults, quick.styles, quick.assets) == (strict.defaults, strict.styles, strict.assets)


def test_server_defaults_have_one_source() -> None:
    assert ServerShape().model_dump() == ServerTable().model_dump()


def test_loading_a_valid_manifest_does_not_import_pydantic(project: Path) -> None:
    write_manifest(project, QUICKSTART)
    manifest = str(project / "assets.toml")
    code = f"import contextlib\nfrom pathlib import Path\nfrom assetbuild.manifest import load\n" \
           f"with contextlib.suppress(Exception): load(Path({manifest!r}))"
    assert "pydantic" not in heavy_imports(code)
    (project / "assets.toml").write_text(QUICKSTART.replace("[defaults]", "[server2]\n[defaults]"))
    assert "pydantic" in heavy_imports(code)  # the unknown table is worded by the schema
