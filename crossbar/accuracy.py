"""Accuracy of a network simulated on crossbar arrays: mIoU and fidelity mIoU per anytime output.

:func:`evaluate_accuracy` runs the float model and ``config.trials`` simulated copies
(:class:`~graphcost.crossbar.sim.CrossbarModel`, one noise seed each: ``config.seed + trial``)
on an evaluation set (:mod:`.data`) and reports, for every output of the model (ItNet returns one
per iteration),

* ``miou`` — the simulated model's mIoU against the labels (pixels labelled 255 ignored);
* ``fidelity_miou`` — the mIoU of the simulated model's predictions against the float model's
  predictions (every pixel counts): 1.0 means the hardware changes no decision;
* ``float_miou`` — the float model's mIoU (the same for every trial),

each as the mean and the (population, ``ddof=0``) standard deviation over trials. The mIoU is the
dataset mIoU: one confusion matrix over all pixels of all images, IoU per class over the classes
present in the labels or the predictions, averaged.

A trial is the top-level, picklable :func:`run_trial` of ``(config, state, trial)`` so an
executor (:func:`graphcost.runtime.executor.make_executor`) can run trials in other processes or on Ray
workers; ``executor=None`` runs them here, one after the other.

Classifiers (logits ``N x C``, e.g. ``digits-cnn`` on ``--data digits``) are scored by top-1
accuracy instead: ``top1``, ``fidelity_top1`` (agreement with the float model's predictions),
``float_top1``. ``config.times_seconds`` evaluates the same programmed devices at several times
after programming (``result.times``: one :class:`TimeAccuracy` per time).

Weights: :func:`load_weights` loads a state dict with ``weights_only=True`` (one clear
:class:`~graphcost.UserError` for a missing, unreadable or mismatching file);
:func:`shipped_checkpoint_for` names the float or hardware-aware checkpoint shipped for the default
ItNet (synthetic set) and digits-cnn (digits), written by ``graphcost train``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from graphcost.errors import UserError, first_line

from .data import IGNORE_INDEX, open_dataset
from .specs import ArraySpec, NoiseSpec

__all__ = ["ShippedModel", "SHIPPED", "WEIGHT_KINDS", "check_weights", "AccuracyConfig", "AccuracyResult", "OutputAccuracy", "TimeAccuracy", "TrialState", "TrialResult",
           "evaluate_accuracy", "run_trial", "confusion_matrix", "miou", "score", "load_weights", "default_weights_path",
           "shipped_checkpoint_for", "SHIPPED_CONFIG", "EVAL_BATCH"]

#: Images per forward pass during evaluation (and the calibration batch: the first one).
EVAL_BATCH = 4


@dataclass(frozen=True)
class AccuracyConfig:
    """What to simulate and on which data (built by ``graphcost map --accuracy``)."""

    array: ArraySpec
    noise: NoiseSpec
    data: str = "synthetic"  # "synthetic" | "digits" | "camvid:PATH" | "cityscapes:PATH"
    samples: int = 8
    trials: int = 3
    seed: int = 0
    classes: int = 11
    depthwise: str = "dense"

    #: Times after programming to evaluate at (``()``: only ``noise.t_seconds``); every time reuses the
    #: trial's programming noise and drift exponents (same seed), so a curve over time is one device's.
    times_seconds: Tuple[float, ...] = ()

    def __post_init__(self):
        if self.samples < 1:
            raise UserError(f"samples must be at least 1, got {self.samples}")
        if self.trials < 1:
            raise UserError(f"trials must be at least 1, got {self.trials}")
        if any(not (t >= 0 and math.isfinite(t)) for t in self.times_seconds):
            raise UserError(f"times must be finite and >= 0 seconds, got {self.times_seconds}")

    @property
    def times(self) -> Tuple[float, ...]:
        """The evaluation times: ``times_seconds`` or, if empty, the noise spec's own ``t_seconds``."""
        return tuple(self.times_seconds) or (self.noise.t_seconds,)


# --------------------------------------------------------------------------- mIoU
def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, classes: int,
                     ignore_index: Optional[int] = IGNORE_INDEX) -> torch.Tensor:
    """``classes x classes`` counts, rows = target, columns = prediction (one ``bincount``).

    Target pixels equal to ``ignore_index`` (or outside ``[0, classes)``) are skipped.
    """
    t = target.reshape(-1).long()
    p = pred.reshape(-1).long()
    keep = (t >= 0) & (t < classes) & (p >= 0) & (p < classes)
    if ignore_index is not None:
        keep &= t != ignore_index
    return torch.bincount(t[keep] * classes + p[keep], minlength=classes * classes).view(classes, classes)


def miou(confusion: torch.Tensor) -> float:
    """Mean IoU over the classes present in the target or the prediction (0.0 if none).

    >>> miou(torch.tensor([[3, 1], [0, 4]]))   # IoU 3/4 and 4/5
    0.775
    """
    conf = confusion.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    if not bool(present.any()):
        return 0.0
    return round(float((tp[present] / union[present]).mean()), 12)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class OutputAccuracy:
    """One anytime output: means and stds over trials of the score (mIoU, or top-1 for classifiers;
    the field names say ``miou``, :meth:`to_dict` names them after the metric)."""

    index: int  # from 1
    miou: float
    fidelity_miou: float
    miou_std: float
    fidelity_std: float
    float_miou: float

    def to_dict(self, metric: str = "miou") -> Dict[str, Any]:
        return {"index": self.index, metric: self.miou, f"fidelity_{metric}": self.fidelity_miou,
                f"{metric}_std": self.miou_std, "fidelity_std": self.fidelity_std, f"float_{metric}": self.float_miou}


@dataclass(frozen=True)
class TimeAccuracy:
    """All outputs at one time after programming."""

    t_seconds: float
    outputs: Tuple[OutputAccuracy, ...]

    def to_dict(self, metric: str = "miou") -> Dict[str, Any]:
        last = self.outputs[-1]
        return {"t_seconds": self.t_seconds, metric: last.miou, f"fidelity_{metric}": last.fidelity_miou,
                f"float_{metric}": last.float_miou, "std": last.miou_std, "fidelity_std": last.fidelity_std,
                "outputs": [o.to_dict(metric) for o in self.outputs]}


@dataclass(frozen=True)
class AccuracyResult:
    """Plain data: per-time, per-output accuracies; the headline numbers are those of the last output
    at the first time. ``metric`` is ``"miou"`` (segmentation) or ``"top1"`` (classification)."""

    outputs: Tuple[OutputAccuracy, ...]
    trials: int
    samples: int
    data: str
    trial_miou: Tuple[Tuple[float, ...], ...] = ()      # [trial][output], first time
    trial_fidelity: Tuple[Tuple[float, ...], ...] = ()  # [trial][output], first time
    metric: str = "miou"
    times: Tuple[TimeAccuracy, ...] = ()

    @property
    def miou(self) -> float:
        return self.outputs[-1].miou

    @property
    def fidelity_miou(self) -> float:
        return self.outputs[-1].fidelity_miou

    @property
    def std(self) -> float:
        return self.outputs[-1].miou_std

    @property
    def float_miou(self) -> float:
        return self.outputs[-1].float_miou

    def to_dict(self) -> Dict[str, Any]:
        m = self.metric
        return {
            m: self.miou,
            f"fidelity_{m}": self.fidelity_miou,
            "std": self.std,
            "fidelity_std": self.outputs[-1].fidelity_std,
            f"float_{m}": self.float_miou,
            "outputs": [o.to_dict(m) for o in self.outputs],
            "times": [t.to_dict(m) for t in self.times],
            "trials": self.trials,
            "samples": self.samples,
            "data": self.data,
        }


@dataclass(frozen=True)
class TrialState:
    """Everything a trial needs besides the config: picklable (ships to process / Ray workers)."""

    model: nn.Module
    images: torch.Tensor              # (S, C, H, W)
    labels: torch.Tensor              # (S, H, W), 255 = ignore; classifiers (S,)
    float_preds: Tuple[torch.Tensor, ...]  # per output: (S, H, W) or (S,) class ids
    classes: int


@dataclass(frozen=True)
class TrialResult:
    trial: int
    seed: int
    miou: Tuple[float, ...]       # per output, first time
    fidelity: Tuple[float, ...]   # per output, first time
    per_time: Tuple[Tuple[Tuple[float, ...], Tuple[float, ...]], ...] = ()  # [time] -> (scores, fidelities)


# --------------------------------------------------------------------------- running
def _as_outputs(out) -> List[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)) and out and all(isinstance(o, torch.Tensor) for o in out):
        return list(out)
    if isinstance(out, dict) and out and all(isinstance(o, torch.Tensor) for o in out.values()):
        return list(out.values())
    raise UserError(f"the model returns {type(out).__name__}; accuracy needs logits (N x C x H x W) or a list "
                    f"of them")


def _predict(model: nn.Module, images: torch.Tensor, size: Tuple[int, int], channels: Optional[list] = None
             ) -> List[torch.Tensor]:
    """Per output: class ids ``(S, H, W)`` (uint8 where classes fit), in batches of :data:`EVAL_BATCH`.
    ``channels`` (a list) receives the logits' channel count of every output."""
    per_output: List[List[torch.Tensor]] = []
    for start in range(0, images.shape[0], EVAL_BATCH):
        outs = _as_outputs(model(images[start:start + EVAL_BATCH]))
        if not per_output:
            per_output = [[] for _ in outs]
            if channels is not None:
                channels.extend(int(o.shape[1]) if o.dim() > 1 else 0 for o in outs)
        for acc, logits in zip(per_output, outs):
            if logits.dim() == 2:  # a classifier: one class id per image
                acc.append(logits.argmax(1))
                continue
            if logits.dim() != 4:
                raise UserError(f"accuracy needs N x C x H x W (or N x C) logits, the model returns shape "
                                f"{tuple(logits.shape)}")
            if tuple(logits.shape[-2:]) != tuple(size):
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            pred = logits.argmax(1)
            acc.append(pred.to(torch.uint8) if logits.shape[1] <= 256 else pred)
    return [torch.cat(p) for p in per_output]


def score(pred: torch.Tensor, target: torch.Tensor, classes: int, ignore_index: Optional[int] = IGNORE_INDEX
          ) -> float:
    """Top-1 accuracy for class ids per image (``(S,)``), else the dataset mIoU.

    >>> score(torch.tensor([1, 2, 2]), torch.tensor([1, 2, 0]), 3)
    0.6666666666666666
    """
    if target.dim() == 1:
        return int((pred.long() == target.long()).sum()) / target.numel()
    return miou(confusion_matrix(pred, target, classes, ignore_index))


def run_trial(config: AccuracyConfig, state: TrialState, trial: int) -> TrialResult:
    """One Monte-Carlo trial: program the arrays with seed ``config.seed + trial``, evaluate at every
    time of ``config.times`` (the same seed, so the same programmed cells and drift exponents)."""
    from .sim import CrossbarModel

    seed = config.seed + trial
    per_time = []
    for t in config.times:
        with torch.inference_mode():
            sim = CrossbarModel(state.model, config.array, replace(config.noise, t_seconds=t), seed=seed,
                                depthwise=config.depthwise)
            sim.calibrate(state.images[:EVAL_BATCH])
            preds = _predict(sim, state.images, tuple(state.labels.shape[-2:]))
        if len(preds) != len(state.float_preds):
            raise RuntimeError("the simulated model returned a different number of outputs than the float model")
        scores = tuple(score(p, state.labels, state.classes) for p in preds)
        fids = tuple(score(p, f, state.classes, ignore_index=None) for p, f in zip(preds, state.float_preds))
        per_time.append((scores, fids))
    return TrialResult(trial, seed, per_time[0][0], per_time[0][1], tuple(per_time))


def _run_trial_item(item: Tuple[AccuracyConfig, TrialState, int]) -> TrialResult:
    """Executor entry point (top level, so it pickles): ``run_trial(*item)``."""
    return run_trial(*item)


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / n)


def _run_trials(items: list, executor, progress: Optional[Callable[[int, int], None]]) -> list:
    """Each trial's result, by ``executor`` or one after another here."""
    if executor is not None:
        return list(executor.map(_run_trial_item, items, progress=progress))
    results = []
    for i, item in enumerate(items):
        results.append(_run_trial_item(item))
        if progress is not None:
            progress(i + 1, len(items))
    return results


def evaluate_accuracy(model: nn.Module, config: AccuracyConfig, *, executor=None,
                      progress: Optional[Callable[[int, int], None]] = None) -> AccuracyResult:
    """Float and simulated mIoU (and fidelity mIoU) per output, mean and std over ``config.trials``.

    Parameters
    ----------
    model : nn.Module
        A segmentation model returning ``N x C x H x W`` logits (or a list / dict of them, one per
        anytime output), with trained weights.
    config : AccuracyConfig
        Array and noise specs, data (``synthetic``, ``camvid:PATH``, ``cityscapes:PATH``), samples,
        trials (trial ``t`` draws its noise with seed ``config.seed + t``), depthwise strategy.
    executor : optional
        Runs the trials (``executor.map(fn, items, progress=...)``); ``None``: one after another here.
    progress : callable, optional
        Called as ``progress(done, total)`` after each trial.

    Returns
    -------
    AccuracyResult
        One :class:`OutputAccuracy` per output (mIoU, fidelity mIoU against the float model's
        predictions, their stds over trials, float mIoU) and the per-trial values.

    Raises
    ------
    UserError
        The data cannot be opened, the model's class count differs from the data's, or the model
        does not return segmentation logits.

    Examples
    --------
    >>> from graphcost.crossbar.specs import ArraySpec, NoiseSpec
    >>> net = torch.nn.Conv2d(3, 11, 1)
    >>> exact = ArraySpec(64, 64, weight_bits=16, cell_bits=16, dac_bits=16, adc_bits=16)
    >>> result = evaluate_accuracy(net, AccuracyConfig(exact, NoiseSpec(), samples=2, trials=1))
    >>> len(result.outputs), round(result.fidelity_miou, 2)     # noise-free 16-bit: the float predictions
    (1, 1.0)
    """
    dataset = open_dataset(config.data, config.samples, classes=config.classes)
    images, labels = dataset.tensors()
    model = model.eval()
    channels: List[int] = []
    with torch.inference_mode():
        float_preds = _predict(model, images, tuple(labels.shape[-2:]), channels)
    if channels[-1] != dataset.classes:
        raise UserError(f"the model predicts {channels[-1]} classes but the {dataset.name} data has "
                        f"{dataset.classes}; build the model with classes={dataset.classes}")
    float_scores = [score(p, labels, dataset.classes) for p in float_preds]
    state = TrialState(model, images, labels, tuple(float_preds), dataset.classes)
    results = _run_trials([(config, state, t) for t in range(config.trials)], executor, progress)
    times = tuple(TimeAccuracy(t, _summarise([r.per_time[i] for r in results], float_scores))
                  for i, t in enumerate(config.times))
    metric = "top1" if dataset.task == "classification" else "miou"
    return AccuracyResult(times[0].outputs, config.trials, len(dataset), config.data,
                          tuple(r.miou for r in results), tuple(r.fidelity for r in results), metric, times)


def _summarise(per_trial: Sequence[Tuple[Tuple[float, ...], Tuple[float, ...]]], float_scores: Sequence[float]
               ) -> Tuple[OutputAccuracy, ...]:
    """Mean and std over trials of every output's score and fidelity at one time."""
    outputs = []
    for k, float_score in enumerate(float_scores):
        m, m_std = _mean_std([scores[k] for scores, _ in per_trial])
        f, f_std = _mean_std([fids[k] for _, fids in per_trial])
        outputs.append(OutputAccuracy(k + 1, m, f, m_std, f_std, float_score))
    return tuple(outputs)


# --------------------------------------------------------------------------- weights
#: The model configuration the shipped ItNet checkpoints were trained for (``graphcost map itnet``).
SHIPPED_CONFIG: Dict[str, Any] = {"shared": True, "N": 16, "L": 3, "K": 1, "f": 51, "classes": 11}
SHIPPED_NAME = "itnet_camvid_synthetic.pt"
#: The kinds of shipped checkpoint ``--weights`` names: trained in float, or hardware-aware (HWA).
WEIGHT_KINDS = ("float", "hwa")


@dataclass(frozen=True)
class ShippedModel:
    """A zoo model with shipped checkpoints: its name, the builder arguments and preset they fit,
    and the checkpoint file of each kind (in ``crossbar/weights/``)."""

    name: str
    config: Dict[str, Any]
    datasets: Tuple[Optional[str], ...]
    files: Dict[str, str]


SHIPPED = (
    ShippedModel("itnet", SHIPPED_CONFIG, (None, "camvid"),
                 {"float": SHIPPED_NAME, "hwa": "itnet_camvid_synthetic_hwa.pt"}),
    ShippedModel("digits-cnn", {"classes": 10, "width": 16}, (None, "digits"),
                 {"float": "digits_cnn_float.pt", "hwa": "digits_cnn_hwa.pt"}),
    # trained with the ACT ponder cost (graphcost train iterative-resnet --data digits --ponder 0.01)
    ShippedModel("iterative-resnet", {"shared": True}, ("digits",), {"float": "iterative_resnet_digits.pt"}),
)


def weights_folder() -> Path:
    return Path(__file__).resolve().parent / "weights"


def default_weights_path() -> Path:
    """The shipped ItNet checkpoint (default ItNet, CamVid preset, trained on the synthetic set)."""
    return weights_folder() / SHIPPED_NAME


def shipped_checkpoint_for(model_name: str, params: Optional[Mapping[str, Any]] = None,
                           dataset: Optional[str] = None, kind: str = "float") -> Optional[Path]:
    """The shipped checkpoint of ``kind`` (``"float"`` or ``"hwa"``) if ``model_name`` with ``params``
    is a model graphcost ships weights for (the default ItNet, digits-cnn), else ``None``.

    ``params`` are the builder keyword arguments the user gave (``None`` values = defaults);
    ``dataset`` the preset (``None`` or the model's own).

    >>> shipped_checkpoint_for("itnet", {"N": 16}).name
    'itnet_camvid_synthetic.pt'
    >>> shipped_checkpoint_for("itnet", {"N": 8}) is None, shipped_checkpoint_for("enet") is None
    (True, True)
    >>> shipped_checkpoint_for("digits-cnn").name
    'digits_cnn_float.pt'
    """
    if kind not in WEIGHT_KINDS:
        raise ValueError(f"kind must be one of {WEIGHT_KINDS}, got {kind!r}")
    for shipped in SHIPPED:
        if shipped.name != model_name or dataset not in shipped.datasets:
            continue
        for key, value in (params or {}).items():
            want = shipped.config.get(key)
            if value is not None and (key not in shipped.config or want != value or type(value) is not type(want)):
                return None
        if kind not in shipped.files:
            return None
        path = weights_folder() / shipped.files[kind]
        return path if path.is_file() else None
    return None


def check_weights(text: str) -> str:
    """A ``--weights`` value: a shipped kind (``float``, ``hwa``) or the path of an existing file."""
    if text in WEIGHT_KINDS or os.path.isfile(text):
        return text
    raise UserError(f"weights are {' or '.join(WEIGHT_KINDS)} (a shipped checkpoint) or a state dict file; "
                    f"{text!r} is neither")


def load_weights(model: nn.Module, path) -> nn.Module:
    """Load the state dict in ``path`` into ``model`` (strict); returns ``model``.

    Accepts a plain state dict or a dict holding one under ``"state_dict"`` / ``"model"``; a
    ``module.`` prefix (DataParallel) is stripped. Raises :class:`~graphcost.UserError` with one
    sentence for a missing or unreadable file, or one that does not fit the model.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"weights file {path!r} does not exist; pass a state dict saved with "
                        f"torch.save(model.state_dict(), FILE)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read weights file {path!r} ({first_line(exc)[:120]}); it must be a state dict saved "
                        f"with torch.save(model.state_dict(), FILE)") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                       for k, v in obj.items()):
        raise UserError(f"weights file {path!r} does not hold a state dict (a mapping of parameter names to "
                        f"tensors); save one with torch.save(model.state_dict(), FILE)")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in obj]
    unexpected = [k for k in obj if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first {unexpected[0]!r})")
        raise UserError(f"weights file {path!r} does not fit the model: {' and '.join(parts)} keys; was it saved "
                        f"from the same model with the same parameters?")
    for key, value in obj.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise UserError(f"weights file {path!r} does not fit the model: {key!r} has shape "
                            f"{tuple(value.shape)}, the model expects {tuple(expected[key].shape)}")
    model.load_state_dict(obj, strict=True)
    return model
