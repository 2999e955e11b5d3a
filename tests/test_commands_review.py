"""Defects found in review of the everyday commands, each reproduced and kept fixed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest
from helpers import cli

from assetbuild.testing import FakeSwarm


@pytest.mark.parametrize("args", [
    ["generate", "--prompt", "x", "--server", "http://[::1"],
    ["cancel", "--server", "http://[::1"],
    ["config", "set", "server", "http://[::1"],
    ["config", "set", "server", "http://host:notaport"],
])
def test_a_malformed_server_url_is_a_usage_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = cli(capsys, *args)
    assert code == 2
    assert "is not an http(s) URL" in err
    assert "Traceback" not in err


def test_config_set_refuses_a_secret_no_server_would_accept(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "config", "set", "api-key", "sk abc ünïcode")
    assert code == 2
    assert "api-key" in err and "sk abc" not in out + err
    assert cli(capsys, "config", "get", "api-key")[0] != 0  # nothing was saved


def test_config_set_into_an_unwritable_folder_is_a_config_error(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ASSETBUILD_CONFIG_DIR", str(blocker / "cfg"))
    code, out, err = cli(capsys, "config", "set", "server", "http://x:1")
    assert code == 2
    assert "config" in err and str(blocker) in err and "Traceback" not in err


def test_gc_refuses_a_ref_that_would_be_a_git_option(project: Path, tmp_path: Path) -> None:
    write_manifest(project, '[server]\nurl = "placeholder"\n[assets."a.png"]\nprompt = "x"\nwidth = 64\nheight = 64\n')
    assert run_cli(project).returncode == 0
    injected = tmp_path / "injected"
    result = run_cli(project, "gc", f"--keep-ref=--output={injected}")
    assert result.returncode == 2
    assert "not a git ref" in result.stderr
    assert not list(tmp_path.glob("injected*"))


def test_clean_keeps_a_folder_that_stands_where_an_image_was(project: Path) -> None:
    write_manifest(project, '[server]\nurl = "placeholder"\n[assets."sub/c.png"]\nprompt = "x"\nwidth = 64\n'
                            'height = 64\n')
    assert run_cli(project).returncode == 0
    (project / "sub" / "c.png").unlink()
    (project / "sub" / "c.png").mkdir()
    for args in (["clean", "--dry-run"], ["clean"]):
        result = run_cli(project, *args)
        assert result.returncode == 0, result.stderr
        assert "kept" in result.stdout and "Traceback" not in result.stderr
    assert (project / "sub" / "c.png").is_dir()


def test_generate_output_dir_that_is_a_file_fails_before_generating(capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with FakeSwarm(close_delay=0.05, latency=0.02) as fake:
        code, out, err = cli(capsys, "generate", "--prompt", "x", "--model", "sd_xl_base_1.0", "--server",
                             fake.url, "--output-dir", str(blocker))
        assert fake.generations == 0
    assert code == 2
    assert "--output-dir" in err and "Traceback" not in err


def test_generate_warns_about_unknown_params(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = cli(capsys, "generate", "--prompt", "x", "--server", "placeholder", "--output-dir",
                         str(tmp_path), "-p", "stesp=30")
    assert code == 0
    assert "stesp" in out + err and "did you mean 'steps'?" in out + err


def test_generate_stops_on_sigterm_like_ctrl_c(tmp_path: Path) -> None:
    with FakeSwarm(close_delay=0.05, latency=5, steps=10) as fake:
        env = {**os.environ, "ASSETBUILD_CONFIG_DIR": str(tmp_path / "cfg")}
        process = subprocess.Popen([sys.executable, "-m", "assetbuild", "generate", "--prompt", "x", "--model",
                                    "sd_xl_base_1.0", "--server", fake.url], cwd=tmp_path, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not fake.active_jobs() and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130, err
        assert fake.interrupts >= 1
        assert fake.wait_idle(10)


def test_options_before_the_command_word(project: Path) -> None:
    write_manifest(project, '[server]\nurl = "placeholder"\n[assets."a.png"]\nprompt = "x"\nwidth = 64\nheight = 64\n')
    result = run_cli(project, "-v", "status")
    assert result.returncode == 0, result.stderr
    assert "a.png" in result.stdout and "stale (generate)" in result.stdout
    assert not (project / "a.png").exists()  # it was status, not a build


def test_verbose_detail_goes_to_stderr_and_is_not_a_warning(project: Path) -> None:
    with FakeSwarm(close_delay=0.05, latency=0.02) as fake:
        write_manifest(project, f'[server]\nurl = "{fake.url}"\n[assets."a.png"]\nprompt = "x"\n'
                                'model = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\n')
        result = run_cli(project, "-v", "--json")
    assert result.returncode == 0, result.stderr
    assert "debug:" in result.stderr
    assert '"event": "warning"' not in result.stdout


def test_a_password_in_the_server_url_is_never_printed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import free_port

    from assetbuild.swarm.credentials import shown_url

    assert shown_url("http://ann:hunter2@gpu:7801/x") == "http://ann:****@gpu:7801/x"
    assert shown_url("http://gpu:7801") == "http://gpu:7801"
    url = f"http://ann:hunter2@127.0.0.1:{free_port()}"
    code, out, err = cli(capsys, "server", "status", "--server", url)
    assert code == 1 and "hunter2" not in out + err and "ann:****@" in out + err
    write_manifest(project, '[server]\nurl = "placeholder"\n[assets."a.png"]\nprompt = "x"\nmodel = "m"\n'
                            'width = 64\nheight = 64\n')
    result = run_cli(project, "--server", url)
    assert result.returncode == 1 and "hunter2" not in result.stdout + result.stderr
