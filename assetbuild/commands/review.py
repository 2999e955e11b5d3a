"""``assetbuild review``: a static, self-contained page of every asset (and with ``--since REF`` what
changed since then), plus a markdown summary for CI."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "write a review page of the assets (before/after with --since REF) and a markdown summary"
DESCRIPTION = ("Write a static, self-contained review page of the assets (default .assetbuild/review/index.html, "
               "its path printed): a card per asset, filters, and with --since REF the groups changed, new, "
               "removed and unchanged with before/after. --markdown FILE writes a summary under 64 KiB for CI.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="target paths or globs (default: all)")
    parser.add_argument("--since", metavar="REF",
                        help="compare with the lock and images at git REF (branch, tag or commit); in CI (CI set) "
                             "the default is the merge base with the default branch")
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="the site's folder (default: .assetbuild/review next to assets.toml)")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the summary (under 64 KiB) to FILE, e.g. \"$GITHUB_STEP_SUMMARY\"")
    parser.add_argument("--link", metavar="URL",
                        help="the review site's address for the summary's link (default in GitHub Actions: "
                             "the run's page, which lists its artifacts)")
    parser.add_argument("--open", action="store_true", help="open the page in the web browser")


def main(args: argparse.Namespace) -> int:
    from ..fsutil import atomic_write, make_state_dir
    from ..review import data, git, site
    from ..workspace import open_workspace

    ws = open_workspace(args.file, server=args.server)
    project = ws.project
    since = args.since
    if since is None and os.environ.get("CI"):
        since = git.default_since(project.root)
    review = data.collect(ws, list(args.targets), since)
    ws.hashes.save()
    out = Path(args.output) if args.output else project.state_dir / "review"
    if not args.output:
        make_state_dir(project.state_dir)
    written = site.write(review, out, link=args.link or _run_url())
    if args.markdown:
        atomic_write(Path(args.markdown), written.summary.encode("utf-8"))
    for warning in review.warnings:
        print(f"assetbuild: warning: {warning}", file=sys.stderr)
    if not args.quiet:
        counts = review.change_counts() if review.since else review.state_counts()
        what = ", ".join(f"{n} {name}" for name, n in counts.items()) or "no assets"
        since_text = f" since {review.since}" if review.since else ""
        print(f"review of {len(review.cards)} assets{since_text}: {what} "
              f"({written.made} thumbnails made, {written.reused} reused)", file=sys.stderr)
    print(written.index)
    if args.open:
        import webbrowser

        webbrowser.open(written.index.resolve().as_uri())
    return 0


def _run_url() -> str | None:
    """In GitHub Actions, the page of this run (its artifacts are listed there)."""
    server, repo, run = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None
