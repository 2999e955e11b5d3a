"""A project under git for the review tests: built, committed, then changed in every way a review shows
(not a test module)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import run_cli, write_manifest

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"]

BEFORE = """
[server]
url = "placeholder"

[defaults]
width = 128
height = 128
steps = 20
seed = 1

[assets."sprites/hero.png"]
prompt = "a knight in silver armor"

[assets."sprites/slime.png"]
prompt = "a green slime"

[assets."ui/icon.png"]
prompt = "a sword icon"
width = 96
height = 96
resize = [64, 64]

[assets."old/gone.png"]
prompt = "an asset removed later"

[assets."trees/oak_{n}.png"]
prompt = "an oak tree"
count = 3
seed = 5
"""

SCRIPT_PROMPT = "a slime <script>window.__pwned = 1</script> & friends"

# hero: steps 20 -> 30 (rebuilt); slime: a new prompt with markup (rebuilt); old/gone.png removed and
# cleaned; ui/new.png added (built); ui/icon.png: prompt edited but not rebuilt (stale).
AFTER = (BEFORE.replace('prompt = "a knight in silver armor"', 'prompt = "a knight in silver armor"\nsteps = 30')
         .replace('prompt = "a green slime"', f'prompt = "{SCRIPT_PROMPT}"')
         .replace('[assets."old/gone.png"]\nprompt = "an asset removed later"\n',
                  '[assets."ui/new.png"]\nprompt = "a new shield"\nwidth = 320\nheight = 200\n'))
ICON_EDIT = ('prompt = "a sword icon"', 'prompt = "a golden sword icon"')

EXPECTED = {
    "changed": {"sprites/hero.png", "sprites/slime.png", "ui/icon.png"},
    "new": {"ui/new.png"},
    "removed": {"old/gone.png"},
    "unchanged": {"trees/oak_1.png", "trees/oak_2.png", "trees/oak_3.png"},
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_project(root: Path) -> Path:
    """Build BEFORE and commit it on main, then change it to AFTER (see above) in the work tree."""
    root.mkdir(parents=True, exist_ok=True)
    write_manifest(root, BEFORE)
    assert run_cli(root).returncode == 0
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "assets")
    write_manifest(root, AFTER)
    done = run_cli(root, "clean")
    assert done.returncode == 0, done.stderr
    done = run_cli(root)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = root / "assets.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(*ICON_EDIT), encoding="utf-8")
    return root
