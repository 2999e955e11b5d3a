"""T2I parameter table, key normalisation and validation for the SwarmUI test double.

Mirrors the behaviour described in ``swarmui-api.md`` §3.2: keys are cleaned to lower-case letters only,
values are compared in their Newtonsoft "string form", and every failure produces SwarmUI's exact
error text (``Invalid value for parameter Steps: Invalid integer value for param Steps - '1000' - ...``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

LONG_MAX = 2**63 - 1
UINT_MAX = 2**32 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/=]*$")
_IMAGE_PATH_PREFIXES = ("inputs/", "raw/", "Starred/")

SAMPLERS = [
    "euler", "euler_ancestral", "heun", "heunpp2", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast",
    "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ddim", "uni_pc", "uni_pc_bh2",
    "ipndm", "ipndm_v", "deis", "res_multistep", "euler_cfg_pp", "euler_ancestral_cfg_pp",
]  # fmt: skip
SCHEDULERS = [
    "normal", "karras", "exponential", "simple", "ddim_uniform", "sgm_uniform", "beta",
    "linear_quadratic", "kl_optimal", "align_your_steps", "turbo",
]  # fmt: skip
ASPECT_RATIOS = ["1:1", "4:3", "3:2", "8:5", "16:9", "21:9", "3:4", "2:3", "5:8", "9:16", "9:21", "Custom"]
IMAGE_FORMATS = ["PNG", "JPG", "WEBP"]


def clean_key(key: str) -> str:
    """SwarmUI's ``CleanTypeName``: lower-case, keep only the letters a-z (``cfg_scale`` -> ``cfgscale``)."""
    return "".join(ch for ch in key.lower() if "a" <= ch <= "z")


class ParamError(Exception):
    """A T2I parameter failed validation; ``str(exc)`` is SwarmUI's exact error text."""


class RouteParamError(Exception):
    """A route-level parameter (``images``, ``path``, ...) is missing or has the wrong type."""


@dataclass(frozen=True)
class Group:
    name: str
    toggles: bool = False
    open: bool = False
    priority: float = 10
    advanced: bool = False

    @property
    def id(self) -> str:
        return clean_key(self.name)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "toggles": self.toggles, "open": self.open,
                "priority": self.priority, "description": "", "advanced": self.advanced, "can_shrink": True}


CORE = Group("Core Parameters", open=True, priority=-50)
VARIATION = Group("Variation Seed", toggles=True, priority=-17)
RESOLUTION = Group("Resolution", priority=-11)
SAMPLING = Group("Sampling", priority=-8)
INIT_IMAGE = Group("Init Image", toggles=True, priority=-5)
ADDONS = Group("Advanced Model Addons", advanced=True)
REFINE = Group("Refine / Upscale", toggles=True, priority=-3)
INTERNAL = Group("Swarm Internal", priority=0, advanced=True)
GROUPS = [CORE, VARIATION, RESOLUTION, SAMPLING, INIT_IMAGE, REFINE, ADDONS, INTERNAL]


@dataclass(frozen=True)
class ParamSpec:
    """One T2I parameter type: display name, data type (SwarmUI's lower-case names) and limits."""

    name: str
    type: str  # text | integer | decimal | boolean | dropdown | image | model | list
    default: str | None = ""
    min: float = 0
    max: float = 0
    step: float = 1
    view_max: float = 0
    values: tuple[str, ...] | None = None
    ignore_if: str | None = None
    group: Group | None = None
    subtype: str | None = None
    advanced: bool = False
    toggleable: bool = False
    visible: bool = True
    priority: float = 10
    examples: tuple[str, ...] | None = None
    view_type: str = "small"
    always_retain: bool = False
    hide_from_metadata: bool = False
    feature_flag: str | None = None  # the backend feature an extension's parameter needs
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return clean_key(self.name)

    def to_json(self) -> dict[str, Any]:
        """The ``ListT2IParams`` shape of this parameter (field order as SwarmUI builds it)."""
        return {
            "name": self.name, "id": self.id, "description": f"{self.name} (SwarmUI test double)",
            "type": self.type, "subtype": self.subtype, "default": self.default,
            "min": self.min, "max": self.max, "view_min": 0, "view_max": self.view_max, "step": self.step,
            "values": list(self.values) if self.values is not None else None,
            "value_names": list(self.values) if self.values is not None else None,
            "examples": list(self.examples) if self.examples is not None else None,
            "visible": self.visible, "advanced": self.advanced, "feature_flag": self.feature_flag,
            "toggleable": self.toggleable, "priority": self.priority,
            "group": self.group.id if self.group else None, "always_retain": self.always_retain,
            "do_not_save": False, "do_not_preview": False, "view_type": self.view_type, "extra_hidden": False,
            "can_sectionalize": False, "nonreusable": False, "depend_non_default": None,
        }


def _flag(name: str, priority: float = 0) -> ParamSpec:
    return ParamSpec(name, "boolean", "false", ignore_if="false", group=INTERNAL, advanced=True,
                     always_retain=True, priority=priority)


PARAM_SPECS: list[ParamSpec] = [
    ParamSpec("Prompt", "text", "", priority=-100, visible=False, view_type="prompt",
              examples=("a photo of a cat", "a cartoonish drawing of an astronaut")),
    ParamSpec("Negative Prompt", "text", "", ignore_if="", priority=-90, view_type="prompt", visible=False),
    ParamSpec("Images", "integer", "1", ignore_if="1", min=1, max=10000, group=CORE, priority=-50,
              examples=("1", "4")),
    ParamSpec("Seed", "integer", "-1", min=-1, max=LONG_MAX, group=CORE, priority=-30, view_type="seed"),
    ParamSpec("Steps", "integer", "20", min=0, max=500, view_max=100, group=CORE, priority=-20,
              view_type="slider", examples=("10", "15", "20", "30", "40")),
    ParamSpec("CFG Scale", "decimal", "7", min=0, max=100, view_max=20, step=0.5, group=CORE, priority=-18,
              view_type="slider"),
    ParamSpec("Variation Seed", "integer", "-1", min=-1, max=UINT_MAX, group=VARIATION, priority=-17,
              view_type="seed"),
    ParamSpec("Variation Seed Strength", "decimal", "0", ignore_if="0", min=0, max=1, step=0.05,
              group=VARIATION, priority=-17, view_type="slider"),
    ParamSpec("Aspect Ratio", "dropdown", "1:1", values=tuple(ASPECT_RATIOS), group=RESOLUTION, priority=-11),
    ParamSpec("Width", "integer", "512", min=64, max=16384, view_max=2048, step=32, group=RESOLUTION,
              priority=-10, view_type="pot_slider"),
    ParamSpec("Height", "integer", "512", min=64, max=16384, view_max=2048, step=32, group=RESOLUTION,
              priority=-9, view_type="pot_slider"),
    ParamSpec("Sampler", "dropdown", "euler", values=tuple(SAMPLERS), group=SAMPLING, toggleable=True),
    ParamSpec("Scheduler", "dropdown", "normal", values=tuple(SCHEDULERS), group=SAMPLING, toggleable=True),
    ParamSpec("Init Image", "image", None, group=INIT_IMAGE, priority=-5, hide_from_metadata=True),
    ParamSpec("Init Image Creativity", "decimal", "0.6", min=0, max=1, step=0.05, group=INIT_IMAGE,
              priority=-4.5, view_type="slider"),
    ParamSpec("Mask Image", "image", None, group=INIT_IMAGE, priority=-4, hide_from_metadata=True),
    ParamSpec("Side Length", "integer", "1024", min=64, max=16384, view_max=4096, step=32, group=RESOLUTION,
              priority=-8, toggleable=True, view_type="pot_slider"),
    ParamSpec("Seamless Tileable", "dropdown", "false", ignore_if="false", values=("false", "true", "X-Only", "Y-Only"),
              group=SAMPLING, priority=15, feature_flag="seamless"),
    ParamSpec("Init Image Reset To Norm", "decimal", "0", ignore_if="0", min=0, max=1, step=0.05, group=INIT_IMAGE,
              priority=-4.5, advanced=True, view_type="slider"),
    ParamSpec("Init Image Noise", "decimal", "0", ignore_if="0", min=0, max=10, step=0.05, group=INIT_IMAGE,
              priority=-4.2, advanced=True, view_type="slider"),
    ParamSpec("Mask Blur", "integer", "4", ignore_if="0", min=0, max=64, group=INIT_IMAGE, priority=-3.6),
    ParamSpec("Mask Grow", "integer", "0", ignore_if="0", min=0, max=256, group=INIT_IMAGE, priority=-3.5,
              advanced=True),
    ParamSpec("Mask Shrink Grow", "integer", "8", min=0, max=512, group=INIT_IMAGE, priority=-3.7, toggleable=True),
    ParamSpec("Refiner Model", "model", "(Use Base)", ignore_if="(Use Base)", subtype="Stable-Diffusion",
              group=REFINE, priority=-10, feature_flag="refiners"),
    ParamSpec("Refiner Control Percentage", "decimal", "0.2", min=0, max=1, step=0.05, group=REFINE, priority=-4,
              feature_flag="refiners", view_type="slider"),
    ParamSpec("Refiner Method", "dropdown", "PostApply", values=("PostApply", "StepSwap", "StepSwapNoisy"),
              group=REFINE, priority=-3, advanced=True, feature_flag="refiners"),
    ParamSpec("Refiner Upscale", "decimal", "1", ignore_if="1", min=0.25, max=8, view_max=4, step=0.25,
              group=REFINE, priority=-2, feature_flag="refiners", view_type="slider"),
    ParamSpec("Refiner Steps", "integer", "40", min=1, max=200, view_max=60, group=REFINE, priority=-5,
              toggleable=True, advanced=True, view_type="slider"),
    ParamSpec("Refiner CFG Scale", "decimal", "7", min=0, max=100, view_max=20, step=0.5, group=REFINE,
              priority=-4, toggleable=True, advanced=True, view_type="slider"),
    ParamSpec("Model", "model", "", subtype="Stable-Diffusion", visible=False),
    ParamSpec("VAE", "model", "None", ignore_if="None", subtype="VAE", group=ADDONS, advanced=True,
              toggleable=True),
    ParamSpec("LoRAs", "list", "", ignore_if="", group=ADDONS, advanced=True, toggleable=True, visible=False),
    ParamSpec("LoRA Weights", "list", "", ignore_if="", min=-10, max=10, step=0.1, group=ADDONS,
              advanced=True, toggleable=True, visible=False),
    ParamSpec("Batch Size", "integer", "1", ignore_if="1", min=1, max=100, group=INTERNAL, advanced=True,
              priority=-20),
    ParamSpec("CLIP Stop At Layer", "integer", "-1", min=-24, max=-1, group=SAMPLING, advanced=True,
              toggleable=True),
    _flag("Save Intermediate Images", -16),
    _flag("Do Not Save", -15),
    _flag("No Previews", -14),
    _flag("Do Not Save Intermediates", -13),
    ParamSpec("Exact Backend ID", "integer", "0", toggleable=True, advanced=True, group=INTERNAL,
              view_type="big", priority=-9),
    _flag("No Seed Increment", -4),
    _flag("No Load Models", -3),
    _flag("No Internal Special Handling", -2),
    _flag("Continue After Errors", -1),
    _flag("Forward Raw Backend Data", 0),
    _flag("Forward Swarm Data", 0),
    _flag("Remove Background", 3),
    ParamSpec("Personal Note", "text", "", ignore_if="", group=INTERNAL, advanced=True, view_type="big"),
    ParamSpec("Image Format", "dropdown", "PNG", values=tuple(IMAGE_FORMATS), group=INTERNAL, advanced=True,
              toggleable=True, always_retain=True, priority=1),
]
PARAMS: dict[str, ParamSpec] = {spec.id: spec for spec in PARAM_SPECS}

# Parameters an extension registers (here: the "Dynamic Thresholding" extension). assetbuild's built-in
# table does not know them: only the server's ListT2IParams does. ``FakeSwarmConfig.extensions`` turns
# them on (default) or off (a server without that extension installed).
DYNAMIC_THRESHOLDING = Group("Dynamic Thresholding", toggles=True, priority=9, advanced=True)
EXTENSION_SPECS: list[ParamSpec] = [
    ParamSpec("Dynamic Thresholding Mimic Scale", "decimal", "7", min=0, max=100, step=0.5,
              group=DYNAMIC_THRESHOLDING, advanced=True, feature_flag="dynamic_thresholding"),
    ParamSpec("Dynamic Thresholding Mode", "dropdown", "Constant",
              values=("Constant", "Linear Down", "Cosine Down", "Half Cosine Down", "Linear Up"),
              group=DYNAMIC_THRESHOLDING, advanced=True, feature_flag="dynamic_thresholding"),
]
WITH_EXTENSIONS: dict[str, ParamSpec] = {**PARAMS, **{spec.id: spec for spec in EXTENSION_SPECS}}
# Legacy/renamed ids that SwarmUI maps onto a current parameter (T2IParamTypes.cs:226-232).
_LEGACY = {"outputintermediateimages": "saveintermediateimages"}


def token_str(value: Any) -> str:
    """The string a Newtonsoft ``JToken`` prints for ``value`` (``True``, ``7`` for 7.0, ``1E+20``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value).replace("e", "E")
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2, ensure_ascii=False)
    return str(value)


def format_number(value: float) -> str:
    """C#'s default double formatting, as used in range error messages (``0``, ``0.5``, ``9.2E+18``)."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value)).replace("e", "E")


def clean_name_generic(name: str) -> str:
    return name.lower().replace(" ", "").replace("[", "").replace("]", "").strip()


def clean_model_name(name: str) -> str:
    return name[: -len(".safetensors")] if name.endswith(".safetensors") else name


def best_in_list(name: str, options: Iterable[str], clean: Callable[[str], str] = clean_name_generic) -> str | None:
    """Exact match after cleaning, else the shortest option containing ``name`` (SwarmUI ``GetBestInList``)."""
    wanted = clean(name)
    backup: str | None = None
    best_len = 999
    for option in options:
        cleaned = clean(option)
        if cleaned == wanted:
            return option
        if wanted in cleaned and len(cleaned) < best_len:
            backup, best_len = option, len(cleaned)
    return backup


def best_model(name: str, models: Iterable[str]) -> str | None:
    """Fuzzy model lookup, with or without ``.safetensors`` (``GetBestModelInList``)."""
    return best_in_list(name, models, lambda s: clean_name_generic(clean_model_name(s)))


@dataclass
class ParamContext:
    """What validation needs to know about the server: model lists and the user's stored files."""

    models: list[str]
    vaes: list[str] = field(default_factory=list)
    loras: list[str] = field(default_factory=list)
    file_exists: Callable[[str], bool] = lambda _path: False
    specs: Mapping[str, ParamSpec] = field(default_factory=lambda: PARAMS)  # with extensions' parameters


@dataclass
class ParsedParams:
    """Validated T2I parameters by id, with Python types, plus what SwarmUI would log and skip."""

    values: dict[str, Any]
    unused: list[str]
    extra_metadata: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def parse_params(raw: Mapping[str, Any], ctx: ParamContext) -> ParsedParams:
    """Validate a raw request object (minus ``session_id``) the way ``RequestToParams`` does.

    Keys are processed in request order; the first failure raises :class:`ParamError`.
    """
    values: dict[str, Any] = {}
    unused: list[str] = []
    extra: dict[str, Any] = {}
    meta = raw.get("extra_metadata")
    if isinstance(meta, dict):
        extra = {k: v if isinstance(v, list) else token_str(v) for k, v in meta.items()}
    for key, value in raw.items():
        if key in ("session_id", "presets", "extra_metadata"):
            continue
        param_id = _LEGACY.get(clean_key(key), clean_key(key))
        spec = ctx.specs.get(param_id)
        if spec is None:
            unused.append(key)  # SwarmUI logs a warning and carries on
            continue
        text = "\n|||\n".join(token_str(v) for v in value) if isinstance(value, list) else token_str(value)
        if spec.ignore_if is not None and text == spec.ignore_if:
            values.pop(spec.id, None)
            continue
        try:
            values[spec.id] = validate_value(spec, text, ctx)
        except ParamError as exc:
            raise ParamError(f"Invalid value for parameter {spec.name}: {exc}") from None
    return ParsedParams(values, unused, extra)


def validate_value(spec: ParamSpec, text: str, ctx: ParamContext) -> Any:
    """Convert one value to its Python type or raise :class:`ParamError` with the inner message."""
    validator = _VALIDATORS[spec.type]
    return validator(spec, text, ctx)


def _range_error(spec: ParamSpec, kind: str, text: str) -> ParamError:
    return ParamError(f"Invalid {kind} value for param {spec.name} - '{text}' - must be between "
                      f"{format_number(spec.min)} and {format_number(spec.max)}")


def _validate_integer(spec: ParamSpec, text: str, _ctx: ParamContext) -> int:
    if not _INT_RE.match(text) or not -(2**63) <= int(text) <= LONG_MAX:
        raise ParamError(f"Invalid integer value for param {spec.name} - '{text}' - must be a valid integer "
                         "(eg '0', '3', '-5', etc)")
    number = int(text)
    if (spec.min != 0 or spec.max != 0) and not spec.min <= number <= spec.max:
        raise _range_error(spec, "integer", text)
    return number


def _validate_decimal(spec: ParamSpec, text: str, _ctx: ParamContext) -> float:
    try:
        if "_" in text:
            raise ValueError(text)
        number = float(text)
    except ValueError:
        raise ParamError(f"Invalid decimal value for param {spec.name} - '{text}' - must be a valid decimal "
                         "(eg '0.0', '3.5', '-5.2', etc)") from None
    if (spec.min != 0 or spec.max != 0) and not spec.min <= number <= spec.max:
        raise _range_error(spec, "decimal", text)
    return number


def _validate_boolean(spec: ParamSpec, text: str, _ctx: ParamContext) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ParamError(f"Invalid boolean value for param {spec.name} - '{text}' - must be exactly "
                         "'true' or 'false'")
    return lowered == "true"


def _validate_text(spec: ParamSpec, text: str, _ctx: ParamContext) -> str:
    if spec.values is None:
        return text
    match = best_in_list(text, spec.values)
    if match is None:
        listed = "`, `".join(spec.values)
        raise ParamError(f"Invalid value for param {spec.name} - '{text}' - must be one of: `{listed}`")
    return match


def _validate_list(spec: ParamSpec, text: str, ctx: ParamContext) -> list[str]:
    splitter = "\n|||\n" if "\n|||\n" in text else ","  # a JSON array arrives joined with \n|||\n
    items = [part.strip() for part in text.split(splitter) if part.strip()]
    if spec.id != "loras":
        return items
    resolved = []
    for item in items:
        match = best_in_list(item, ctx.loras) or best_model(item, ctx.loras)
        if match is None:
            if len(ctx.loras) < 10:
                listed = "`, `".join(ctx.loras)
                raise ParamError(f"Invalid value for param {spec.name} - '{text}' - must be one of: `{listed}`")
            raise ParamError(f"Invalid value for param {spec.name} - '{text}' - option does not exist. "
                             "Has it been deleted?")
        resolved.append(match)
    return resolved


def _validate_image(spec: ParamSpec, text: str, ctx: ParamContext) -> str:
    if text.startswith(_IMAGE_PATH_PREFIXES) and ctx.file_exists(text):
        return text  # a server-relative path to one of the user's own outputs
    data = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    if not data.strip():
        return ""
    if not _BASE64_RE.match(data) or len(data) < 10:
        short = data[:10] + "..." if len(data) > 10 else data
        raise ParamError(f"Invalid image value for param {spec.name} - '{text}' - must be a valid base64 "
                         f"string - got '{short}'")
    return data


def _validate_model(spec: ParamSpec, text: str, ctx: ParamContext) -> str:
    options = ctx.models if spec.subtype == "Stable-Diffusion" else ctx.vaes
    if spec.subtype == "VAE" and text in ("Automatic", "None"):
        return text
    match = best_model(text, options)
    if match is None:
        raise ParamError(f"Invalid model value for param {spec.name} - '{text}' - are you sure that model "
                         "name is correct?")
    return match


_VALIDATORS: dict[str, Callable[[ParamSpec, str, ParamContext], Any]] = {
    "integer": _validate_integer,
    "decimal": _validate_decimal,
    "boolean": _validate_boolean,
    "text": _validate_text,
    "dropdown": _validate_text,
    "list": _validate_list,
    "image": _validate_image,
    "model": _validate_model,
}


# --- route-level parameters (APICallReflectBuilder: case-sensitive names, 200 + {"error"} on failure) ---

_MISSING = object()


def route_param(body: Mapping[str, Any], name: str, kind: type, default: Any = _MISSING) -> Any:
    """Read a route parameter such as ``images`` (int), ``path`` (str) or ``other_sessions`` (bool).

    Raises :class:`RouteParamError` with SwarmUI's text when it is missing (and has no default) or has
    the wrong type.
    """
    value = body.get(name)
    if value is None:
        if default is _MISSING:
            raise RouteParamError(f"Missing required parameter '{name}'")
        return default
    text = token_str(value)
    if kind is str:
        return text
    if kind is int:
        if _INT_RE.match(text) and INT32_MIN <= int(text) <= INT32_MAX:
            return int(text)
        raise RouteParamError(f"Invalid value '{text}' for parameter '{name}', must be type 'Int32'")
    if kind is bool:
        if text.strip().lower() in ("true", "false"):
            return text.strip().lower() == "true"
        raise RouteParamError(f"Invalid value '{text}' for parameter '{name}', must be type 'Boolean'")
    raise TypeError(f"unsupported route parameter type {kind!r}")


def params_listing(models: Mapping[str, list[str]], architecture: Callable[[str], str],
                   specs: Iterable[ParamSpec]) -> dict[str, Any]:
    """The ``ListT2IParams`` response body. ``models`` maps a sub-type to its model names (with extension).

    As in SwarmUI, ``models`` holds ``[name, architecture id]`` pairs sorted by name, each parameter's
    ``group`` is the group's id (the group objects are listed under ``groups``), and the VAE parameter's
    values are ``Automatic``, ``None`` and the VAE names without ``.safetensors``.
    """
    model_lists: dict[str, list[list[str]]] = {}
    for sub in ("Stable-Diffusion", "VAE", "LoRA", "Embedding", "ControlNet", "Clip", "ClipVision"):
        model_lists[sub] = [[name, architecture(name)] for name in sorted(models.get(sub, []))]
    listed = []
    groups: dict[str, Group] = {}
    for spec in specs:
        item = spec.to_json()
        if spec.id == "vae":
            values = ["Automatic", "None", *(clean_model_name(n) for n in sorted(models.get("VAE", [])))]
            item["values"] = item["value_names"] = values
        listed.append(item)
        if spec.group is not None:
            groups[spec.group.id] = spec.group
    return {
        "list": listed,
        "groups": [group.to_json() for group in sorted(groups.values(), key=lambda g: g.priority)],
        "models": model_lists,
        "model_compat_classes": {},
        "model_classes": {},
        "wildcards": [],
        "param_edits": None,
    }
