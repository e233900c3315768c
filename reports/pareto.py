"""The Pareto front of a sweep over two metrics (``graphcost sweep --pareto METRIC,METRIC``).

Every ok grid point is a dot; the points no other point beats in both metrics (see
:func:`graphcost.explore.pareto_front`) are joined by the front line and labelled with their grid
values. PNG and SVG beside the sweep's CSV.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from .common import figure_writers, pyplot, write_files


def _label(row: Dict[str, Any], keys: Sequence[str]) -> str:
    return " ".join(f"{k.replace('hw.', '')}={row.get(k)}" for k in keys)


def plot_pareto(rows: Sequence[Dict[str, Any]], front: Sequence[bool], metrics: Tuple[Tuple[str, bool], ...],
                keys: Sequence[str], title: str):
    (x_name, _), (y_name, _) = metrics
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    points = [(r[x_name], r[y_name]) for r in rows if isinstance(r.get(x_name), (int, float))
              and isinstance(r.get(y_name), (int, float))]
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=10, color="#9e9e9e", label="grid points")
    best = sorted((r for r, on in zip(rows, front) if on), key=lambda r: r[x_name])
    ax.plot([r[x_name] for r in best], [r[y_name] for r in best], color="#d62728", marker="o", markersize=4,
            linewidth=1.1, label="Pareto front")
    for r in best:
        ax.annotate(_label(r, keys), (r[x_name], r[y_name]), fontsize=5.5, xytext=(3, 3), textcoords="offset points")
    for axis, name in ((ax.set_xscale, x_name), (ax.set_yscale, y_name)):
        values = [r[name] for r in rows if isinstance(r.get(name), (int, float)) and r[name] > 0]
        if values and max(values) / min(values) > 30:
            axis("log")
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(title, fontsize=7.5)
    ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return fig


def write_pareto(out: str, stem: str, rows, front, metrics, keys, title: str) -> List[str]:
    """``STEM-pareto.png/.svg`` in ``out``."""
    fig = plot_pareto(rows, front, metrics, keys, title)
    try:
        return write_files(out, figure_writers(fig, f"{stem}-pareto"))
    finally:
        pyplot().close(fig)
