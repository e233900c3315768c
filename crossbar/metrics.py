"""Metrics by task, in one place: what training and evaluation both score with.

============== ================================================ ====================
task           metrics against the labels                       headline
============== ================================================ ====================
segmentation   ``miou`` (dataset mIoU, pixels labelled 255 off) ``miou``
classification ``top1``, ``top5`` (where classes > 5)           ``top1``
language-model ``perplexity``, ``next_token_top1``              ``perplexity``
none           (no labels)                                      ``fidelity_top1``
============== ================================================ ====================

and, for every task and for unlabelled data, the label-free **fidelity** of the simulated model
against the float model on the same inputs (:class:`FidelityTally`): ``fidelity_top1`` (agreement of
the top-1 decisions, for logits), ``fidelity_miou`` (segmentation: the mIoU of the simulated
predictions against the float ones), and for every output ``snr_db`` (``10 log10(sum f**2 / sum
(s - f)**2)``) and ``relative_error`` (``||s - f|| / ||f||``). Outputs without logits (hidden
states, features) have only the last two; the headline of such a model is ``snr_db``.

Every tally adds sufficient statistics batch by batch (a confusion matrix, counts, sums of
log-likelihoods), so a metric over a set equals the metric over its batches together.
:func:`model_outputs` turns what a model returns into :class:`Output`\\ s whose logits have their
class dimension at 1 (a language model's ``N x T x V`` becomes ``N x V x T``), so cross-entropy and
``argmax(1)`` read every task the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from graphcost.errors import UserError

from .data.base import IGNORE_INDEX, TASKS

__all__ = ["HEADLINE", "LOWER_IS_BETTER", "Output", "model_outputs", "confusion_matrix", "miou", "Tally",
           "FidelityTally", "top1_ids", "task_loss", "headline_metric", "label_ignore_index", "unigram_perplexity"]

#: The metric a task is summarised by.
HEADLINE = {"segmentation": "miou", "classification": "top1", "language-model": "perplexity", "none": "fidelity_top1"}
#: Metrics where less is better (every other is better when higher).
LOWER_IS_BETTER = frozenset({"perplexity", "relative_error"})


def label_ignore_index(task: str) -> int:
    """The label that does not count: 255 for segmentation pixels, none (``-100``) otherwise (byte 255 is a token)."""
    return IGNORE_INDEX if task == "segmentation" else -100


@dataclass(frozen=True)
class Output:
    """One model output: ``value`` (logits with the class dimension at 1 where ``logits``) and, for logits,
    ``pred``, the top-1 class ids (computed once, read by every tally)."""

    value: torch.Tensor
    logits: bool
    pred: Optional[torch.Tensor] = None


def top1_ids(logits: torch.Tensor) -> torch.Tensor:
    """Class ids along dimension 1 (the first of tied maxima; ``max`` is ~3x faster than ``argmax`` on NCHW)."""
    return logits.max(1).indices


def _output(value: torch.Tensor, logits: bool) -> Output:
    return Output(value, logits, top1_ids(value) if logits else None)


def _tensors(out: Any) -> tuple:
    """``(tensors, named_logits)`` of a model's return value (a tensor, list, dict or HF ``ModelOutput``)."""
    if isinstance(out, torch.Tensor):
        return [out], False
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return [logits], True
    values = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, (list, tuple)) else []
    values = [v for v in values if isinstance(v, torch.Tensor)]
    if not values:
        raise UserError(f"the model returns {type(out).__name__}; accuracy needs tensors (logits, or a list of them)")
    return values, False


def model_outputs(out: Any, task: str) -> List[Output]:
    """What ``model(...)`` returned, as :class:`Output`\\ s (see the module docstring).

    >>> [tuple(o.value.shape) for o in model_outputs(torch.zeros(2, 5, 7), "language-model")]
    [(2, 7, 5)]
    """
    values, named = _tensors(out)
    outputs = []
    for v in values:
        if v.dim() == 3 and (named or task == "language-model"):
            outputs.append(_output(v.transpose(1, 2), True))
        else:
            outputs.append(_output(v, v.dim() in (2, 4) and v.is_floating_point()))
    return outputs


def headline_metric(task: str, outputs: List[Output]) -> str:
    """The metric a result is summarised by: the task's, or for unlabelled data ``fidelity_top1``
    (logits) or ``snr_db``."""
    if task == "none" and not outputs[-1].logits:
        return "snr_db"
    return HEADLINE[task]


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


def _resized(logits: torch.Tensor, size) -> torch.Tensor:
    """Segmentation logits at the labels' ``H x W`` (bilinear), as the float and simulated model both are."""
    if logits.dim() == 4 and tuple(logits.shape[-2:]) != tuple(size):
        return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)
    return logits


# --------------------------------------------------------------------------- against labels
class Tally:
    """The task's metrics against the labels, added batch by batch.

    >>> t = Tally("classification", 3)
    >>> t.add(torch.tensor([[2., 1, 0], [0, 1, 2], [0, 1, 2]]), torch.tensor([0, 2, 0]))
    >>> t.values()
    {'top1': 0.6666666666666666}
    """

    def __init__(self, task: str, classes: Optional[int]):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task, self.classes = task, classes
        self.confusion: Optional[torch.Tensor] = None
        self.count = self.correct1 = self.correct5 = 0
        self.nll = 0.0

    def add(self, logits: torch.Tensor, labels: torch.Tensor, pred: Optional[torch.Tensor] = None) -> None:
        """One batch: ``logits`` ``(N, C, ...)`` (class dimension 1), ``labels`` ``(N, ...)``; ``pred`` the
        logits' top-1 ids where already known."""
        if pred is None or pred.shape != labels.shape:
            pred = top1_ids(_resized(logits, labels.shape[-2:]))
        if self.task == "segmentation":
            conf = confusion_matrix(pred, labels, self.classes)
            self.confusion = conf if self.confusion is None else self.confusion + conf
            return
        if self.task == "none":
            return
        labels = labels.long()
        self.count += labels.numel()
        self.correct1 += int((pred == labels).sum())
        if self.task == "language-model":
            self.nll += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        elif logits.shape[1] > 5:
            top5 = logits.topk(5, dim=1).indices
            self.correct5 += int((top5 == labels.unsqueeze(1)).any(1).sum())

    def values(self) -> Dict[str, float]:
        """Metric name -> value (empty for ``none``)."""
        if self.task == "segmentation":
            return {"miou": miou(self.confusion) if self.confusion is not None else 0.0}
        if self.task == "none" or not self.count:
            return {}
        top1 = self.correct1 / self.count
        if self.task == "language-model":
            return {"perplexity": math.exp(min(self.nll / self.count, 700.0)), "next_token_top1": top1}
        out = {"top1": top1}
        if self.classes is not None and self.classes > 5:
            out["top5"] = self.correct5 / self.count
        return out


def task_loss(logits: torch.Tensor, labels: torch.Tensor, task: str) -> torch.Tensor:
    """Cross-entropy of ``logits`` (class dimension 1) against the labels the task's metric reads."""
    return F.cross_entropy(logits, labels.long(), ignore_index=label_ignore_index(task))


# --------------------------------------------------------------------------- against the float model
class FidelityTally:
    """The simulated model's outputs against the float model's on the same inputs (no labels).

    >>> f = FidelityTally(segmentation_classes=None)
    >>> ref = Output(torch.tensor([[1., 0], [0, 1]]), True)
    >>> f.add(Output(torch.tensor([[1., 0.1], [0.6, 0.5]]), True), ref)   # decisions 0, 0 against 0, 1
    >>> v = f.values(); v["fidelity_top1"], round(v["snr_db"], 2)
    (0.5, 5.09)
    """

    def __init__(self, segmentation_classes: Optional[int] = None):
        self.classes = segmentation_classes
        self.agree = self.count = 0
        self.signal = self.error = 0.0
        self.confusion: Optional[torch.Tensor] = None
        self.logits = True

    def add(self, sim: Output, ref: Output) -> None:
        s, f = sim.value.float(), ref.value.float()
        if s.shape != f.shape:
            raise RuntimeError(f"the simulated model's output has shape {tuple(s.shape)}, the float model's "
                               f"{tuple(f.shape)}")
        self.signal += float(f.square().sum())
        self.error += float((s - f).square().sum())
        self.logits = self.logits and ref.logits
        if not ref.logits:
            return
        ps = sim.pred if sim.pred is not None else top1_ids(s)
        pf = ref.pred if ref.pred is not None else top1_ids(f)
        self.agree += int((ps == pf).sum())
        self.count += pf.numel()
        if self.classes is not None:
            conf = confusion_matrix(ps, pf, self.classes, ignore_index=None)
            self.confusion = conf if self.confusion is None else self.confusion + conf

    def values(self) -> Dict[str, float]:
        out: Dict[str, float] = {}
        if self.logits and self.count:
            out["fidelity_top1"] = self.agree / self.count
        if self.confusion is not None:
            out["fidelity_miou"] = miou(self.confusion)
        out["snr_db"] = _snr_db(self.signal, self.error)
        out["relative_error"] = math.sqrt(self.error / self.signal) if self.signal > 0 else 0.0
        return out


#: The SNR reported for outputs the simulation reproduces exactly (no error at all).
EXACT_SNR_DB = 200.0


def _snr_db(signal: float, error: float) -> float:
    if error <= 0:
        return EXACT_SNR_DB
    if signal <= 0:
        return -EXACT_SNR_DB
    return min(EXACT_SNR_DB, 10 * math.log10(signal / error))


def unigram_perplexity(train: torch.Tensor, test: torch.Tensor, vocab: int) -> float:
    """Perplexity on ``test`` tokens of the unigram model of ``train`` (token frequencies, add-one smoothed):
    the baseline a language model must beat.

    >>> unigram_perplexity(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1]), 2)   # p = 1/2 each
    2.0
    """
    counts = torch.bincount(train.reshape(-1).long(), minlength=vocab).double() + 1
    logp = (counts / counts.sum()).log()
    return float(torch.exp(-logp[test.reshape(-1).long()].mean()))
