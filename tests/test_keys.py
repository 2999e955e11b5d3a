"""Keys: xxh3-128 of a canonical form. Cosmetic edits keep a key; any value reaching the generator changes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xxhash
from conftest import write_manifest

from assetbuild import keys as K
from assetbuild.cli import main
from assetbuild.manifest import load
from assetbuild.workspace import open_workspace

BASE = """
[server]
url = "placeholder"

[defaults]
model = "sd_xl_base_1.0"
width = 512
height = 512
steps = 20
cfgscale = 7
seed = 1

[styles.pixel]
prompt = "pixel art of {prompt}, 16-bit"
negativeprompt = "photo, blurry"

[assets."sprites/hero.png"]
prompt = "a knight in silver armor"
style = "pixel"
seed = 42
sampler = "euler"
resize = [64, 64]

[assets."ui/icon.png"]
prompt = "a sword icon"
initimage = "refs/sketch.png"
initimagecreativity = 0.5
"""

# The same manifest: tables and keys reordered, aliases for parameter names, blank lines and comments,
# whitespace at the ends of prompts.
REORDERED = """
# the assets first this time
[assets."ui/icon.png"]
init_image_creativity = 0.5
InitImage = "refs/sketch.png"
prompt = "   a sword icon\t"

[assets."sprites/hero.png"]
Resize = [64, 64]
Sampler = "euler"
seed = 42
style = "pixel"
prompt = \"\"\"
a knight in silver armor
\"\"\"

[styles.pixel]
negative_prompt = "photo, blurry"
prompt = "pixel art of {prompt}, 16-bit"

[defaults]
seed = 1
CFG_Scale = 7.0
steps = 20
height = 512
width = 512
model = "sd_xl_base_1.0"

[server]
url = "placeholder"
"""


def keys_of(project: Path, body: str) -> dict[str, str]:
    """The current key of every asset of ``body`` (written to ``project``)."""
    path = write_manifest(project, body)
    ws = open_workspace(str(path))
    result = {}
    for status in ws.planner.plan():
        assert status.key is not None, status
        result[status.target] = status.key
    return result


@pytest.fixture
def proj(project: Path) -> Path:
    (project / "refs").mkdir()
    (project / "refs" / "sketch.png").write_bytes(b"sketch bytes v1")
    return project


def test_key_is_xxh3_128_of_the_canonical_json(proj: Path) -> None:
    p = load(write_manifest(proj, BASE))
    asset = p.assets["sprites/hero.png"]
    form = K.canonical(asset, "placeholder", {})
    text = json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    key = K.key_of(form)
    assert key == xxhash.xxh3_128_hexdigest(text.encode())
    assert len(key) == 32 and int(key, 16) >= 0
    assert form == {
        "v": K.KEY_VERSION,
        "generator": "placeholder",
        "params": {"cfgscale": 7, "height": 512, "model": "sd_xl_base_1.0",
                   "negativeprompt": "photo, blurry", "prompt": "pixel art of a knight in silver armor, 16-bit",
                   "sampler": "euler", "seed": 42, "steps": 20, "width": 512},
        "inputs": {},
        "post": {"format": "PNG", "resize": {"size": [64, 64], "mode": "exact", "filter": "lanczos"}},
    }


def test_key_format_is_stable(proj: Path) -> None:
    # A golden value: if this changes without a KEY_VERSION bump, every user's assets silently go stale
    # (or, worse, a changed meaning keeps an old key).
    p = load(write_manifest(proj, BASE))
    assert K.key_of(K.canonical(p.assets["sprites/hero.png"], "placeholder", {})) == (
        "841131915282654cf76fdd1e60ed7dfe"
    )


def test_reordering_aliases_and_prompt_whitespace_keep_every_key(proj: Path) -> None:
    base = keys_of(proj, BASE)
    assert keys_of(proj, REORDERED) == base
    assert len(set(base.values())) == 2


def test_key_does_not_depend_on_dict_order() -> None:
    form_a = {"v": 1, "params": {"a": 1, "b": 2}, "inputs": {}}
    form_b = {"inputs": {}, "params": {"b": 2, "a": 1}, "v": 1}
    assert K.key_of(form_a) == K.key_of(form_b)


def _mutations() -> list[tuple[str, str, str]]:
    """(id, old text, new text): each changes one value that reaches the generator (or the output)."""
    return [
        ("prompt", 'prompt = "a knight in silver armor"', 'prompt = "a knight in golden armor"'),
        ("prompt-inner-space", 'prompt = "a knight in silver armor"', 'prompt = "a knight in  silver armor"'),
        ("prompt-case", 'prompt = "a knight in silver armor"', 'prompt = "A knight in silver armor"'),
        ("style-prompt", 'prompt = "pixel art of {prompt}, 16-bit"', 'prompt = "pixel art of {prompt}, 8-bit"'),
        ("negative", 'negativeprompt = "photo, blurry"', 'negativeprompt = "photo"'),
        ("seed", "seed = 42", "seed = 43"),
        ("default-steps", "steps = 20", "steps = 30"),
        ("default-width", "width = 512", "width = 640"),
        ("default-height", "height = 512", "height = 640"),
        ("model", 'model = "sd_xl_base_1.0"', 'model = "flux1-dev"'),
        ("cfgscale", "cfgscale = 7", "cfgscale = 7.5"),
        ("sampler", 'sampler = "euler"', 'sampler = "euler_ancestral"'),
        ("new-param", 'sampler = "euler"', 'sampler = "euler"\nscheduler = "karras"'),
        ("unknown-param", 'sampler = "euler"', 'sampler = "euler"\nmyextension = 1'),
        ("resize", "resize = [64, 64]", "resize = [64, 32]"),
        ("resize-mode", "resize = [64, 64]", 'resize = {size = [64, 64], mode = "fit"}'),
        ("crop", "resize = [64, 64]", "resize = [64, 64]\ncrop = [0, 0, 256, 256]"),
        ("trim", "resize = [64, 64]", "resize = [64, 64]\ntrim = true"),
        ("embed-prompt", "resize = [64, 64]", "resize = [64, 64]\nembed_prompt = true"),
        ("no-style", 'style = "pixel"\n', ""),
    ]


@pytest.mark.parametrize(("old", "new"), [(o, n) for _, o, n in _mutations()], ids=[m[0] for m in _mutations()])
def test_every_value_reaching_the_generator_changes_the_key(proj: Path, old: str, new: str) -> None:
    assert old in BASE
    base = keys_of(proj, BASE)
    changed = keys_of(proj, BASE.replace(old, new, 1))
    assert changed["sprites/hero.png"] != base["sprites/hero.png"]
    # Defaults reach every asset; everything else only the hero.
    in_defaults = old in BASE.split("[styles.pixel]")[0]
    assert (changed["ui/icon.png"] != base["ui/icon.png"]) is in_defaults


def test_unknown_param_value_type_changes_the_key(proj: Path) -> None:
    one = keys_of(proj, BASE.replace('sampler = "euler"', "myextension = 1"))
    true = keys_of(proj, BASE.replace('sampler = "euler"', "myextension = true"))
    text = keys_of(proj, BASE.replace('sampler = "euler"', 'myextension = "1"'))
    assert len({one["sprites/hero.png"], true["sprites/hero.png"], text["sprites/hero.png"]}) == 3


def test_integer_and_float_of_the_same_decimal_share_a_key(proj: Path) -> None:
    assert keys_of(proj, BASE) == keys_of(proj, BASE.replace("cfgscale = 7", "cfgscale = 7.0"))


def test_input_image_bytes_are_part_of_the_key(proj: Path) -> None:
    before = keys_of(proj, BASE)
    (proj / "refs" / "sketch.png").write_bytes(b"sketch bytes v2")
    after = keys_of(proj, BASE)
    assert after["ui/icon.png"] != before["ui/icon.png"]
    assert after["sprites/hero.png"] == before["sprites/hero.png"]
    (proj / "refs" / "sketch.png").write_bytes(b"sketch bytes v1")
    assert keys_of(proj, BASE) == before


def test_renaming_the_input_file_with_the_same_bytes_keeps_the_key(proj: Path) -> None:
    before = keys_of(proj, BASE)
    (proj / "refs" / "sketch.png").rename(proj / "refs" / "other.png")
    after = keys_of(proj, BASE.replace("refs/sketch.png", "refs/other.png"))
    assert after == before


def test_upstream_output_bytes_are_part_of_the_downstream_key(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    body = """
    [server]
    url = "placeholder"
    [defaults]
    width = 64
    height = 64
    [assets."base.png"]
    prompt = "a knight"
    [assets."variant.png"]
    prompt = "the knight, red"
    initimage = "base.png"
    """
    write_manifest(project, body)
    monkeypatch.chdir(project)
    assert main(["run", "-q"]) == 0
    first = keys_of(project, body)
    assert main(["run", "-q"]) == 0
    assert keys_of(project, body) == first  # deterministic generation: same bytes, same key
    write_manifest(project, body.replace('"a knight"', '"a knight, helmet off"'))
    assert main(["run", "-q"]) == 0
    second = keys_of(project, body.replace('"a knight"', '"a knight, helmet off"'))
    assert second["base.png"] != first["base.png"]
    assert second["variant.png"] != first["variant.png"]  # its params did not change; its input did
    capsys.readouterr()


def test_generator_kind_and_key_version_are_part_of_the_key(proj: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asset = load(write_manifest(proj, BASE)).assets["sprites/hero.png"]
    placeholder = K.key_of(K.canonical(asset, "placeholder", {}))
    swarm = K.key_of(K.canonical(asset, "swarmui", {}))
    assert placeholder != swarm
    monkeypatch.setattr(K, "KEY_VERSION", K.KEY_VERSION + 1)
    assert K.key_of(K.canonical(asset, "placeholder", {})) != placeholder


def test_target_path_is_not_part_of_the_key(proj: Path) -> None:
    # Renaming a target restores it from the cache instead of generating it again.
    base = keys_of(proj, BASE)
    renamed = keys_of(proj, BASE.replace('[assets."sprites/hero.png"]', '[assets."sprites/knight.png"]'))
    assert renamed["sprites/knight.png"] == base["sprites/hero.png"]


def test_hash_bytes_is_xxh3_128() -> None:
    assert K.hash_bytes(b"abc") == xxhash.xxh3_128_hexdigest(b"abc")
    assert K.hash_bytes(b"abc") != K.hash_bytes(b"abd")


# Keys are in users' committed locks and caches: each must stay bit for bit what it was when this test was written
# (computed by the code before the plan was made faster, issue 16). Varied on purpose: non-ASCII, escapes and
# a line separator in a prompt, a big seed, an integral and a fractional float, lists of both, variants with a
# random seed, a derived asset with every post step's fields, an image input, both generator kinds.
VARIED = r'''
[server]
url = "placeholder"

[defaults]
model = "sd_xl_base_1.0"
width = 512
height = 512

[assets."a/unicode.png"]
prompt = "  café \"quoted\" back\\slash\ttab \u2014 龍 🐉 \u2028 end  "
negativeprompt = "x, y"
cfgscale = 7.5
seed = 12345678901234
steps = 30
embedprompt = true

[assets."b/floats.webp"]
prompt = "floats"
cfgscale = 7.0
quality = 90
crop = [1, 2, 300, 400]
trim = "auto"
loras = ["one", "two"]
loraweights = [0.5, 1.0]

[assets."c/var_{n}.png"]
prompt = "variants with a random seed"
count = 2
seed = -1

[assets."d/derived.jpg"]
source = "a/unicode.png"
resize = {size = [16, 16], filter = "nearest", mode = "fit"}
quality = 70

[assets."e/input.png"]
prompt = "with an input"
initimage = "refs/sketch.png"
initimagecreativity = 0.5
'''

PINNED = {
    ("a/unicode.png", "placeholder"): "f8281d712aac23867296a3bccca46961",
    ("a/unicode.png", "swarmui"): "b48116bce8dac0019384c36fa538c016",
    ("b/floats.webp", "placeholder"): "cc74860de520c00d07b966a034e91949",
    ("b/floats.webp", "swarmui"): "a7680c8000c5a9c98098bcd2119e0652",
    ("c/var_1.png", "placeholder"): "180a095f5349478d2e96f0b56ac29530",
    ("c/var_1.png", "swarmui"): "41eb29b5aa88fc1f9264868a7aada96b",
    ("c/var_2.png", "placeholder"): "c4982a6f2276ef14aedc4bc419d449ac",
    ("c/var_2.png", "swarmui"): "964de0533d6c8b10e6db01dd9914a0ce",
    ("d/derived.jpg", "placeholder"): "01181f9627778e83e220ae721861ece6",
    ("d/derived.jpg", "swarmui"): "01181f9627778e83e220ae721861ece6",
    ("e/input.png", "placeholder"): "9e7ea84df369af23b068dc9d7daae1e9",
    ("e/input.png", "swarmui"): "170fd535f4d63eacf94e7424323ab1fa",
}


def test_keys_of_varied_assets_are_pinned(proj: Path) -> None:
    p = load(write_manifest(proj, VARIED))
    found = {}
    for target, asset in p.assets.items():
        inputs = {image.param: f"{len(image.param):032x}" for image in asset.inputs}
        if asset.source:
            inputs["source"] = "f" * 32
        for kind in ("placeholder", "swarmui"):
            form = K.canonical(asset, kind, inputs)
            found[target, kind] = K.key_of(form)
            # The key is the hash of json.dumps's text of the form, whichever encoder computes it.
            text = json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            assert found[target, kind] == xxhash.xxh3_128_hexdigest(text.encode())
    assert found == PINNED
