"""The sweep explorer: one self-contained ``index.html`` for a sweep's rows (``sweep --out``, ``report sweep``).

A scatter of any two numeric columns with their Pareto front highlighted (the directions of
:data:`graphcost.explore.ranking.HIGHER_IS_BETTER`, as ``--pareto``), coloured by a third; parallel
coordinates of every numeric column with brushing; the selected rows as a table; a clicked row's model
and hardware keys and the ``graphcost sweep`` command that reproduces it. The rows travel as JSON in
the page, the script is ``static/explorer.js`` inlined; its Content-Security-Policy forbids any fetch.
"""
from __future__ import annotations

import html
import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from graphcost.errors import UserError, shape_text
from graphcost.explore import SweepSpec
from graphcost.explore.ranking import HIGHER_IS_BETTER
from graphcost.explore.width import DEFAULT_WIDTH_MAX

from .index_page import html_page, write_page

_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static", "explorer.js")
#: Bookkeeping columns left out of the plots (they say how a row was computed, not what it is).
_NOT_PLOTTED = {"analyses", "seconds", "rank", "pareto", "fits"}
_STYLE = """
.row { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
canvas { border: 1px solid #ddd; } select { margin-right: 12px; }
table { border-collapse: collapse; } th, td { border: 1px solid #ddd; padding: 1px 5px; text-align: right; }
#rows tr[data-row] { cursor: pointer; } #rows tr[data-row]:hover { background: #eef; }
.scroll { max-height: 360px; overflow: auto; } pre { white-space: pre-wrap; background: #f6f6f6; padding: 6px; }
caption { text-align: left; font-weight: bold; }
"""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shape_option(shape: Sequence[int]) -> str:
    """``--input`` for a resolved input shape: ``HxW`` for one RGB image, else ``CxHxW`` (batch 1 dropped)."""
    dims = list(shape[1:]) if len(shape) > 1 and shape[0] == 1 else list(shape)
    return shape_text(dims[1:] if len(dims) == 3 and dims[0] == 3 else dims)


def reproduce_command(spec: SweepSpec) -> str:
    """``graphcost sweep ...`` with every option of ``spec`` but the grid; a row appends ``--grid KEY=VALUE`` per key.

    >>> from graphcost.explore import SweepSpec
    >>> reproduce_command(SweepSpec(model="itnet", grid=(), shared=True, input_shape=(1, 3, 32, 48), crossbar=(128, 128)))
    'graphcost sweep itnet --shared --input 32x48 --crossbar 128x128'
    """
    parts = ["graphcost", "sweep", spec.model]
    if spec.shared is not None:
        parts.append("--shared" if spec.shared else "--independent")
    if spec.dataset:
        parts += ["--dataset", spec.dataset]
    if spec.input_shape:
        parts += ["--input", _shape_option(spec.input_shape)]
    parts += [f"--param {k}={v}" for k, v in spec.fixed]
    if spec.macs_budget is not None:
        parts += ["--macs-budget", f"{spec.macs_budget:g}"]
        if spec.width_param and spec.width_param != "f":
            parts += ["--width-param", spec.width_param]
        if spec.width_max != DEFAULT_WIDTH_MAX:
            parts += ["--width-max", str(spec.width_max)]
    if spec.crossbar:
        parts += ["--crossbar", f"{spec.crossbar[0]}x{spec.crossbar[1]}"]
    if spec.chip_arrays:
        parts += ["--arrays", str(spec.chip_arrays)]
    return " ".join(parts)


def _encode_column(values: List[Any]) -> Any:
    """One column for the page: a list of values, or for text its ``levels`` and one ``codes`` entry per row
    (-1: no value) -- a sweep's text columns repeat a few values over thousands of rows."""
    if not any(isinstance(v, str) for v in values) or not all(v is None or isinstance(v, str) for v in values):
        return values
    levels = list(dict.fromkeys(v for v in values if v is not None))
    index = {v: k for k, v in enumerate(levels)}
    return {"levels": levels, "codes": [-1 if v is None else index[v] for v in values]}


def explorer_payload(spec: SweepSpec, rows: Sequence[Mapping[str, Any]],
                     pareto: Optional[Sequence[Tuple[str, bool]]] = None) -> Dict[str, Any]:
    """The page's data: every scalar column of the rows column by column (``n`` rows; a cell a row lacks is
    null), the numeric columns, directions, keys, axes and command.

    >>> from graphcost.explore import SweepSpec
    >>> rows = [{"N": 1, "tech": "rram", "energy_j": 2.0}, {"N": 2, "tech": "rram", "energy_j": 1.0}]
    >>> p = explorer_payload(SweepSpec(model="itnet", grid=(("N", (1, 2)),)), rows)
    >>> p["n"], p["table"]["N"], p["table"]["tech"], p["columns"]
    (2, [1, 2], {'levels': ['rram'], 'codes': [0, 0]}, ['N', 'energy_j'])
    """
    names = list(dict.fromkeys(k for r in rows for k, v in r.items() if not isinstance(v, (list, tuple, dict))))
    table = {c: [r.get(c) for r in rows] for c in names}
    keys = list(spec.grid_keys)
    columns = [c for c in names if c not in _NOT_PLOTTED and any(_number(v) for v in table[c])]
    directions = {c: ("max" if c in HIGHER_IS_BETTER else "min") for c in columns}
    for name, ascending in pareto or ():
        directions[name] = "min" if ascending else "max"
    measured = [c for c in columns if c not in keys] or columns
    axes = [p[0] for p in pareto] if pareto else measured[:2]
    axes = (axes + measured + columns)[:2]
    colour = next((c for c in measured if c not in axes), axes[0])
    return {"title": f"sweep {spec.model}", "n": len(rows),
            "table": {c: _encode_column(values) for c, values in table.items()}, "columns": columns,
            "directions": directions,
            "keys": {"model": [k for k in keys if not k.startswith("hw.")],
                     "hardware": [k for k in keys if k.startswith("hw.")]},
            "axes": axes + [colour], "command": reproduce_command(spec)}


def explorer_html(payload: Mapping[str, Any]) -> str:
    with open(_SCRIPT, encoding="utf-8") as handle:
        script = handle.read()
    blob = json.dumps(payload, default=str, allow_nan=False).replace("</", "<\\/")
    title = html.escape(payload["title"])
    return html_page(payload["title"], f"""<h1>{title}: {payload["n"]:,} points</h1>
<p>x <select id="x"></select> y <select id="y"></select> colour <select id="colour"></select>
<button id="clear">clear brushes</button> <span id="legend"></span></p>
<div class="row"><canvas id="scatter" width="640" height="420"></canvas><div id="detail"><p>click a row of the table
for its keys and the command that reproduces it</p></div></div>
<p>parallel coordinates: drag along an axis to select a range (click it to clear)</p>
<canvas id="parallel" width="1200" height="320"></canvas>
<p id="count"></p><div class="scroll"><table id="rows"></table></div>
<script type="application/json" id="sweep-data">{blob}</script>
<script>{script}</script>""", _STYLE, script=True)


def _finite(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """JSON has no NaN or infinity: such cells become null (no value)."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]


def write_explorer(out_dir: str, spec: SweepSpec, rows: Sequence[Mapping[str, Any]],
                   pareto: Optional[Sequence[Tuple[str, bool]]] = None) -> str:
    """Write ``out_dir/index.html``, the explorer of ``rows``; returns its path."""
    return write_page(out_dir, explorer_html(explorer_payload(spec, _finite(rows), pareto)))


def read_sweep_json(path: str) -> Tuple[SweepSpec, List[Dict[str, Any]], Optional[Tuple[Tuple[str, bool], ...]]]:
    """The spec, rows and Pareto metrics of a sweep's JSON (``sweep --format json`` or ``sweep --out``'s file)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise UserError(f"cannot read {path!r} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UserError(f"{path!r} is not JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise UserError(f"{path!r} is not a sweep's JSON (graphcost sweep --format json, or sweep --out's file)")
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else data
    try:
        sweep = SweepSpec(
            model=str(spec["model"]), grid=tuple((k, tuple(v)) for k, v in dict(spec["grid"]).items()),
            fixed=tuple(dict(spec.get("fixed") or {}).items()), dataset=spec.get("dataset"),
            input_shape=tuple(spec["input_shape"]) if spec.get("input_shape") else None, shared=spec.get("shared"),
            macs_budget=spec.get("macs_budget"), width_param=spec.get("width_param"),
            width_max=int(spec.get("width_max") or DEFAULT_WIDTH_MAX),
            crossbar=tuple(spec["crossbar"]) if spec.get("crossbar") else None, chip_arrays=spec.get("chip_arrays"))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path!r} lacks the sweep's spec ({exc}); write it with graphcost sweep") from None
    pareto = data.get("pareto")
    metrics = tuple((str(n), bool(a)) for n, a in pareto) if isinstance(pareto, list) and len(pareto) == 2 else None
    return sweep, [r for r in data["rows"] if isinstance(r, dict)], metrics
