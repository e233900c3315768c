"""Anytime report: what each output of a multi-output (anytime) network costs, with mIoU where given.

Per output n (graphcost's anytime pass): the MACs, latency (conv layers on the longest path)
and graph size of the part of the graph output n needs. With an accuracy table (columns
``output`` and ``miou``; rows filtered by ``model``/``variant``/``dataset`` where those columns
exist) the mIoU joins the table and the figure gains mIoU-over-cost panels.
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Optional

import pandas as pd

from graphcost.analysis import analyze
from graphcost.errors import UserError

from .common import (analyse_items, analysis_item, figure_writers, model_label, pyplot, shape_text, style_for,
                     style_key, summarize, variant_name, write_files)


def outputs_frame(summary: Dict[str, Any], model: str, accuracy=None, variant: Optional[str] = None,
                  dataset: Optional[str] = None):
    """One row per output: index, macs, latency_layers, graph_size_bytes (+ miou if known)."""
    rows = [dict(o) for o in summary["outputs"]]
    frame = pd.DataFrame(rows, columns=["index", "macs", "latency_layers", "graph_size_bytes"])
    frame.insert(0, "model", model)
    frame = frame.rename(columns={"index": "output"})
    frame["params"] = summary["params"]
    if accuracy is not None:
        table = accuracy
        if "output" not in table.columns or "miou" not in table.columns:
            raise UserError("the accuracy table for an anytime report needs the columns output and miou")
        if "model" in table.columns:
            table = table[table["model"].astype(str) == model]
        if variant is not None and "variant" in table.columns and (table["variant"].astype(str) == variant).any():
            table = table[table["variant"].astype(str) == variant]
        if dataset is not None and "dataset" in table.columns:
            table = table[table["dataset"].astype(str).str.lower() == dataset]
        table = table[pd.to_numeric(table["output"], errors="coerce").notna()]
        known = {int(o): float(m) for o, m in zip(table["output"], pd.to_numeric(table["miou"], errors="coerce"))
                 if not math.isnan(float(m))}
        frame["miou"] = [known.get(int(o), math.nan) for o in frame["output"]]
    return frame


def plot(frame, title: str, style: Optional[str] = None):
    plt = pyplot()
    has_miou = "miou" in frame.columns and frame["miou"].notna().any()
    columns = [("macs", "MACs (G)", 1e-9), ("latency_layers", "latency (conv layers)", 1.0),
               ("graph_size_bytes", "graph size (MB)", 1e-6)]
    ncols = 3
    nrows = 2 if has_miou else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.16, 2.1 * nrows + 0.3), squeeze=False)
    colour, marker = style_for(style or str(frame["model"].iloc[0]))
    outputs = frame["output"]
    for i, (column, label, scale) in enumerate(columns):
        ax = axes[0][i]
        values = frame[column] * scale
        ax.plot(outputs, values, color=colour, marker=marker, markersize=3.5)
        ax.set_xlabel("output n")
        ax.set_ylabel(label)
        ax.set_ylim(0, max(float(values.max()), 1e-12) * 1.1)
        if len(outputs) <= 10:
            ax.set_xticks(list(outputs))
        else:
            from matplotlib.ticker import MaxNLocator  # lazy: matplotlib only where a figure is drawn

            ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    if has_miou:
        known = frame[frame["miou"].notna()]
        for i, (column, label, scale) in enumerate(columns):
            ax = axes[1][i]
            ax.plot(known[column] * scale, known["miou"], color=colour, marker=marker, markersize=3.5)
            for _, row in known.iterrows():
                ax.annotate(str(int(row["output"])), (row[column] * scale, row["miou"]), fontsize=5,
                            xytext=(2, 2), textcoords="offset points")
            ax.set_xlabel(label)
            ax.set_ylabel("mIoU (%)")
            ax.margins(x=0.08, y=0.08)
    fig.suptitle(title, fontsize=8.5)
    fig.tight_layout()
    return fig


def run(summary: Dict[str, Any], model: str, label: str, out_dir: Optional[str], accuracy=None,
        variant: Optional[str] = None, dataset: Optional[str] = None, style: Optional[str] = None):
    """The per-output frame; with ``out_dir`` also ``anytime-MODEL.png/.svg/.csv`` (all or nothing)."""
    frame = outputs_frame(summary, model, accuracy, variant, dataset)
    written: List[str] = []
    if out_dir is not None:
        shape = shape_text(summary["input_shape"][-2:])
        fig = plot(frame, f"{label} at {shape}: cost per anytime output", style)
        try:
            written = write_files(out_dir, figure_writers(fig, f"anytime-{_slug(label)}", frame))
        finally:
            pyplot().close(fig)
    return frame, written


def analyse(spec, built, executor=None, store=None) -> Dict[str, Any]:
    """The analysis summary of the model ``spec`` names (``built``: ``graphcost.resolve.build(spec)``).

    Zoo models go through the executor and the store; ``torchvision:NAME`` and ``pkg.mod:callable``
    models are analysed here from ``built`` (they are no store item).
    """
    if ":" in spec.name:
        return summarize(analyze(built.module, built.input_shape, name=built.label))
    item = analysis_item(spec.name, built.dataset, spec.params, input_shape=built.input_shape, shared=spec.shared)
    return analyse_items([item], executor, store)[0]


def report(spec, built, summary: Dict[str, Any], out_dir: Optional[str], accuracy=None,
           variant: Optional[str] = None):
    """:func:`run` for a model spec: its label, style and variant. Returns ``(label, frame, written)``."""
    label = model_label(spec.name, spec.shared)
    frame, written = run(summary, spec.name, label, out_dir, accuracy, variant or variant_name(spec.shared),
                         built.dataset, style_key(spec.name, spec.shared))
    return label, frame, written


def _slug(text: str) -> str:
    """``"itnet (shared)"`` -> ``"itnet-shared"``."""
    return re.sub(r"-+", "-", "".join(c if c.isalnum() or c in "_." else "-" for c in text)).strip("-") or "model"
