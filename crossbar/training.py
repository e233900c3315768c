"""Training for the crossbar accuracy experiments: float and hardware-aware (HWA), any zoo model.

:func:`train` fits ``model`` on the training split of a ``--data`` set (:mod:`.data`) and scores it
on the held-out split; ``graphcost train`` is its command line and :func:`save_checkpoint` writes
the result atomically (state dict + a JSON file of how it was made) for ``load_weights``, which
reads it with ``weights_only=True``.

The loss is the ItNet paper's Eq. 1 (Pfeil, Sec. II-B) over the outputs ``m_n`` of an anytime
model, ``L = sum_n a_n CE(m_n, labels) / sum_n a_n`` (``a_n = 1`` by default); a model with one
output is the plain cross-entropy. Segmentation labels of 255 are ignored. The optimiser follows
the paper: Adam (beta 0.9 / 0.999), the learning rate multiplied by 0.1 after 70 % and 85 % of
the steps. Segmentation trains on random square crops (``crop``, default 64, a multiple of 16 so
ItNet's scales divide it) with random horizontal flips and evaluates at full size; classification
trains on whole images. Every random draw (initialisation, order, crops, flips, HWA noise) comes
from ``seed``.

``hwa`` (a :class:`~graphcost.crossbar.sim.hwa.HWASpec`) trains hardware-aware: the forward runs
the simulator's analog layers in their differentiable mode (weight noise every batch, output noise
and weight clipping if the spec has them, DAC / ADC with straight-through estimators; :mod:`.sim.hwa`),
the backward updates the model's own parameters.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from graphcost.errors import UserError, first_line

from .accuracy import confusion_matrix, miou
from .adaptive import ponder_term
from .data import IGNORE_INDEX, SegmentationSet, open_dataset

__all__ = ["train", "TrainResult", "multi_output_loss", "evaluate", "save_checkpoint", "check_model_fits_data",
           "DEFAULT_CROP", "as_outputs"]

#: Side of the square random training crop of segmentation sets (ItNet's scales need a multiple of 16).
DEFAULT_CROP = 64
EVAL_BATCH = 64


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: the metric per output on the held-out split and the loss per epoch."""

    task: str                           # "classification" | "segmentation"
    metric: str                         # "top1" | "miou"
    per_output: Tuple[float, ...]       # held-out metric per output (the last is the headline)
    loss_per_epoch: Tuple[float, ...]
    seconds: float
    config: Dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return self.per_output[-1]

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out[self.metric] = self.score
        return out


def as_outputs(out) -> List[torch.Tensor]:
    """A model's return value as a list of logit tensors (one per anytime output)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return list(out.values())
    return list(out)


def multi_output_loss(outputs: Sequence[torch.Tensor], labels: torch.Tensor,
                      weights: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Eq. 1 of the ItNet paper: ``sum_n a_n CE(m_n) / sum_n a_n`` (pixels labelled 255 ignored).

    >>> logits = [torch.zeros(2, 3), torch.tensor([[9., 0, 0], [0, 9., 0]])]
    >>> round(float(multi_output_loss(logits, torch.tensor([0, 1]), [1, 0])), 4)   # only m_1: ln 3
    1.0986
    """
    a = list(weights) if weights is not None else [1.0] * len(outputs)
    if len(a) != len(outputs):
        raise UserError(f"{len(a)} loss weights for {len(outputs)} outputs; give one a_n per output")
    loss = sum(w * F.cross_entropy(o, labels, ignore_index=IGNORE_INDEX) for w, o in zip(a, outputs) if w)
    return loss / sum(a)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, classes: int) -> List[float]:
    """Per output: top-1 accuracy (labels ``(S,)``) or dataset mIoU (labels ``(S, H, W)``), eval mode."""
    model.eval()
    totals: Optional[list] = None
    with torch.inference_mode():
        for s in range(0, images.shape[0], EVAL_BATCH):
            outs = as_outputs(model(images[s:s + EVAL_BATCH]))
            y = labels[s:s + EVAL_BATCH]
            if y.dim() == 1:
                batch = [(o.argmax(1) == y).sum() for o in outs]
            else:
                batch = [confusion_matrix(o.argmax(1), y, classes) for o in outs]
            totals = batch if totals is None else [a + b for a, b in zip(totals, batch)]
    if labels.dim() == 1:
        return [float(t) / labels.shape[0] for t in totals]
    return [miou(c) for c in totals]


def check_model_fits_data(model: nn.Module, dataset: SegmentationSet) -> None:
    """One float forward of one sample: the model must return logits of the data's task and classes.

    Raises :class:`UserError` (before any training) when it does not, e.g. the digits data on a
    segmentation model.
    """
    image, label = dataset[0]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outs = as_outputs(model(image.unsqueeze(0)))
    except RuntimeError as exc:
        raise UserError(f"the model cannot run on the {dataset.name} data's images of shape {tuple(image.shape)} "
                        f"({first_line(exc)[:120]}); pick a model built for that data") from None
    finally:
        model.train(was_training)
    want = 2 if dataset.task == "classification" else 4
    if not outs or any(o.dim() != want for o in outs):
        shape = tuple(outs[-1].shape) if outs else ()
        raise UserError(f"the {dataset.name} data is a {dataset.task} set but the model returns shape {shape}; "
                        f"pick a {dataset.task} model")
    if int(outs[-1].shape[1]) != dataset.classes:
        raise UserError(f"the model predicts {int(outs[-1].shape[1])} classes but {dataset.name} has "
                        f"{dataset.classes}; build it with classes={dataset.classes}")


def _batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, crop: Optional[int],
             gen: torch.Generator):
    """One epoch of shuffled batches; segmentation batches are random crops, flipped half the time."""
    n = images.shape[0]
    order = torch.randperm(n, generator=gen)
    for b in range(max(1, n // batch_size)):
        idx = order[b * batch_size:(b + 1) * batch_size]
        x, y = images[idx], labels[idx]
        if y.dim() == 3:
            H, W = x.shape[-2:]
            ch, cw = min(crop or H, H), min(crop or W, W)
            y0 = int(torch.randint(0, H - ch + 1, (), generator=gen))
            x0 = int(torch.randint(0, W - cw + 1, (), generator=gen))
            x, y = x[..., y0:y0 + ch, x0:x0 + cw], y[..., y0:y0 + ch, x0:x0 + cw]
            if bool(torch.rand((), generator=gen) < 0.5):
                x, y = x.flip(-1), y.flip(-1)
        yield x, y


def train(model: nn.Module, data: str, *, hwa=None, epochs: int = 10, lr: float = 1e-3, batch_size: int = 32,
          seed: int = 0, crop: Optional[int] = DEFAULT_CROP, train_samples: Optional[int] = None,
          eval_samples: Optional[int] = None, loss_weights: Optional[Sequence[float]] = None,
          progress: Optional[Callable[[int, int], None]] = None,
          on_epoch: Optional[Callable[[int, int, float], None]] = None, ponder: float = 0.0) -> TrainResult:
    """Train ``model`` in place on the training split of ``data``; score it on the held-out split.

    Parameters
    ----------
    model : the network (its current weights are the starting point: load ``--init`` before).
    data : ``"synthetic"``, ``"digits"``, ``"camvid:PATH"`` or ``"cityscapes:PATH"``.
    hwa : a :class:`~graphcost.crossbar.sim.hwa.HWASpec` to train hardware-aware, or ``None`` (float).
    epochs, lr, batch_size, seed, crop, loss_weights : see the module docstring.
    train_samples, eval_samples : use only the first N images of each split (``None``: all; the
        synthetic set has 512 training images by default).
    progress : called with ``(steps done, total steps)``; on_epoch with ``(epoch, epochs, mean loss)``.
    ponder : weight of the ACT ponder cost ``N + R`` (Leroux et al.; :func:`.adaptive.ponder_term`)
        added to the loss of a model with halting stages (0: none).

    Returns
    -------
    TrainResult

    Raises
    ------
    UserError
        Bad numbers, data the model does not fit, or ``hwa`` on a model without analog layers —
        all before the first step.
    """
    if epochs < 1 or batch_size < 1 or not (lr > 0 and math.isfinite(lr)):
        raise UserError(f"training needs epochs >= 1, batch size >= 1 and a positive learning rate, got "
                        f"{epochs}, {batch_size}, {lr}")
    net = model
    if hwa is not None:
        from .sim.hwa import hwa_model

        net = hwa_model(model, hwa, seed=seed)  # shares model's parameters; raises UserError without analog layers
    train_set = open_dataset(data, train_samples, split="train")
    test_set = open_dataset(data, eval_samples, split="test")
    check_model_fits_data(model, train_set)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels = train_set.tensors()
    t0 = time.perf_counter()
    with ponder_term(model, ponder) as extra_loss:
        losses = _fit(net, model.parameters(), hwa is not None, images, labels, epochs=epochs, lr=lr,
                      batch_size=batch_size, crop=crop, gen=gen, loss_weights=loss_weights, progress=progress,
                      on_epoch=on_epoch, extra_loss=extra_loss)
    test_images, test_labels = test_set.tensors()
    per_output = evaluate(model, test_images, test_labels, test_set.classes)
    config = {"data": data, "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
              "crop": crop if train_set.task == "segmentation" else None, "train_images": int(images.shape[0]),
              "eval_images": int(test_images.shape[0]), "hwa": hwa.to_dict() if hwa is not None else None,
              "loss_weights": list(loss_weights) if loss_weights is not None else "a_n = 1",
              "schedule": "Adam, lr x0.1 after 70% and 85% of the steps", "torch": torch.__version__}
    if ponder:
        config["ponder"] = ponder
    metric = "top1" if train_set.task == "classification" else "miou"
    return TrainResult(train_set.task, metric, tuple(per_output), tuple(losses),
                       round(time.perf_counter() - t0, 1), config)


def _fit(net: nn.Module, parameters, hwa: bool, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
         lr: float, batch_size: int, crop: Optional[int], gen: torch.Generator,
         loss_weights: Optional[Sequence[float]], progress, on_epoch, extra_loss=None) -> List[float]:
    """The optimisation loop (Adam, lr x0.1 after 70 % and 85 % of the steps, Eq. 1 loss); mean loss per epoch.
    ``net`` is the model itself or its HWA wrapper (sharing ``parameters``), re-clipped after each step."""
    steps_per_epoch = max(1, images.shape[0] // batch_size)
    total = epochs * steps_per_epoch
    opt = torch.optim.Adam(parameters, lr=lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(0.7 * total), int(0.85 * total)], gamma=0.1)
    losses: List[float] = []
    step = 0
    for epoch in range(epochs):
        net.train()
        running = 0.0
        for x, y in _batches(images, labels, batch_size, crop, gen):
            loss = multi_output_loss(as_outputs(net(x)), y, loss_weights)
            if extra_loss is not None:  # e.g. the ACT ponder cost of the same forward
                loss = loss + extra_loss()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if hwa:
                net.after_step()
            running += float(loss.detach())
            step += 1
            if progress is not None:
                progress(step, total)
        losses.append(running / steps_per_epoch)
        if on_epoch is not None:
            on_epoch(epoch + 1, epochs, losses[-1])
    return losses


def save_checkpoint(model: nn.Module, path: str, meta: Optional[Dict[str, Any]] = None) -> None:
    """Write ``model``'s state dict (float32) to ``path`` and ``meta`` as JSON beside it, each atomically."""
    from graphcost.fileio import write_atomic

    state = {k: (v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, lambda tmp: torch.save(state, tmp))
    if meta is not None:
        text = json.dumps(meta, indent=2) + "\n"
        write_atomic(os.path.splitext(path)[0] + ".json", lambda tmp: open(tmp, "w").write(text))
