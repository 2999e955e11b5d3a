"""doit entry point: `doit` in a folder with assets.toml builds its assets with assetbuild's tasks.

Copy this file next to your assets.toml (or set ASSETBUILD_MANIFEST) and run `doit`, `doit list`,
`doit -n 4 -P thread`. In this repository it builds examples/quickstart unless told otherwise.
"""

import os
from pathlib import Path

if not os.environ.get("ASSETBUILD_MANIFEST") and not Path("assets.toml").is_file():
    # This repository's own root has no assets.toml: use the quickstart example.
    os.environ["ASSETBUILD_MANIFEST"] = str(Path(__file__).parent / "examples" / "quickstart" / "assets.toml")

from assetbuild.dodo import DOIT_CONFIG, task_assets  # noqa: E402,F401
