"""Heat-maps of a sweep in the style of the ItNet paper's Figs. A2/A3.

One panel per value of the grid parameters beyond the first two (the paper: one panel per K),
x = first grid parameter (N), y = second (L); one row of panels per quantity (the searched
width, MACs of the last output, parameters, graph size, latency, arrays, and the ranking
metric when given). Each cell is annotated with its value; a row of panels shares one colour
scale; the best point by the metric (rank 1) is outlined in red as in the paper; points that
failed (budget not met) are grey and marked with a cross.
"""
from __future__ import annotations

import itertools
import json
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from graphcost.explore.sweep import flat_frame

from .common import figure_writers, pyplot, shape_text, variant_name, write_files

#: (row column, title, scale, unit text, log colour scale?)
QUANTITIES = (
    ("macs", "MACs, last output (G)", 1e-9, True),
    ("params", "parameters (K)", 1e-3, True),
    ("graph_size_bytes", "graph size (MB)", 1e-6, True),
    ("latency_layers", "latency (conv layers)", 1.0, False),
    ("arrays_used", "crossbar arrays", 1.0, True),
)


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    a = abs(value)
    if float(value).is_integer() and a < 1e6:
        return f"{int(value)}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def quantities(rows: Sequence[Dict[str, Any]], width_param: Optional[str], metric: Optional[str]
               ) -> List[Tuple[str, str, float, bool]]:
    present = {k for r in rows for k in r}
    out: List[Tuple[str, str, float, bool]] = []
    if width_param and width_param in present:
        out.append((width_param, f"widest {width_param} within budget", 1.0, False))
    out += [q for q in QUANTITIES if q[0] in present]
    if metric and metric in present and metric not in [q[0] for q in out]:
        out.append((metric, metric, 1.0, False))
    return out


def plot_sweep(rows: Sequence[Dict[str, Any]], grid: Sequence[Tuple[str, Sequence[Any]]],
               width_param: Optional[str] = None, metric: Optional[str] = None, title: Optional[str] = None):
    """The heat-map figure of a sweep's rows (``grid`` in order; needs at least one parameter): one row of
    panels per quantity, one panel per combination of the third and later parameters."""
    plt = pyplot()  # lazy on purpose: matplotlib only where a figure is drawn (see common.pyplot)
    keys = [k for k, _ in grid]
    xkey, xvals = grid[0]
    ykey, yvals = (grid[1] if len(grid) > 1 else (None, [None]))
    rest = list(grid[2:])
    panels = list(itertools.product(*[v for _, v in rest])) or [()]
    quants = quantities(rows, width_param, metric)
    index = {tuple(str(r.get(k)) for k in keys): r for r in rows}
    cell_w, cell_h = max(0.32 * len(xvals), 1.1), max(0.26 * len(yvals), 0.55)
    fig, axes = plt.subplots(len(quants), len(panels),
                             figsize=(min(1.0 + cell_w * len(panels) + 0.9, 16),
                                      min(0.6 + (cell_h + 0.55) * len(quants), 22)),
                             squeeze=False, layout="constrained")
    for qi, (column, label, scale, log) in enumerate(quants):
        norm = _colour_norm(rows, column, scale, log)
        image = None
        for pi, panel in enumerate(panels):
            ax = axes[qi][pi]
            cells = _panel_cells(index, xvals, yvals if ykey is not None else [], panel, column, scale)
            image = _draw_cells(ax, plt, cells, norm)
            _label_panel(ax, xvals, yvals, ykey, xkey if qi == len(quants) - 1 else None, pi == 0,
                         (", ".join(f"{k}={v}" for (k, _), v in zip(rest, panel)) if qi == 0 else None))
        if image is not None:
            bar = fig.colorbar(image, ax=list(axes[qi]), fraction=0.05, pad=0.02)
            bar.set_label(label, fontsize=6.5)
            bar.ax.tick_params(labelsize=5.5)
    if title:
        fig.suptitle(title, fontsize=8.5)
    return fig


def _colour_norm(rows: Sequence[Dict[str, Any]], column: str, scale: float, log: bool):
    """One colour scale per quantity, shared by its panels: logarithmic where it spans over 20x."""
    from matplotlib.colors import LogNorm, Normalize

    values = [r.get(column) for r in rows if r.get("status") == "ok" and r.get(column) is not None]
    numeric = [float(v) * scale for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    positive = [v for v in numeric if v > 0]
    if log and positive and max(positive) / min(positive) > 20:
        return LogNorm(vmin=min(positive), vmax=max(positive))
    if numeric:
        lo, hi = min(numeric), max(numeric)
        return Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1)
    return Normalize(0, 1)


def _panel_cells(index: Dict[Tuple[str, ...], Dict[str, Any]], xvals: Sequence[Any], yvals: Sequence[Any],
                 panel: Tuple[Any, ...], column: str, scale: float):
    """``(data, failed, best)`` of one panel: values (NaN where missing), failed points, the rank-1 point."""
    data = np.full((max(len(yvals), 1), len(xvals)), np.nan)
    failed: List[Tuple[int, int]] = []
    best = None
    for yi, yv in enumerate(yvals or [None]):
        for xi, xv in enumerate(xvals):
            point = [xv] + ([yv] if yvals else []) + list(panel)
            row = index.get(tuple(str(v) for v in point))
            if row is None:
                continue
            if row.get("status") != "ok":
                failed.append((yi, xi))
                continue
            value = row.get(column)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                data[yi, xi] = float(value) * scale
            if row.get("rank") == 1:
                best = (yi, xi)
    return data, failed, best


def _draw_cells(ax, plt, cells, norm):
    """The panel's image, each value written in its cell, failed points crossed, the best one framed red."""
    from matplotlib.patches import Rectangle

    data, failed, best = cells
    image = ax.imshow(np.ma.masked_invalid(data), cmap=plt.get_cmap("viridis").with_extremes(bad="0.88"),
                      norm=norm, aspect="auto", origin="lower")
    for yi, xi in zip(*np.nonzero(~np.isnan(data))):
        shade = norm(data[yi, xi])
        colour = "white" if (not np.ma.is_masked(shade) and shade < 0.55) else "black"
        ax.text(xi, yi, _fmt(data[yi, xi]), ha="center", va="center", fontsize=5.5, color=colour)
    for yi, xi in failed:
        ax.text(xi, yi, "\u00d7", ha="center", va="center", fontsize=8, color="0.35")
    if best is not None:
        ax.add_patch(Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.6))
    return image


def _label_panel(ax, xvals, yvals, ykey: Optional[str], xlabel: Optional[str], first_column: bool,
                 title: Optional[str]) -> None:
    """Ticks on every panel; axis names on the outer ones; the panel's fixed parameters above the top row."""
    ax.set_xticks(range(len(xvals)))
    ax.set_xticklabels([str(v) for v in xvals])
    ax.set_yticks(range(len(yvals)))
    ax.set_yticklabels([str(v) for v in yvals] if ykey is not None else [""])
    ax.grid(False)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if first_column and ykey is not None:
        ax.set_ylabel(ykey)
    if title is not None:
        ax.set_title(title, fontsize=7.5)


def write_sweep(out: str, result, rows: Sequence[Dict[str, Any]], width: Optional[str], metric: Optional[str],
                pareto=None) -> List[str]:
    """``sweep-MODEL[-VARIANT].json/.csv`` (the ranked ``rows``; ``pareto``: the front's two metrics) and the
    heat-maps ``.png/.svg`` (all or nothing)."""
    spec = result.spec
    variant = variant_name(spec.shared)
    stem = f"sweep-{spec.model}" + ("" if variant is None else f"-{variant}")
    payload = dict(result.to_dict(), rows=rows, pareto=[list(m) for m in pareto] if pareto else None)

    def write_json(path: str) -> None:
        with open(path, "w") as f:
            f.write(json.dumps(payload, indent=2, default=str))

    writers = {f"{stem}.json": write_json}
    budget = f", widest {width} with last-output MACs <= {spec.macs_budget:.3g}" if spec.macs_budget else ""
    weights = "" if variant is None else f" ({variant} weights)"
    title = f"{spec.model}{weights} @ {shape_text(spec.input_shape[-2:])}{budget}"
    fig = plot_sweep(list(rows) + [r for r in result.rows if r.get("status") != "ok"], spec.grid, width, metric,
                     title)
    try:
        writers.update(figure_writers(fig, stem, flat_frame(rows)))
        return write_files(out, writers)
    finally:
        pyplot().close(fig)
