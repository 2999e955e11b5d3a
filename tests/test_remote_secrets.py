"""Team-store secrets: a password in an HTTP store URL never reaches any output or file, whatever
happens (success, refused credentials, an outage); Ctrl-C in the middle of `push` or `pull` loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from helpers import free_port
from remote_servers import Unavailable, WebDAV
from test_remote_build import TOKEN, Machine, dav, first_machine  # noqa: F401  (fixture)
from test_remote_pull import lock_only_project

from assetbuild.keys import hash_bytes
from assetbuild.remote.objects import decode, encode, path_of

PASSWORD = "pa55word-in-the-url-never-shown"


def files_holding(root: Path, secret: str) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and secret.encode() in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


def test_a_password_in_an_http_store_url_never_appears_in_output_or_files(dav: WebDAV, tmp_path: Path) -> None:  # noqa: F811
    url = dav.url(tmp_path.name).replace("http://", f"http://artist:{PASSWORD}@")
    a = first_machine(tmp_path, {"ASSETBUILD_REMOTE": url, "ASSETBUILD_REMOTE_TOKEN": TOKEN})
    outputs = [a.run("run"), a.run("push"), a.run("status", "--remote"), a.run("status", "--remote", "--json")]
    assert [o.returncode for o in outputs] == [0, 0, 0, 0], [o.stdout + o.stderr for o in outputs]
    assert "artist:****@127.0.0.1" in outputs[1].stdout  # the store is named, its password masked
    b = a.clone("b")
    outputs += [b.run("pull"), b.run("pull", "--json")]
    assert outputs[-2].returncode == 0 and b.generated == []
    refused = a.clone("c", {"ASSETBUILD_REMOTE": url})  # no token: the store refuses us (exit 2)
    outputs += [refused.run("pull"), refused.run("run"), refused.run("push", "--json")]
    assert [o.returncode for o in outputs[-3:]] == [2, 2, 2]
    dead = url.replace(f":{dav.port}/", f":{free_port()}/")  # an outage: a warning naming the store
    down = a.clone("d", {"ASSETBUILD_REMOTE": dead, "ASSETBUILD_REMOTE_TOKEN": TOKEN})
    outputs += [down.run("run"), down.run("pull"), down.run("push", "--json"), down.run("status", "--remote")]
    assert "artist:****@127.0.0.1" in outputs[-4].stdout + outputs[-4].stderr
    for out in outputs:
        assert PASSWORD not in out.stdout + out.stderr
    for machine in (a, b, refused, down):
        assert files_holding(machine.root, PASSWORD) == []
        assert files_holding(Path(machine.env["ASSETBUILD_CACHE_DIR"]), PASSWORD) == []  # none when absent


class CutOff:
    """Lets the first ``keep`` requests of ``method`` for objects through, holds the next ones until
    ``released`` is set, then refuses them (503, nothing done) until ``open``: a transfer interrupted with
    some objects done."""

    def __init__(self, keep: int, method: str = "PUT") -> None:
        self.keep = keep
        self.method = method
        self.puts = 0
        self.lock = threading.Lock()
        self.held = threading.Event()
        self.released = threading.Event()
        self.open = False

    def __call__(self, method: str, path: str) -> None:
        if method != self.method or not path.endswith(".img"):
            return None
        with self.lock:
            self.puts += 1
            if self.open or self.puts <= self.keep:
                return None
        self.held.set()
        self.released.wait(60)  # set by the test once Ctrl-C is sent (the timeout only avoids a hang)
        if not self.open:
            raise Unavailable
        return None


def interrupt_while_held(root: Path, env: dict[str, str], command: str, cut: CutOff) -> None:
    """Run ``assetbuild COMMAND`` until ``cut`` holds its transfers, press Ctrl-C there: exit 130, no traceback."""
    process = subprocess.Popen([sys.executable, "-m", "assetbuild", command, "--json"], cwd=root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert cut.held.wait(60), f"{command} never got past its first transfers"
        process.send_signal(signal.SIGINT)
    finally:
        cut.released.set()
        out, err = process.communicate(timeout=120)
    assert process.returncode == 130, out + err
    assert "Traceback" not in err


def run_again(root: Path, env: dict[str, str], command: str, cut: CutOff) -> subprocess.CompletedProcess[str]:
    """``assetbuild COMMAND`` once more, with every transfer let through."""
    cut.open = True
    return subprocess.run([sys.executable, "-m", "assetbuild", command, "--json"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_ctrl_c_in_the_middle_of_push_keeps_finished_uploads_and_push_again_does_the_rest(tmp_path: Path) -> None:
    count, keep = 40, 5
    cut = CutOff(keep)
    server = WebDAV(tmp_path / "dav", TOKEN, threads=64, on_request=cut)
    try:
        url = server.url("store")
        root = tmp_path / "checkout"
        images = lock_only_project(root, server.folder / "store", count, in_store=False)
        for shard in range(256):  # so that each upload is one PUT (no MKCOL of its folder first)
            (server.folder / "store" / f"{shard:02x}").mkdir()
        env = {**os.environ, "ASSETBUILD_REMOTE": url, "ASSETBUILD_REMOTE_TOKEN": TOKEN,
               "ASSETBUILD_CACHE_DIR": str(tmp_path / "cache")}
        interrupt_while_held(root, env, "push", cut)
        stored = sorted((server.folder / "store").rglob("*.img"))
        assert len(stored) == keep  # the finished uploads stay, whole; nothing half-written
        again = run_again(root, env, "push", cut)
    finally:
        server.stop()
    assert again.returncode == 0, again.stdout + again.stderr
    finished = json.loads(again.stdout.splitlines()[-1])
    assert finished["counts"] == {"present": keep, "uploaded": count - keep}
    lock = json.loads((root / "assets.lock").read_text())["assets"]
    for target, data in images.items():
        key = lock[target]["key"]
        raw = (server.folder / "store" / path_of(key)).read_bytes()
        entry = decode(key, raw, expected_hash=hash_bytes(data), signing_key=None)
        assert entry.data == data


def test_ctrl_c_in_the_middle_of_pull_leaves_whole_targets_only_and_pull_again_does_the_rest(tmp_path: Path) -> None:
    count, keep = 40, 5
    cut = CutOff(keep, method="GET")
    server = WebDAV(tmp_path / "dav", TOKEN, threads=64, on_request=cut)
    try:
        url = server.url("store")
        root = tmp_path / "checkout"
        images = lock_only_project(root, server.folder / "store", count)
        env = {**os.environ, "ASSETBUILD_REMOTE": url, "ASSETBUILD_REMOTE_TOKEN": TOKEN,
               "ASSETBUILD_CACHE_DIR": str(tmp_path / "cache")}
        interrupt_while_held(root, env, "pull", cut)
        restored = [t for t in images if (root / t).exists()]
        assert len(restored) <= keep
        assert all((root / t).read_bytes() == images[t] for t in restored)  # whole, or not there
        assert list((root / ".assetbuild" / "tmp").iterdir()) == []  # no temporary file left behind
        again = run_again(root, env, "pull", cut)
    finally:
        server.stop()
    assert again.returncode == 0, again.stdout + again.stderr
    finished = json.loads(again.stdout.splitlines()[-1])
    assert finished["counts"] == {"pulled": count - len(restored), **({"fresh": len(restored)} if restored else {})}
    assert all((root / t).read_bytes() == data for t, data in images.items())


def test_push_replaces_a_truncated_object_an_http_server_kept_but_never_a_whole_one(tmp_path: Path) -> None:
    """An HTTP server may write a PUT in place: an upload cut off half-way leaves a truncated object under
    its final name. push must not take it for present (the image would never reach the store), while a
    whole object of another size (another machine's image for the key) stays: the store is write-once."""
    server = WebDAV(tmp_path / "dav", TOKEN)
    try:
        url = server.url("store")
        root = tmp_path / "checkout"
        images = lock_only_project(root, server.folder / "store", 3, in_store=False)
        lock = json.loads((root / "assets.lock").read_text())["assets"]
        cut_key, other_key = lock["img/000.png"]["key"], lock["img/001.png"]["key"]
        whole = encode(cut_key, images["img/000.png"], seed=0, model="m", signing_key=None)
        other = encode(other_key, b"another machine's image", seed=7, model="m", signing_key=None)
        for key, raw in ((cut_key, whole[:len(whole) // 2]), (other_key, other)):
            (server.folder / "store" / path_of(key)).parent.mkdir(parents=True, exist_ok=True)
            (server.folder / "store" / path_of(key)).write_bytes(raw)
        env = {**os.environ, "ASSETBUILD_REMOTE": url, "ASSETBUILD_REMOTE_TOKEN": TOKEN,
               "ASSETBUILD_CACHE_DIR": str(tmp_path / "cache")}
        result = subprocess.run([sys.executable, "-m", "assetbuild", "push", "--json"], cwd=root, env=env,
                                capture_output=True, text=True, timeout=120)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"team store object {cut_key} is damaged" in result.stdout + result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["counts"] == {"present": 1, "uploaded": 2}
    assert (server.folder / "store" / path_of(cut_key)).read_bytes() == whole
    assert (server.folder / "store" / path_of(other_key)).read_bytes() == other  # never overwritten
