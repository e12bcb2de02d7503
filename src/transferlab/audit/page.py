"""``audit.html``: one self-contained page (thumbnails inlined) with a section per kind of finding,
each card giving its reason, sortable by score. Opens offline; no script or font is fetched."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes
from ..data import BadImageError, open_rgb
from .result import AuditResult, Finding

SECTIONS = (("duplicates", "Duplicates", ("exact duplicate", "near duplicate")), ("labels", "Likely label errors", ("label",)), ("outliers", "Outliers", ("outlier",)))


def _e(value: Any) -> str:
    return html.escape(str(value))


def thumbnail(path: str, size: int = 160) -> str:
    """An ``<img>`` with the photo inlined as base64 JPEG, or a placeholder when it cannot be read."""
    try:
        image = open_rgb(Path(path), draft=(size, size))
    except (BadImageError, OSError):
        return f"<div class='missing'>{_e(Path(path).name)} unreadable</div>"
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=80)
    return f'<img alt="{_e(Path(path).name)}" src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _card(f: Finding, root: str) -> str:
    name = lambda p: _e(Path(p).relative_to(root) if Path(p).is_relative_to(root) else p)  # noqa: E731
    images = thumbnail(f.path) + (thumbnail(f.partner) if f.partner else "")
    facts = f"<b>{_e(f.kind)}</b> · score {f.score:.3f}<br><code>{name(f.path)}</code> ({_e(f.split)}, {_e(f.label)})"
    if f.partner:
        facts += f"<br>partner <code>{name(f.partner)}</code> ({_e(f.partner_split)}, {_e(f.partner_label)})"
    if f.suggested_label:
        facts += f"<br>suggested label <b>{_e(f.suggested_label)}</b>"
    return f"<figure class='card' data-score='{f.score}'><div class='pics'>{images}</div><figcaption>{facts}<br>{_e(f.reason)}</figcaption></figure>"


def section_html(result: AuditResult, limit: int = 200) -> str:
    """The findings as sections (``id`` duplicates, labels, outliers, balance): also used by ``report``."""
    parts = []
    for key, title, kinds in SECTIONS:
        found = sorted((f for f in result.findings if f.kind in kinds), key=lambda f: -f.score)
        cards = "".join(_card(f, result.root) for f in found[:limit])
        more = f"<p>… and {len(found) - limit} more in audit.csv.</p>" if len(found) > limit else ""
        body = (f"<p><button onclick=\"sortCards('{key}', -1)\">highest score first</button> <button onclick=\"sortCards('{key}', 1)\">lowest first</button></p>"
                f"<div class='gallery'>{cards}</div>{more}") if found else "<p class='none'>None found above the thresholds.</p>"
        parts.append(f"<section id='{key}'><h2>{_e(title)} ({len(found)})</h2>{body}</section>")
    parts.append(f"<section id='balance'><h2>Balance</h2>{_balance(result)}</section>")
    return "".join(parts)


def _balance(result: AuditResult) -> str:
    splits = [s for s in ("train", "val", "test") if any(c.get(s) for c in result.counts.values())]
    rows = "".join(f"<tr><td>{_e(c)}</td>" + "".join(f"<td>{per.get(s, 0)}</td>" for s in splits) + "</tr>" for c, per in result.counts.items())
    confused = "".join(f"<li>{_e(c['given'])} → {_e(c['predicted'])}: {c['count']}</li>" for c in result.confused)
    return (f"<table><tr><th>class</th>{''.join(f'<th>{s}</th>' for s in splits)}</tr>{rows}</table>"
            f"<p>Out-of-fold probe accuracy on the labels as given: {result.oof_accuracy:.3f}. Classes it confuses most:</p>"
            + (f"<ul>{confused}</ul>" if confused else "<p class='none'>none</p>"))


SORT_JS = """function sortCards(id, dir){var g=document.querySelector('#'+id+' .gallery');if(!g)return;
var c=Array.prototype.slice.call(g.children);c.sort(function(a,b){return dir*(parseFloat(a.dataset.score)-parseFloat(b.dataset.score));});
c.forEach(function(x){g.appendChild(x);});}"""
CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:1.5rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ddd}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .6rem}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.card{margin:0;width:340px;font-size:.8rem}.pics{display:flex;gap:4px}
.pics img{max-width:160px;max-height:160px;border-radius:4px}.none{color:#777;font-style:italic}code{word-break:break-all}"""


def write_page(result: AuditResult, path: Path | str) -> Path:
    """Write the gallery page to ``path``."""
    summary = ", ".join(f"{n} {k}" for k, n in result.summary().items())
    title = f"transferlab audit: {Path(result.root).name}"
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title><style>{CSS}</style><script>{SORT_JS}</script></head>"
            f"<body><h1>{_e(title)}</h1><p>{result.n_images} images of <code>{_e(result.root)}</code> through {_e(result.backbone)}: {_e(summary)}.</p>"
            f"<nav>" + " · ".join(f"<a href='#{k}'>{k}</a>" for k in ("duplicates", "labels", "outliers", "balance")) + "</nav>"
            f"{section_html(result)}</body></html>\n")
    path = Path(path)
    atomic_write_bytes(path, page.encode("utf-8", "surrogateescape"))
    return path
