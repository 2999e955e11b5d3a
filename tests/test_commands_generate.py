"""`assetbuild generate`: one-off images against the SwarmUI test double (real sockets) and the placeholder."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import run_cli
from helpers import free_port, png_size

from assetbuild.cli import main
from assetbuild.commands import newfile
from assetbuild.commands.generate_ops import absolute_url, slug
from assetbuild.testing import FakeSwarm

MODEL = "sd_xl_base_1.0"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=2, latency=0.02, steps=2, close_delay=0.05) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeSwarm) -> None:
    fake.configure(latency=0.02)
    fake.reset_records()


def gen(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["generate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def t2i_bodies(fake: FakeSwarm) -> list[dict[str, object]]:
    return [r.body for r in fake.requests if r.route.startswith("GenerateText2Image")]


# --- URLs (no --save-images) ------------------------------------------------------------------------------


def test_prints_absolute_urls_that_serve_the_image(fake: FakeSwarm, capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = gen(capsys, "--server", fake.url, "--prompt", "a red potion", "--model", MODEL,
                         "--width", "256", "--height", "128", "--seed", "7")
    assert code == 0, err
    urls = out.splitlines()
    assert len(urls) == 1 and urls[0].startswith(f"{fake.url}/View/local/raw/")
    assert " " not in urls[0] and "a%20red%20potion" in urls[0]  # percent-encoded: usable as is
    assert fake.downloads == []  # the command itself downloads nothing
    assert png_size(httpx.get(urls[0]).content) == (256, 128)
    body = t2i_bodies(fake)[0]
    assert body["donotsave"] is False  # the server keeps the image, so there is a URL to give
    assert body["seed"] == 7 and body["width"] == 256 and body["prompt"] == "a red potion"
    assert fake.generation_log[0].transport == "ws"  # websocket by default
    assert "image: seed 7" in err
    assert list(tmp_path.iterdir()) == []  # nothing written without --save-images


def test_batch_increments_seeds_and_prints_every_url(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = gen(capsys, "--server", fake.url, "--prompt", "a slime", "--model", MODEL, "--batch", "3",
                         "--seed", "10")
    assert code == 0, err
    assert len(out.splitlines()) == 3 and len(set(out.splitlines())) == 3
    assert sorted(g.seed for g in fake.generation_log) == [10, 11, 12]
    for label in ("image 1/3", "image 2/3", "image 3/3"):
        assert f"generated {label}" in err


def test_every_parameter_option_reaches_the_server(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = gen(capsys, "--server", fake.url, "--prompt", " knight ", "--negative-prompt", "blurry",
                       "--model", MODEL, "--width", "320", "--height", "192", "--steps", "12", "--cfg-scale", "5.5",
                       "--seed", "3", "--param", "sampler=dpmpp_2m", "-p", "Scheduler=karras",
                       "--no-websocket")
    assert code == 0, err
    body = t2i_bodies(fake)[0]
    expected = {"prompt": "knight", "negativeprompt": "blurry", "model": MODEL, "width": 320, "height": 192,
                "steps": 12, "cfgscale": 5.5, "seed": 3, "sampler": "dpmpp_2m", "scheduler": "karras", "images": 1}
    assert {k: body[k] for k in expected} == expected
    assert fake.generation_log[0].transport == "http"


def test_random_seed_is_reported_from_the_metadata(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = gen(capsys, "--server", fake.url, "--prompt", "x", "--model", MODEL)
    assert code == 0
    assert f"image: seed {fake.generation_log[0].seed}" in err
    assert t2i_bodies(fake)[0].get("seed", -1) == -1


def test_json_output(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = gen(capsys, "--server", fake.url, "--prompt", "x", "--model", MODEL, "--batch", "2", "--json",
                         "--seed", "1")
    assert code == 0 and err == ""
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished"
    images = [e for e in events if e["event"] == "image"]
    assert [(i["index"], i["seed"], i["ok"], i["inline"], i["path"]) for i in images] == [
        (1, 1, True, False, None), (2, 2, True, False, None)]
    assert all(i["url"].startswith(fake.url + "/View/") for i in images)


# --- --save-images -----------------------------------------------------------------------------------------


def test_save_images_writes_files_and_never_overwrites(fake: FakeSwarm, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "a-red-potion-5.png").write_bytes(b"hand-made")
    code, out, err = gen(capsys, "--server", fake.url, "--prompt", "A red potion!", "--model", MODEL, "--width",
                         "128", "--height", "128", "--seed", "5", "--batch", "2", "--save-images",
                         "--output-dir", str(out_dir))
    assert code == 0, err
    paths = [Path(line) for line in out.splitlines()]
    assert sorted(p.name for p in paths) == ["a-red-potion-5-2.png", "a-red-potion-6.png"]
    assert (out_dir / "a-red-potion-5.png").read_bytes() == b"hand-made"  # untouched
    for path in paths:
        assert png_size(path.read_bytes()) == (128, 128)
    assert sorted(p.name for p in out_dir.iterdir()) == ["a-red-potion-5-2.png", "a-red-potion-5.png",
                                                         "a-red-potion-6.png"]  # no temporary files left
    assert all(body["donotsave"] is True for body in t2i_bodies(fake))  # the image lives in your folder


def test_output_dir_implies_save_images_and_is_created(fake: FakeSwarm, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder"
    code, out, _ = gen(capsys, "--server", fake.url, "--prompt", "x", "--model", MODEL, "--output-dir", str(target))
    assert code == 0
    (written,) = target.iterdir()
    assert out.strip() == str(written)


def test_save_over_http_downloads_nothing_from_view(fake: FakeSwarm, capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    code, _, _ = gen(capsys, "--server", fake.url, "--prompt", "x", "--model", MODEL, "--no-websocket",
                     "--save-images", "--output-dir", str(tmp_path))
    assert code == 0
    assert len(list(tmp_path.glob("*.png"))) == 1
    assert fake.downloads == []  # donotsave=true: the image came inline


# --- the placeholder -------------------------------------------------------------------------------------


def test_placeholder_writes_images_of_the_requested_size(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = gen(capsys, "--server", "placeholder", "--prompt", "a tree", "--width", "96", "--height", "64",
                         "--batch", "2", "--seed", "4", "--save-images", "--output-dir", str(tmp_path))
    assert code == 0, err
    paths = [Path(line) for line in out.splitlines()]
    assert [p.name for p in paths] == ["a-tree-4.png", "a-tree-5.png"]
    assert [png_size(p.read_bytes()) for p in paths] == [(96, 64), (96, 64)]


def test_placeholder_without_save_images_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = gen(capsys, "--server", "placeholder", "--prompt", "a tree")
    assert code == 0 and out == "" and "--save-images" in err


# --- errors ------------------------------------------------------------------------------------------------


def test_unknown_model_gets_a_did_you_mean(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = gen(capsys, "--server", fake.url, "--prompt", "x", "--model", "sdxl_base_1.0", "--batch", "2")
    assert code == 1 and out == ""
    assert "Invalid model value" in err
    assert "did you mean 'OfficialStableDiffusion/sd_xl_base_1.0'?" in err
    assert fake.request_count("ListModels") == 1  # asked once for the whole batch


def test_missing_model_says_to_pass_one(fake: FakeSwarm, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = gen(capsys, "--server", fake.url, "--prompt", "x")
    assert code == 1 and "No model input given" in err and "--model NAME" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--width", "10"], "--width must be between 64 and 16384"),
    (["--steps", "501"], "--steps must be between 0 and 500"),
    (["--cfg-scale", "101"], "--cfg-scale must be between 0 and 100"),
    (["--seed", "-2"], "--seed must be between -1"),
    (["--param", "images=4"], "set by assetbuild"),
    (["--param", "initimage=x.png"], "image inputs are not supported"),
    (["--param", "nokey"], "is not KEY=VALUE"),
    (["--prompt", "  "], "--prompt is empty"),
])
def test_bad_values_are_usage_errors_before_any_request(fake: FakeSwarm, capsys: pytest.CaptureFixture[str],
                                                        args: list[str], message: str) -> None:
    code, _, err = gen(capsys, "--server", fake.url, "--prompt", "x", "--model", MODEL, *args)
    assert code == 2 and message in err
    assert fake.requests == []


def test_batch_range_is_checked_by_the_parser() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--prompt", "x", "--batch", "0"])
    assert exc.value.code == 2


def test_unreachable_server_fails_with_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = gen(capsys, "--server", url, "--prompt", "x", "--model", MODEL)
    assert code == 1 and out == "" and url in err and "Traceback" not in err


def test_credentials_never_leak_into_errors(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "generate-secret-0123456789"
    with FakeSwarm(required_authorization="Bearer the-right-one", close_delay=0.05) as locked:
        monkeypatch.setenv("ASSETBUILD_API_KEY", secret)
        code, out, err = gen(capsys, "--server", locked.url, "--prompt", "x", "--model", MODEL, "-v")
    assert code == 1 and "refused" in err
    assert secret not in out + err


# --- end to end: a real process, and Ctrl-C ----------------------------------------------------------------


def test_generate_in_a_real_process(fake: FakeSwarm, tmp_path: Path) -> None:
    result = run_cli(tmp_path, "generate", "--server", fake.url, "--prompt", "a crate", "--model", MODEL,
                     "--seed", "2", "--save-images")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "a-crate-2.png\n"  # relative to where it ran, like the user's --output-dir
    assert png_size((tmp_path / "a-crate-2.png").read_bytes())
    assert "\x1b[" not in result.stderr  # not a terminal: plain lines


def test_ctrl_c_interrupts_the_servers_job(fake: FakeSwarm, tmp_path: Path) -> None:
    fake.configure(latency=30)
    proc = subprocess.Popen([sys.executable, "-m", "assetbuild", "generate", "--server", fake.url, "--prompt", "x",
                             "--model", MODEL], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ})
    try:
        deadline = time.monotonic() + 15
        while not fake.live_gens and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fake.live_gens == 1, "the generation never started"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert fake.wait_idle(5)  # the server's job was stopped, not left running
    assert fake.interrupts >= 1 and fake.generations == 0


# --- helpers -----------------------------------------------------------------------------------------------


def test_slug_and_url() -> None:
    assert slug("A red potion, in a FLASK!") == "a-red-potion-in-a-flask"
    assert slug("???") == "image"
    assert len(slug("word " * 40)) <= 40
    assert absolute_url("http://h:1/base", "View/local/raw/a b.png") == "http://h:1/base/View/local/raw/a%20b.png"
    assert absolute_url("http://h:1", "http://h:1/View/x.png") == "http://h:1/View/x.png"


def test_create_first_free_never_replaces(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"old")
    path = newfile.create_first_free(newfile.numbered(tmp_path, "a", ".png"), b"new")
    assert path == tmp_path / "a-2.png" and path.read_bytes() == b"new"
    assert (tmp_path / "a.png").read_bytes() == b"old"
    assert not newfile.create_new(tmp_path / "a.png", b"newer")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-2.png", "a.png"]


def test_create_first_free_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: object) -> None:
        raise OSError(errno.EPERM, "links not supported")

    monkeypatch.setattr(newfile.os, "link", no_links)
    (tmp_path / "a.png").write_bytes(b"old")
    path = newfile.create_first_free(newfile.numbered(tmp_path, "a", ".png"), b"new")
    assert path == tmp_path / "a-2.png" and path.read_bytes() == b"new"
    assert (tmp_path / "a.png").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-2.png", "a.png"]


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = capsys.readouterr().out
    for option in ("--prompt", "--websocket", "--no-websocket", "--save-images", "--output-dir", "--model", "--width",
                   "--height", "--steps", "--seed", "--cfg-scale", "--negative-prompt", "--batch", "--param",
                   "--server", "--json"):
        assert option in text


def test_bad_server_url_is_a_usage_error_before_any_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = gen(capsys, "--server", "localhost:7801", "--prompt", "x")
    assert code == 2 and out == ""
    assert err.startswith("assetbuild: error: server URL 'localhost:7801' is not an http(s) URL")
