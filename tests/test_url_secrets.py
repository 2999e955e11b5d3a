"""A password in a server URL (``http://user:PASSWORD@host``, issue 12 item 3) never reaches a state file,
the lock, the cache or any output: real CLI runs against the FakeSwarm double, then every file of the
project (state folder included) and every line printed is searched for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest

from assetbuild.testing import FakeSwarm

pytestmark = pytest.mark.timeout(120)

PASSWORD = "Hunter2-s3cr3t-PW"


@pytest.fixture
def fake() -> Iterator[FakeSwarm]:
    # Without model hashes in the lock a fresh build may be answered by the memo (.assetbuild/noop.json),
    # whose context holds the server URL: the case to check. (With hashes, the server is asked instead.)
    with FakeSwarm(backends=1, latency=0.05, steps=2, close_delay=0.05, model_load_delay=0.01,
                   model_hashes_in_metadata=False, lazy_hashes=True) as server:
        yield server


def secret_url(fake: FakeSwarm) -> str:
    return f"http://artist:{PASSWORD}@127.0.0.1:{fake.port}"


def files_with_password(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and PASSWORD.encode() in
                  p.read_bytes())


def test_password_in_server_option_is_never_stored_or_printed(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n\n'
                            '[assets."a.png"]\nprompt = "a"\n\n[assets."b.png"]\nprompt = "b"\n')
    outputs = []
    for args in (["run"], ["run"], ["-v", "run"], ["status"], ["run", "--json"], ["server", "status"],
                 ["server", "status", "--json"], ["models"], ["cancel"]):
        result = run_cli(project, *args, "--server", secret_url(fake))
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        outputs.append(result.stdout + result.stderr)
    assert (project / "a.png").exists() and (project / ".assetbuild" / "noop.json").exists()
    assert files_with_password(project) == []
    assert all(PASSWORD not in text for text in outputs)
    assert "artist:****@127.0.0.1" in outputs[5]


def test_password_in_environment_server_is_never_stored(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, '[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n\n'
                            '[assets."a.png"]\nprompt = "a"\n')
    env = {"ASSETBUILD_SERVER": secret_url(fake)}
    for _ in range(2):  # the second run is a no-op answered by the memo
        result = run_cli(project, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert PASSWORD not in result.stdout + result.stderr
    assert (project / ".assetbuild" / "noop.json").exists()
    assert files_with_password(project) == []


def test_config_set_get_view_mask_the_password_of_server(project: Path, fake: FakeSwarm) -> None:
    outputs = []
    for args in (["config", "set", "server", secret_url(fake)], ["config", "get", "server"], ["config", "view"]):
        result = run_cli(project, *args)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    assert all(PASSWORD not in text for text in outputs), outputs
    assert all("artist:****@" in text for text in outputs)
    shown = run_cli(project, "config", "get", "server", "--show-secret")
    assert PASSWORD in shown.stdout  # asked for explicitly, for scripts
    env = {"ASSETBUILD_SERVER": secret_url(fake)}
    for args in (["config", "get", "server"], ["config", "view"]):
        result = run_cli(project, *args, env=env)
        assert PASSWORD not in result.stdout + result.stderr
