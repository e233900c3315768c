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

from .adaptive import halting_terms
from .data import IGNORE_INDEX, SegmentationSet, Samples, parse_data
from .metrics import HEADLINE, Tally, label_ignore_index, model_outputs

__all__ = ["train", "TrainResult", "multi_output_loss", "evaluate", "evaluate_samples", "save_checkpoint",
           "check_model_fits_data", "DEFAULT_CROP", "as_outputs"]

#: Side of the square random training crop of segmentation sets (ItNet's scales need a multiple of 16).
DEFAULT_CROP = 64
EVAL_BATCH = 64
#: The model's inputs when none are given: one image (the image sets other than imagefolder keep their own size).
DEFAULT_INPUTS = (1, 3, 8, 8)


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: the headline metric per output on the held-out split, every metric
    of the last output, and the loss per epoch."""

    task: str                           # "classification" | "segmentation" | "language-model"
    metric: str                         # "top1" | "miou" | "perplexity"
    per_output: Tuple[float, ...]       # held-out metric per output (the last is the headline)
    loss_per_epoch: Tuple[float, ...]
    seconds: float
    config: Dict[str, Any] = field(default_factory=dict)
    metrics: Dict[str, float] = field(default_factory=dict)  # every metric of the last output

    @property
    def score(self) -> float:
        return self.per_output[-1]

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out.update(self.metrics)
        out[self.metric] = self.score
        return out


def as_outputs(out, task: str = "segmentation") -> List[torch.Tensor]:
    """A model's return value as a list of logit tensors, class dimension 1 (one per anytime output)."""
    return [o.value for o in model_outputs(out, task)]


def multi_output_loss(outputs: Sequence[torch.Tensor], labels: torch.Tensor,
                      weights: Optional[Sequence[float]] = None, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Eq. 1 of the ItNet paper: ``sum_n a_n CE(m_n) / sum_n a_n`` (labels equal to ``ignore_index`` ignored).

    >>> logits = [torch.zeros(2, 3), torch.tensor([[9., 0, 0], [0, 9., 0]])]
    >>> round(float(multi_output_loss(logits, torch.tensor([0, 1]), [1, 0])), 4)   # only m_1: ln 3
    1.0986
    """
    a = list(weights) if weights is not None else [1.0] * len(outputs)
    if len(a) != len(outputs):
        raise UserError(f"{len(a)} loss weights for {len(outputs)} outputs; give one a_n per output")
    loss = sum(w * F.cross_entropy(o, labels, ignore_index=ignore_index) for w, o in zip(a, outputs) if w)
    return loss / sum(a)


def evaluate_samples(model: nn.Module, samples: Samples) -> List[Dict[str, float]]:
    """Per output: the task's metrics (:class:`~.metrics.Tally`) on ``samples``, eval mode."""
    model.eval()
    tallies: Optional[List[Tally]] = None
    with torch.inference_mode():
        for batch in samples.batches(EVAL_BATCH):
            outs = as_outputs(model(*batch.args, **batch.kwargs), samples.task)
            if tallies is None:
                tallies = [Tally(samples.task, samples.classes) for _ in outs]
            for tally, logits in zip(tallies, outs):
                tally.add(logits, batch.labels)
    return [t.values() for t in tallies or []]


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, classes: int) -> List[float]:
    """Per output: top-1 accuracy (labels ``(S,)``) or dataset mIoU (labels ``(S, H, W)``), eval mode."""
    task = "classification" if labels.dim() == 1 else "segmentation"
    values = evaluate_samples(model, Samples((images,), {}, labels, task, classes))
    return [v[HEADLINE[task]] for v in values]


def check_model_fits_data(model: nn.Module, dataset: SegmentationSet) -> None:
    """One float forward of one sample: the model must return logits of the data's task and classes.

    Raises :class:`UserError` (before any training) when it does not, e.g. the digits data on a
    segmentation model.
    """
    image, label = dataset[0]
    _check_fits(model, Samples((image.unsqueeze(0),), {}, label.unsqueeze(0), dataset.task, dataset.classes),
                dataset.name)


def _check_fits(model: nn.Module, samples: Samples, name: str) -> None:
    from .accuracy import check_fits

    was_training = model.training
    model.eval()
    first = samples.take(slice(0, 1))
    try:
        with torch.no_grad():
            outs = model_outputs(model(*first.args, **first.kwargs), samples.task)
    except (RuntimeError, IndexError) as exc:
        shape = tuple((first.args or tuple(first.kwargs.values()))[0].shape[1:])
        raise UserError(f"the model cannot run on the {name} data's inputs of shape {shape} "
                        f"({first_line(exc)[:120]}); pick a model built for that data") from None
    finally:
        model.train(was_training)
    check_fits(name, samples.task, outs, samples.classes)


def _batches(samples: Samples, batch_size: int, crop: Optional[int], gen: torch.Generator):
    """One epoch of shuffled batches; segmentation batches are random crops, flipped half the time."""
    n = len(samples)
    order = torch.randperm(n, generator=gen)
    for b in range(max(1, n // batch_size)):
        batch = samples.take(order[b * batch_size:(b + 1) * batch_size])
        x, y = batch.args[0] if batch.args else None, batch.labels
        if samples.task == "segmentation":
            H, W = x.shape[-2:]
            ch, cw = min(crop or H, H), min(crop or W, W)
            y0 = int(torch.randint(0, H - ch + 1, (), generator=gen))
            x0 = int(torch.randint(0, W - cw + 1, (), generator=gen))
            x, y = x[..., y0:y0 + ch, x0:x0 + cw], y[..., y0:y0 + ch, x0:x0 + cw]
            if bool(torch.rand((), generator=gen) < 0.5):
                x, y = x.flip(-1), y.flip(-1)
            batch = type(batch)((x,) + batch.args[1:], batch.kwargs, y)
        yield batch


def _run_config(data: str, task: str, *, epochs: int, lr: float, batch_size: int, seed: int, crop: Optional[int],
                train_images: int, eval_images: int, hwa, loss_weights: Optional[Sequence[float]],
                ponder: float, full_depth: float = 0.0) -> Dict[str, Any]:
    """What a training run was given, as the checkpoint's JSON records it (enough to repeat the run)."""
    config = {"data": data, "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
              "crop": crop if task == "segmentation" else None, "train_images": train_images,
              "eval_images": eval_images, "hwa": hwa.to_dict() if hwa is not None else None,
              "loss_weights": list(loss_weights) if loss_weights is not None else "a_n = 1",
              "schedule": "Adam, lr x0.1 after 70% and 85% of the steps", "torch": torch.__version__}
    if ponder:
        config["ponder"] = ponder
    if full_depth:
        config["full_depth_weight"] = full_depth
    return config


def train(model: nn.Module, data: str, *, hwa=None, epochs: int = 10, lr: float = 1e-3, batch_size: int = 32,
          seed: int = 0, crop: Optional[int] = DEFAULT_CROP, train_samples: Optional[int] = None,
          eval_samples: Optional[int] = None, loss_weights: Optional[Sequence[float]] = None,
          model_inputs: Any = None, progress: Optional[Callable[[int, int], None]] = None,
          on_epoch: Optional[Callable[[int, int, float], None]] = None, ponder: float = 0.0,
          full_depth: float = 0.0) -> TrainResult:
    """Train ``model`` in place on the training split of ``data``; score it on the held-out split.

    Parameters
    ----------
    model : the network (its current weights are the starting point: load ``--init`` before).
    data : a labelled ``--data`` form: ``"synthetic"``, ``"digits"``, ``"camvid:PATH"``,
        ``"cityscapes:PATH"``, ``"imagefolder:PATH"``, ``"text:FILE"`` or ``"pydoc"``.
    hwa : a :class:`~graphcost.crossbar.sim.hwa.HWASpec` to train hardware-aware, or ``None`` (float).
    epochs, lr, batch_size, seed, crop, loss_weights : see the module docstring.
    train_samples, eval_samples : the first N samples of each split (``None``: all; synthetic: 512 to train).
    model_inputs : the model's input specs (:attr:`graphcost.resolve.BuiltModel.call_inputs`; ``None``: an image).
    progress : called with ``(steps done, total steps)``; on_epoch with ``(epoch, epochs, mean loss)``.
    ponder, full_depth : for a model with halting stages, the weights of the ACT ponder cost ``N + R``
        and of the loss of the same batch run at every iteration, added to the loss (:func:`.adaptive.halting_terms`).

    Returns
    -------
    TrainResult

    Raises
    ------
    UserError
        Bad numbers, unlabelled data, data the model does not fit, or ``hwa`` on a model without
        analog layers — all before the first step.
    """
    if epochs < 1 or batch_size < 1 or not (lr > 0 and math.isfinite(lr)):
        raise UserError(f"training needs epochs >= 1, batch size >= 1 and a positive learning rate, got "
                        f"{epochs}, {batch_size}, {lr}")
    source = parse_data(data)
    if source.task == "none":
        raise UserError(f"{data} data has no labels to train on; pick a labelled data set")
    net = model
    if hwa is not None:
        from .sim.hwa import hwa_model

        net = hwa_model(model, hwa, seed=seed)  # shares model's parameters; raises UserError without analog layers
    inputs = model_inputs if model_inputs is not None else DEFAULT_INPUTS
    _check_fits(model, source.load(inputs, 1, split="train", seed=seed), source.scheme)  # before any long work
    train_set = source.load(inputs, train_samples, split="train", seed=seed)
    test_set = source.load(inputs, eval_samples, split="test", seed=seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    with halting_terms(model, ponder, full_depth) as extra_loss:
        losses = _fit(net, model.parameters(), hwa is not None, train_set, epochs=epochs, lr=lr,
                      batch_size=batch_size, crop=crop, gen=gen, loss_weights=loss_weights, progress=progress,
                      on_epoch=on_epoch, extra_loss=extra_loss)
    per_output = evaluate_samples(model, test_set)
    config = _run_config(data, source.task, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, crop=crop,
                         train_images=len(train_set), eval_images=len(test_set), hwa=hwa,
                         loss_weights=loss_weights, ponder=ponder, full_depth=full_depth)
    metric = HEADLINE[source.task]
    return TrainResult(source.task, metric, tuple(v[metric] for v in per_output), tuple(losses),
                       round(time.perf_counter() - t0, 1), config, dict(per_output[-1]))


def _fit(net: nn.Module, parameters, hwa: bool, samples: Samples, *, epochs: int,
         lr: float, batch_size: int, crop: Optional[int], gen: torch.Generator,
         loss_weights: Optional[Sequence[float]], progress, on_epoch, extra_loss=None) -> List[float]:
    """The optimisation loop (Adam, lr x0.1 after 70 % and 85 % of the steps, Eq. 1 loss); mean loss per epoch.
    ``net`` is the model itself or its HWA wrapper (sharing ``parameters``), re-clipped after each step."""
    steps_per_epoch = max(1, len(samples) // batch_size)
    total = epochs * steps_per_epoch
    opt = torch.optim.Adam(parameters, lr=lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(0.7 * total), int(0.85 * total)], gamma=0.1)
    ignore = label_ignore_index(samples.task)
    losses: List[float] = []
    step = 0
    for epoch in range(epochs):
        net.train()
        running = 0.0
        for batch in _batches(samples, batch_size, crop, gen):
            def task_loss(batch=batch) -> torch.Tensor:
                outs = as_outputs(net(*batch.args, **batch.kwargs), samples.task)
                return multi_output_loss(outs, batch.labels, loss_weights, ignore)

            loss = task_loss()
            if extra_loss is not None:  # e.g. the ACT ponder cost of the same forward (+ a forward at full depth)
                loss = loss + extra_loss(task_loss)
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
