"""How SwarmUI matches a name to one of its models or dropdown values, and which names assetbuild accepts.

SwarmUI is forgiving (``T2IParamTypes.GetBestInList``): it cleans both sides (lower-case, no spaces or
square brackets; for models also without ``.safetensors``), takes an exact match of the cleaned names,
and otherwise the **shortest** candidate whose cleaned name *contains* the cleaned text. So ``model =
"xl"`` silently picks some model with "xl" in its name. assetbuild accepts only names that say exactly
which model they mean: equal to a candidate after SwarmUI's cleaning, or (for models) equal to the
file name of exactly one candidate without its folder, when that is also what SwarmUI picks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

_MODEL_EXTENSION = ".safetensors"


def clean_generic(name: str) -> str:
    """SwarmUI's generic cleaning of user input: lower-case, without spaces and square brackets."""
    return name.lower().replace(" ", "").replace("[", "").replace("]", "").strip()


def clean_model(name: str) -> str:
    """Generic cleaning of a model name without its ``.safetensors`` ending."""
    return clean_generic(name[: -len(_MODEL_EXTENSION)] if name.endswith(_MODEL_EXTENSION) else name)


def best_in_list(name: str, options: Iterable[str], clean: Callable[[str], str] = clean_generic) -> str | None:
    """What SwarmUI would pick for ``name`` among ``options``: the exact cleaned match, else the shortest
    option containing it, else None."""
    wanted = clean(name)
    pick: str | None = None
    for option in options:
        cleaned = clean(option)
        if cleaned == wanted:
            return option
        if wanted in cleaned and (pick is None or len(cleaned) < len(clean(pick))):
            pick = option
    return pick


@dataclass(frozen=True)
class Match:
    """The outcome of checking one name: ``exact`` when it unambiguously names ``picked``."""

    name: str
    exact: str | None  # the option the name exactly means
    picked: str | None  # what SwarmUI would use (None: SwarmUI refuses the name)


def match_model(name: str, options: list[str]) -> Match:
    """Check a model (or LoRA, VAE...) name against the server's full names (with folders, extensions)."""
    picked = best_in_list(name, options, clean_model)
    wanted = clean_model(name)
    exact = [o for o in options if clean_model(o) == wanted]
    if not exact and "/" not in name:
        # The file name alone, when exactly one model has it and SwarmUI would pick that one.
        exact = [o for o in options if clean_model(o).rsplit("/", 1)[-1] == wanted]
    if len(exact) == 1 and exact[0] == picked:
        return Match(name, picked, picked)
    return Match(name, None, picked)


def match_value(value: str, options: list[str]) -> Match:
    """Check a dropdown value against the server's values."""
    picked = best_in_list(value, options)
    exact = picked if picked is not None and clean_generic(picked) == clean_generic(value) else None
    return Match(value, exact, picked)


def match_lora(name: str, options: list[str]) -> Match:
    """LoRA names: SwarmUI tries the generic match first, then the model match (``ValidateParam``)."""
    generic = best_in_list(name, options)
    if generic is not None and clean_generic(generic) == clean_generic(name):
        return Match(name, generic, generic)
    found = match_model(name, options)
    if found.exact is not None:
        return found if generic is None or generic == found.exact else Match(name, None, generic)
    return Match(name, None, generic or found.picked)


def short_hash(value: str) -> str:
    """A hash for messages: ``0x3f2a9c...`` -> ``3f2a…``."""
    text = value[2:] if value.lower().startswith("0x") else value
    return text[:4] + "…" if len(text) > 4 else text
