"""assets.toml v1: shape validation, resolution (defaults < style < asset), and every manifest error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest

from assetbuild.errors import ManifestError
from assetbuild.manifest import load

# The example of product.md, verbatim but for the server (offline) and a source file it does not need.
PRODUCT_EXAMPLE = """
[project]
output_dir = "."

[server]
url = "http://localhost:7801"
websocket = true
concurrency = 4
timeout = 900

[defaults]
model = "sd_xl_base_1.0"
width = 1024
height = 1024
steps = 25
cfgscale = 7
seed = 1

[styles.pixel]
prompt = "pixel art of {prompt}, 16-bit palette, clean outline"
negativeprompt = "photo, blurry"

[assets."sprites/hero_attack.png"]
prompt = "the same knight swinging a sword"
style = "pixel"
initimage = "sprites/hero.png"
initimagecreativity = 0.6

[assets."sprites/hero.png"]
prompt = "a knight in silver armor, idle pose"
style = "pixel"
seed = 42

[assets."ui/icon_sword.png"]
prompt = "a steel sword icon, flat shading"
width = 512
height = 512
resize = [64, 64]
"""


@pytest.fixture(autouse=True)
def _in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages show the manifest relative to the current folder: "assets.toml:LINE".
    monkeypatch.chdir(project)


def error_of(project: Path, body: str) -> ManifestError:
    path = write_manifest(project, body)
    with pytest.raises(ManifestError) as info:
        load(path)
    return info.value


def test_product_example_resolves(project: Path) -> None:
    p = load(write_manifest(project, PRODUCT_EXAMPLE))
    assert p.root == project
    assert p.output_dir == project
    assert p.server.url == "http://localhost:7801" and p.server.concurrency == 4 and p.server.timeout == 900
    # Upstream first, even though the manifest declares hero_attack before hero.
    assert list(p.assets) == ["sprites/hero.png", "sprites/hero_attack.png", "ui/icon_sword.png"]
    hero = p.assets["sprites/hero.png"]
    assert hero.params == {
        "prompt": "pixel art of a knight in silver armor, idle pose, 16-bit palette, clean outline",
        "negativeprompt": "photo, blurry",
        "model": "sd_xl_base_1.0",
        "width": 1024,
        "height": 1024,
        "steps": 25,
        "cfgscale": 7,
        "seed": 42,
    }
    assert hero.path == project / "sprites" / "hero.png"
    attack = p.assets["sprites/hero_attack.png"]
    assert attack.params["seed"] == 1
    assert attack.params["initimagecreativity"] == 0.6
    assert "initimage" not in attack.params  # image inputs travel as bytes, not as a parameter value
    assert [(i.param, i.asset) for i in attack.inputs] == [("initimage", "sprites/hero.png")]
    assert attack.upstream == ["sprites/hero.png"]
    icon = p.assets["ui/icon_sword.png"]
    assert icon.post.resize == (64, 64)
    assert "resize" not in icon.params
    assert (icon.params["width"], icon.params["height"]) == (512, 512)
    assert p.warnings == []


@pytest.mark.parametrize(
    ("defaults", "style", "asset", "expected"),
    [
        ("steps = 10", "", "", 10),
        ("steps = 10", "steps = 20", "", 20),
        ("steps = 10", "steps = 20", "steps = 30", 30),
        ("", "steps = 20", "steps = 30", 30),
        ("steps = 10", "", "steps = 30", 30),
    ],
)
def test_precedence_defaults_style_asset(project: Path, defaults: str, style: str, asset: str,
                                         expected: int) -> None:
    body = f"""
    [defaults]
    {defaults}
    [styles.s]
    {style}
    negativeprompt = "n"
    [assets."a.png"]
    prompt = "p"
    style = "s"
    {asset}
    """
    assert load(write_manifest(project, body)).assets["a.png"].params["steps"] == expected


def test_style_prompt_templates_and_asset_override(project: Path) -> None:
    p = load(write_manifest(project, """
    [styles.s]
    prompt = "pixel art of {prompt}, outlined"
    negativeprompt = "blurry, {prompt}"
    [assets."a.png"]
    prompt = "   a knight  "
    negativeprompt = "photo"
    style = "s"
    [assets."b.png"]
    prompt = "plain"
    """))
    a = p.assets["a.png"].params
    assert a["prompt"] == "pixel art of a knight, outlined"
    assert a["negativeprompt"] == "blurry, photo"
    b = p.assets["b.png"].params
    assert b == {"prompt": "plain"}


def test_style_without_template_is_overridden_by_the_asset(project: Path) -> None:
    p = load(write_manifest(project, """
    [styles.s]
    prompt = "style prompt"
    negativeprompt = "style negative"
    [assets."a.png"]
    prompt = "own prompt"
    style = "s"
    """))
    assert p.assets["a.png"].params == {"prompt": "own prompt", "negativeprompt": "style negative"}


def test_default_style_applies_to_every_asset(project: Path) -> None:
    p = load(write_manifest(project, """
    [defaults]
    style = "s"
    [styles.s]
    prompt = "icon of {prompt}"
    [assets."a.png"]
    prompt = "a sword"
    """))
    assert p.assets["a.png"].params["prompt"] == "icon of a sword"


@pytest.mark.parametrize("name", ["cfg_scale", "CFGScale", "cfgscale", "CFG Scale", "cfg-scale_2"])
def test_parameter_names_are_normalised_like_swarmui(project: Path, name: str) -> None:
    p = load(write_manifest(project, f"""
    [defaults]
    "{name}" = 6.5
    [assets."a.png"]
    prompt = "p"
    """))
    assert p.assets["a.png"].params == {"prompt": "p", "cfgscale": 6.5}
    assert p.warnings == []


def test_an_alias_in_a_higher_layer_overrides_the_canonical_name(project: Path) -> None:
    p = load(write_manifest(project, """
    [defaults]
    cfgscale = 5
    [assets."a.png"]
    prompt = "p"
    CFG_Scale = 9
    """))
    assert p.assets["a.png"].params["cfgscale"] == 9


def test_two_aliases_of_one_parameter_in_one_table_are_an_error(project: Path) -> None:
    err = error_of(project, """
    [assets."a.png"]
    prompt = "p"
    cfgscale = 5
    cfg_scale = 6
    """)
    assert err.where == "assets.toml:4"
    assert "cfg_scale" in str(err) and "cfgscale" in str(err)
    assert err.hint


def test_unknown_parameter_is_passed_through_with_a_warning_naming_the_closest(project: Path) -> None:
    p = load(write_manifest(project, """
    [assets."ui/a.png"]
    prompt = "p"
    cfg_scal = 7
    """))
    assert p.assets["ui/a.png"].params["cfgscal"] == 7
    assert len(p.warnings) == 1
    warning = p.warnings[0]
    assert "ui/a.png" in warning
    assert "'cfgscale'" in warning
    assert warning.startswith("assets.toml:1: ")


def test_unknown_parameter_without_close_match_still_warns(project: Path) -> None:
    p = load(write_manifest(project, """
    [assets."a.png"]
    prompt = "p"
    zzqqxx = "v"
    """))
    assert p.assets["a.png"].params["zzqqxx"] == "v"
    assert len(p.warnings) == 1 and "zzqqxx" in p.warnings[0] and "a.png" in p.warnings[0]


def test_unknown_top_level_key_is_an_error_with_line_and_suggestion(project: Path) -> None:
    err = error_of(project, """
    [assets."a.png"]
    prompt = "p"

    [projects]
    output_dir = "x"
    """)
    assert err.where == "assets.toml:4"
    assert "projects" in str(err) and "'project'" in str(err)


def test_unknown_key_in_server_table_is_an_error(project: Path) -> None:
    err = error_of(project, """
    [server]
    url = "placeholder"
    concurency = 2
    """)
    assert "concurency" in str(err) and "'concurrency'" in str(err)
    assert err.where == "assets.toml:3"


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        ('[server]\nconcurrency = "4"\n', "assets.toml:2", ["server.concurrency"]),
        ("[server]\nwebsocket = 1\n", "assets.toml:2", ["server.websocket"]),
        ("[project]\noutput_dir = 3\n", "assets.toml:2", ["project.output_dir"]),
        ("defaults = 5\n", "assets.toml", ["defaults"]),
        ('[assets]\n"a.png" = "a prompt"\n', "assets.toml:2", ["assets.a.png"]),
        ('[assets."a.png"]\nprompt = "p"\nwidth = "big"\n', "assets.toml:1", ["a.png", "width", "whole number"]),
        ('[assets."a.png"]\nprompt = "p"\nsteps = 2.5\n', "assets.toml:1", ["a.png", "steps"]),
        ('[assets."a.png"]\nprompt = 5\n', "assets.toml:1", ["a.png", "prompt", "string"]),
        ('[assets."a.png"]\nprompt = "p"\nwidth = 8\n', "assets.toml:1", ["a.png", "width", "between"]),
        ('[assets."a.png"]\nprompt = "p"\nresize = "small"\n', "assets.toml:1", ["a.png", "resize"]),
    ],
)
def test_wrong_types_are_errors(project: Path, body: str, where: str, words: list[str]) -> None:
    err = error_of(project, body)
    assert err.where == where
    for word in words:
        assert word in str(err)


def test_toml_syntax_error_names_the_line(project: Path) -> None:
    err = error_of(project, """
    [assets."a.png"]
    seed = 3
    prompt = a knight
    """)
    assert err.where == "assets.toml:3"
    assert "TOML" in str(err)
    assert err.hint


def test_unknown_style_suggests_the_closest(project: Path) -> None:
    err = error_of(project, """
    [styles.pixel]
    prompt = "pixel art of {prompt}"

    [assets."hero.png"]
    prompt = "p"
    style = "pixl"
    """)
    assert err.where == "assets.toml:4"
    assert "hero.png" in str(err) and "pixl" in str(err)
    assert err.hint and "pixel" in err.hint


def test_unknown_style_with_no_styles_defined_has_a_hint(project: Path) -> None:
    err = error_of(project, '[assets."hero.png"]\nprompt = "p"\nstyle = "pixel"\n')
    assert err.hint and "[styles.pixel]" in err.hint


@pytest.mark.parametrize(
    "second",
    ["a/../b.png", "./b.png", "x/./../b.png", "b.png/", ".//b.png"],
)
def test_duplicate_targets_after_normalisation(project: Path, second: str) -> None:
    err = error_of(project, f"""
    [assets."b.png"]
    prompt = "one"

    [assets."{second}"]
    prompt = "two"
    """)
    assert err.where == "assets.toml:4"
    assert "duplicate" in str(err) and "b.png" in str(err)
    assert err.hint


@pytest.mark.parametrize("target", ["/tmp/x.png", "~/x.png", "C:/x.png", "\\\\server\\x.png"])
def test_absolute_targets_are_refused(project: Path, target: str) -> None:
    escaped = target.replace("\\", "\\\\")
    err = error_of(project, f'[assets."{escaped}"]\nprompt = "p"\n')
    assert err.where == "assets.toml:1"
    assert "relative" in str(err)
    assert err.hint


@pytest.mark.parametrize("target", ["../x.png", "a/../../x.png", "..\\\\x.png"])
def test_targets_escaping_the_project_are_refused(project: Path, target: str) -> None:
    err = error_of(project, f'[assets."{target}"]\nprompt = "p"\n')
    assert err.where == "assets.toml:1"
    assert "leaves the project" in str(err)
    assert err.hint
    assert not (project.parent / "x.png").exists()


def test_output_dir_escaping_the_project_is_refused(project: Path) -> None:
    err = error_of(project, '[project]\noutput_dir = "../elsewhere"\n[assets."a.png"]\nprompt = "p"\n')
    assert err.where == "assets.toml:2"
    assert "leaves the project" in str(err)


def test_target_through_a_symlink_out_of_the_project_is_refused(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "art").symlink_to(outside, target_is_directory=True)
    err = error_of(project, '[assets."art/x.png"]\nprompt = "p"\n')
    assert err.where == "assets.toml:1"
    assert "symlink" in str(err)
    assert err.hint


def test_symlink_inside_the_project_is_fine(project: Path) -> None:
    (project / "real").mkdir()
    (project / "art").symlink_to(project / "real", target_is_directory=True)
    p = load(write_manifest(project, '[assets."art/x.png"]\nprompt = "p"\n'))
    assert list(p.assets) == ["art/x.png"]


def test_image_input_through_a_symlink_out_of_the_project_is_refused(project: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not yours")
    (project / "ref.png").symlink_to(secret)
    err = error_of(project, '[assets."a.png"]\nprompt = "p"\ninitimage = "ref.png"\n')
    assert "symlink" in str(err)
    assert err.where == "assets.toml:1"


@pytest.mark.parametrize("value", ["/etc/passwd", "../secret.png"])
def test_image_input_outside_the_project_is_refused(project: Path, value: str) -> None:
    err = error_of(project, f'[assets."a.png"]\nprompt = "p"\ninitimage = "{value}"\n')
    assert "initimage" in str(err) and "a.png" in str(err)


def test_image_input_naming_nothing_is_an_error(project: Path) -> None:
    err = error_of(project, '[assets."a.png"]\nprompt = "p"\ninitimage = "nothere.png"\n')
    assert "nothere.png" in str(err) and err.hint


def test_image_input_from_a_repo_file(project: Path) -> None:
    (project / "refs").mkdir()
    (project / "refs" / "pose.png").write_bytes(b"\x89PNG fake")
    p = load(write_manifest(project, '[assets."a.png"]\nprompt = "p"\ninitimage = "refs/./pose.png"\n'))
    (image,) = p.assets["a.png"].inputs
    assert image.asset is None
    assert image.reference == "refs/pose.png"
    assert image.path == project / "refs" / "pose.png"
    assert p.assets["a.png"].upstream == []


def test_dependency_cycle_is_an_error(project: Path) -> None:
    err = error_of(project, """
    [assets."a.png"]
    prompt = "p"
    initimage = "b.png"

    [assets."b.png"]
    prompt = "p"
    initimage = "c.png"

    [assets."c.png"]
    prompt = "p"
    initimage = "a.png"
    """)
    assert "cycle" in str(err)
    assert "a.png -> b.png -> c.png -> a.png" in str(err)
    assert err.where == "assets.toml:1"
    assert err.hint


def test_an_asset_using_its_own_output_is_a_cycle(project: Path) -> None:
    err = error_of(project, '[assets."a.png"]\nprompt = "p"\ninitimage = "./a.png"\n')
    assert "cycle" in str(err) and "a.png -> a.png" in str(err)


def test_a_long_chain_declared_downstream_first_loads_in_dependency_order(project: Path) -> None:
    # 1,200 `source` links, each asset declared before the one it reads: deeper than Python's recursion
    # limit, which a recursive sort would hit.
    count = 1200
    body = '[server]\nurl = "placeholder"\n'
    for n in range(count - 1):
        body += f'[assets."chain/a{n:04d}.png"]\nsource = "chain/a{n + 1:04d}.png"\n'
    body += f'[assets."chain/a{count - 1:04d}.png"]\nprompt = "the root"\nwidth = 64\nheight = 64\n'
    p = load(write_manifest(project, body))
    assert list(p.assets) == [f"chain/a{n:04d}.png" for n in reversed(range(count))]
    result = run_cli(project, "status")
    assert result.returncode == 0, result.stderr
    assert f"1 stale (generate), {count - 1} stale (after upstream)" in result.stdout


def test_independent_assets_keep_manifest_order_and_inputs_come_first(project: Path) -> None:
    p = load(write_manifest(project, """
    [assets."a.png"]
    prompt = "p"
    initimage = "c.png"

    [assets."b.png"]
    prompt = "p"

    [assets."c.png"]
    prompt = "p"

    [assets."d.png"]
    source = "b.png"
    """))
    order = list(p.assets)
    assert sorted(order) == ["a.png", "b.png", "c.png", "d.png"]
    assert order.index("c.png") < order.index("a.png") and order.index("b.png") < order.index("d.png")
    assert order == ["b.png", "c.png", "a.png", "d.png"]


def test_a_cycle_is_named_from_its_first_asset_in_the_manifest(project: Path) -> None:
    err = error_of(project, """
    [assets."x.png"]
    prompt = "p"

    [assets."b.png"]
    prompt = "p"
    initimage = "c.png"

    [assets."c.png"]
    prompt = "p"
    initimage = "b.png"
    """)
    assert "dependency cycle: b.png -> c.png -> b.png" in str(err)
    assert err.where == "assets.toml:4"


def test_asset_without_prompt_is_an_error(project: Path) -> None:
    err = error_of(project, '[assets."a.png"]\nseed = 3\n')
    assert "a.png" in str(err) and "prompt" in str(err) and err.hint


def test_reserved_parameters_are_refused(project: Path) -> None:
    err = error_of(project, '[assets."a.png"]\nprompt = "p"\nimages = 4\n')
    assert "images" in str(err) and err.hint


def test_unsupported_target_extension_is_refused(project: Path) -> None:
    err = error_of(project, '[assets."notes.txt"]\nprompt = "p"\n')
    assert "notes.txt" in str(err) and ".txt" in str(err)


def test_missing_manifest_has_a_hint(project: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load(project / "assets.toml")
    assert "no such file" in str(info.value)
    assert info.value.hint and "init" in info.value.hint


def test_output_dir_and_cache_dir(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = load(write_manifest(project, """
    [project]
    output_dir = "art"
    cache_dir = "shared-cache"
    [assets."a.png"]
    prompt = "p"
    """))
    assert p.output_dir == project / "art"
    assert p.assets["a.png"].path == project / "art" / "a.png"
    assert p.cache_dir == project / "shared-cache"
    assert p.lock_path == project / "assets.lock"
    default = load(write_manifest(project, '[assets."a.png"]\nprompt = "p"\n'))
    assert default.cache_dir == project / ".assetbuild" / "cache"


def test_loading_writes_nothing(project: Path) -> None:
    write_manifest(project, PRODUCT_EXAMPLE)
    before = sorted(os.listdir(project))
    load(project / "assets.toml")
    assert sorted(os.listdir(project)) == before


def test_unknown_parameter_warning_points_at_the_parameter_line(project: Path) -> None:
    path = write_manifest(project, """
    [server]
    url = "placeholder"

    [assets."a.png"]
    prompt = "x"
    stpes = 3
    """)
    [warning] = load(path).warnings
    assert warning.startswith(f"{path}:6: asset 'a.png': unknown parameter 'stpes'") or warning.startswith(
        "assets.toml:6: asset 'a.png': unknown parameter 'stpes'")
    assert "did you mean 'steps'?" in warning
