"""Trusting the server's own truth (issue 15), end to end: real ``python -m assetbuild`` subprocesses against
a FakeSwarm on loopback, generations counted by the double. A problem found before generating means exit 2
and 0 generations.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_manifest

from assetbuild.testing import FakeSwarm

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(sys.platform == "win32", reason="subprocess timing")]

FAST: dict[str, Any] = {"latency": 0.02, "steps": 2, "close_delay": 0.02, "model_load_delay": 0.01}
XL = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
LORAS = ["pixel-art-xl.safetensors", "styles/outline.safetensors", "styles/outline-thick.safetensors"]


@pytest.fixture
def fake() -> Iterator[FakeSwarm]:
    with FakeSwarm(backends=1, loras=list(LORAS), **FAST) as server:
        yield server


def manifest(assets: str, *, server: str = "", defaults: str = "") -> str:
    return (f'[server]\nurl = "http://127.0.0.1:9"\nconcurrency = 2\n{server}\n\n'
            f'[defaults]\nmodel = "sd_xl_base_1.0"\nwidth = 64\nheight = 64\nsteps = 4\n{defaults}\n\n{assets}')


def asset(target: str, prompt: str, *lines: str) -> str:
    return f'[assets."{target}"]\nprompt = "{prompt}"\n' + "".join(f"{line}\n" for line in lines) + "\n"


def build(project: Path, fake: FakeSwarm, *args: str) -> tuple[int, str]:
    result = run_cli(project, "run", "--server", fake.url, *args, timeout=90)
    return result.returncode, result.stdout + result.stderr


def cli(project: Path, fake: FakeSwarm, *args: str) -> tuple[int, str]:
    result = run_cli(project, *args, "--server", fake.url, timeout=90)
    return result.returncode, result.stdout + result.stderr


def lock(project: Path) -> dict[str, Any]:
    path = project / "assets.lock"
    return dict(json.loads(path.read_text(encoding="utf-8"))["assets"]) if path.exists() else {}


def line_of(project: Path, target: str) -> int:
    lines = (project / "assets.toml").read_text(encoding="utf-8").splitlines()
    return next(n for n, text in enumerate(lines, 1) if text.startswith(f'[assets."{target}"]'))


def generate_requests(fake: FakeSwarm) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests if r.route.startswith("GenerateText2Image")]


# ------------------------------------------------------------------------------ 1, 2: before any generation


def test_typo_model_stops_the_run_before_any_generation(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(asset("ok.png", "fine") + asset("bad.png", "typo", 'model = "sdxl_bse"')))
    code, output = build(project, fake)
    assert code == 2, output
    assert fake.generations == 0 and generate_requests(fake) == []
    assert f"assets.toml:{line_of(project, 'bad.png')}: asset 'bad.png': model 'sdxl_bse' is not a model" in output
    assert "did you mean 'OfficialStableDiffusion/sd_xl_base_1.0'?" in output
    assert "'sd15/v1-5-pruned-emaonly'" in output  # the choices
    assert lock(project) == {} and not (project / "ok.png").exists()
    assert "Traceback" not in output


def test_partial_model_name_says_what_swarmui_would_pick(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(asset("a.png", "partial", 'model = "xl"')))
    code, output = build(project, fake)
    assert code == 2, output
    assert fake.generations == 0
    assert ("model 'xl' is not an exact model name: SwarmUI would pick 'OfficialStableDiffusion/sd_xl_base_1.0'"
            in output)
    assert "exact model names: 'OfficialStableDiffusion/sd_xl_base_1.0', 'sd15/v1-5-pruned-emaonly'" in output


def test_exact_names_accepted_and_an_ambiguous_file_name_refused(project: Path) -> None:
    models = ["a/m.safetensors", "b/m.safetensors", XL]
    with FakeSwarm(backends=1, models=models, **FAST) as fake:
        write_manifest(project, manifest(asset("full.png", "x", 'model = "OfficialStableDiffusion/sd_xl_base_1.0"')
                                         + asset("ext.png", "y", f'model = "{XL}"')
                                         + asset("two.png", "z", 'model = "m"')))
        code, output = build(project, fake)
        assert code == 2, output
        assert "asset 'two.png': model 'm' is not an exact model name: SwarmUI would pick 'a/m'" in output
        assert "full.png" not in output and "ext.png" not in output
        assert fake.generations == 0

        write_manifest(project, manifest(asset("full.png", "x", 'model = "OfficialStableDiffusion/sd_xl_base_1.0"')
                                         + asset("ext.png", "y", f'model = "{XL}"')
                                         + asset("two.png", "z", 'model = "b/m"')))
        code, output = build(project, fake)
        assert code == 0, output
        assert sorted(r.model for r in fake.generation_log) == sorted([XL, XL, "b/m.safetensors"])


def test_extension_parameter_the_server_knows(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(asset("dt.png", "x", "dynamic_thresholding_mimic_scale = 5")))
    code, output = build(project, fake)
    assert code == 0, output
    assert fake.generations == 1
    assert generate_requests(fake)[0]["dynamicthresholdingmimicscale"] == 5
    assert "unknown parameter" not in output  # the built-in table's warning is answered by the server


def test_extension_parameter_the_server_does_not_know(project: Path) -> None:
    with FakeSwarm(backends=1, extensions=False, **FAST) as fake:
        write_manifest(project, manifest(asset("dt.png", "x", "dynamicthresholdingmimicscale = 5")
                                         + asset("typo.png", "y", "stepz = 5")))
        code, output = build(project, fake)
    assert code == 2, output
    assert fake.generations == 0
    assert ("asset 'dt.png': the server does not know parameter 'dynamicthresholdingmimicscale' (SwarmUI would "
            "skip it silently); is the extension that adds it installed?") in output
    assert "asset 'typo.png': the server does not know parameter 'stepz'" in output
    assert "did you mean 'steps'?" in output


def test_types_ranges_and_dropdown_values(project: Path, fake: FakeSwarm) -> None:
    # Built-in parameters are checked offline first (the manifest's own table): the server's limits apply
    # to the parameters only it knows, and to dropdown values.
    write_manifest(project, manifest(asset("range.png", "x", "steps = 600")))
    code, output = build(project, fake)
    assert code == 2 and "steps must be between 0 and 500, not 600" in output, output
    write_manifest(project, manifest(
        asset("ext-range.png", "x", "dynamicthresholdingmimicscale = 101")
        + asset("type.png", "x", 'dynamicthresholdingmimicscale = "high"')
        + asset("loose.png", "x", 'sampler = "dpmpp_2m_sd"')
        + asset("typo.png", "x", 'sampler = "eulr"')
        + asset("mode.png", "x", 'dynamicthresholdingmode = "Linear Down"')))
    code, output = build(project, fake)
    assert code == 2, output
    assert fake.generations == 0
    assert "asset 'ext-range.png': dynamicthresholdingmimicscale must be between 0 and 100" in output
    assert "asset 'type.png': dynamicthresholdingmimicscale must be a number, not 'high'" in output
    assert "asset 'loose.png': sampler 'dpmpp_2m_sd' is not an exact value: SwarmUI would pick " \
           "'dpmpp_2m_sde'" in output
    assert "asset 'typo.png': sampler 'eulr' is not one of the server's values; did you mean 'euler'?" \
        in output
    assert "mode.png" not in output  # an exact (cleaned) dropdown value of an extension


def test_model_list_cached_per_server_and_refreshed_for_new_models(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(asset("a.png", "first")))
    assert build(project, fake)[0] == 0
    assert fake.request_count("ListT2IParams") == 1
    cached = list((project / ".assetbuild" / "server").glob("t2iparams-*.json"))
    assert len(cached) == 1

    write_manifest(project, manifest(asset("a.png", "first") + asset("b.png", "second")))
    assert build(project, fake)[0] == 0
    assert fake.request_count("ListT2IParams") == 1  # same server id and version: the cached list

    fake.configure(models=[*fake.config.models, "new/fresh_model.safetensors"])
    write_manifest(project, manifest(asset("a.png", "first") + asset("c.png", "third", 'model = "fresh_model"')))
    code, output = build(project, fake)
    assert code == 0, output  # not in the cached list: fetched again, then found
    assert fake.request_count("ListT2IParams") == 2

    fake.restart()  # a new server_id
    write_manifest(project, manifest(asset("a.png", "first") + asset("d.png", "fourth")))
    assert build(project, fake)[0] == 0
    assert fake.request_count("ListT2IParams") == 3
    assert len(list((project / ".assetbuild" / "server").glob("t2iparams-*.json"))) == 1
    assert fake.generations == 4


# ------------------------------------------------------------------------------------------- 3: LoRAs


def test_loras_table_is_sent_as_lists_validated_and_keyed_in_name_order(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(asset("l.png", "x", 'loras = { "pixel-art-xl" = 0.8, "outline" = 1.2 }')))
    code, output = build(project, fake)
    assert code == 0, output
    [body] = generate_requests(fake)
    assert body["loras"] == ["outline", "pixel-art-xl"] and body["loraweights"] == [1.2, 0.8]
    hashes = lock(project)["l.png"]["model_hashes"]
    assert set(hashes) == {"model:sd_xl_base_1.0", "lora:outline", "lora:pixel-art-xl"}
    assert hashes["lora:outline"] == fake.model_hash("styles/outline.safetensors", "LoRA")

    write_manifest(project, manifest(asset("l.png", "x", 'loras = { "outline" = 1.2, "pixel-art-xl" = 0.8 }')))
    code, output = build(project, fake)
    assert code == 0, output
    assert fake.generations == 1  # the order in the TOML is not part of the key

    write_manifest(project, manifest(asset("l.png", "x", 'loras = { "pixel" = 1 }')))
    code, output = build(project, fake)
    assert code == 2, output
    assert "asset 'l.png': LoRA 'pixel' is not an exact LoRA name: SwarmUI would pick 'pixel-art-xl'" in output
    write_manifest(project, manifest(asset("l.png", "x", 'loras = { "outline" = 11 }')))
    code, output = build(project, fake)
    assert code == 2 and "the weight of LoRA 'outline' must be a number from -10 to 10, not 11" in output
    assert fake.generations == 1


# ------------------------------------------------------------------------------ 4: model provenance


def test_model_replaced_on_the_server_makes_its_assets_stale(project: Path, fake: FakeSwarm) -> None:
    sd15 = 'model = "sd15/v1-5-pruned-emaonly"'
    write_manifest(project, manifest(asset("a.png", "one") + asset("b.png", "two", sd15)))
    assert build(project, fake)[0] == 0
    old = fake.model_hash(XL)
    assert lock(project)["a.png"]["model_hashes"] == {"model:sd_xl_base_1.0": old}
    code, output = cli(project, fake, "status")
    assert code == 0 and "2 fresh" in output, output

    fake.replace_model(XL)
    new = fake.model_hash(XL)
    change = f"model hash: {old[2:6]}… -> {new[2:6]}…"
    code, output = cli(project, fake, "status")
    assert code == 0, output
    assert re.search(rf"stale \(generate\)\s+a\.png\s+\({re.escape(change)}\)", output), output
    assert re.search(r"fresh\s+b\.png", output)
    code, output = cli(project, fake, "why", "a.png")
    assert code == 0 and change in output, output

    requests = len(fake.requests)
    code, output = build(project, fake, "--dry-run")  # contacts no server: the lock's hashes are trusted
    assert code == 0 and re.search(r"fresh\s+a\.png", output) and len(fake.requests) == requests, output

    code, output = build(project, fake, "--frozen")  # offline rules: the lock's hashes are trusted
    assert code == 0, output
    assert fake.generations == 2

    code, output = build(project, fake)
    assert code == 0, output
    assert fake.generations == 3  # only the asset made with the replaced model
    assert lock(project)["a.png"]["model_hashes"] == {"model:sd_xl_base_1.0": new}
    assert build(project, fake)[0] == 0
    assert fake.generations == 3


def test_model_replaced_while_a_build_runs(project: Path) -> None:
    with FakeSwarm(backends=1, **dict(FAST, latency=0.25)) as fake:
        write_manifest(project, manifest("".join(asset(f"a{n}.png", f"asset {n}") for n in range(4))))
        process = subprocess.Popen([sys.executable, "-m", "assetbuild", "run", "--server", fake.url], cwd=project,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 60
            while fake.generations < 1 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            old = fake.model_hash(XL)
            fake.replace_model(XL)
            output, _ = process.communicate(timeout=90)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, output
        new = fake.model_hash(XL)
        recorded = {t: e["model_hashes"]["model:sd_xl_base_1.0"] for t, e in lock(project).items()}
        assert set(recorded.values()) <= {old, new} and old in recorded.values()  # each image says what made it
        made_with_old = sum(1 for value in recorded.values() if value == old)

        code, output = build(project, fake)
        assert code == 0, output
        assert fake.generations == 4 + made_with_old  # exactly the images made with the old file
        assert {e["model_hashes"]["model:sd_xl_base_1.0"] for e in lock(project).values()} == {new}


def test_model_changes_warn_keeps_the_images(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(asset("a.png", "one"), server='model_changes = "warn"'))
    assert build(project, fake)[0] == 0
    fake.replace_model(XL)
    code, output = build(project, fake)
    assert code == 0, output
    assert "a.png: model hash: " in output and 'model_changes = "warn"' in output
    assert fake.generations == 1


def test_old_lock_without_hashes_is_not_rebuilt_and_hashes_are_recorded_later(project: Path,
                                                                             fake: FakeSwarm) -> None:
    write_manifest(project, manifest(asset("a.png", "one") + asset("b.png", "two")))
    assert build(project, fake)[0] == 0
    path = project / "assets.lock"
    data = json.loads(path.read_text(encoding="utf-8"))
    for entry in data["assets"].values():
        del entry["model_hashes"]  # a lock written before hashes were recorded
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    old_lock = path.read_bytes()
    requests = len(fake.requests)

    code, output = build(project, fake)
    assert code == 0, output
    assert fake.generations == 2 and len(fake.requests) == requests  # nothing to compare: no contact
    assert path.read_bytes() == old_lock
    code, output = cli(project, fake, "status")
    assert "2 fresh" in output and path.read_bytes() == old_lock

    write_manifest(project, manifest(asset("a.png", "one") + asset("b.png", "two, changed")))
    assert build(project, fake)[0] == 0
    assert fake.generations == 3
    assert all("model:sd_xl_base_1.0" in e["model_hashes"] for e in lock(project).values())


def test_hash_not_computed_yet_is_said_once_and_the_name_decides(project: Path) -> None:
    with FakeSwarm(backends=1, lazy_hashes=True, **FAST) as fake:
        write_manifest(project, manifest(asset("a.png", "one") + asset("b.png", "two")))
        code, output = build(project, fake)
        assert code == 0, output
        assert output.count("has not computed the hash of model:sd_xl_base_1.0 yet") == 1
        # The images' own metadata carried the hash the generation computed.
        assert lock(project)["a.png"]["model_hashes"] == {"model:sd_xl_base_1.0": fake.model_hash(XL)}

        fake.replace_model(XL)  # its new hash is not known until a generation computes it
        code, output = build(project, fake)
        assert code == 0, output
        assert output.count("has not computed the hash") == 1
        assert fake.generations == 2


# ---------------------------------------------------------------------------- 5: the image's metadata


def test_unused_parameter_fails_the_asset(project: Path, fake: FakeSwarm) -> None:
    write_manifest(project, manifest(asset("u.png", "x", "initimagecreativity = 0.3") + asset("ok.png", "y")))
    code, output = build(project, fake, "--keep-going")
    assert code == 1, output
    assert "u.png" in output and "the server did not use initimagecreativity" in output
    assert sorted(lock(project)) == ["ok.png"] and not (project / "u.png").exists()
    assert fake.generations == 2

    write_manifest(project, manifest(asset("u.png", "x", "initimagecreativity = 0.3") + asset("ok.png", "y"),
                                     server='unused_params = "warn"'))
    code, output = build(project, fake)
    assert code == 0, output
    assert "u.png: the server did not use initimagecreativity" in output
    assert sorted(lock(project)) == ["ok.png", "u.png"]


@pytest.mark.parametrize("websocket", [True, False], ids=["ws", "http"])
def test_random_seed_is_recorded(project: Path, websocket: bool) -> None:
    with FakeSwarm(backends=1, websocket=websocket, **FAST) as fake:
        write_manifest(project, manifest(asset("r.png", "x", "seed = -1")))
        code, output = build(project, fake)
        assert code == 0, output
        [record] = fake.generation_log
        assert record.transport == ("ws" if websocket else "http")
        assert record.seed >= 0 and lock(project)["r.png"]["seed"] == record.seed


def test_a_replaced_model_is_not_restored_from_the_team_store(project: Path, fake: FakeSwarm,
                                                              tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    env = {"ASSETBUILD_REMOTE": str(store)}
    write_manifest(project, manifest(asset("a.png", "one")))
    result = run_cli(project, "run", "--server", fake.url, env=env, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(path.is_file() for path in store.rglob("*"))  # pushed
    fake.replace_model(XL)
    shutil.rmtree(project / ".assetbuild" / "cache")  # only the store has the old image now
    result = run_cli(project, "run", "--server", fake.url, env=env, timeout=90)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert fake.generations == 2 and "restored" not in output.replace("0 restored", "")


# ------------------------------------------------------------------------ 16.2: the no-op memo and hashes


def describes(fake: FakeSwarm) -> int:
    return sum(1 for r in fake.requests if r.route.startswith("DescribeModel"))


def test_with_model_hashes_an_edit_plans_one_table_and_the_server_vouches_for_the_others(
        project: Path, fake: FakeSwarm) -> None:
    """The memo's per-table records hold the model hashes of their lock entries: after an edit only the
    edited table is loaded, and the server is asked about the models of the others (only it can say they
    are unchanged); a replaced model still rebuilds every asset it made."""
    write_manifest(project, manifest("".join(asset(f"a{n}.png", f"asset {n}") for n in range(3))))
    assert build(project, fake)[0] == 0
    assert all(e["model_hashes"] for e in lock(project).values())
    memo = project / ".assetbuild" / "manifest.json"  # saved by a full load, never by a partial one
    memo_written = memo.stat().st_mtime_ns

    text = (project / "assets.toml").read_text(encoding="utf-8")
    (project / "assets.toml").write_text(text.replace("asset 1", "asset one"), encoding="utf-8")
    asked = describes(fake)
    code, output = build(project, fake)
    assert code == 0, output
    assert fake.generations == 4 and "1 generated" in output and "2 fresh" in output
    assert memo.stat().st_mtime_ns == memo_written  # only the edited table was loaded
    assert describes(fake) > asked  # the models of the tables left out were checked

    asked = describes(fake)
    code, output = build(project, fake)  # nothing changed: never answered without the server
    assert code == 0 and "3 fresh" in output, output
    assert describes(fake) > asked and fake.generations == 4

    fake.replace_model(XL)
    code, output = build(project, fake)
    assert code == 0, output
    assert fake.generations == 7  # every image made with the replaced file, as the full plan decides
    assert {e["model_hashes"]["model:sd_xl_base_1.0"] for e in lock(project).values()} == {fake.model_hash(XL)}
