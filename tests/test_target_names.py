"""Target names that doit would misread (issue 12 item 12): ``*``, ``?``, ``[`` (wildcards on doit's command
line), ``=`` (a variable assignment), ``%``, spaces and non-ASCII. They are legal file names, so they must
build like any other: real CLI runs, every target checked on disk and in the lock.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest

from assetbuild.tasks import _target_of, doit_name, task_name

pytestmark = pytest.mark.timeout(120)

NAMES = ["a*.png", "ab.png", "q?.png", "c[1].png", "c1.png", "icons/size=64.png", "p%41.png", "pA.png",
         "with space.png", "caf\u00e9.png", "-dash.png", "x,y+z@1~.png", "a]b!.png", "h#a$h&.png"]


def manifest(names: list[str]) -> str:
    body = '[defaults]\nwidth = 64\nheight = 64\n\n'
    for n, name in enumerate(names):
        body += f'[assets.{json.dumps(name)}]\nprompt = "asset {n}"\n\n'
    # Dependencies between odd names: an init image and a derived output.
    body += '[assets."from-star.png"]\nprompt = "uses a*"\ninitimage = "a*.png"\n\n'
    body += '[assets."small=32.png"]\nsource = "icons/size=64.png"\nresize = [32, 32]\n'
    return body


def lock_targets(project: Path) -> set[str]:
    return set(json.loads((project / "assets.lock").read_text(encoding="utf-8"))["assets"])


@pytest.mark.parametrize("jobs", ["1", "4"])
def test_targets_with_doit_special_characters_are_all_built(project: Path, jobs: str) -> None:
    write_manifest(project, manifest(NAMES))
    expected = {*NAMES, "from-star.png", "small=32.png"}
    result = run_cli(project, "run", "--server", "placeholder", "-n", jobs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert {name for name in expected if (project / name).is_file()} == expected
    assert lock_targets(project) == expected
    assert f"done: {len(expected) - 1} generated" in result.stdout  # small=32.png is derived
    again = run_cli(project, "run", "--server", "placeholder")
    assert again.returncode == 0 and f"{len(expected)} fresh" in again.stdout, again.stdout + again.stderr
    status = run_cli(project, "status", "--server", "placeholder")
    assert status.returncode == 0 and status.stdout.count("fresh") >= len(expected)


def test_selecting_one_odd_target_builds_it_and_only_what_it_needs(project: Path) -> None:
    write_manifest(project, manifest(NAMES))
    result = run_cli(project, "run", "--server", "placeholder", "from-star.png")
    assert result.returncode == 0, result.stdout + result.stderr
    assert lock_targets(project) == {"a*.png", "from-star.png"}
    assert not (project / "ab.png").exists()


@pytest.mark.parametrize("name", [*NAMES, "x:y", "%%", "%2A", "\udcff.png"])
def test_doit_names_round_trip_and_contain_nothing_doit_reads(name: str) -> None:
    internal = doit_name(name)
    assert not set(internal) & set("*?[]=: ")
    assert _target_of(task_name(name)) == name
    assert doit_name("sprites/hero_1.png") == "sprites/hero_1.png"  # ordinary names keep their doit state


@pytest.mark.parametrize("command", [(), ("status",), ("run", "--dry-run")])
def test_names_the_output_encoding_cannot_take_are_escaped_not_fatal(project: Path, command: tuple[str, ...]) -> None:
    """stdout in an encoding without the target's letters (a pipe on Windows, a Latin-1 locale): the name is
    shown escaped, every line still comes, and the command ends as it would (neither exit 3 nor output
    silenced after the first such line)."""
    write_manifest(project, '[server]\nurl = "placeholder"\n\n'
                            '[assets."héros/日.png"]\nprompt = "a"\n\n[assets."b.png"]\nprompt = "b"\n')
    if command:  # (the build itself is the case without one)
        assert run_cli(project, "-q").returncode == 0
    result = run_cli(project, *command, env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "h\\xe9ros/\\u65e5.png" in result.stdout and "b.png" in result.stdout, result.stdout
    assert "2 fresh" in result.stdout or "2 generated" in result.stdout, result.stdout


def test_a_line_writer_escapes_what_its_stream_cannot_encode() -> None:
    """For a caller's own stream (the Python API): a name its encoding cannot take is escaped, and the
    writer does not take it for a closed reader (which drops every later line)."""
    import io

    from assetbuild.display._stream import LineWriter

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", errors="strict", write_through=True)
    writer = LineWriter(stream)
    writer.line("start héros/日.png")
    writer.line("done")
    assert not writer.closed
    assert raw.getvalue() == b"start h\\xe9ros/\\u65e5.png\ndone\n"
