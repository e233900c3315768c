"""``graphcost report drift``: accuracy against time after programming, float vs post-training vs HWA.

For every model :func:`drift_frame` evaluates (with :func:`graphcost.crossbar.accuracy.
evaluate_accuracy`, the same devices at every time) the shipped float checkpoint programmed as it is
("post-training") and the shipped hardware-aware checkpoint ("hwa", where graphcost ships one), and
records the float model's own score as the reference; :func:`drift_figure` draws one panel per model,
score (mIoU or top-1) against time on a log axis, the last output bold and, for anytime models,
every other output thin.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from graphcost.crossbar.accuracy import AccuracyConfig, evaluate_accuracy, load_weights, shipped_checkpoint_for
from graphcost.crossbar.specs import ArraySpec, NoiseSpec
from graphcost.errors import UserError
from graphcost.models.registry import dataset_preset
from graphcost.resolve import ModelSpec, build

from .common import pyplot

__all__ = ["drift_frame", "drift_figure", "WEIGHT_LABELS"]

#: Curves of the figure: shipped checkpoint kind -> label.
WEIGHT_LABELS = {"float": "post-training", "hwa": "HWA"}


def _checkpoints(spec: ModelSpec) -> Dict[str, str]:
    params = dict(spec.params)
    if spec.shared is not None:
        params["shared"] = spec.shared
    found = {kind: shipped_checkpoint_for(spec.name, params, spec.dataset, kind) for kind in WEIGHT_LABELS}
    if found["float"] is None:
        raise UserError(f"report drift needs a model graphcost ships trained weights for (the default itnet, "
                        f"digits-cnn, tiny-gpt); {spec.name} with these parameters has none")
    return {kind: str(path) for kind, path in found.items() if path is not None}


def drift_frame(specs: Sequence[ModelSpec], data: Sequence[str], samples: Sequence[int], times_seconds: Sequence[float],
                noise: NoiseSpec, array: ArraySpec, trials: int, seed: int, progress=None):
    """One row per (model, weights, time, output): score, its std over trials, fidelity, float score.

    ``data`` and ``samples`` give each model's evaluation set and image count."""
    import pandas as pd

    checkpoints = [_checkpoints(spec) for spec in specs]  # every model checked before any simulation
    rows: List[dict] = []
    total, done = sum(len(c) for c in checkpoints), 0
    for spec, kinds, dataset, count in zip(specs, checkpoints, data, samples):
        for kind, path in kinds.items():
            built = build(spec)
            load_weights(built.module, path)
            config = AccuracyConfig(array, noise, data=dataset, samples=count, trials=trials, seed=seed,
                                    classes=dataset_preset(built.dataset).classes, times_seconds=tuple(times_seconds))
            result = evaluate_accuracy(built.module, config, model_inputs=built.call_inputs)
            for at in result.times:
                for o in at.outputs:
                    rows.append({"model": spec.name, "weights": WEIGHT_LABELS[kind], "t_seconds": at.t_seconds,
                                 "output": o.index, "metric": result.metric, "score": o.score, "std": o.std,
                                 "fidelity": o.fidelity, "float_score": o.float_score})
            done += 1
            if progress is not None:
                progress(done, total)
    return pd.DataFrame(rows)


def drift_figure(frame, title: str):
    """Score against time after programming (log axis), one panel per model."""
    plt = pyplot()
    models = list(dict.fromkeys(frame["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 2.6), squeeze=False)
    colours = {"post-training": "#1f77b4", "HWA": "#d62728"}
    for ax, model in zip(axes[0], models):
        part = frame[frame["model"] == model]
        last = int(part["output"].max())
        for label, colour in colours.items():
            curves = part[part["weights"] == label]
            for output, curve in curves.groupby("output"):
                bold = output == last
                ax.errorbar(curve["t_seconds"], curve["score"], yerr=curve["std"] if bold else None,
                            color=colour, lw=1.4 if bold else 0.5, alpha=1.0 if bold else 0.35, marker="o" if bold
                            else None, ms=3, capsize=2, label=f"{label} (output {last})" if bold else None)
            if len(curves):
                float_score = float(curves[curves["output"] == last]["float_score"].iloc[0])
                ax.axhline(float_score, color=colour, ls="--", lw=0.8, label=f"float weights of {label}")
        ax.set_xscale("log")
        ax.set_xlabel("time after programming (s)")
        ax.set_ylabel("top-1" if part["metric"].iloc[0] == "top1" else "mIoU")
        ax.set_title(model + (f" (thin: outputs 1-{last - 1})" if last > 1 else ""))
        ax.legend(loc="lower left")
    fig.suptitle(title, y=1.06)
    return fig
