"""Which cache entries are still wanted, and by whom: the safety net of ``gc``.

Generated images cannot be reproduced bit for bit, and when images are not committed the cache holds
the only copy. So gc keeps every entry that any project using the cache folder would use:

- this project's lock, and the keys its manifest would use now (also after ``clean``, when no file and
  no lock entry is left: the key of an asset built from another is worked out from the cached bytes of
  its input, as a build would);
- every other project registered with the cache folder (a cache may be shared, as the docs recommend):
  each build registers its project with a small file in ``<cache>/projects/`` naming its manifest, and
  gc keeps what each registered project's lock and manifest need. A registered project whose manifest is
  gone is reported and unregistered; one whose manifest cannot be read is protected by its lock alone.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .cache import Cache
from .fsutil import HashCache, atomic_write, real_dir
from .keys import canonical, hash_bytes, key_of
from .lock import Lock
from .manifest import Project

REGISTRY = "projects"


def register(project: Project) -> None:
    """Note in the cache folder that ``project`` uses it (once; a read-only cache is fine)."""
    path = _registration(project.cache_dir, project.manifest)
    data = json.dumps({"manifest": str(project.manifest.absolute())}, ensure_ascii=False).encode() + b"\n"
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:
            return
    with contextlib.suppress(OSError):
        real_dir(path.parent)
        atomic_write(path, data)


def _registration(cache_dir: Path, manifest: Path) -> Path:
    return cache_dir / REGISTRY / f"{hash_bytes(str(manifest.absolute()).encode())}.json"


@dataclass
class OtherProject:
    manifest: Path
    registration: Path
    keys: set[str]
    note: str  # "" when its lock and manifest were both read; else what was not


def others(cache: Cache, this_manifest: Path) -> Iterator[OtherProject | Path]:
    """Every other project registered with ``cache`` (what it needs), or the registration file of one
    whose manifest no longer exists."""
    folder = cache.folder / REGISTRY
    try:
        registrations = sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.is_symlink())
    except OSError:
        return
    mine = _registration(cache.folder, this_manifest)
    for registration in registrations:
        if registration == mine:
            continue
        try:
            manifest = Path(json.loads(registration.read_bytes())["manifest"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not manifest.is_file():
            yield registration
            continue
        yield needs_of(manifest, cache, registration)


def needs_of(manifest: Path, cache: Cache, registration: Path) -> OtherProject:
    """The keys another project's lock and manifest need."""
    from .errors import AssetbuildError
    from .generators import kind_for
    from .manifest import load
    from .workspace import apply_user_settings

    keys: set[str] = set()
    notes = []
    lock_path = manifest.parent / "assets.lock"
    try:
        keys |= {entry.key for entry in Lock.load(lock_path).entries().values()}
    except AssetbuildError:
        notes.append("its assets.lock cannot be read")
    except OSError:
        pass
    try:
        project = load(manifest)
        apply_user_settings(project, None)
        keys |= wanted_keys(project, HashCache(project.state_dir / "hashes.json"), cache, kind_for(project.server))
    except (AssetbuildError, OSError) as exc:
        notes.append(f"its manifest cannot be used ({str(exc).splitlines()[0]})")
    return OtherProject(manifest, registration, keys, "; ".join(notes))


def wanted_keys(project: Project, hashes: HashCache, cache: Cache, kind: str) -> set[str]:
    """The key of every asset of the manifest as a build now would compute it.

    Assets are visited in dependency order; an input made by another asset counts with the bytes a build
    would put there: the cached image for that asset's key, else the file on disk. An asset whose input
    cannot be known (missing file, never built) has no key yet and is skipped."""
    produced: dict[str, str] = {}  # target -> hash of the bytes a build would place there
    keys: set[str] = set()
    for target, asset in project.assets.items():
        inputs: dict[str, str] = {}
        known = True
        for param, upstream, path in ([(i.param, i.asset, i.path) for i in asset.inputs]
                                      + ([("source", asset.source, project.target_path(asset.source))]
                                         if asset.source else [])):
            digest = produced.get(upstream) if upstream else _file_hash(hashes, path)
            if digest is None:
                known = False
                break
            inputs[param] = digest
        if not known:
            continue
        key = key_of(canonical(asset, kind, inputs))
        keys.add(key)
        made = cache.header_hash(key) or _file_hash(hashes, asset.path)
        if made is not None:
            produced[target] = made
    return keys


def _file_hash(hashes: HashCache, path: Path) -> str | None:
    try:
        return hashes.hash(path)
    except OSError:
        return None


def unregister(registration: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(registration)
