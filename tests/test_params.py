"""SwarmUI parameter ids: normalisation, the known table, value checks and typo hints."""

from __future__ import annotations

import pytest

from assetbuild import params as P


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("cfgscale", "cfgscale"),
        ("cfg_scale", "cfgscale"),
        ("CFGScale", "cfgscale"),
        ("CFG Scale", "cfgscale"),
        ("cfg-scale", "cfgscale"),
        ("Negative Prompt", "negativeprompt"),
        ("init_image_creativity", "initimagecreativity"),
        ("steps2", "steps"),  # digits are not a-z: dropped, like SwarmUI
        ("ÉtapeS", "tapes"),  # non-ASCII letters are not a-z either
        ("save_intermediate_images", "outputintermediateimages"),  # a legacy id SwarmUI still maps
    ],
)
def test_normalise_like_swarmui(written: str, normalised: str) -> None:
    assert P.normalise(written) == normalised


def test_normalise_is_idempotent_over_the_known_table() -> None:
    for name in P.KNOWN:
        assert P.normalise(name) == name
        assert P.normalise(name.upper()) == name


def test_known_table_is_keyed_by_id_and_image_params_derive_from_it() -> None:
    assert all(spec.id == key for key, spec in P.KNOWN.items())
    assert {"initimage", "maskimage", "controlnetimageinput"} <= P.IMAGE_PARAMS
    assert all(P.KNOWN[name].type == "image" for name in P.IMAGE_PARAMS)
    assert "prompt" not in P.IMAGE_PARAMS


@pytest.mark.parametrize(
    ("typo", "expected"),
    [("cfgscal", "cfgscale"), ("stepss", "steps"), ("negativepromt", "negativeprompt"), ("seeed", "seed"),
     ("initimagecreativty", "initimagecreativity")],
)
def test_closest_finds_likely_typos(typo: str, expected: str) -> None:
    assert P.closest(typo) == expected


def test_closest_returns_none_for_unrelated_names() -> None:
    assert P.closest("zzqqxx") is None
    assert P.closest("pixl", ["pixel", "painterly"]) == "pixel"
    assert P.closest("pixl", []) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("prompt", "a knight"),
        ("seed", -1),
        ("seed", 2**63 - 1),
        ("steps", 0),
        ("cfgscale", 7),
        ("cfgscale", 6.5),
        ("width", 64),
        ("initimagecreativity", 1),
        ("removebackground", True),
        ("loras", ["a", "b"]),
        ("loras", "a,b"),
        ("model", "sd_xl_base_1.0"),
    ],
)
def test_check_value_accepts(name: str, value: object) -> None:
    assert P.check_value(P.KNOWN[name], value) is None


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("prompt", 5, "string"),
        ("seed", -2, "between"),
        ("seed", True, "whole number"),
        ("steps", 2.5, "whole number"),
        ("steps", "20", "whole number"),
        ("steps", 501, "between 0 and 500"),
        ("cfgscale", "7", "number"),
        ("cfgscale", False, "number"),
        ("width", 63, "between 64 and 16384"),
        ("initimagecreativity", 1.5, "between 0 and 1"),
        ("removebackground", 1, "true or false"),
        ("loras", {"a": 1}, "list"),
        ("loras", [["nested"]], "list"),
        ("model", 3, "string"),
    ],
)
def test_check_value_refuses_with_a_sentence(name: str, value: object, words: str) -> None:
    problem = P.check_value(P.KNOWN[name], value)
    assert problem is not None and words in problem


def test_reserved_parameters_have_reasons() -> None:
    for name, reason in P.RESERVED.items():
        assert name in P.KNOWN
        assert reason
