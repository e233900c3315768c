"""Energy report: where the energy of a frame goes, and energy per frame against the chip size M.

Each model is traced and mapped once (:func:`.crossbar_report.crossbar_curve`, which also runs
:func:`graphcost.crossbar.energy.energy` on every chip size); this module only draws: a) the
energy breakdown per frame of every model on a chip that holds it (stacked bars, one per
component of :data:`~graphcost.crossbar.energy.ENERGY_COMPONENTS`), b) energy per frame against
M, where a graph that does not fit pays weight programming for every rewritten array each frame
and leakage over its longer frame (the rewrite cliff). PNG, SVG and a CSV of the points.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import pandas as pd

from graphcost.crossbar.energy import ENERGY_COMPONENTS

from . import crossbar_report
from .common import figure_writers, pyplot, style_for, style_key, write_files

#: One colour per energy component, in :data:`ENERGY_COMPONENTS` order (matplotlib's tab10).
COMPONENT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                     "#bcbd22", "#17becf", "#aec7e8")


def breakdown_frame(labels: Sequence[str], results: Sequence[Dict[str, Any]]) -> pd.DataFrame:
    """One row per model: energy per frame by component (J) on a chip that holds the graph."""
    return pd.DataFrame([{"label": label, "energy_j": r["energy_j"], "power_w": r["power_w"],
                          "tops_per_w": r["tops_per_w"], **{f"{k}_j": r["breakdown_j"][k] for k in ENERGY_COMPONENTS}}
                         for label, r in zip(labels, results)])


def _bars(ax, labels, results) -> None:
    bottom = [0.0] * len(results)
    xs = range(len(results))
    for key, colour in zip(ENERGY_COMPONENTS, COMPONENT_COLOURS):
        values = [r["breakdown_j"][key] * 1e6 for r in results]
        ax.bar(xs, values, bottom=bottom, color=colour, label=key, width=0.7)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=6.5)
    ax.set_ylabel("energy per frame (uJ)")
    ax.set_title("a) energy per frame by component (chip holds the graph)", loc="left", fontsize=7.5)
    ax.legend(fontsize=6, frameon=False, ncol=2)


def _cliff(ax, items, labels, results) -> None:
    for i, (item, label, res) in enumerate(zip(items, labels, results)):
        colour, marker = style_for(style_key(item.name, item.model.shared), i)
        xs = [p["arrays"] for p in res["curve"]]
        ax.plot(xs, [p["energy_j"] * 1e6 for p in res["curve"]], color=colour, linewidth=1.1, label=label)
        ax.plot([res["arrays_needed"]], [res["energy_j"] * 1e6], color=colour, marker=marker, linestyle="none",
                markeredgecolor="black", markeredgewidth=0.4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("chip size M (crossbar arrays)")
    ax.set_ylabel("energy per frame (uJ)")
    ax.set_title("b) energy per frame vs chip size (marker: fits)", loc="left", fontsize=7.5)
    ax.legend(fontsize=6, frameon=False)


def plot(items, labels, results, title: str):
    plt = pyplot()
    fig, (ax_bar, ax_m) = plt.subplots(1, 2, figsize=(7.16, 3.0))
    _bars(ax_bar, labels, results)
    _cliff(ax_m, items, labels, results)
    fig.suptitle(title, fontsize=8.5)
    fig.tight_layout()
    return fig


def run(items, labels, out_dir: Optional[str], title: str, executor=None, store=None, progress=None):
    """Curves (cached like the crossbar report's), the points CSV and, with ``out_dir``, the figure."""
    results = crossbar_report.curves(items, executor, store, progress)
    points = crossbar_report.frame(items, labels, results)
    written: List[str] = []
    if out_dir is not None:
        fig = plot(items, labels, results, title)
        writers = figure_writers(fig, "energy", points)
        breakdown = breakdown_frame(labels, results)
        writers["energy_breakdown.csv"] = lambda path: breakdown.to_csv(path, index=False)
        try:
            written = write_files(out_dir, writers)
        finally:
            pyplot().close(fig)
    return results, points, written


def summary_rows(labels: Sequence[str], results: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per model: arrays, energy per frame and its largest component, power, TOPS/W (chip holds the graph)."""
    rows = []
    for label, r in zip(labels, results):
        top = max(ENERGY_COMPONENTS, key=lambda k: r["breakdown_j"][k])
        rows.append({"model": label, "arrays_needed": r["arrays_needed"], "energy_j": r["energy_j"],
                     "largest": top, "largest_share": r["breakdown_j"][top] / r["energy_j"] if r["energy_j"] else math.nan,
                     "power_w": r["power_w"], "tops_per_w": r["tops_per_w"]})
    return rows


