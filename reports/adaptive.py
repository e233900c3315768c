"""``graphcost report adaptive``: what adaptive inference costs per input, on real data.

One figure of an :class:`~graphcost.crossbar.adaptive_run.AdaptiveRun`: the histogram of per-input
MACs (with the mean and the fixed cost), accuracy against mean cost as the threshold sweeps (the
exit confidence of an early-exit network, re-using the observed confidences; the ACT threshold
``1 - eps`` of a halting network, one eager pass per threshold since the halting changes the
output), and the easiest and hardest inputs as thumbnails (the paper's qualitative figure: fewest
and most MACs). With a crossbar, for a model with shared and independent variants (ItNet,
iterative-resnet), a second figure: energy per frame of both variants under the same policy on the
same inputs (the independent one carries the shared weights, so the exits are the same and only the
chip differs: arrays, area, wires, leakage). Costs come from the runs' cost models; nothing here
counts a cost.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch

from graphcost.crossbar.adaptive import ExitPolicy, exits_for, halting_thresholds, observe, sample_costs

from .common import pyplot

__all__ = ["sweep_frame", "samples_frame", "adaptive_figure", "variants_frame", "variants_summary", "variants_figure",
           "EXIT_THRESHOLDS", "HALTING_THRESHOLDS"]

#: Confidence thresholds of the early-exit sweep, and ACT thresholds (1 - eps) of the halting sweep.
EXIT_THRESHOLDS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
HALTING_THRESHOLDS = (0.3, 0.5, 0.7, 0.9, 0.99, 1.0)


def _halting_point(run, threshold: float) -> dict:
    with halting_thresholds(run.stages, threshold):
        observed = observe(run.model, run.images, run.labels, run.observed.classes)
    costs = sample_costs(run.costs, iterations=observed.iterations)
    last = torch.full((observed.samples,), observed.outputs - 1, dtype=torch.long)
    return {"threshold": threshold, "mean_macs": float(costs.macs.mean()), "score": observed.score(last)}


def sweep_frame(run, thresholds: Sequence[float] = ()):
    """Accuracy and mean MACs per threshold (columns ``threshold, mean_macs, score, metric, fixed_macs``)."""
    import pandas as pd

    rows: List[dict] = []
    if run.stages:
        for t in thresholds or HALTING_THRESHOLDS:
            rows.append(_halting_point(run, t))
    else:
        for t in thresholds or EXIT_THRESHOLDS:
            exits = exits_for(run.observed, ExitPolicy("confidence", t))
            costs = sample_costs(run.costs, exits=exits)
            rows.append({"threshold": t, "mean_macs": float(costs.macs.mean()), "score": run.observed.score(exits)})
    frame = pd.DataFrame(rows)
    frame["metric"] = run.result.metric
    frame["fixed_macs"] = run.result.fixed_macs
    return frame


def samples_frame(run):
    """One row per input: MACs, latency, iterations per stage or exit (the histogram's data)."""
    return run.per_input_frame()


def _thumbnail(image: torch.Tensor) -> np.ndarray:
    img = image.detach().float()
    if img.shape[0] == 1:
        return img[0].numpy()
    img = img[:3].permute(1, 2, 0)
    lo, hi = float(img.min()), float(img.max())
    return ((img - lo) / (hi - lo) if hi > lo else img * 0).numpy()


def _draw_thumbnails(fig, grid, run, order: np.ndarray, count: int) -> None:
    macs = run.result.costs.macs
    picks = [("easiest", order[:count]), ("hardest", order[::-1][:count])]
    for row, (label, idx) in enumerate(picks):
        for col, s in enumerate(idx):
            ax = fig.add_subplot(grid[2 + row, col])
            ax.imshow(_thumbnail(run.images[s]), cmap="gray" if run.images.shape[1] == 1 else None,
                      interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{macs[s] / run.result.fixed_macs:.0%}", fontsize=7)
            if col == 0:
                ax.set_ylabel(label, fontsize=8)


def adaptive_figure(run, sweep, label: str, thumbnails: int = 6):
    """Histogram of per-input MACs, accuracy vs mean MACs over the sweep, easiest / hardest inputs."""
    plt = pyplot()
    result = run.result
    count = max(1, min(thumbnails, result.samples // 2 or 1))
    fig = plt.figure(figsize=(1.2 * max(count, 6), 5.6))
    grid = fig.add_gridspec(4, count, height_ratios=[2.2, 0.3, 1, 1], wspace=0.45)
    left = fig.add_subplot(grid[0, : count // 2])
    macs = result.costs.macs / 1e6
    left.hist(macs, bins=min(30, max(5, len(np.unique(macs)))), color="#1f77b4")
    left.axvline(macs.mean(), color="k", lw=1, label=f"mean ({result.line()[5:]})")
    left.axvline(result.fixed_macs / 1e6, color="#d62728", ls="--", lw=1, label="fixed (all iterations / outputs)")
    left.set_xlabel("MMACs per input"), left.set_ylabel("inputs"), left.legend(fontsize=6)
    right = fig.add_subplot(grid[0, count // 2:])
    right.plot(sweep["mean_macs"] / 1e6, sweep["score"], marker="o", ms=3)
    for _, row in sweep.iterrows():
        right.annotate(f"{row['threshold']:g}", (row["mean_macs"] / 1e6, row["score"]), fontsize=6)
    right.plot([result.costs.macs.mean() / 1e6], [result.score], "k*", ms=8, label=result.policy)
    right.plot([result.fixed_macs / 1e6], [result.fixed_score], "s", color="#d62728", ms=5,
               label=f"fixed cost: {result.fixed_run}")
    right.set_xlabel("mean MMACs per input"), right.set_ylabel("top-1" if result.metric == "top1" else "mIoU")
    right.legend(fontsize=6)
    order = np.argsort(result.costs.macs, kind="stable")
    _draw_thumbnails(fig, grid, run, order, count)
    fig.suptitle(f"{label}: cost per input on {result.data} ({result.samples} inputs)", fontsize=9)
    return fig


# --------------------------------------------------------------------------- shared vs independent on a chip
def variants_frame(runs):
    """One row per (variant, input) of :func:`~graphcost.crossbar.adaptive_run.run_variants`' runs: its
    energy, latency, MACs and iterations / exit, with the variant's arrays and area."""
    import pandas as pd

    frames = []
    for variant, run in runs.items():
        frame = run.per_input_frame()
        frame.insert(0, "variant", variant)
        frame["arrays"], frame["area_mm2"] = run.chip["arrays"], run.chip["area_mm2"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def variants_summary(runs) -> dict:
    """Per variant its chip (arrays, area), energy and latency summaries, mean MACs and score, and
    ``same_exits``: whether every input took the same iterations / exit in both."""
    from graphcost.crossbar.adaptive import summary

    used = [run.result.used for run in runs.values()]
    out = {variant: {"chip": run.chip, "energy_j": summary(run.result.costs.energy_j),
                     "latency_s": summary(run.result.costs.latency_s), "mean_macs": float(run.result.costs.macs.mean()),
                     run.result.metric: run.result.score}
           for variant, run in runs.items()}
    out["same_exits"] = all(np.array_equal(used[0], u) for u in used[1:])
    return out


def _variant_label(variant: str, run) -> str:
    chip, energy = run.chip, run.result.costs.energy_j
    return (f"{variant}: {chip['arrays']:,} arrays, {chip['area_mm2']:.1f} mm², "
            f"mean {energy.mean() * 1e6:.3g} µJ")


def variants_figure(runs, label: str):
    """Energy per frame, shared vs independent, under the same policy on the same inputs: histograms
    (left) and the cumulative distribution (right), arrays and area in the legend."""
    plt = pyplot()
    fig, (hist, ecdf) = plt.subplots(1, 2, figsize=(9, 3.4))
    values = {variant: run.result.costs.energy_j * 1e6 for variant, run in runs.items()}
    everything = np.concatenate(list(values.values()))
    bins = np.linspace(everything.min(), everything.max(), 31) if np.ptp(everything) > 0 else 10
    for (variant, run), color in zip(runs.items(), ("#1f77b4", "#d62728")):
        v = np.sort(values[variant])
        text = _variant_label(variant, run)
        hist.hist(v, bins=bins, histtype="step", lw=1.5, color=color, label=text)
        ecdf.step(v, np.arange(1, len(v) + 1) / len(v), where="post", color=color, label=text)
    hist.set_xlabel("energy per frame (µJ)"), hist.set_ylabel("inputs"), hist.legend(fontsize=6)
    ecdf.set_xlabel("energy per frame (µJ)"), ecdf.set_ylabel("share of inputs"), ecdf.legend(fontsize=6)
    first = next(iter(runs.values()))
    chip = first.chip
    fig.suptitle(f"{label}: energy per frame on {chip['crossbar']} arrays ({chip['tech']}), {first.result.policy}, "
                 f"{first.result.samples} inputs of {first.result.data}", fontsize=8)
    fig.tight_layout()
    return fig
