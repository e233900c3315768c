"""``index.html`` beside a report's files: its figures (SVG, inlined) and tables (CSV) on one page.

The page is self-contained like a ``graphcost view`` page: the SVGs are inlined, the CSVs
rendered as tables, nothing is fetched (its Content-Security-Policy forbids it); the files
themselves are linked by relative name.
"""
from __future__ import annotations

import html
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from graphcost.errors import UserError
from graphcost.fileio import write_atomic

INDEX = "index.html"
_XML_PROLOGUE = re.compile(r"^\s*<\?xml[^>]*>\s*(<!DOCTYPE[^>]*>\s*)?", re.DOTALL)
#: The look every report page shares (the sweep explorer's too).
BASE_STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; }
"""
_STYLE = """
h2 { font-size: 15px; margin-top: 24px; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eceff1; } td:first-child, th:first-child { text-align: left; }
.figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
.scroll { max-height: 420px; overflow: auto; display: inline-block; }
"""


def _svg(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return _XML_PROLOGUE.sub("", fh.read())


def _csv_table(path: str) -> str:
    import pandas as pd

    frame = pd.read_csv(path)
    return f'<div class="scroll">{frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.6g}")}</div>'


def _records_table(rows: Sequence[Dict[str, Any]]) -> str:
    import pandas as pd

    return pd.DataFrame(list(rows)).to_html(index=False, na_rep="", float_format=lambda v: f"{v:.6g}")


def index_html(title: str, paths: Sequence[str], summary: Optional[Sequence[Dict[str, Any]]] = None) -> str:
    """The page for the report files ``paths`` (SVG figures inlined, CSV tables rendered)."""
    parts: List[str] = [f"<h1>{html.escape(title)}</h1>"]
    if summary:
        parts += ["<h2>summary</h2>", _records_table(summary)]
    for path in paths:
        name = os.path.basename(path)
        if name.endswith(".svg"):
            parts += [f"<h2>{html.escape(name)}</h2>", f'<div class="figure">{_svg(path)}</div>']
    for path in paths:
        name = os.path.basename(path)
        if name.endswith(".csv"):
            parts += [f'<h2>{html.escape(name)} (every plotted point)</h2>', _csv_table(path)]
    links = " · ".join(f'<a href="{html.escape(os.path.basename(p))}">{html.escape(os.path.basename(p))}</a>'
                       for p in paths)
    parts.append(f"<p>files: {links}</p>")
    return html_page(title, "\n".join(parts), _STYLE)


def html_page(title: str, body: str, style: str = "", script: bool = False) -> str:
    """A self-contained page: ``BASE_STYLE`` + ``style``, ``body`` (HTML), and a Content-Security-Policy that
    forbids fetching anything (inline styles and data: images; inline scripts too where ``script``)."""
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:" + ("; script-src 'unsafe-inline'" if script
                                                                             else "")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">"
            f"<title>{html.escape(title)}</title><style>{BASE_STYLE}{style}</style></head><body>\n"
            + body + "\n</body></html>\n")


def write_page(out_dir: str, page: str) -> str:
    """Write ``page`` to ``out_dir/index.html`` whole or not at all (every report page, the sweep explorer's
    too); returns its path. An unwritable folder is one :class:`UserError`."""
    target = os.path.join(out_dir, INDEX)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(page)

    try:
        write_atomic(target, write)
    except OSError as exc:
        raise UserError(f"cannot write {target!r} ({exc.strerror or exc}); choose a writable folder") from None
    return target


def write_index(out_dir: str, title: str, paths: Sequence[str],
                summary: Optional[Sequence[Dict[str, Any]]] = None) -> str:
    """Write ``out_dir/index.html`` for the report files ``paths``; returns its path."""
    return write_page(out_dir, index_html(title, paths, summary))
