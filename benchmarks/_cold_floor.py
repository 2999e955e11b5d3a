"""The least work any cold plan has to do, with none of assetbuild's checks (run by ``coldfloor.py``).

    python benchmarks/_cold_floor.py PROJECT

For an assetbuild project made by ``noop.py`` (one [defaults], one style, one table per asset), as one
plain loop: parse assets.toml (tomli, compiled, as assetbuild does), merge each table with [defaults]
and its style, encode a canonical form and hash it (a key), read each entry's key and hash out of
assets.lock with one regular expression, and stat each image against ``.assetbuild/hashes.json``. It
prints how many images the lock and the hash cache vouch for, so the caller can check that it did the
work. Not done, unlike a real run: checking any value, the parameters' types, target paths, the lock's
entries or the state folder; line numbers for messages; taking the project lock; writing the memos.
"""

import json
import os
import re
import sys

import tomli
import xxhash

_ENTRY = re.compile(rb'\n    "([^"\n]*)": \{\n      "hash": "([0-9a-f]{32})".*?\n      "key": "([0-9a-f]{32})"', re.S)


def main(root: str) -> int:
    with open(os.path.join(root, "assets.toml"), "rb") as manifest:
        document = tomli.loads(manifest.read().decode("utf-8"))
    defaults, styles = document.get("defaults", {}), document.get("styles", {})
    with open(os.path.join(root, "assets.lock"), "rb") as lock_file:
        lock = {m[1].decode(): (m[3].decode(), m[2].decode()) for m in _ENTRY.finditer(lock_file.read())}
    with open(os.path.join(root, ".assetbuild", "hashes.json"), "rb") as hashes_file:
        hashes = json.load(hashes_file)
    encode = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
    keys, vouched = set(), 0
    for target, own in document["assets"].items():
        style = styles.get(own.get("style", defaults.get("style")), {})
        merged = {**defaults, **style, **own}
        for name in ("prompt", "negativeprompt"):
            template = style.get(name)
            if isinstance(template, str) and "{prompt}" in template:
                merged[name] = template.replace("{prompt}", own.get(name, defaults.get(name, "")).strip())
        merged.pop("style", None)
        form = {"v": 1, "generator": "placeholder", "params": merged, "inputs": {}, "post": {"format": "PNG"}}
        keys.add(xxhash.xxh3_128_hexdigest(encode(form).encode("utf-8")))
        name = root + "/" + target
        st = os.stat(name)
        known, entry = hashes.get(name), lock.get(target)
        if known and known[:3] == [st.st_size, st.st_mtime_ns, st.st_ino] and entry and entry[1] == known[3]:
            vouched += 1
    print(f"{vouched} vouched for, {len(keys)} keys")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(os.path.abspath(sys.argv[1])))
