"""The no-op memo records only what the run verified (issue 12.7): an image edited while another asset is
being built is reported modified by every later run, --frozen included."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest

from assetbuild.testing import FakeSwarm


def manifest(url: str, version: str) -> str:
    body = f'[server]\nurl = "{url}"\n[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n'
    for n in range(13):
        body += f'[assets."a{n:02d}.png"]\nprompt = "asset {n}{version if n == 12 else ""}"\nseed = {n}\n'
    return body


@pytest.mark.timeout(120)
def test_an_image_edited_during_a_build_is_never_reported_fresh(project: Path) -> None:
    with FakeSwarm(close_delay=0.05) as fake:
        write_manifest(project, manifest(fake.url, ""))
        assert run_cli(project, "-q").returncode == 0
        write_manifest(project, manifest(fake.url, " v2"))  # a12 must be generated again
        fake.set_loading(True)  # its generation waits until the edit below is made
        before = len(fake.requests)
        process = subprocess.Popen([sys.executable, "-m", "assetbuild", "-q", "-n", "1"], cwd=project,
                                   env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not any("Generate" in r.route for r in fake.requests[before:]):  # a00..a11 were found fresh
                assert time.monotonic() < deadline and process.poll() is None, "the build never reached the server"
                time.sleep(0.01)
            edited = project / "a03.png"
            edited.write_bytes(edited.read_bytes() + b"an artist's edit")
            fake.set_loading(False)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, out + err  # a03 was fresh when planned; the edit came later
        status = run_cli(project, "status")
        assert "modified" in status.stdout and "a03.png" in status.stdout
        for args in ((), ("--frozen",)):
            again = run_cli(project, *args)
            assert again.returncode == 1, f"{args}: {again.stdout}{again.stderr}"
            assert "a03.png" in again.stdout + again.stderr
    assert edited.read_bytes().endswith(b"an artist's edit")  # and the edit is kept
