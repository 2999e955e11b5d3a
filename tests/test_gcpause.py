"""The cyclic collector during big loads (``gcpause``): frozen at a block's end only in a one-shot
command's own process, never in a caller's (the Python API) or in ``watch``."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from conftest import write_manifest

from assetbuild.gcpause import paused

PROBE = """
import gc, sys
from assetbuild.cli import main
from assetbuild.gcpause import paused
sys.argv = ["assetbuild", *sys.argv[1:]]
code = main({argv})
frozen = gc.get_freeze_count()
with paused():  # after the command: the process goes on (runpy, a wrapper), and freezes nothing more
    kept = [[n] for n in range(5000)]
print("frozen", frozen, "enabled", gc.isenabled(), "code", code, "later", gc.get_freeze_count() - frozen)
"""


MANIFEST = """
    [server]
    url = "placeholder"
    [assets."a.png"]
    prompt = "a"
    width = 64
    height = 64
"""


def frozen_after(root: Path, *args: str, in_process_argv: bool = False) -> tuple[int, bool, int]:
    """Run the CLI's ``main`` in a fresh interpreter; (objects frozen, collector enabled, exit code)."""
    argv = repr(list(args)) if in_process_argv else "None"
    result = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv), *args], cwd=root,
                            capture_output=True, text=True, timeout=120, check=False)
    words = result.stdout.split()
    assert "frozen" in words, result.stderr
    at = words.index("frozen")
    assert words[at + 7] == "0", "a paused block after the command froze objects"
    return int(words[at + 1]), words[at + 3] == "True", int(words[at + 5])


def test_a_block_in_a_long_lived_process_freezes_nothing() -> None:
    before = gc.get_freeze_count()
    with paused():
        kept = [{"n": i} for i in range(1000)]
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == before
    assert len(kept) == 1000


def test_the_command_line_freezes_what_its_load_made(tmp_path: Path) -> None:
    write_manifest(tmp_path, MANIFEST)
    frozen, enabled, code = frozen_after(tmp_path, "status")
    assert code == 0
    assert enabled  # collections go on for everything made later
    assert frozen > 1000


def test_a_caller_of_main_is_never_frozen(tmp_path: Path) -> None:
    write_manifest(tmp_path, MANIFEST)
    frozen, enabled, code = frozen_after(tmp_path, "status", in_process_argv=True)
    assert code == 0
    assert enabled
    assert frozen == 0
