"""The review page: one ``index.html`` with its CSS and JavaScript inline (no network, works from file://).

Every card is rendered here, in Python, and every text that comes from the manifest, the lock, git or
the server goes through ``esc`` (HTML-escaped, quotes too): a prompt containing ``<script>`` is shown as
text. The script only reads ``data-`` attributes and toggles classes; it never builds HTML from data.
Image URLs are relative (``img/...``, ``thumbs/...``), so the folder can be moved, zipped or uploaded
as a CI artifact. Thumbnails load lazily (``loading="lazy"``) so a page of 1,000 cards opens at once.
"""

from __future__ import annotations

import html

from .data import CHANGES, STATES, Card, Review
from .thumbs import SiteImage

CHANGE_TITLES = {"changed": "Changed", "new": "New", "removed": "Removed", "unchanged": "Unchanged"}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def size_text(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


def share_text(share: float | None) -> str:
    if share is None:
        return "not comparable"
    if 0 < share < 0.001:
        return "< 0.1 % of pixels changed"
    return f"{share * 100:.1f} % of pixels changed"


class Page:
    def __init__(self, review: Review, images: dict[str, SiteImage],
                 shares: dict[tuple[str, str], float | None]) -> None:
        self.review = review
        self.images = images
        self.shares = shares

    def render(self) -> str:
        review = self.review
        title = f"assetbuild review: {review.project}"
        since = ""
        if review.since:
            since = (f'<p class="since">Compared with <code>{esc(review.since)}</code> '
                     f'(<code>{esc((review.since_commit or "")[:12])}</code>)</p>')
        warnings = "".join(f'<p class="warning">{esc(w)}</p>' for w in review.warnings)
        if review.since:
            counts = review.change_counts()
            since += '<nav class="groups">' + " ".join(
                f'<a href="#group-{c}">{CHANGE_TITLES[c]} <span class="n">{counts[c]}</span></a>'
                for c in CHANGES) + "</nav>"
        body = self._by_change() if review.since else self._by_folder(review.cards, "all")
        return (
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self' file: data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1>{since}{warnings}{self._filters()}</header>"
            f"<main>{body}</main>"
            '<div id="lightbox" hidden><img alt=""><p class="caption"></p></div>'
            f"<script>{JS}</script></body></html>\n"
        )

    def _filters(self) -> str:
        counts = self.review.state_counts()
        boxes = "".join(
            f'<label class="state-filter s-{state}"><input type="checkbox" value="{state}" checked> '
            f'{state} <span class="n">{counts[state]}</span></label>'
            for state in STATES if state in counts)
        total = len(self.review.cards)
        return (f'<div class="filters"><input type="search" id="q" placeholder="filter: path, prompt, model, key"'
                f' aria-label="filter by text">{boxes}'
                f'<span class="shown-total"><span id="shown">{total}</span> of {total} shown</span></div>')

    def _by_change(self) -> str:
        parts = []
        for change in CHANGES:
            cards = self.review.group(change)
            parts.append(
                f'<section class="group" data-group="{change}" id="group-{change}">'
                f'<h2>{CHANGE_TITLES[change]} <span class="count">{len(cards)}</span>'
                f' <span class="shown"></span></h2>'
                + (self._by_folder(cards, change) if cards else '<p class="empty">none</p>')
                + "</section>")
        return "".join(parts)

    def _by_folder(self, cards: list[Card], group: str) -> str:
        folders: dict[str, list[Card]] = {}
        for card in cards:
            folders.setdefault(card.folder, []).append(card)
        parts = []
        for folder in sorted(folders):
            parts.append(f'<section class="folder"><h3>{esc(folder or "(top folder)")}/'
                         f' <span class="count">{len(folders[folder])}</span></h3>'
                         f'<div class="cards">{self._cards(folders[folder])}</div></section>')
        return "".join(parts)

    def _cards(self, cards: list[Card]) -> str:
        """Cards in order; the variants of one `count = N` entry side by side in one row."""
        parts = []
        index = 0
        while index < len(cards):
            card = cards[index]
            if card.variant_of is None:
                parts.append(self._card(card))
                index += 1
                continue
            end = index
            while end < len(cards) and cards[end].variant_of == card.variant_of:
                end += 1
            members = cards[index:end]
            parts.append(f'<div class="variants"><h4>{esc(card.variant_of)} <span class="count">'
                         f'{len(members)} variants</span></h4><div class="row">'
                         + "".join(self._card(c) for c in members) + "</div></div>")
            index = end
        return "".join(parts)

    def _picture(self, ref_hash: str | None, alt: str, label: str = "") -> str:
        image = self.images.get(ref_hash) if ref_hash else None
        if image is None:
            return f'<div class="thumb none">{esc(label or "no image")}</div>'
        return (f'<a class="thumb checker" href="{esc(image.full)}" data-full="{esc(image.full)}" '
                f'data-caption="{esc(alt)}"><img src="{esc(image.thumb)}" loading="lazy" decoding="async" '
                f'alt="{esc(alt)}" width="{min(image.width, 256)}" height="{_scaled(image)}"></a>')

    def _card(self, card: Card) -> str:
        image = self.images.get(card.image.hash) if card.image else None
        before = self.images.get(card.before.hash) if card.before else None
        if card.change == "changed" and card.before is not None and card.image is not None \
                and card.before.hash != card.image.hash:
            visual = self._compare(card)
        else:
            visual = self._picture(card.image.hash if card.image else (card.before.hash if card.before else None),
                                   card.target)
            if card.change == "changed" and card.before is not None and card.image is not None:
                visual += '<p class="share">the same image as before (not rebuilt since)</p>'
            elif card.change == "changed" and card.before is None:
                visual += '<p class="share">no image at the ref (neither in git nor in the cache)</p>'
        facts = []
        if image is not None and card.image is not None:
            facts.append(("size", f"{image.width}\u00d7{image.height} px, {size_text(card.image.size)}"))
        elif card.image is not None:
            facts.append(("size", f"{size_text(card.image.size)} (not an image Pillow can read)"))
        if before is not None and image is not None and card.before is not None and card.image is not None \
                and card.before.hash != card.image.hash:
            was = f"{before.width}\u00d7{before.height} px, {size_text(card.before.size)}"
            facts.append(("before", was + _size_change(before, image)))
        if card.prompt:
            facts.append(("prompt", card.prompt))
        if card.negativeprompt:
            facts.append(("negative", card.negativeprompt))
        if card.source:
            facts.append(("derived from", card.source))
        facts.append(("model", card.model or "\u2014"))
        facts.append(("seed", "\u2014" if card.seed is None else str(card.seed)))
        facts.append(("generator", card.generator or "\u2014"))
        facts.append(("key", card.key or "\u2014"))
        if card.before_key and card.before_key != card.key:
            facts.append(("key before", card.before_key))
        rows = "".join(f"<dt>{esc(k)}</dt><dd class=\"f-{esc(k.replace(' ', '-'))}\">{esc(v)}</dd>"
                       for k, v in facts)
        why = ""
        if card.why:
            why = '<ul class="why">' + "".join(f"<li>{esc(line)}</li>" for line in card.why) + "</ul>"
        reason = f' <span class="reason">({esc(card.reason)})</span>' if card.reason else ""
        change = f' data-change="{esc(card.change)}"' if card.change else ""
        return (f'<article class="card" data-state="{esc(card.state)}"{change} data-target="{esc(card.target)}" '
                f'data-text="{esc(card.text())}">{visual}'
                f'<h5 class="target">{esc(card.target)}</h5>'
                f'<p class="state s-{esc(card.state)}" title="{esc(card.label)}">{esc(card.label)}{reason}</p>'
                f"{why}<dl>{rows}</dl></article>")

    def _compare(self, card: Card) -> str:
        assert card.before is not None and card.image is not None
        before = self.images.get(card.before.hash)
        after = self.images.get(card.image.hash)
        share = self.shares.get((card.before.hash, card.image.hash))
        if before is None or after is None:
            return (self._picture(card.before.hash, card.target + " (before)", "before: no preview")
                    + self._picture(card.image.hash, card.target, "after: no preview"))
        return (
            '<div class="compare" data-mode="side">'
            '<div class="side">'
            f'<figure>{self._picture(card.before.hash, card.target + " (before)")}<figcaption>before</figcaption>'
            f'</figure><figure>{self._picture(card.image.hash, card.target)}<figcaption>after</figcaption>'
            '</figure></div>'
            '<div class="stage checker">'
            f'<img class="before" src="{esc(before.thumb)}" loading="lazy" alt="{esc(card.target)} (before)">'
            f'<img class="after" src="{esc(after.thumb)}" loading="lazy" alt="{esc(card.target)} (after)" '
            'style="clip-path: inset(0 0 0 50%)"></div>'
            '<input class="slider" type="range" min="0" max="100" value="50" aria-label="before / after">'
            '<div class="modes">'
            '<button type="button" data-mode="side" class="on">side by side</button>'
            '<button type="button" data-mode="slider">slider</button>'
            '<button type="button" data-mode="onion">onion skin</button></div>'
            f'<p class="share">{esc(share_text(share))}</p></div>'
        )


def _scaled(image: SiteImage) -> int:
    if image.width <= 256:
        return image.height
    return max(1, round(image.height * 256 / image.width))


def _size_change(before: SiteImage, after: SiteImage) -> str:
    if (before.width, before.height) == (after.width, after.height):
        return ""
    return f" (size changed {before.width}\u00d7{before.height} \u2192 {after.width}\u00d7{after.height})"


def render(review: Review, images: dict[str, SiteImage], shares: dict[tuple[str, str], float | None]) -> str:
    return Page(review, images, shares).render()


CSS = """
:root{--bg:#f6f6f4;--fg:#1d1d1f;--muted:#666;--card:#fff;--line:#ddd;--accent:#2458d6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{position:sticky;top:0;z-index:5;background:var(--bg);border-bottom:1px solid var(--line);padding:8px 16px}
h1{font-size:18px;margin:4px 0}
h2{font-size:17px;margin:20px 0 4px}
h3{font-size:14px;margin:14px 0 6px;color:var(--muted);font-weight:600}
h4{font-size:13px;margin:0 0 6px;color:var(--muted)}
h5.target{font-size:13px;margin:6px 0 2px;word-break:break-all}
main{padding:0 16px 40px}
.since,.warning{margin:2px 0;color:var(--muted)}
nav.groups{display:flex;gap:14px;margin:4px 0}
nav.groups a{color:var(--accent);text-decoration:none;font-weight:600}
.warning{color:#a15c00}
.filters{display:flex;flex-wrap:wrap;gap:6px 12px;align-items:center;margin:6px 0}
#q{flex:1 1 240px;max-width:420px;padding:5px 8px;border:1px solid var(--line);border-radius:6px}
.state-filter{user-select:none;cursor:pointer}
.n,.count{color:var(--muted);font-weight:normal}
.shown-total{color:var(--muted)}
.cards{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.variants{flex:1 1 100%;border:1px dashed var(--line);border-radius:8px;padding:8px}
.variants .row{display:flex;gap:12px;overflow-x:auto;align-items:flex-start}
.card{width:292px;flex:0 0 292px;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px;
  content-visibility:auto;contain-intrinsic-size:auto 292px auto 460px}
.card[hidden],.variants[hidden],section[hidden]{display:none}
.checker{background-color:#fff;background-image:linear-gradient(45deg,#ccc 25%,transparent 25%),
  linear-gradient(-45deg,#ccc 25%,transparent 25%),linear-gradient(45deg,transparent 75%,#ccc 75%),
  linear-gradient(-45deg,transparent 75%,#ccc 75%);background-size:16px 16px;
  background-position:0 0,0 8px,8px -8px,-8px 0}
a.thumb{display:flex;align-items:center;justify-content:center;min-height:96px;cursor:zoom-in}
.thumb img{max-width:100%;height:auto;image-rendering:pixelated;display:block}
.thumb.none{display:flex;align-items:center;justify-content:center;height:96px;background:#eee;color:var(--muted)}
.state{margin:0 0 4px;font-weight:600}
.reason{font-weight:normal;color:var(--muted)}
.s-fresh{color:#18794e}.s-stale{color:#a15c00}.s-missing{color:#b42318}.s-modified{color:#8e24aa}
.s-orphan,.s-removed{color:#666}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 8px;margin:4px 0 0;font-size:12px}
dt{color:var(--muted)}dd{margin:0;word-break:break-word;white-space:pre-wrap}
dd.f-key,dd.f-key-before{font-family:ui-monospace,monospace;font-size:11px}
ul.why{margin:4px 0;padding-left:18px;font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;
  word-break:break-word}
.compare .side{display:flex;gap:6px}
.compare figure{margin:0;flex:1 1 0;min-width:0}
.compare figcaption{text-align:center;color:var(--muted);font-size:11px}
.compare .stage{position:relative;display:none;height:256px}
.compare .stage img{position:absolute;inset:0;width:100%;height:100%;object-fit:contain;image-rendering:pixelated}
.compare .slider{display:none;width:100%}
.compare[data-mode=slider] .stage,.compare[data-mode=onion] .stage{display:block}
.compare[data-mode=slider] .slider,.compare[data-mode=onion] .slider{display:block}
.compare[data-mode=slider] .side,.compare[data-mode=onion] .side{display:none}
.modes{display:flex;gap:4px;margin-top:4px}
.modes button{font-size:11px;padding:2px 6px;border:1px solid var(--line);background:#fff;border-radius:4px;
  cursor:pointer}
.modes button.on{border-color:var(--accent);color:var(--accent)}
.share{margin:4px 0 0;font-size:12px;color:var(--muted)}
.empty{color:var(--muted)}
#lightbox{position:fixed;inset:0;z-index:10;background:rgba(0,0,0,.8);display:flex;flex-direction:column;
  align-items:center;justify-content:center;cursor:zoom-out}
#lightbox[hidden]{display:none}
#lightbox img{max-width:95vw;max-height:88vh;image-rendering:pixelated;background-color:#fff;
  background-image:linear-gradient(45deg,#ccc 25%,transparent 25%),linear-gradient(-45deg,#ccc 25%,transparent 25%),
  linear-gradient(45deg,transparent 75%,#ccc 75%),linear-gradient(-45deg,transparent 75%,#ccc 75%);
  background-size:16px 16px;background-position:0 0,0 8px,8px -8px,-8px 0}
#lightbox .caption{color:#fff}
"""

JS = """
(function(){
  var cards=[].slice.call(document.querySelectorAll('.card'));
  var boxes=[].slice.call(document.querySelectorAll('.state-filter input'));
  var q=document.getElementById('q');
  function apply(){
    var on={};boxes.forEach(function(b){on[b.value]=b.checked;});
    var text=q.value.trim().toLowerCase(),shown=0;
    cards.forEach(function(c){
      var ok=on[c.dataset.state]!==false&&(!text||c.dataset.text.indexOf(text)>=0||
        c.dataset.target.toLowerCase().indexOf(text)>=0);
      c.hidden=!ok;if(ok)shown++;
    });
    document.querySelectorAll('.variants').forEach(function(v){
      v.hidden=!v.querySelector('.card:not([hidden])');});
    document.querySelectorAll('section.group').forEach(function(s){
      var all=s.querySelectorAll('.card').length,vis=s.querySelectorAll('.card:not([hidden])').length;
      s.querySelector('.shown').textContent=vis===all?'':'('+vis+' shown)';});
    document.getElementById('shown').textContent=shown;
  }
  boxes.forEach(function(b){b.addEventListener('change',apply);});
  q.addEventListener('input',apply);
  function setSlider(box){
    var v=box.querySelector('.slider').value,after=box.querySelector('.stage .after');
    if(box.dataset.mode==='onion'){after.style.clipPath='none';after.style.opacity=v/100;}
    else{after.style.opacity=1;after.style.clipPath='inset(0 0 0 '+v+'%)';}
  }
  document.querySelectorAll('.compare').forEach(function(box){
    box.querySelector('.slider').addEventListener('input',function(){setSlider(box);});
    box.querySelectorAll('.modes button').forEach(function(b){
      b.addEventListener('click',function(){
        box.dataset.mode=b.dataset.mode;
        box.querySelectorAll('.modes button').forEach(function(o){o.classList.toggle('on',o===b);});
        setSlider(box);});});
  });
  var lb=document.getElementById('lightbox'),lbImg=lb.querySelector('img'),lbCap=lb.querySelector('.caption');
  document.addEventListener('click',function(e){
    var a=e.target.closest&&e.target.closest('a[data-full]');
    if(!a)return;
    e.preventDefault();lbImg.src=a.dataset.full;lbCap.textContent=a.dataset.caption;lb.hidden=false;
  });
  lb.addEventListener('click',function(){lb.hidden=true;lbImg.removeAttribute('src');});
  document.addEventListener('keydown',function(e){if(e.key==='Escape'){lb.hidden=true;}});
})();
"""
