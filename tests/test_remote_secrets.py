"""Team-store secrets: a password in an HTTP store URL never reaches any output or file, whatever
happens (success, refused credentials, an outage); Ctrl-C in the middle of `push` loses nothing."""

from __future__ import annotations

from pathlib import Path

from helpers import free_port
from remote_servers import WebDAV
from test_remote_build import TOKEN, Machine, dav, first_machine  # noqa: F401  (fixture)

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
