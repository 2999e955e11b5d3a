"""The user config file and `assetbuild config`: location, 0600, masking, did-you-mean, precedence."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest
from helpers import cli

from assetbuild import userconfig
from assetbuild.errors import ConfigError
from assetbuild.workspace import open_workspace, server_url

SECRET = "s3cr3t-api-key-0123456789"
TOKEN = "746f6b656e.0123456789abcdef0123456789abcdef.fedcba9876543210fedcba9876543210"


def config_file() -> Path:
    return Path(os.environ["ASSETBUILD_CONFIG_DIR"]) / "config.toml"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- where the file lives -----------------------------------------------------------------------------


def test_config_dir_follows_the_platform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ASSETBUILD_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(userconfig.sys, "platform", "linux")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert userconfig.config_dir() == tmp_path / "home" / ".config" / "assetbuild"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert userconfig.config_dir() == tmp_path / "xdg" / "assetbuild"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")  # the XDG spec says: ignore relative paths
    assert userconfig.config_dir() == tmp_path / "home" / ".config" / "assetbuild"
    monkeypatch.setattr(userconfig.sys, "platform", "darwin")
    assert userconfig.config_dir() == tmp_path / "home" / "Library" / "Application Support" / "assetbuild"
    monkeypatch.setattr(userconfig.sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "appdata"))
    assert userconfig.config_dir() == tmp_path / "appdata" / "assetbuild"
    monkeypatch.setenv("ASSETBUILD_CONFIG_DIR", str(tmp_path / "explicit"))
    assert userconfig.config_dir() == tmp_path / "explicit"


def test_config_path_prints_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "config", "path")
    assert code == 0 and out.strip() == str(config_file())


# --- set / get / view / unset ----------------------------------------------------------------------------


def test_set_get_unset_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "config", "set", "server", "http://gpu-box:7801/")
    assert code == 0 and "server = http://gpu-box:7801" in out
    code, out, _ = cli(capsys, "config", "get", "server")
    assert (code, out) == (0, "http://gpu-box:7801\n")  # trailing slash dropped
    code, out, _ = cli(capsys, "config", "set", "cache-dir", "~/shared-cache")
    assert code == 0
    assert userconfig.load() == {"server": "http://gpu-box:7801", "cache-dir": "~/shared-cache"}
    code, out, _ = cli(capsys, "config", "unset", "server")
    assert code == 0 and "server removed" in out
    code, out, err = cli(capsys, "config", "get", "server")
    assert code == 1 and out == "" and "server is not set" in err
    code, out, _ = cli(capsys, "config", "unset", "server")
    assert code == 0 and "was not set" in out


def test_file_is_0600_and_written_atomically(capsys: pytest.CaptureFixture[str]) -> None:
    assert not config_file().parent.exists()
    assert cli(capsys, "config", "set", "api-key", SECRET)[0] == 0
    path = config_file()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700  # created by us: private too
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temporary file left behind
    assert cli(capsys, "config", "set", "server", "http://a:1")[0] == 0
    assert mode(path) == 0o600


def test_looser_permissions_are_tightened(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "config", "set", "token", TOKEN)[0] == 0
    path = config_file()
    os.chmod(path, 0o644)
    assert cli(capsys, "config", "view")[0] == 0  # reading fixes it
    assert mode(path) == 0o600
    os.chmod(path, 0o666)
    assert cli(capsys, "config", "set", "server", "http://a:1")[0] == 0  # and writing
    assert mode(path) == 0o600


def test_secrets_never_appear_in_any_output(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = []
    for args in (("config", "set", "api-key", SECRET), ("config", "get", "api-key"), ("config", "view"),
                 ("config", "view", "-v"), ("config", "get", "api-key", "-v")):
        code, out, err = cli(capsys, *args)
        assert code == 0, (args, err)
        outputs.append(out + err)
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    code, out, err = cli(capsys, "config", "set", "token")  # the secret comes from stdin
    assert code == 0
    outputs.append(out + err)
    outputs.append("".join(cli(capsys, "config", "view")[1:]))
    for text in outputs:
        assert SECRET not in text and TOKEN not in text
        assert SECRET[:8] not in text  # no partial reveal either
    assert "****" in outputs[1] and "****" in outputs[2]
    assert userconfig.load() == {"api-key": SECRET, "token": TOKEN}
    assert "shell history" in outputs[0]  # a secret on the command line gets a tip to use stdin


def test_show_secret_is_an_explicit_opt_in(capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "config", "set", "api-key", SECRET)
    code, out, _ = cli(capsys, "config", "get", "api-key", "--show-secret")
    assert (code, out) == (0, SECRET + "\n")


def test_secret_from_stdin_must_not_be_empty(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = cli(capsys, "config", "set", "api-key")
    assert code == 2 and "no value for api-key" in err
    assert not config_file().exists()


def test_secrets_masked_in_a_real_process(tmp_path: Path) -> None:
    env = {"ASSETBUILD_CONFIG_DIR": str(tmp_path / "cfg")}
    first = run_cli(tmp_path, "config", "set", "api-key", SECRET, env=env)
    second = run_cli(tmp_path, "config", "view", env=env)
    third = run_cli(tmp_path, "config", "get", "api-key", env=env)
    for result in (first, second, third):
        assert result.returncode == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr
    assert mode(tmp_path / "cfg" / "config.toml") == 0o600


def test_view_shows_where_each_value_comes_from(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cli(capsys, "config", "set", "server", "http://from-file:7801")
    cli(capsys, "config", "set", "api-key", SECRET)
    monkeypatch.setenv("ASSETBUILD_API_KEY", "env-key-value-abcdefgh")
    code, out, _ = cli(capsys, "config", "view")
    assert code == 0
    lines = {line.split("=")[0].strip(): line for line in out.splitlines() if "=" in line}
    assert "http://from-file:7801" in lines["server"] and "config file" in lines["server"]
    assert "environment (ASSETBUILD_API_KEY)" in lines["api-key"]
    assert "env-key-value" not in out and SECRET not in out
    assert "not set" in lines["token"]
    code, out, err = cli(capsys, "config", "get", "api-key")
    assert code == 0 and "environment" in err and "env-key-value" not in out + err
    code, out, err = cli(capsys, "config", "set", "api-key", "another-key-value-xyz")
    assert "ASSETBUILD_API_KEY is set in the environment" in err


# --- refusing what is wrong ------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "guess"), [("sever", "server"), ("apikey", "api-key"), ("cache_dirr", "cache-dir"),
                                            ("tokn", "token")])
def test_unknown_key_gets_a_did_you_mean(capsys: pytest.CaptureFixture[str], key: str, guess: str) -> None:
    code, out, err = cli(capsys, "config", "set", key, "x")
    assert code == 2
    assert f"unknown config key {key!r}" in err and f"did you mean {guess!r}" in err
    assert not config_file().exists()


def test_aliases_of_a_key_are_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "config", "set", "API_KEY", SECRET)[0] == 0
    assert userconfig.load() == {"api-key": SECRET}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("server", "localhost:7801", "not an http(s) URL"),
    ("server", "ftp://x", "not an http(s) URL"),
    ("cache-dir", "relative/cache", "must be an absolute path"),
    ("server", "  ", "cannot be empty"),
])
def test_bad_values_are_refused(capsys: pytest.CaptureFixture[str], key: str, value: str, message: str) -> None:
    code, _, err = cli(capsys, "config", "set", key, value)
    assert code == 2 and message in err


def test_placeholder_is_a_valid_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "config", "set", "server", "placeholder")[0] == 0


def test_unknown_key_in_the_file_is_an_error_not_ignored(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    path = config_file()
    path.parent.mkdir(parents=True)
    path.write_text('server = "http://a:1"\napi_kee = "x"\n', encoding="utf-8")
    code, _, err = cli(capsys, "config", "view")
    assert code == 2 and "api_kee" in err and "did you mean 'api-key'" in err and str(path) in err
    write_manifest(project, '[assets."a.png"]\nprompt = "a"\n')
    code, _, err = cli(capsys, "status", "-f", str(project / "assets.toml"))
    assert code == 2 and "api_kee" in err  # every command refuses it, loudly
    code, out, _ = cli(capsys, "config", "unset", "api_kee")  # and the tool itself can remove it
    assert code == 0 and "removed" in out
    assert userconfig.load() == {"server": "http://a:1"}


def test_broken_toml_is_reported_with_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file()
    path.parent.mkdir(parents=True)
    path.write_text("server = \n", encoding="utf-8")
    code, _, err = cli(capsys, "config", "get", "server")
    assert code == 2 and str(path) in err and "not valid TOML" in err


def test_non_string_value_in_the_file_is_refused() -> None:
    path = config_file()
    path.parent.mkdir(parents=True)
    path.write_text("server = 7801\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="server must be a string"):
        userconfig.load()


def test_values_with_quotes_and_unicode_survive() -> None:
    value = 'a "quoted" \\ value ünïcode \u0007'
    userconfig.save({"token": value})
    assert userconfig.load() == {"token": value}


def test_set_needs_a_value_for_plain_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "config", "set", "server")
    assert code == 2 and "needs a VALUE" in err
    code, _, err = cli(capsys, "config", "get")
    assert code == 2 and "needs a KEY" in err


# --- precedence: --server > ASSETBUILD_SERVER > manifest's explicit url > config > default ---------------


def test_server_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert server_url(None, None) == "http://localhost:7801"
    userconfig.save({"server": "http://config:1"})
    assert server_url(None, None) == "http://config:1"
    assert server_url(None, "http://manifest:2") == "http://manifest:2"
    monkeypatch.setenv("ASSETBUILD_SERVER", "http://env:3")
    assert server_url(None, "http://manifest:2") == "http://env:3"
    assert server_url("http://option:4", "http://manifest:2") == "http://option:4"


def test_workspace_uses_config_server_only_when_the_manifest_sets_none(project: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(project, '[server]\nconcurrency = 2\n\n[assets."a.png"]\nprompt = "a"\n')
    monkeypatch.chdir(project)
    assert open_workspace(None).project.server.url == "http://localhost:7801"
    userconfig.save({"server": "placeholder"})
    ws = open_workspace(None)
    assert ws.project.server.url == "placeholder" and ws.kind == "placeholder"
    assert ws.project.server.concurrency == 2  # the rest of [server] still comes from the file
    write_manifest(project, '[server]\nurl = "http://localhost:7801"\n\n[assets."a.png"]\nprompt = "a"\n')
    assert open_workspace(None).project.server.url == "http://localhost:7801"  # explicit, even if default
    monkeypatch.setenv("ASSETBUILD_SERVER", "http://env:3")
    assert open_workspace(None).project.server.url == "http://env:3"
    assert open_workspace(None, server="placeholder").project.server.url == "placeholder"


def test_cache_dir_precedence(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(project, '[assets."a.png"]\nprompt = "a"\n')
    monkeypatch.chdir(project)
    assert open_workspace(None).project.cache_dir == project / ".assetbuild" / "cache"
    userconfig.save({"cache-dir": str(tmp_path / "user-cache")})
    assert open_workspace(None).project.cache_dir == tmp_path / "user-cache"
    write_manifest(project, '[project]\ncache_dir = "/srv/project-cache"\n\n[assets."a.png"]\nprompt = "a"\n')
    assert open_workspace(None).project.cache_dir == Path("/srv/project-cache")
    monkeypatch.setenv("ASSETBUILD_CACHE_DIR", str(tmp_path / "env-cache"))
    assert open_workspace(None).project.cache_dir == tmp_path / "env-cache"


def test_a_build_uses_the_config_server(project: Path, tmp_path: Path) -> None:
    write_manifest(project, '[defaults]\nwidth = 64\nheight = 64\n\n[assets."a.png"]\nprompt = "a"\n')
    env = {"ASSETBUILD_CONFIG_DIR": str(tmp_path / "cfg")}
    assert run_cli(project, "config", "set", "server", "placeholder", env=env).returncode == 0
    result = run_cli(project, env=env)
    assert result.returncode == 0, result.stderr
    assert (project / "a.png").is_file()


def test_credentials_come_from_the_environment_before_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    userconfig.save({"api-key": SECRET, "token": TOKEN})
    creds = userconfig.credentials()
    assert (creds.api_key, creds.token) == (SECRET, TOKEN)
    assert SECRET not in repr(creds)
    monkeypatch.setenv("ASSETBUILD_API_KEY", "from-env")
    assert userconfig.credentials().api_key == "from-env"


def test_save_reports_an_unwritable_folder_as_a_config_error(tmp_path: Path) -> None:
    from assetbuild import userconfig
    from assetbuild.errors import ConfigError

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot write the config file"):
        userconfig.save({"server": "http://x:1"}, blocker / "cfg" / "config.toml")


def test_an_integer_longer_than_python_reads_is_a_config_error_not_a_bug(project: Path) -> None:
    """Python refuses integers of over 4,300 digits with a plain ValueError, which tomllib lets through: in
    the user config or in the manifest's [server] table, it is the file's error (exit 2), not a crash."""
    huge = "9" * 5000
    write_manifest(project, '[server]\nurl = "placeholder"\n\n[assets."a.png"]\nprompt = "a"\n')
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'server = "http://x:1"\nn = {huge}\n', encoding="utf-8")
    path.chmod(0o600)
    result = run_cli(project, "config", "view")
    assert result.returncode == 2 and str(path) in result.stderr, result.stdout + result.stderr
    path.unlink()
    write_manifest(project, f'[server]\nurl = "placeholder"\nx = {huge}\n\n[assets."a.png"]\nprompt = "a"\n')
    shown = run_cli(project, "config", "view")  # the manifest is only consulted here: shown without it
    assert shown.returncode == 0 and "cannot be read" in shown.stderr, shown.stdout + shown.stderr
    status = run_cli(project, "server", "status")
    assert status.returncode == 2 and "assets.toml" in status.stderr, status.stdout + status.stderr
    assert not (project / ".assetbuild" / "crash.log").exists()
