"""Jupyter display: the HTML that results' ``_repr_html_`` build on, and the progress bar notebooks get by default.

Everything here is a pure function of its arguments: text is escaped, images become PNG data URLs, figures are
rendered from their own canvas (never through pyplot), and nothing is printed. IPython is looked up only when
the process has already imported it, so scripts and the CLI never pay for it.
"""

from __future__ import annotations

import base64
import html
import io
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from ._types import Progress

# rich markup styles our ``__rich__`` strings use, as inline CSS
_CSS = {"bold": "font-weight:bold", "red": "color:#c0392b", "green": "color:#1e8449", "dim": "opacity:0.7", "italic": "font-style:italic"}
_TABLE = "border-collapse:collapse;margin:4px 0;font-size:0.9em"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:{align}"


def png_data_url(image: Any, dpi: int = 90) -> str:
    """A PIL image, PNG bytes or a matplotlib figure (drawn on its own canvas) as a ``data:image/png`` URL."""
    if isinstance(image, (bytes, bytearray)):
        png = bytes(image)
    else:
        buffer = io.BytesIO()
        if hasattr(image, "savefig"):  # a Figure built outside pyplot: savefig uses its Agg canvas
            image.savefig(buffer, format="png", dpi=dpi)
        else:
            image.save(buffer, format="PNG")
        png = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img(image: Any, alt: str = "", width: int | None = None, caption: str | None = None) -> str:
    """An ``<img>`` of ``image`` (see ``png_data_url``), with an escaped caption under it when given. A PIL image
    wider than ``width`` is stored at the size it is shown, so a notebook of results stays small."""
    if width and hasattr(image, "resize") and image.width > width:
        image = image.resize((int(width), max(1, round(image.height * width / image.width))))
    size = f' width="{int(width)}"' if width else ""
    tag = f'<img src="{png_data_url(image)}" alt="{html.escape(alt)}"{size} style="image-rendering:auto">'
    if caption is None:
        return tag
    return f'<figure style="display:inline-block;margin:4px;text-align:center">{tag}<figcaption style="font-size:0.85em">{html.escape(caption)}</figcaption></figure>'


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, bold: int | None = None, caption: str | None = None) -> str:
    """A small HTML table: text left, numbers right, every cell escaped; row ``bold`` (an index) in bold."""
    head = "".join(f'<th style="{_CELL.format(align="left")}">{html.escape(str(h))}</th>' for h in header)
    body = []
    for i, row in enumerate(rows):
        weight = ";font-weight:bold" if i == bold else ""
        cells = "".join(f'<td style="{_CELL.format(align=_align(v))}{weight}">{html.escape(str(v))}</td>' for v in row)
        body.append(f"<tr>{cells}</tr>")
    title = f'<caption style="text-align:left;font-weight:bold">{html.escape(caption)}</caption>' if caption else ""
    return f'<table style="{_TABLE}">{title}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _align(value: Any) -> str:
    text = str(value).replace(",", "").replace(" ± ", "").replace(".", "").replace("%", "").strip()
    return "right" if text.lstrip("-").isdigit() else "left"


def text(plain: str) -> str:
    """Plain text as escaped HTML, lines as ``<br>``."""
    return html.escape(plain).replace("\n", "<br>")


def markup(source: str) -> str:
    """``rich`` markup (what our ``__rich__`` methods return) as escaped HTML: bold and colours kept, lines as ``<br>``."""
    from rich.text import Text

    rich_text = Text.from_markup(source)
    plain, spans = rich_text.plain, rich_text.spans
    cuts = sorted({0, len(plain), *(s.start for s in spans), *(s.end for s in spans)})
    out = []
    for start, end in zip(cuts, cuts[1:]):
        styles = " ".join(str(s.style) for s in spans if s.start <= start and end <= s.end).split()
        css = ";".join(_CSS[s] for s in dict.fromkeys(styles) if s in _CSS)
        piece = html.escape(plain[start:end]).replace("\n", "<br>")
        out.append(f'<span style="{css}">{piece}</span>' if css else piece)
    return "".join(out)


def block(*parts: str, title: str | None = None) -> str:
    """Parts (HTML already) one under another in a div, under an escaped bold title."""
    head = f'<div style="font-weight:bold;margin-bottom:4px">{html.escape(title)}</div>' if title else ""
    body = "".join(f'<div style="margin:4px 0">{p}</div>' for p in parts if p)
    return f'<div class="transferlab">{head}{body}</div>'


# -- progress in notebooks ------------------------------------------------------------------------------
def in_notebook() -> bool:
    """True inside a Jupyter kernel. IPython is never imported here: a process that has not imported it is no kernel."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def notebook_progress(progress: Progress | None = None) -> Progress | None:
    """``progress`` when given; else, inside a Jupyter kernel, a callback drawing one bar per stage (tqdm.auto
    when installed, else rich's progress, which renders in Jupyter); else None (outside notebooks, silence)."""
    if progress is not None or not in_notebook():
        return progress
    return _Bars()


class _Bars:
    """A ``Progress`` callback: one bar per stage, each closed when its stage is done (or starts again)."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is not None and (done < bar.done or total != bar.total):
            bar.close()
            bar = None
        if bar is None:
            bar = self.bars[stage] = new_bar(stage, total)
        bar.update(done)
        if total and done >= total:
            bar.close()
            del self.bars[stage]


def new_bar(stage: str, total: int) -> Any:
    """One bar for ``stage``: ``update(done)`` and ``close()``."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _RichBar(stage, total)
    return _TqdmBar(tqdm(total=total, desc=stage, leave=True), total)


class _TqdmBar:
    def __init__(self, bar: Any, total: int) -> None:
        self.bar, self.total, self.done = bar, total, 0

    def update(self, done: int) -> None:
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        self.bar.close()


class _RichBar:
    def __init__(self, stage: str, total: int) -> None:
        from rich.progress import Progress as RichProgress

        self.progress = RichProgress(transient=False)
        self.task = self.progress.add_task(stage, total=total)
        self.total, self.done = total, 0
        self.progress.start()

    def update(self, done: int) -> None:
        self.progress.update(self.task, completed=done)
        self.done = done

    def close(self) -> None:
        self.progress.stop()
