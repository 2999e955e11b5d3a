"""Trust the server's own truth: check assets against what the SwarmUI server says, before any generation.

SwarmUI is forgiving in ways that silently ruin a build: it skips parameters it does not know, and it
fuzzy-matches model, LoRA and dropdown values (``model = "xl"`` uses *some* model). Before the first
generation of a run, ``verify``:

1. asks the server for its parameters and models (``ListT2IParams``; cached in ``.assetbuild/server/``
   per server id and version, fetched again when a model name is not in the cached list);
2. asks for the hash of every model (and LoRA, VAE...) the selected assets name (``DescribeModel``), so
   the planner can tell an asset whose model file was replaced on the server (``[server] model_changes``);
3. checks every asset that will be generated: parameter names (extensions' included), types, ranges,
   dropdown values and exact model names. Any problem stops the run before a generation (exit 2), naming
   the asset, its manifest line and the valid choices.

Offline (placeholder, ``--frozen``, an unreachable server) nothing here runs: the built-in parameter
table checks the manifest, and the lock's model hashes are trusted.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AssetbuildError
from .fsutil import atomic_write, make_state_dir
from .keys import hash_bytes
from .swarm.names import Match, match_lora, match_model, match_value, short_hash

if TYPE_CHECKING:
    from .events import BuildEvents
    from .manifest import Asset, Project
    from .plan import Status
    from .swarm.client import SwarmClient
    from .swarm.params import ServerParam, ServerParams
    from .workspace import Workspace

log = logging.getLogger("assetbuild.servercheck")

CACHE_FOLDER = "server"
MAX_LISTED = 12  # names listed in a message before "... and N more"

# Model-valued parameters of the built-in table, for when the server's list is not at hand.
_BUILTIN_MODEL_PARAMS = {"model": "Stable-Diffusion", "vae": "VAE", "refinermodel": "Stable-Diffusion",
                         "controlnetmodel": "ControlNet"}
_NOT_MODELS = ("None", "Automatic", "(none)")


class ServerCheckError(AssetbuildError):
    """Assets ask for something the server does not have or would misread (exit 2, nothing generated)."""


@dataclass(frozen=True)
class Problem:
    target: str
    where: str  # manifest file:line
    message: str
    about_models: bool = False  # a model name problem (worth re-checking against a fresh model list)

    def __str__(self) -> str:
        return f"{self.where}: asset {self.target!r}: {self.message}"


@dataclass
class ServerTruth:
    """What the server said: its parameters and models, and the hash of each model the assets name."""

    params: ServerParams
    hashes: dict[str, str | None] = field(default_factory=dict)  # model ref -> hash (None: not computed yet)
    from_cache: bool = False


# --- model references ---------------------------------------------------------------------------------


def model_refs(params: dict[str, Any], server: ServerParams | None = None) -> list[tuple[str, str, str]]:
    """``(ref, subtype, name)`` of every model an asset's parameters name; ``ref`` is ``param:name`` (as
    written), the key of the lock's ``model_hashes``."""
    refs: list[tuple[str, str, str]] = []
    for key, value in sorted(params.items()):
        if key == "loras":
            names = value if isinstance(value, list) else str(value).split(",")
            refs += [(f"lora:{n}", "LoRA", n) for n in (str(x).strip() for x in names) if n]
            continue
        spec = server.params.get(key) if server is not None else None
        subtype = (spec.subtype or "Stable-Diffusion") if spec is not None and spec.type == "model" else (
            _BUILTIN_MODEL_PARAMS.get(key) if spec is None else None)
        if subtype and isinstance(value, str) and value and value not in _NOT_MODELS:
            refs.append((f"{key}:{value}", subtype, value))
    return refs


# --- the ListT2IParams cache ------------------------------------------------------------------------------


def _cache_path(state_dir: Path, server_id: str, version: str) -> Path:
    digest = hash_bytes(f"{server_id}|{version}".encode())[:16]
    return state_dir / CACHE_FOLDER / f"t2iparams-{digest}.json"


def load_cached(state_dir: Path, server_id: str, version: str) -> ServerParams | None:
    from pydantic import ValidationError

    from .swarm.params import ServerParams

    path = _cache_path(state_dir, server_id, version)
    try:
        cached = ServerParams.model_validate_json(path.read_bytes())
    except (OSError, ValueError, ValidationError):
        return None
    return cached if (cached.server_id, cached.version) == (server_id, version) else None


def store(state_dir: Path, params: ServerParams) -> None:
    """Write the listing (through the temporary-file helper), replacing the listings of other versions."""
    path = _cache_path(state_dir, params.server_id, params.version)
    try:
        make_state_dir(state_dir)
        atomic_write(path, params.model_dump_json().encode(), tmp_dir=state_dir / "tmp")
        for old in path.parent.glob("t2iparams-*.json"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as exc:  # a cache: failing to keep it costs one request next time
        log.debug("cannot cache the server's parameters: %s", exc)


# --- asking the server -----------------------------------------------------------------------------------


def params_of_ref(ref: str) -> dict[str, Any]:
    """Parameters naming the model of a lock's ``model_hashes`` key: ``model_refs`` read backwards."""
    key, _, name = ref.partition(":")
    return {"loras": [name]} if key == "lora" else {key: name}


async def gather(client: SwarmClient, state_dir: Path, assets: Iterable[Asset], *,
                 refresh: bool = False, refs: Iterable[str] = ()) -> ServerTruth:
    """The server's parameters (cached per server id and version) and the hashes of the assets' models,
    and of the models of ``refs`` (``model_hashes`` keys of lock entries whose assets were not loaded)."""
    from .swarm.errors import SwarmAPIError
    from .swarm.params import fetch_params, model_hash

    info = await client.new_session()
    version, server_id = str(info.get("version") or ""), str(info.get("server_id") or "")
    cached = None if refresh or not (version or server_id) else load_cached(state_dir, server_id, version)
    params = cached or await fetch_params(client, version=version, server_id=server_id)
    if cached is None and (version or server_id):
        store(state_dir, params)
    truth = ServerTruth(params, from_cache=cached is not None)
    seen: dict[tuple[str, str], str | None] = {}
    for named in [*(asset.params for asset in assets), *(params_of_ref(ref) for ref in refs)]:
        for ref, subtype, name in model_refs(named, params):
            if ref in truth.hashes:
                continue
            found = match_lora(name, params.names(subtype)) if subtype == "LoRA" else match_model(
                name, params.names(subtype))
            if found.exact is None:
                continue  # check() reports it
            if (subtype, found.exact) not in seen:
                try:
                    seen[(subtype, found.exact)] = await model_hash(client, found.exact, subtype)
                except SwarmAPIError as exc:
                    log.debug("DescribeModel %s: %s", found.exact, exc.message)
                    seen[(subtype, found.exact)] = None
            truth.hashes[ref] = seen[(subtype, found.exact)]
    return truth


# --- checking assets -------------------------------------------------------------------------------------


def check(project: Project, assets: Iterable[Asset], server: ServerParams) -> list[Problem]:
    """Every problem of ``assets`` against the server's parameters and models."""
    shown = _shown(project.manifest)
    problems: list[Problem] = []
    for asset in assets:
        if asset.source:
            continue  # derived: nothing reaches the server
        where = f"{shown}:{asset.line}" if asset.line else shown
        names = [*asset.params, *(image.param for image in asset.inputs)]
        for key in names:
            spec = server.params.get(key)
            if spec is None:
                problems.append(Problem(asset.target, where, _unknown(key, server)))
                continue
            value = asset.params.get(key)
            if value is None:
                continue  # an image input: its bytes are checked by SwarmUI itself
            problem = _check_value(spec, key, value, asset.params, server)
            if problem is not None:
                problems.append(Problem(asset.target, where, problem[0], problem[1]))
    return problems


def _unknown(key: str, server: ServerParams) -> str:
    from .params import KNOWN

    guess = difflib.get_close_matches(key, list(server.params), n=1, cutoff=0.6)
    if guess:
        hint = f"; did you mean {guess[0]!r}?"
    elif key in KNOWN:  # a standard parameter this server does not offer (to this user)
        hint = "; it needs a permission this user lacks, or a backend or extension the server does not run"
    else:
        hint = "; is the extension that adds it installed?"
    return f"the server does not know parameter {key!r} (SwarmUI would skip it silently){hint}"


def _check_value(spec: ServerParam, key: str, value: Any, params: dict[str, Any],
                 server: ServerParams) -> tuple[str, bool] | None:
    kind = spec.type
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{key} must be a whole number, not {value!r}", False
        return _range(spec, key, value)
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{key} must be a number, not {value!r}", False
        return _range(spec, key, value)
    if kind == "boolean":
        return None if isinstance(value, bool) else (f"{key} must be true or false, not {value!r}", False)
    if kind == "dropdown" and spec.values:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            return f"{key} must be one of the server's values, not {value!r}", False
        return _choice(key, match_value(str(value), spec.values or []), spec.values or [], "value")
    if kind == "model":
        if not isinstance(value, str):
            return f"{key} must be a model name, not {value!r}", False
        if spec.values and value in spec.values and value in _NOT_MODELS:
            return None
        options = server.names(spec.subtype)
        return _choice(key, match_model(value, options), options, "model", models=True)
    if kind == "list" and key == "loras":
        items = value if isinstance(value, list) else str(value).split(",")
        options = server.names("LoRA")
        for item in (str(x).strip() for x in items):
            problem = _choice("LoRA", match_lora(item, options), options, "LoRA", models=True)
            if problem is not None:
                return problem
        return _lora_weights(params, server)
    return None


def _range(spec: ServerParam, key: str, value: float) -> tuple[str, bool] | None:
    if (spec.min != 0 or spec.max != 0) and not spec.min <= value <= spec.max:
        return f"{key} must be between {_num(spec.min)} and {_num(spec.max)} on this server, not {value}", False
    return None


def _lora_weights(params: dict[str, Any], server: ServerParams) -> tuple[str, bool] | None:
    weights = params.get("loraweights")
    names = params.get("loras")
    if isinstance(weights, list) and isinstance(names, list) and len(weights) != len(names):
        return f"{len(names)} LoRAs but {len(weights)} loraweights (one weight per LoRA)", False
    spec = server.params.get("loraweights")
    for weight in weights if isinstance(weights, list) else []:
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            return f"LoRA weights must be numbers, not {weight!r}", False
        if spec is not None and (spec.min or spec.max) and not spec.min <= weight <= spec.max:
            return f"LoRA weight {weight} is outside {_num(spec.min)}..{_num(spec.max)}", False
    return None


def _choice(key: str, found: Match, options: list[str], what: str, *, models: bool = False) -> tuple[str, bool] | None:
    """None when ``found`` is exact; else the message: what SwarmUI would pick, or a guess, and the choices."""
    if found.exact is not None:
        return None
    label = f"{key} {found.name!r}" if key != what else f"{what} {found.name!r}"
    shown = [_display(o) if models else o for o in options]
    kind = f"{what} name" if models else what
    if found.picked is not None:
        picked = _display(found.picked) if models else found.picked
        return (f"{label} is not an exact {kind}: SwarmUI would pick {picked!r} (it matches {kind}s loosely); "
                f"exact {kind}s: {_listing(shown, models)}", models)
    guess = difflib.get_close_matches(_display(found.name) if models else found.name, shown, n=1, cutoff=0.5)
    if not guess and models:
        base = {s.rsplit("/", 1)[-1]: s for s in shown}
        near = difflib.get_close_matches(found.name, list(base), n=1, cutoff=0.5)
        guess = [base[near[0]]] if near else []
    hint = f"did you mean {guess[0]!r}? " if guess else ""
    where = f"a {what} on the server" if models else "one of the server's values"
    return f"{label} is not {where}; {hint}choices: {_listing(shown, models)}", models


def _display(name: str) -> str:
    return name[: -len(".safetensors")] if name.endswith(".safetensors") else name


def _listing(names: list[str], models: bool = False) -> str:
    if not names:
        return "(none)"
    listed = ", ".join(repr(n) for n in names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    where = " (`assetbuild models` lists them)" if models else ""
    return listed + (f" ... and {more} more{where}" if more > 0 else "")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- the run's entry point ------------------------------------------------------------------------------

_UNKNOWN_WARNING = re.compile(r"unknown parameter '([a-z]+)'")


def server_knows(warning: str, truth: ServerTruth) -> bool:
    """Whether a manifest warning about a parameter the built-in table does not know is about one the
    server knows (an extension's): then it is not worth showing."""
    found = _UNKNOWN_WARNING.search(warning)
    return bool(found and found.group(1) in truth.params.params)


def ask_with(run_on_client: Callable[[Callable[[SwarmClient], Coroutine[Any, Any, ServerTruth]]], ServerTruth],
             ws: Workspace, assets: list[Asset], *, refresh: bool = False, refs: Iterable[str] = ()) -> ServerTruth:
    """``gather`` on a client owned by someone else (the run's generator). Raises ``SwarmError``."""
    return run_on_client(lambda client: gather(client, ws.project.state_dir, assets, refresh=refresh, refs=refs))


def models_changed(hashes: Mapping[str, str | None], pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Which of ``pairs`` (model ref, hash in the lock) have another hash in ``hashes`` (the server's now),
    as ``describe_change`` words them, in order; a hash unknown on either side is no change."""
    changes = []
    for ref, old in sorted(set(pairs)):
        new = hashes.get(ref)
        if new and old and new.lower() != old.lower():
            changes.append(describe_change(ref, old, new))
    return changes


def ask(ws: Workspace, assets: list[Asset], *, refresh: bool = False) -> ServerTruth:
    """``gather`` on a short-lived client that gives up quickly (``status``, ``why``). Raises ``SwarmError``."""
    import asyncio

    from .servercalls import QUICK
    from .swarm.client import SwarmClient
    from .userconfig import credentials

    server = ws.project.server

    async def main() -> ServerTruth:
        client = SwarmClient(server.url, credentials(), concurrency=1, timeout=server.timeout,
                             control_timeout=10.0, retries=int(QUICK["retries"]), backoff=QUICK["backoff"],
                             connect_timeout=QUICK["connect_timeout"])
        try:
            return await gather(client, ws.project.state_dir, assets, refresh=refresh)
        finally:
            await client.aclose()

    return asyncio.run(main())


def lock_has_hashes(ws: Workspace, targets: Iterable[str]) -> bool:
    return any((entry := ws.lock.get(t)) is not None and entry.model_hashes for t in targets)


def attach(ws: Workspace, targets: list[str]) -> ServerTruth | None:
    """For ``status``/``why``: give the planner the server's model hashes when the lock has hashes to compare
    with. Best effort: an unreachable server (or a placeholder) leaves the lock's hashes trusted."""
    from .swarm.errors import SwarmError

    if ws.project.server.is_placeholder or not lock_has_hashes(ws, targets):
        return None
    assets = [ws.project.assets[t] for t in targets if not ws.project.assets[t].source]
    try:
        truth = ask(ws, assets)
    except SwarmError as exc:
        log.debug("model hashes not checked: %s", exc.message)
        return None
    ws.planner.model_hashes = truth.hashes
    ws.planner.model_changes = ws.project.server.model_changes
    return truth


def verify(ws: Workspace, targets: list[str], statuses: list[Status], events: BuildEvents,
           run_on_client: Any, memo_pairs: Iterable[tuple[str, str]] = ()) -> tuple[list[Status], ServerTruth | None]:
    """Before a run's first generation: learn the server's truth, re-plan with its model hashes, and stop
    (``ServerCheckError``) when an asset to generate would be misread. Returns the new statuses and the
    truth (None when the server was not or could not be asked: the run goes on as before, offline rules).

    The server is asked only when something may need it: an asset to generate, or lock entries with
    model hashes to compare (a build where everything is fresh and nothing was hashed contacts nothing).
    ``run_on_client`` runs a coroutine function on the run's SwarmUI client (``SwarmUIGenerator``).
    ``memo_pairs``: (model ref, hash) of lock entries whose assets the no-op memo proved fresh without
    loading them (``noop.Partial``); their hashes are asked in the same round (see ``models_changed``).
    """
    from .plan import State
    from .swarm.errors import SwarmError

    project = ws.project
    assets = [project.assets[t] for t in targets if not project.assets[t].source]
    to_generate = any(s.state in (State.GENERATE, State.UPSTREAM) for s in statuses)
    refs = sorted({ref for ref, _hash in memo_pairs})
    if not (assets or refs) or not (to_generate or refs or lock_has_hashes(ws, targets)):
        return statuses, None
    try:
        truth = ask_with(run_on_client, ws, assets, refs=refs)
        statuses, problems = _plan_and_check(ws, targets, statuses, truth)
        if truth.from_cache and any(p.about_models for p in problems):
            # Models may have been added since the list was cached.
            truth = ask_with(run_on_client, ws, assets, refresh=True, refs=refs)
            statuses, problems = _plan_and_check(ws, targets, statuses, truth)
    except SwarmError as exc:
        ws.planner.model_hashes = None
        if any(s.state.needs_work for s in statuses):
            events.warning(f"cannot check the assets against the server ({_redacted(exc.message)}); "
                           "the lock's model hashes are trusted")
        return statuses, None
    if problems:
        raise ServerCheckError(
            f"{len(problems)} problem(s) against the server at {_shown_url(project.server.url)}; nothing was "
            "generated:\n  " + "\n  ".join(str(p) for p in problems),
            hint="use the exact names the server lists (`assetbuild models`)")
    pending = sorted({ref for ref, value in truth.hashes.items() if value is None})
    if pending:
        events.warning("the server has not computed the hash of " + ", ".join(pending) + " yet; assets made "
                       "with it are checked by name until it has")
    for status in statuses:
        change = ws.planner.model_change(project.assets[status.target], status.entry)
        if change is not None and status.state is State.FRESH:
            events.warning(f"{status.target}: {change} (kept: [server] model_changes = \"warn\")")
    if to_generate:
        adopt_hashes(ws, statuses, truth)
    return statuses, truth


def _plan_and_check(ws: Workspace, targets: list[str], statuses: list[Status],
                    truth: ServerTruth) -> tuple[list[Status], list[Problem]]:
    """Give the planner the server's hashes (planning again only if a model changed), then check the
    assets that will be generated."""
    from .plan import State

    project = ws.project
    ws.planner.model_hashes = truth.hashes
    ws.planner.model_changes = project.server.model_changes
    if any(ws.planner.model_change(project.assets[s.target], s.entry) for s in statuses):
        statuses = ws.planner.plan(targets)
    generate = [project.assets[s.target] for s in statuses if s.state in (State.GENERATE, State.UPSTREAM)]
    return statuses, check(project, generate, truth.params)


def adopt_hashes(ws: Workspace, statuses: list[Status], truth: ServerTruth) -> None:
    """Record the server's model hashes in fresh entries that have none yet (locks from before hashes were
    recorded): from now on a replaced model is noticed. An entry's known hashes are never overwritten."""
    from dataclasses import replace

    from .plan import State

    for status in statuses:
        entry = status.entry
        if status.state is not State.FRESH or entry is None:
            continue
        asset = ws.project.assets[status.target]
        missing = {ref: truth.hashes[ref] for ref, _sub, _name in model_refs(asset.params, truth.params)
                   if ref not in entry.model_hashes and truth.hashes.get(ref)}
        if missing:
            merged = {**entry.model_hashes, **{k: v for k, v in missing.items() if v}}
            ws.lock.commit(status.target, replace(entry, model_hashes=merged))


def hashes_for(asset: Asset, used: Iterable[Any], truth: dict[str, str | None] | None) -> dict[str, str]:
    """The model hashes to record for a freshly generated ``asset``: from the image's own metadata
    (``sui_models``) where it names the model, else the server's answer to DescribeModel."""
    refs = model_refs(asset.params)
    # Model parameters only the server knows (an extension's) are in ``truth`` under their reference.
    known = {ref for ref, _subtype, _name in refs}
    for key, value in sorted(asset.params.items()):
        if isinstance(value, str) and truth and f"{key}:{value}" in truth and f"{key}:{value}" not in known:
            refs.append((f"{key}:{value}", "", value))
    by_param: dict[str, list[Any]] = {}
    for item in used:
        by_param.setdefault("lora" if item.param == "loras" else item.param, []).append(item)
    recorded: dict[str, str] = {}
    for ref, _subtype, name in refs:
        param = ref.split(":", 1)[0]
        candidates = [u for u in by_param.get(param, []) if u.hash]
        matcher = match_lora if param == "lora" else match_model
        found = matcher(name, [u.name for u in candidates]).exact if candidates else None
        hit = next((u.hash for u in candidates if u.name == found), None)
        value = hit or (truth or {}).get(ref)
        if value:
            recorded[ref] = value
    return recorded


def describe_change(ref: str, old: str, new: str) -> str:
    """``model hash: 3f2a… -> 9c1d…`` (``lora pixel-art-xl hash: ...`` for the others)."""
    param, _, name = ref.partition(":")
    label = "model" if param == "model" else f"{param} {name}"
    return f"{label} hash: {short_hash(old)} -> {short_hash(new)}"


def _redacted(text: str) -> str:
    from .userconfig import credentials

    return credentials().redact(text)


def _shown_url(url: str) -> str:
    from .swarm.credentials import shown_url

    return shown_url(url)
