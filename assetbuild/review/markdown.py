"""The review as a short markdown summary for ``$GITHUB_STEP_SUMMARY`` or a pull-request comment.

Counts per group, then a table of the changed, new and removed assets with their field diffs, and a link
to the review site. Always under ``LIMIT`` bytes (GitHub refuses longer comments): rows that do not fit
are cut and counted.
"""

from __future__ import annotations

from .data import CHANGES, Card, Review

LIMIT = 64 * 1024
DASH = "\u2014"
CELL = 300  # characters of one table cell at most


def cell(text: str) -> str:
    """``text`` safe inside a markdown table cell: one line, no HTML, pipes escaped."""
    text = " ".join(text.split())
    if len(text) > CELL:
        text = text[:CELL - 1] + "\u2026"
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("*", "\\*")
            .replace("_", "\\_").replace("[", "\\[").replace("]", "\\]"))


def code(text: str) -> str:
    """``text`` as a code span inside a table cell (a code span shows backslashes literally)."""
    text = " ".join(text.split()).replace("`", "'").replace("|", "\\|")
    return f"`{text[:CELL]}`"


def summary(review: Review, link: str | None = None, *, limit: int = LIMIT) -> str:
    """The markdown text (UTF-8 size at most ``limit`` bytes)."""
    head = [f"## Asset review: {cell(review.project)}", ""]
    if review.since:
        counts = review.change_counts()
        head.append(f"Since {code(review.since)} ({(review.since_commit or '')[:12]}): "
                    + ", ".join(f"**{counts[c]}** {c}" for c in CHANGES) + ".")
    states = review.state_counts()
    head.append(f"{len(review.cards)} assets: " + ", ".join(f"{n} {s}" for s, n in states.items()) + ".")
    if link:
        head.append(f"\n[Open the review page]({link.replace(')', '%29').replace(' ', '%20')})")
    head.append("")

    listed = _listed(review)
    rows: list[str] = []
    if listed:
        rows = ["| asset | change | what changed |", "| --- | --- | --- |"]
    tail_room = 200  # for the "... and N more" line
    used = _size("\n".join(head)) + _size("\n".join(rows)) + tail_room
    shown = 0
    for card, what in listed:
        diff = "; ".join(card.why) if card.why else card.reason
        row = f"| {code(card.target)} | {what} | {cell(diff) or DASH} |"
        if used + _size(row) + 1 > limit:
            break
        rows.append(row)
        used += _size(row) + 1
        shown += 1
    text = "\n".join(head + rows)
    if shown < len(listed):
        text += f"\n\n\u2026 and {len(listed) - shown} more (see the review page)."
    return text + "\n"


def _listed(review: Review) -> list[tuple[Card, str]]:
    """The assets worth a line: with --since the changed, new and removed ones; without, the ones that
    are not fresh."""
    if review.since:
        order = {"changed": 0, "new": 1, "removed": 2}
        cards = sorted((c for c in review.cards if c.change in order),
                       key=lambda c: (order[c.change or ""], c.target))
        return [(c, c.change or "") for c in cards]
    return [(c, c.state) for c in sorted(review.cards, key=lambda c: c.target) if c.state != "fresh"]


def _size(text: str) -> int:
    return len(text.encode("utf-8"))
