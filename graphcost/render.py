"""Rendering of results: human units and rich tables. No computing happens here."""
from __future__ import annotations

import io
import json
import os
from typing import Any, Iterable, Sequence

from rich.console import Console
from rich.table import Table


def human(value: float, unit: str = "") -> str:
    """``1.5e9`` -> ``'1.50G'`` (K, M, G, T; powers of 1000).

    >>> human(182_000), human(6.2e9, "MACs"), human(12)
    ('182.00K', '6.20G MACs', '12')
    """
    value = float(value)
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            text = f"{value / scale:.2f}{prefix}"
            break
    else:
        text = f"{value:g}"
    return f"{text} {unit}".rstrip()


def megabytes(n_bytes: float) -> str:
    """Bytes as decimal megabytes (1 MB = 1e6 bytes, as the ItNet paper's numbers fit)."""
    return f"{n_bytes / 1e6:,.2f} MB"


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, soft_wrap=False, width=int(os.environ.get("COLUMNS", 120)))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        t.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[str(c) for c in row])
    return t


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


def frame_csv(frame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()
