"""One self-contained HTML page: the template, the vendored JavaScript, the app and the data, inlined.

The page loads nothing: its Content-Security-Policy forbids every fetch (``default-src 'none'``),
scripts and styles are inline, and the data sits in ``<script type="application/json">`` blocks
(``id="graphcost-analysis"``, ``graphcost-map``, ``graphcost-graph``) that
:func:`read_blocks` parses back.
"""
from __future__ import annotations

import html
import json
import math
import re
from importlib import resources
from typing import Any, Dict

from ..fileio import write_atomic

VENDOR_SCRIPTS = ("cytoscape.min.js", "cytoscape-dagre.min.js")
_SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)
_BLOCK = re.compile(r'<script type="application/json" id="graphcost-([a-z]+)">(.*?)</script>', re.DOTALL)


def _asset(*parts: str) -> str:
    return resources.files(__package__).joinpath(*parts).read_text(encoding="utf-8")


def _finite(value: Any) -> Any:
    """JSON.parse rejects ``NaN`` / ``Infinity``: they travel as ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_block(name: str, data: Any) -> str:
    """``data`` as an inline JSON script; ``<`` is escaped so no value can close the tag."""
    text = json.dumps(_finite(data), separators=(",", ":"), default=str).replace("<", "\\u003c")
    return f'<script type="application/json" id="graphcost-{name}">{text}</script>'


def vendor_js() -> str:
    """The vendored libraries, source-map comments dropped (the page fetches nothing)."""
    return "\n".join(_SOURCE_MAP.sub("", _asset("vendor", name)) for name in VENDOR_SCRIPTS)


def build_page(blocks: Dict[str, Any], title: str) -> str:
    """The HTML text of a view page holding the JSON ``blocks``."""
    page = _asset("static", "template.html")
    parts = {
        "title": html.escape(title),
        "style": _asset("static", "app.css"),
        "data": "\n".join(json_block(name, data) for name, data in blocks.items()),
        "vendor": vendor_js(),
        "app": _asset("static", "app.js"),
    }
    for key, text in parts.items():
        page = page.replace(f"<!--graphcost:{key}-->", text, 1)
    return page


def read_blocks(page: str) -> Dict[str, Any]:
    """The JSON blocks of a page, parsed (what tests and scripts read back)."""
    return {name: json.loads(text) for name, text in _BLOCK.findall(page)}


def write_page(path: str, page: str) -> None:
    """Write the page atomically (never a half-written file)."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(page)

    write_atomic(path, write)
