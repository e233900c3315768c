"""Crossbar report: arrays needed and throughput against the chip size M, several models in one plot.

Each model is traced once and mapped onto crossbar arrays (``graphcost.crossbar.mapping``);
:func:`graphcost.crossbar.perf.performance` then gives, for every chip size M (arrays), whether
the graph fits, the pipelined throughput, and how many arrays must be re-programmed per frame
when it does not. The paper's central claim made visible: ItNet's loop-keeping graph fits on a
small chip and runs at full rate there, while the baselines need far more arrays or must
rewrite weights every frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

from graphcost.crossbar.energy import energy
from graphcost.crossbar.mapping import map_trace
from graphcost.crossbar.perf import performance
from graphcost.crossbar.specs import DEPTHWISE_STRATEGIES, ArraySpec, ChipSpec
from graphcost.crossbar.tech import DEFAULT_TECH, TECH_PRESETS, TechSpec
from graphcost.errors import UserError
from graphcost.models import model_entry
from graphcost.resolve import ModelSpec, build_for_shapes
from graphcost.tracing import trace

from .common import analysis_item, figure_writers, model_label, pyplot, run_cached, shape_text, style_for, style_key, \
    write_files

CURVE_KIND = "crossbar-curve"


@dataclass(frozen=True)
class CurveItem:
    """The work item of one model of the report: what to build and the hardware it maps onto."""

    model: ModelSpec
    crossbar: Tuple[int, int]
    depthwise: str = DEPTHWISE_STRATEGIES[0]
    chip: ChipSpec = field(default_factory=ChipSpec)
    tech: TechSpec = TECH_PRESETS[DEFAULT_TECH]

    @property
    def name(self) -> str:
        return self.model.name

    def chip_of(self, arrays: Optional[int]) -> ChipSpec:
        """This item's chip with ``arrays`` arrays (``None``: as many as the graph needs)."""
        return replace(self.chip, arrays=arrays)


def chip_sizes(needed: int, points: int = 36) -> List[int]:
    """Chip sizes M from 1 to 8x ``needed`` (log-spaced), plus ``needed - 1`` and ``needed``."""
    top = max(8 * needed, 16)
    sizes = {max(1, int(round(10 ** (math.log10(top) * i / (points - 1))))) for i in range(points)}
    sizes |= {needed, max(1, needed - 1)}
    return sorted(sizes)


def model_item(model: str, params: Mapping[str, Any], dataset: str, input_shape: Optional[Sequence[int]],
               crossbar: Sequence[int], depthwise: str = DEPTHWISE_STRATEGIES[0], chip: Optional[ChipSpec] = None,
               token: Optional[str] = None, tech: Optional[TechSpec] = None) -> Tuple[CurveItem, str]:
    """The work item of one model of the report and its label; a ``shared`` entry of ``params`` picks the variant
    (``token``: how the user wrote the model, for the error message).

    Builds the model once, so a bad name or parameter fails now, in one line.
    """
    params = dict(params)
    shared = params.pop("shared", None)
    if shared is not None and "shared" not in model_entry(model).parameters():
        raise UserError(f"model {model!r} has no shared/independent variants; drop shared= from {token or model!r}")
    spec = analysis_item(model, dataset, params, input_shape=input_shape, shared=shared)
    build_for_shapes(spec)
    item = CurveItem(spec, tuple(crossbar), depthwise, chip or ChipSpec(), tech or TECH_PRESETS[DEFAULT_TECH])
    return item, model_label(model, shared, params)


def crossbar_curve(item: CurveItem) -> Dict[str, Any]:
    """Map one model and evaluate it on every chip size. Top-level: runs in executor workers."""
    built = build_for_shapes(item.model)
    t = trace(built.module, built.input_shape)
    rows, cols = item.crossbar
    mapping = map_trace(t, ArraySpec(int(rows), int(cols)), item.depthwise or "dense", name=item.name)
    needed = int(mapping.arrays_used)
    curve = []
    for m in chip_sizes(needed):
        perf = performance(mapping, item.chip_of(m))
        e = energy(perf, item.tech)
        curve.append({"arrays": m, "fits": bool(perf.fits), "throughput_fps": float(perf.throughput_fps),
                      "latency_s": float(perf.latency_s), "rewritten_arrays": int(perf.rewritten_arrays),
                      "rewrite_s": float(perf.rewrite_s), "energy_j": float(e.per_frame_j),
                      "power_w": float(e.power_w), "write_j": float(e.breakdown_j["write"])})
    full = performance(mapping, item.chip_of(None))
    e = energy(full, item.tech)
    return {"arrays_needed": needed, "utilization": float(mapping.utilization),
            "resident_fps": float(full.throughput_fps), "latency_s": float(full.latency_s), "curve": curve,
            "energy_j": float(e.per_frame_j), "power_w": float(e.power_w), "tops_per_w": float(e.tops_per_w),
            "breakdown_j": {k: float(v) for k, v in e.breakdown_j.items()}}


def curves(items: Sequence[CurveItem], executor=None, store=None, progress=None) -> List[Dict[str, Any]]:
    return run_cached(items, crossbar_curve, CURVE_KIND, executor, store, progress)


def frame(items: Sequence[CurveItem], labels: Sequence[str], results: Sequence[Dict[str, Any]]):
    """Points CSV: one row per model and chip size."""
    rows = []
    for item, label, res in zip(items, labels, results):
        for point in res["curve"]:
            rows.append({"label": label, "model": item.name, "dataset": item.model.dataset,
                         "input_shape": shape_text(item.model.input_shape),
                         "crossbar": shape_text(item.crossbar),
                         "arrays_needed": res["arrays_needed"], "resident_fps": res["resident_fps"], **point})
    return pd.DataFrame(rows)


def plot(items, labels, results, title: str):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(7.16, 2.7))
    ax_fps, ax_rw = axes
    for i, (item, label, res) in enumerate(zip(items, labels, results)):
        colour, marker = style_for(style_key(item.name, item.model.shared), i)
        xs = [p["arrays"] for p in res["curve"]]
        text = f"{label}: {res['arrays_needed']:,} arrays"
        ax_fps.plot(xs, [p["throughput_fps"] for p in res["curve"]], color=colour, label=text, linewidth=1.1)
        ax_fps.plot([res["arrays_needed"]], [res["resident_fps"]], color=colour, marker=marker, linestyle="none",
                    markeredgecolor="black", markeredgewidth=0.4)
        ax_fps.axvline(res["arrays_needed"], color=colour, linestyle=":", linewidth=0.8)
        rewritten = [max(p["rewritten_arrays"], 0) for p in res["curve"]]
        ax_rw.plot(xs, [r if r > 0 else math.nan for r in rewritten], color=colour, linewidth=1.1, label=text)
        ax_rw.plot([res["arrays_needed"]], [1], color=colour, marker=marker, linestyle="none",
                   markeredgecolor="black", markeredgewidth=0.4)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("chip size M (crossbar arrays)")
    ax_fps.set_ylabel("throughput (frames/s)")
    ax_fps.set_title("a) throughput; marker: the graph fits (no rewrites)", loc="left", fontsize=7.5)
    ax_rw.set_ylabel("arrays re-programmed per frame")
    ax_rw.set_title("b) weight rewrites per frame (marker: fits, none)", loc="left", fontsize=7.5)
    handles, names = ax_fps.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(3, len(names)), frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title, fontsize=8.5)
    rows = math.ceil(len(names) / 3)
    fig.tight_layout(rect=(0, 0.06 + 0.05 * rows, 1, 1))
    return fig


def run(items, labels, out_dir: Optional[str], title: str, executor=None, store=None, progress=None):
    results = curves(items, executor, store, progress)
    points = frame(items, labels, results)
    written: List[str] = []
    if out_dir is not None:
        fig = plot(items, labels, results, title)
        try:
            written = write_files(out_dir, figure_writers(fig, "crossbar", points))
        finally:
            pyplot().close(fig)
    return results, points, written
