"""Adaptive inference on real data: what each input costs a halting or early-exit deployment.

Two kinds of network adapt their cost to the input:

* **Halting** (Leroux et al.'s iterative ResNets, an ACT unit per stage): a stage stops iterating
  once the cumulative halting score reaches ``1 - eps`` (Algorithm 1 of the paper, after Graves'
  ACT). A halting stage is any module with the *halting-stage protocol*: an int ``iterations``
  (the maximum), a float ``halting_threshold`` (``1 - eps``), ``halting_units()`` (the modules
  whose ``N x 1`` outputs are the halting scores, called once per iteration in order; the last
  iteration's is not needed) and ``iteration_entry(i)`` (the module iteration ``i`` starts with).
  Iterations used: ``n = 1 + #{i < L : c_i < 1 - eps}``, ``c_i`` the cumulative score, computed
  with the same float32 operations as the model's masks, so it is the iteration the masked
  forward stops adding states at.
* **Early exit** (ItNet's anytime outputs): the first output whose confidence passes the policy
  (:class:`ExitPolicy`: ``confidence=T`` on the max softmax, its mean over pixels for
  segmentation; ``output=N`` a fixed exit).

:func:`observe` runs batched eager forwards (hooks on the halting units collect the scores of the
same forward that gives the predictions); :func:`sample_costs` turns each sample's iterations or
exit into costs from ONE trace (:mod:`graphcost.passes.adaptive`: the calls of every iteration,
of every exit), and, with a mapping on a chip, into energy and latency (the arrays are programmed
once; a skipped iteration is skipped MVMs). :func:`observe_at_maximum` runs a halting model with
halting switched off (:data:`NEVER_HALT`): the fixed-cost deployment its accuracy is compared with.
:func:`ponder_cost` is the paper's training term
``N + R`` from the same halting scores. The command-line job is :mod:`.adaptive_run`.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from graphcost.errors import UserError

__all__ = ["ExitPolicy", "parse_exit", "HaltingStage", "halting_stages", "HaltingRecorder", "iterations_used",
           "NEVER_HALT", "halting_thresholds", "observe_at_maximum",
           "ponder_cost", "Observations", "observe", "SampleCosts", "CostModel", "cost_model", "sample_costs",
           "summary", "AdaptiveResult", "adaptive_result", "EXIT_KINDS"]

#: The forms of ``--exit``.
EXIT_KINDS = ("confidence=T", "output=N")


# --------------------------------------------------------------------------- policies
@dataclass(frozen=True)
class ExitPolicy:
    """When an early-exit network stops: ``kind`` ``"confidence"`` (``value`` a threshold in (0, 1])
    or ``"output"`` (``value`` the output index, from 1)."""

    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}={int(self.value) if self.kind == 'output' else self.value:g}"


def parse_exit(text: str) -> ExitPolicy:
    """``"confidence=T"`` (0 < T <= 1) or ``"output=N"`` (N >= 1) -> :class:`ExitPolicy`.

    >>> parse_exit("confidence=0.9"), parse_exit("output=3").value
    (ExitPolicy(kind='confidence', value=0.9), 3)
    """
    kind, sep, value = (text or "").partition("=")
    kind = kind.strip()
    if sep and kind == "confidence":
        try:
            threshold = float(value)
        except ValueError:
            threshold = float("nan")
        if not 0 < threshold <= 1:
            raise UserError(f"a confidence threshold is in (0, 1], got {value.strip()!r}")
        return ExitPolicy("confidence", threshold)
    if sep and kind == "output":
        try:
            index = int(value)
        except ValueError:
            index = 0
        if index < 1:
            raise UserError(f"output=N counts outputs from 1, got {value.strip()!r}")
        return ExitPolicy("output", index)
    raise UserError(f"an exit policy is {' or '.join(EXIT_KINDS)}, got {text!r}")


# --------------------------------------------------------------------------- halting
@dataclass(frozen=True)
class HaltingStage:
    """A module following the halting-stage protocol, with its module path and its entries' paths."""

    path: str
    module: nn.Module
    entries: Tuple[str, ...]

    @property
    def iterations(self) -> int:
        return int(self.module.iterations)

    @property
    def threshold(self) -> float:
        return float(self.module.halting_threshold)


def _is_halting(module: nn.Module) -> bool:
    return all(hasattr(module, a) for a in ("iterations", "halting_threshold", "halting_units", "iteration_entry"))


def halting_stages(model: nn.Module) -> List[HaltingStage]:
    """The halting stages of ``model`` (module docstring), in module order; ``[]`` if none."""
    paths = {id(m): name for name, m in model.named_modules()}
    return [HaltingStage(name, m, tuple(paths[id(m.iteration_entry(i))] for i in range(int(m.iterations))))
            for name, m in model.named_modules() if _is_halting(m)]


#: The ACT threshold that never halts: every iteration runs and the stage output is the ACT-weighted sum of
#: all of them (the halting scores, the remainder ``1 - c_{L-1}`` at the last): the model "run at the maximum".
NEVER_HALT = math.inf


@contextlib.contextmanager
def halting_thresholds(stages: Sequence[HaltingStage], threshold: float) -> Iterator[None]:
    """Every halting stage's ``halting_threshold`` set to ``threshold`` inside the block, restored after
    (:data:`NEVER_HALT`: run every iteration)."""
    saved = [st.module.halting_threshold for st in stages]
    try:
        for st in stages:
            st.module.halting_threshold = threshold
        yield
    finally:
        for st, value in zip(stages, saved):
            st.module.halting_threshold = value


class HaltingRecorder(contextlib.AbstractContextManager):
    """Forward hooks on every halting unit: ``scores[stage]`` lists the halting scores (``N x 1``) of
    the last forward, in call order. Removed on exit. ``detach=False`` keeps them differentiable
    (training with the ponder cost)."""

    def __init__(self, stages: Sequence[HaltingStage], detach: bool = True):
        self.stages = list(stages)
        self.detach = detach
        self.scores: List[List[torch.Tensor]] = [[] for _ in self.stages]
        self._handles: list = []
        for k, stage in enumerate(self.stages):
            for unit in stage.module.halting_units():
                self._handles.append(unit.register_forward_hook(self._hook(k)))

    def _hook(self, k: int):
        def record(module, args, output):
            self.scores[k].append(output.detach() if self.detach else output)
        return record

    def reset(self) -> None:
        self.scores = [[] for _ in self.stages]

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _cumulative(scores: Sequence[torch.Tensor], iterations: int) -> List[torch.Tensor]:
    """``c_1 .. c_{L-1}`` summed one by one, as the model's forward sums them (same rounding)."""
    cums: List[torch.Tensor] = []
    for h in list(scores)[: iterations - 1]:
        cums.append(h.reshape(-1) if not cums else cums[-1] + h.reshape(-1))
    return cums


def iterations_used(scores: Sequence[torch.Tensor], iterations: int, threshold: float) -> torch.Tensor:
    """Per sample, the iterations an ACT stage of ``iterations`` runs: the first ``n`` with
    ``c_n >= threshold``, else ``iterations`` (``scores``: the halting scores in call order).

    >>> h = [torch.tensor([[0.5], [0.2], [0.995]])] * 2
    >>> iterations_used(h, 3, 0.99).tolist()
    [2, 3, 1]
    """
    cums = _cumulative(scores, iterations)
    if len(cums) < iterations - 1:
        raise ValueError(f"{len(cums)} halting scores for a stage of {iterations} iterations (need {iterations - 1})")
    used = torch.ones_like(cums[0], dtype=torch.long) if cums else torch.ones(1, dtype=torch.long)
    for c in cums:
        used = used + torch.lt(c, threshold).long()
    return used


def ponder_cost(scores: Sequence[torch.Tensor], iterations: int, threshold: float) -> torch.Tensor:
    """The ACT ponder cost ``N + R`` per sample (Graves 2016; Leroux et al.): iterations used plus
    the remainder ``R = 1 - c_{N-1}``; differentiable in the scores through ``R``.

    >>> h = [torch.tensor([[0.5], [0.2]])] * 2
    >>> [round(c, 6) for c in ponder_cost(h, 3, 0.99).tolist()]   # halts at 2 (R = 0.5); runs all 3 (R = 1 - 0.4)
    [2.5, 3.6]
    """
    cums = _cumulative(scores, iterations)
    used = iterations_used(scores, iterations, threshold).to(cums[0].dtype if cums else torch.float32)
    before = sum(h.reshape(-1) * torch.lt(c, threshold).type_as(c) for h, c in zip(scores, cums)) if cums else 0.0
    return used + (1.0 - before)


# --------------------------------------------------------------------------- observing a dataset
@dataclass(frozen=True)
class Observations:
    """What the eager forwards saw, per sample ``s`` and output ``o`` (plain tensors).

    ``confidence[s, o]``: max softmax (mean over pixels for segmentation); ``correct[s, o]`` (classifiers)
    or ``confusion[s, o]`` (``C x C`` counts, segmentation); ``iterations[s, k]``: iterations used in
    halting stage ``k`` (``None`` without halting stages); ``classes``; ``task``.
    """

    confidence: torch.Tensor
    task: str
    classes: int
    correct: Optional[torch.Tensor] = None
    confusion: Optional[torch.Tensor] = None
    iterations: Optional[torch.Tensor] = None

    @property
    def samples(self) -> int:
        return int(self.confidence.shape[0])

    @property
    def outputs(self) -> int:
        return int(self.confidence.shape[1])

    def score(self, exits: torch.Tensor) -> float:
        """Top-1 (classification) or dataset mIoU (segmentation) when sample ``s`` answers with
        output ``exits[s]`` (0-based)."""
        rows = torch.arange(self.samples)
        if self.task == "classification":
            return float(self.correct[rows, exits].double().mean())
        from .accuracy import miou

        return miou(self.confusion[rows, exits].sum(0))


def _logit_list(out) -> List[torch.Tensor]:
    """A model's return value as its list of logit tensors (one per anytime output)."""
    if isinstance(out, torch.Tensor):
        return [out]
    values = out.values() if isinstance(out, dict) else out
    return [o for o in values if isinstance(o, torch.Tensor)]


def _per_output(logits: torch.Tensor, labels: torch.Tensor, classes: int):
    """``(confidence (B,), correct (B,) or confusion (B, C, C))`` of one output on one batch."""
    if logits.dim() == 2:
        prob = logits.float().softmax(1)
        return prob.max(1).values, prob.argmax(1) == labels, None
    if tuple(logits.shape[-2:]) != tuple(labels.shape[-2:]):
        logits = F.interpolate(logits.float(), size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=False)
    prob = logits.float().softmax(1)
    confidence = prob.max(1).values.flatten(1).mean(1)
    pred = prob.argmax(1).flatten(1)
    target = labels.flatten(1).long()
    keep = (target >= 0) & (target < classes)
    offset = torch.arange(pred.shape[0])[:, None] * classes * classes
    index = (offset + target.clamp(0, classes - 1) * classes + pred)[keep]
    confusion = torch.bincount(index, minlength=pred.shape[0] * classes * classes).view(-1, classes, classes)
    return confidence, None, confusion


def observe(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, classes: int, *, batch_size: int = 64
            ) -> Observations:
    """Batched eager forwards of ``model`` (eval mode, no gradients) over ``images``: confidence and
    correctness (or per-sample confusion) of every output, iterations used in every halting stage."""
    stages = halting_stages(model)
    model.eval()
    conf, correct, confusion, iters = [], [], [], []
    with HaltingRecorder(stages) as recorder, torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            recorder.reset()
            outs = _logit_list(model(images[start:start + batch_size]))
            y = labels[start:start + batch_size]
            parts = [_per_output(o, y, classes) for o in outs]
            conf.append(torch.stack([p[0] for p in parts], 1))
            if parts[0][1] is not None:
                correct.append(torch.stack([p[1] for p in parts], 1))
            else:
                confusion.append(torch.stack([p[2] for p in parts], 1))
            if stages:
                iters.append(torch.stack([iterations_used(recorder.scores[k], st.iterations, st.threshold)
                                          for k, st in enumerate(stages)], 1))
    task = "classification" if correct else "segmentation"
    return Observations(torch.cat(conf), task, classes, torch.cat(correct) if correct else None,
                        torch.cat(confusion) if confusion else None, torch.cat(iters) if iters else None)


def observe_at_maximum(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, classes: int, *,
                       batch_size: int = 64) -> Observations:
    """:func:`observe` with every halting stage run to its maximum iterations (:data:`NEVER_HALT`): the
    fixed-cost deployment of the same model, a forward of its own (its output is not the halted one)."""
    with halting_thresholds(halting_stages(model), NEVER_HALT):
        return observe(model, images, labels, classes, batch_size=batch_size)


def exits_for(observed: Observations, policy: ExitPolicy) -> torch.Tensor:
    """Per sample, the output (0-based) the policy answers with: the first whose confidence reaches the
    threshold (else the last), or the fixed output."""
    if policy.kind == "output":
        if policy.value > observed.outputs:
            raise UserError(f"output={int(policy.value)} but the model has {observed.outputs} outputs")
        return torch.full((observed.samples,), int(policy.value) - 1, dtype=torch.long)
    passed = observed.confidence >= policy.value
    passed[:, -1] = True
    return passed.long().argmax(1)


# --------------------------------------------------------------------------- costs per sample
@dataclass(frozen=True)
class CostModel:
    """Costs of the pieces one trace splits into: per halting stage, what stopping after ``n``
    iterations skips (index ``n - 1``); per output, what exiting there has cost. ``energy`` and
    ``latency_s`` entries are ``None`` without a chip."""

    fixed_macs: int
    fixed_latency_layers: int
    stages: Tuple[str, ...] = ()
    skipped_macs: Tuple[Tuple[int, ...], ...] = ()
    saved_layers: Tuple[Tuple[int, ...], ...] = ()
    skipped_energy_j: Optional[Tuple[Tuple[float, ...], ...]] = None
    saved_s: Optional[Tuple[Tuple[float, ...], ...]] = None
    exit_macs: Tuple[int, ...] = ()
    exit_layers: Tuple[int, ...] = ()
    exit_energy_dynamic_j: Optional[Tuple[float, ...]] = None
    exit_latency_s: Optional[Tuple[float, ...]] = None
    dynamic_j: Optional[float] = None
    leakage_j: Optional[float] = None
    latency_s: Optional[float] = None


@dataclass(frozen=True)
class _Chip:
    """Per weight-layer call (DAG node): energy and finish time; the frame's leakage and latency."""

    energy_j: Dict[str, float]
    finish_s: Dict[str, float]
    leakage_j: float
    latency_s: float
    output_latency_s: Tuple[float, ...]


def _chip(perf, tech) -> Optional[_Chip]:
    if perf is None:
        return None
    from .energy import call_energies_j
    from .perf import call_finish_s

    energies, leak = call_energies_j(perf, tech)
    return _Chip(energies, call_finish_s(perf), leak, perf.latency_s, tuple(o.latency_s for o in perf.outputs))


def _halting_costs(trace, stages: Sequence[HaltingStage], chip: Optional[_Chip]) -> Dict[str, Any]:
    from graphcost.passes.adaptive import loop_stage

    loops = [loop_stage(trace, st.path, st.entries) for st in stages]
    out: Dict[str, Any] = {
        "stages": tuple(st.path for st in stages),
        "skipped_macs": tuple(tuple(loop.macs_skipped(n) for n in range(1, loop.iterations + 1)) for loop in loops),
        "saved_layers": tuple(loop.latency_saved_layers for loop in loops)}
    if chip is not None:
        def energy(calls) -> float:
            return sum(chip.energy_j.get(c, 0.0) for c in calls)

        out["skipped_energy_j"] = tuple(tuple(sum(energy(c) for c in loop.calls[n:]) for n in range(1, loop.iterations + 1))
                                        for loop in loops)
        finish = [[chip.finish_s.get(c[0], 0.0) for c in loop.calls] for loop in loops]
        out["saved_s"] = tuple(tuple(f[-1] - f[n - 1] for n in range(1, len(f) + 1)) for f in finish)
        out["dynamic_j"] = sum(chip.energy_j.values())
    return out


def _exit_costs(trace, cumulative: bool, chip: Optional[_Chip]) -> Dict[str, Any]:
    from graphcost.passes.adaptive import exit_calls
    from graphcost.passes.latency import latency_layers
    from graphcost.passes.macs import macs

    sets = exit_calls(trace, cumulative)
    depth = latency_layers(trace)
    layers = [depth[o] for o in trace.outputs]
    if cumulative:
        layers = list(np.maximum.accumulate(layers))
    out: Dict[str, Any] = {"exit_macs": tuple(macs(trace, s) for s in sets), "exit_layers": tuple(int(v) for v in layers)}
    if chip is not None:
        lat = list(chip.output_latency_s)
        out["exit_latency_s"] = tuple(np.maximum.accumulate(lat)) if cumulative else tuple(lat)
        out["exit_energy_dynamic_j"] = tuple(sum(chip.energy_j.get(c, 0.0) for c in s) for s in sets)
    return out


def cost_model(trace, model: nn.Module, *, cumulative: bool = True, perf=None, tech=None) -> CostModel:
    """The :class:`CostModel` of ``trace`` (``model`` traced at its maximum iterations): halting stages if
    the model has any, else its outputs as exits (``cumulative``: see
    :func:`graphcost.passes.adaptive.exit_calls`); with ``perf`` (its mapping on a chip) and ``tech``,
    energy and latency in seconds too."""
    from graphcost.passes.latency import latency_layers
    from graphcost.passes.macs import macs

    chip = _chip(perf, tech)
    depth = latency_layers(trace)
    base: Dict[str, Any] = {"fixed_macs": macs(trace), "fixed_latency_layers": max(depth.values(), default=0)}
    stages = halting_stages(model)
    extra = _halting_costs(trace, stages, chip) if stages else _exit_costs(trace, cumulative, chip)
    if chip is not None:
        base.update(leakage_j=chip.leakage_j, latency_s=chip.latency_s,
                    dynamic_j=extra.pop("dynamic_j", sum(chip.energy_j.values())))
    return CostModel(**base, **extra)


@dataclass(frozen=True)
class SampleCosts:
    """Per sample (numpy arrays): MACs, conv layers on the longest path; with a chip, energy (J) and
    latency (s)."""

    macs: np.ndarray
    latency_layers: np.ndarray
    energy_j: Optional[np.ndarray] = None
    latency_s: Optional[np.ndarray] = None


def sample_costs(costs: CostModel, *, iterations: Optional[torch.Tensor] = None,
                 exits: Optional[torch.Tensor] = None) -> SampleCosts:
    """Each sample's costs from its iterations per halting stage (``(S, stages)``) or its exit output
    (``(S,)``, 0-based): table look-ups in ``costs``, nothing re-traced."""
    chip = costs.latency_s is not None
    if iterations is not None:
        idx = iterations.long().numpy() - 1
        take = lambda table: sum(np.asarray(table[k])[idx[:, k]] for k in range(len(table)))  # noqa: E731
        macs = costs.fixed_macs - take(costs.skipped_macs)
        layers = costs.fixed_latency_layers - take(costs.saved_layers)
        if not chip:
            return SampleCosts(macs.astype(np.int64), layers.astype(np.int64))
        latency = costs.latency_s - take(costs.saved_s)
        dynamic = costs.dynamic_j - take(costs.skipped_energy_j)
    else:
        idx = exits.long().numpy()
        macs = np.asarray(costs.exit_macs, dtype=np.int64)[idx]
        layers = np.asarray(costs.exit_layers, dtype=np.int64)[idx]
        if not chip:
            return SampleCosts(macs, layers)
        latency = np.asarray(costs.exit_latency_s)[idx]
        dynamic = np.asarray(costs.exit_energy_dynamic_j)[idx]
    share = latency / costs.latency_s if costs.latency_s > 0 else np.ones_like(latency)
    return SampleCosts(np.asarray(macs, dtype=np.int64), np.asarray(layers, dtype=np.int64),
                       dynamic + costs.leakage_j * share, latency)


def summary(values: np.ndarray) -> Dict[str, float]:
    """``{mean, p50, p95, min, max}`` of per-sample values (linear-interpolated percentiles).

    >>> {k: round(v, 9) for k, v in summary(np.array([1, 2, 3, 4])).items()}
    {'mean': 2.5, 'p50': 2.5, 'p95': 3.85, 'min': 1.0, 'max': 4.0}
    """
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)),
            "min": float(v.min()), "max": float(v.max())}


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class AdaptiveResult:
    """Per-sample costs of an adaptive deployment on a data set, their summaries and the accuracy.

    ``iterations`` (halting: per stage, iterations used -> samples) or ``exits`` (output -> samples);
    ``score`` the adaptive deployment's top-1 / mIoU, ``fixed_score`` the fixed-cost run's (``fixed_run`` says
    which: every iteration without halting, or the last output). ``used`` keeps the per-sample iterations ``(S, stages)`` or exits
    ``(S,)`` (1-based) for figures."""

    samples: int
    data: str
    policy: str
    metric: str
    score: float
    fixed_score: float
    fixed_macs: int
    costs: SampleCosts
    iterations: Optional[Dict[str, Dict[str, int]]] = None
    exits: Optional[Dict[str, int]] = None
    used: Optional[np.ndarray] = field(default=None, compare=False)
    fixed_run: str = ""

    @property
    def saving(self) -> float:
        """Share of the fixed cost the adaptive deployment does not spend (mean MACs)."""
        return 1.0 - float(self.costs.macs.mean()) / self.fixed_macs if self.fixed_macs else 0.0

    def line(self) -> str:
        """The table's headline: ``mean 38 % of the fixed cost``."""
        return f"mean {100 * (1 - self.saving):.0f} % of the fixed cost"

    def to_dict(self) -> Dict[str, Any]:
        """The JSON contract ``adaptive: {samples, macs, latency_layers, energy_j, iterations | exits,
        fixed_macs, saving, ...}``."""
        out: Dict[str, Any] = {"samples": self.samples, "data": self.data, "policy": self.policy,
                               "macs": summary(self.costs.macs), "latency_layers": summary(self.costs.latency_layers)}
        if self.costs.energy_j is not None:
            out["energy_j"] = summary(self.costs.energy_j)
            out["latency_s"] = summary(self.costs.latency_s)
        if self.iterations is not None:
            out["iterations"] = self.iterations
        if self.exits is not None:
            out["exits"] = self.exits
        out.update({"fixed_macs": self.fixed_macs, "saving": self.saving, "metric": self.metric,
                    self.metric: self.score, f"fixed_{self.metric}": self.fixed_score, "fixed_run": self.fixed_run})
        return out


def _histogram(values: np.ndarray, top: int) -> Dict[str, int]:
    counts = np.bincount(values, minlength=top + 1)
    return {str(n): int(counts[n]) for n in range(1, top + 1)}


def adaptive_result(observed: Observations, costs: CostModel, stages: Sequence[HaltingStage],
                    policy: Optional[ExitPolicy], data: str, at_maximum: Optional[Observations] = None
                    ) -> AdaptiveResult:
    """Iterations or exits per sample, their costs and the scores, as an :class:`AdaptiveResult`.

    The fixed-cost score is the last output's (early exit) or, for a halting model, that of
    ``at_maximum`` (:func:`observe_at_maximum`: every iteration run; required with ``stages``)."""
    metric = "top1" if observed.task == "classification" else "miou"
    if stages and at_maximum is None:
        raise ValueError("a halting model's fixed-cost score needs the observations at its maximum iterations "
                         "(observe_at_maximum)")
    fixed_run = at_maximum if stages else observed
    fixed = fixed_run.score(torch.full((fixed_run.samples,), fixed_run.outputs - 1, dtype=torch.long))
    if stages:
        last = torch.full((observed.samples,), observed.outputs - 1, dtype=torch.long)
        used = observed.iterations
        per_sample = sample_costs(costs, iterations=used)
        hist = {st.path: _histogram(used[:, k].numpy(), st.iterations) for k, st in enumerate(stages)}
        thresholds = sorted({st.threshold for st in stages})
        label = "halting (ACT, threshold " + ", ".join(f"{t:g}" for t in thresholds) + ")"
        return AdaptiveResult(observed.samples, data, label, metric, observed.score(last), fixed, costs.fixed_macs,
                              per_sample, iterations=hist, used=used.numpy(),
                              fixed_run="every iteration, no halting")
    exits = exits_for(observed, policy)
    per_sample = sample_costs(costs, exits=exits)
    return AdaptiveResult(observed.samples, data, str(policy), metric, observed.score(exits), fixed, costs.fixed_macs,
                          per_sample, exits=_histogram(exits.numpy() + 1, observed.outputs), used=exits.numpy() + 1,
                          fixed_run=f"the last output ({observed.outputs})")


@contextlib.contextmanager
def ponder_term(model: nn.Module, weight: float) -> Iterator[Optional[Any]]:
    """For training: a callable giving ``weight x`` the batch-mean ponder cost (summed over the halting
    stages) of the model's last forward, or ``None`` when ``weight`` is 0. Raises
    :class:`UserError` for a positive weight on a model without halting stages."""
    if not weight:
        yield None
        return
    stages = halting_stages(model)
    if not stages:
        raise UserError("the ponder cost needs a model with halting (ACT) stages, e.g. iterative-resnet")
    with HaltingRecorder(stages, detach=False) as recorder:
        def term() -> torch.Tensor:
            if any(not s for s in recorder.scores):
                raise UserError("no halting scores were recorded in the forward; the ponder cost needs the model's "
                                "own halting units (not an HWA copy)")
            cost = sum(ponder_cost(recorder.scores[k], st.iterations, st.threshold).mean()
                       for k, st in enumerate(stages))
            recorder.reset()
            return weight * cost

        yield term
