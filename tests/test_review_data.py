"""The data behind the review page: groups, field diffs, images at a ref, pixel change share, markdown."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli, write_manifest
from helpers import QUICKSTART, cli, snapshot
from PIL import Image
from review_project import EXPECTED, SCRIPT_PROMPT, git, make_project

from assetbuild.keys import hash_bytes
from assetbuild.review import data, html, markdown, site
from assetbuild.review import git as review_git
from assetbuild.review.thumbs import changed_share
from assetbuild.workspace import open_workspace


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The review project, made once; tests copy it when they change it."""
    return make_project(tmp_path_factory.mktemp("review") / "proj")


def collect(root: Path, since: str | None = None, targets: list[str] | None = None) -> data.Review:
    ws = open_workspace(str(root / "assets.toml"))
    return data.collect(ws, targets or [], since)


def cards(review: data.Review) -> dict[str, data.Card]:
    return {card.target: card for card in review.cards}


def test_groups_since_a_ref(built: Path) -> None:
    review = collect(built, "main")
    assert review.since_commit == git(built, "rev-parse", "main")
    assert {change: {c.target for c in review.group(change)} for change in data.CHANGES} == EXPECTED
    assert review.change_counts() == {k: len(v) for k, v in EXPECTED.items()}


def test_the_field_diff_is_what_why_shows(built: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # ui/icon.png was edited but not rebuilt since main: its lock entry is main's, and the page's lines
    # are exactly `why`'s lines.
    review = cards(collect(built, "main"))
    monkeypatch.chdir(built)
    code, out, _ = cli(capsys, "why", "ui/icon.png")
    assert code == 0
    assert review["ui/icon.png"].why == [line.strip() for line in out.splitlines()[1:]]
    assert review["ui/icon.png"].why == ["prompt: a {+golden+} sword icon"]
    # Since main: the changes made since then, field by field.
    since_main = cards(collect(built, "main"))
    assert since_main["sprites/hero.png"].why == ["steps: 20 -> 30"]
    assert since_main["sprites/slime.png"].why == [f"prompt: a [-green-] slime {{+{SCRIPT_PROMPT[8:]}+}}"]


def test_before_images_come_from_git_at_the_ref(built: Path) -> None:
    review = cards(collect(built, "main"))
    old_lock = json.loads(git(built, "show", "main:assets.lock"))["assets"]
    hero = review["sprites/hero.png"]
    assert hero.before is not None and hero.image is not None
    assert hero.before.hash == old_lock["sprites/hero.png"]["hash"] == hash_bytes(hero.before.read())
    assert hero.image.hash != hero.before.hash
    gone = review["old/gone.png"]
    assert gone.state == "removed" and gone.image is None
    assert gone.before is not None and gone.before.hash == old_lock["old/gone.png"]["hash"]
    assert gone.prompt == "an asset removed later" and gone.key == old_lock["old/gone.png"]["key"]
    unchanged = review["trees/oak_1.png"]
    assert unchanged.before == unchanged.image  # same bytes: not read from git again


def test_before_images_come_from_the_cache_when_images_are_not_committed(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    write_manifest(root, QUICKSTART)
    (root / ".gitignore").write_text("sprites/\nui/\n", encoding="utf-8")
    assert run_cli(root).returncode == 0
    first = (root / "sprites/hero.png").read_bytes()
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "lock only")
    assert "sprites/hero.png" not in git(root, "ls-files")
    manifest = root / "assets.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("seed = 42", "seed = 43"), encoding="utf-8")
    assert run_cli(root).returncode == 0
    hero = cards(collect(root, "main"))["sprites/hero.png"]
    assert hero.change == "changed" and hero.why == ["seed: 42 -> 43"]
    assert hero.before is not None and hero.before.read() == first


def test_states_without_since(built: Path, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    shutil.copytree(built, root, symlinks=True)
    (root / "trees/oak_2.png").unlink()
    (root / "trees/oak_3.png").write_bytes(b"hand-made")
    review = collect(root)
    states = {c.target: c.state for c in review.cards}
    assert states == {"sprites/hero.png": "fresh", "sprites/slime.png": "fresh", "ui/icon.png": "stale",
                      "ui/new.png": "fresh", "trees/oak_1.png": "fresh", "trees/oak_2.png": "missing",
                      "trees/oak_3.png": "modified"}
    assert all(card.change is None for card in review.cards)
    by = cards(review)
    assert by["sprites/slime.png"].prompt == SCRIPT_PROMPT
    assert by["sprites/hero.png"].seed == 1 and by["sprites/hero.png"].generator == "placeholder"
    assert by["trees/oak_2.png"].variant_of == "trees/oak_{n}.png"
    assert by["trees/oak_2.png"].why == ["file missing"]
    # TARGET arguments narrow the review.
    assert [c.target for c in collect(root, targets=["trees/*"]).cards] == ["trees/oak_1.png", "trees/oak_2.png",
                                                                           "trees/oak_3.png"]


def test_an_orphan_is_shown_with_its_state(built: Path, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    shutil.copytree(built, root, symlinks=True)
    manifest = root / "assets.toml"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace('[assets."ui/new.png"]', '[assets."ui/renamed.png"]'), encoding="utf-8")
    by = cards(collect(root))
    assert by["ui/new.png"].state == "orphan" and by["ui/new.png"].image is not None
    assert by["ui/renamed.png"].state == "missing"  # no file yet; the cache has it (same key)
    assert by["ui/renamed.png"].label == "stale (restore from cache)"


def test_a_ref_lock_entry_outside_the_project_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    write_manifest(root, QUICKSTART)
    assert run_cli(root).returncode == 0
    good = (root / "assets.lock").read_bytes()
    lock = json.loads(good)
    lock["assets"]["../outside.png"] = lock["assets"]["ui/icon_sword.png"]
    (root / "assets.lock").write_text(json.dumps(lock), encoding="utf-8")
    (tmp_path / "outside.png").write_bytes(b"secret")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "a lock naming a path outside")
    (root / "assets.lock").write_bytes(good)  # today's lock is fine; the one at main is not
    review = collect(root, "main")
    assert "../outside.png" not in cards(review)
    assert any("'../outside.png' is not a path inside the project" in w for w in review.warnings)


def test_a_bad_ref_is_a_usage_error(built: Path) -> None:
    for ref in ("no-such-branch", "--output=/tmp/x"):
        result = run_cli(built, "review", "--since", ref)
        assert result.returncode == 2, result.stderr
        assert "--since" in result.stderr and "Traceback" not in result.stderr


def test_default_since_in_ci_is_the_merge_base_with_the_default_branch(built: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    shutil.copytree(built, root, symlinks=True)
    base = git(root, "rev-parse", "main")
    git(root, "checkout", "-q", "-b", "feature")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "feature work")
    git(root, "checkout", "-q", "main")
    (root / "extra.txt").write_text("main moved on\n", encoding="utf-8")
    git(root, "add", "extra.txt")
    git(root, "commit", "-qm", "main moves")
    git(root, "checkout", "-q", "feature")
    monkeypatch.delenv("GITHUB_BASE_REF", raising=False)
    assert review_git.default_since(root) == base
    result = run_cli(root, "review", env={"CI": "true"})
    assert result.returncode == 0, result.stderr
    assert "since " + base in result.stderr
    summary = (root / ".assetbuild/review/summary.md").read_text(encoding="utf-8")
    assert "**3** changed" in summary  # since the merge base, not since main as it is now
    assert review_git.default_since(tmp_path) is None  # not in git: no default


def test_pixel_change_share() -> None:
    def png(image: Image.Image) -> bytes:
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()

    base = Image.new("RGBA", (10, 10), (10, 20, 30, 255))
    changed = base.copy()
    for x in range(5):
        for y in range(5):
            changed.putpixel((x, y), (10, 20, 31, 255))
    alpha = base.copy()
    alpha.putpixel((9, 9), (10, 20, 30, 0))
    assert changed_share(png(base), png(base)) == 0
    assert changed_share(png(base), png(changed)) == 0.25
    assert changed_share(png(base), png(alpha)) == 0.01
    # Another size: compared at the new size; resampling a flat image changes nothing.
    assert changed_share(png(base), png(Image.new("RGBA", (20, 20), (10, 20, 30, 255)))) == 0
    assert changed_share(png(base), png(Image.new("RGBA", (20, 20), (200, 20, 30, 255)))) == 1


def test_markdown_stays_under_64_kib_and_counts_what_it_cut() -> None:
    many = [data.Card(target=f"sprites/{i:05d}.png", state="fresh", label="fresh", reason="", change="changed",
                      why=[f"prompt: {'[-old-] {+new+} ' * 40}", "steps: 20 -> 30"]) for i in range(3000)]
    review = data.Review("big", many, since="main", since_commit="0" * 40)
    text = markdown.summary(review, "https://example.invalid/run/1")
    size = len(text.encode("utf-8"))
    assert size <= markdown.LIMIT
    shown = text.count("| `sprites/")
    assert 10 < shown < 3000
    assert f"and {3000 - shown} more" in text
    assert "**3000** changed" in text and "(https://example.invalid/run/1)" in text
    small = markdown.summary(data.Review("small", many[:3], since="main", since_commit="0" * 40))
    assert small.count("| `sprites/") == 3 and "more" not in small


def test_markdown_escapes_text_from_the_manifest() -> None:
    card = data.Card(target="a|b.png", state="stale", label="stale", reason="", change="changed",
                     why=["prompt: {+<script>x</script> | **bold**+}"])
    text = markdown.summary(data.Review("p", [card], since="main", since_commit="0" * 40))
    row = next(line for line in text.splitlines() if "a\\|b.png" in line)
    assert "<script>" not in row and "&lt;script&gt;" in row
    assert row.count(" | ") == 2 + 0 and "\\|" in row and "\\*\\*bold\\*\\*" in row


def test_the_page_escapes_every_text(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    written = site.write(collect(built, "main"), out)
    page = written.index.read_text(encoding="utf-8")
    assert "<script>window.__pwned" not in page
    assert html.esc(SCRIPT_PROMPT) in page
    assert page.count("<script>") == 1  # the page's own script, nothing else
    assert "http://" not in page and "https://" not in page  # no network
    for ref in ("src", "href"):
        for value in page.split(f'{ref}="')[1:]:
            assert value.startswith(("img/", "thumbs/", "#group-")), value[:40]


def test_thumbnails_are_cached_by_content(built: Path, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    shutil.copytree(built, root, symlinks=True)
    out = tmp_path / "site"
    first = site.write(collect(root, "main"), out)
    images = snapshot(out)
    assert first.made == len(collect(root, "main").images()) and first.reused == 0
    again = site.write(collect(root, "main"), out)
    assert again.made == 0 and again.reused == first.made
    assert {k: v for k, v in snapshot(out).items() if k.startswith(("img/", "thumbs/"))} == {
        k: v for k, v in images.items() if k.startswith(("img/", "thumbs/"))}
    # One image changes: one thumbnail is made, the old one is removed from the site.
    old = hash_bytes((root / "ui/new.png").read_bytes())
    Image.new("RGBA", (320, 200), (255, 0, 0, 128)).save(root / "ui/new.png")
    third = site.write(collect(root, "main"), out)
    assert third.made == 1
    assert not list(out.glob(f"*/{old}.*"))
    assert (out / "thumbs").is_dir() and any(out.glob("thumbs/*"))  # 320 px wide: a real thumbnail


def test_review_writes_only_under_its_folder(built: Path, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    shutil.copytree(built, root, symlinks=True)
    before = {k: v for k, v in snapshot(root).items() if not k.startswith(".assetbuild/")}
    out = tmp_path / "elsewhere" / "site"
    summary = tmp_path / "summary.md"
    result = run_cli(root, "review", "--since", "main", "-o", str(out), "--markdown", str(summary))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out / "index.html")
    assert {k: v for k, v in snapshot(root).items() if not k.startswith(".assetbuild/")} == before
    assert summary.read_text(encoding="utf-8") == (out / "summary.md").read_text(encoding="utf-8")
    assert not [p for p in out.rglob("*.tmp")]
    # Default folder: .assetbuild/review next to assets.toml.
    result = run_cli(root, "review")
    assert result.stdout.strip() == str(root / ".assetbuild/review/index.html")


def test_the_ci_example_uploads_the_site_and_writes_the_summary() -> None:
    repo = Path(__file__).resolve().parent.parent
    workflow = (repo / "examples" / "ci" / "assetbuild.yml").read_text(encoding="utf-8")
    assert 'assetbuild review -o assetbuild-review --markdown "$GITHUB_STEP_SUMMARY"' in workflow
    assert "actions/upload-artifact@v4" in workflow and "path: assetbuild-review/" in workflow
    assert "fetch-depth: 0" in workflow  # the merge base needs the default branch's history


def test_a_changed_size_is_shown(tmp_path: Path) -> None:
    def ref(size: tuple[int, int], colour: tuple[int, int, int, int]) -> data.ImageRef:
        out = io.BytesIO()
        Image.new("RGBA", size, colour).save(out, "PNG")
        raw = out.getvalue()
        return data.ImageRef(hash_bytes(raw), ".png", len(raw), data=raw)

    card = data.Card(target="ui/logo.png", state="fresh", label="fresh", reason="", change="changed",
                     before=ref((64, 64), (0, 0, 0, 255)), image=ref((400, 200), (0, 0, 0, 255)),
                     why=["width: 64 -> 400", "height: 64 -> 200"])
    page = site.write(data.Review("p", [card], since="main", since_commit="0" * 40), tmp_path).index
    text = page.read_text(encoding="utf-8")
    assert "size changed 64\u00d764 \u2192 400\u00d7200" in text
    assert "0.0 % of pixels changed" in text  # black scaled up is still black
    assert "<li>width: 64 -&gt; 400</li>" in text
    with Image.open(next((tmp_path / "thumbs").iterdir())) as thumb:
        assert thumb.size == (256, 128)


def test_an_asset_waiting_for_its_upstream_says_what_why_says(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    write_manifest(root, QUICKSTART)
    assert run_cli(root).returncode == 0
    manifest = root / "assets.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("seed = 42", "seed = 43"), encoding="utf-8")
    attack = cards(collect(root))["sprites/hero_attack.png"]
    monkeypatch.chdir(root)
    code, out, _ = cli(capsys, "why", "sprites/hero_attack.png")
    assert code == 0 and attack.state == "stale"
    assert attack.why == [line.strip() for line in out.splitlines()[1:]]
    assert attack.why == ["an input asset is stale: sprites/hero.png (stale (generate))"]


def test_a_decompression_bomb_is_shown_without_a_preview(project: Path) -> None:
    """A 30000 x 30000 PNG of ~60 bytes at a target: the card has no thumbnail, review exits 0 (not a bug)."""
    import struct
    import zlib

    write_manifest(project, QUICKSTART)
    assert run_cli(project).returncode == 0

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    (project / "sprites" / "hero.png").write_bytes(bomb)
    result = run_cli(project, "review")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bug" not in result.stderr
    assert (project / ".assetbuild" / "review" / "index.html").is_file()


def test_review_never_replaces_a_folder_it_did_not_write(project: Path) -> None:
    write_manifest(project, QUICKSTART)
    assert run_cli(project).returncode == 0
    docs = project / "docs"
    docs.mkdir()
    (docs / "index.html").write_text("<h1>mine</h1>", encoding="utf-8")
    refused = run_cli(project, "review", "-o", "docs")
    assert refused.returncode == 2 and "did not write" in refused.stderr
    assert (docs / "index.html").read_text(encoding="utf-8") == "<h1>mine</h1>"
    assert run_cli(project, "review", "-o", "site").returncode == 0  # a new folder, then the same again
    assert run_cli(project, "review", "-o", "site").returncode == 0


def test_variants_group_by_their_table_even_when_the_number_appears_twice(project: Path) -> None:
    write_manifest(project, '[server]\nurl = "placeholder"\n\n[defaults]\nwidth = 64\nheight = 64\n\n'
                            '[assets."t{n}_v1.png"]\nprompt = "a tree"\ncount = 2\n')
    assert run_cli(project).returncode == 0
    review = collect(project)
    assert {card.target: card.variant_of for card in review.cards} == {"t1_v1.png": "t{n}_v1.png",
                                                                      "t2_v1.png": "t{n}_v1.png"}
