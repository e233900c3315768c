"""Accuracy of a network simulated on crossbar arrays: the evaluation loop, any model, any task.

:func:`evaluate_accuracy` is one pass through the rooms: the data source (:mod:`.data`, parsed from
``config.data``) gives the samples for the model's inputs; the float model runs on them once
(:func:`prepare`, which also checks that the data's task fits the model's outputs); every trial
(:func:`run_trial`) programs a :class:`~graphcost.crossbar.sim.CrossbarModel` with its own noise
seed (``config.seed + trial``) and scores it at every time of ``config.times`` with the metrics of
:mod:`.metrics` — the task's metrics against the labels (``miou``; ``top1``/``top5``;
``perplexity``/``next_token_top1``) and the label-free fidelity against the float model
(``fidelity_top1``, ``fidelity_miou`` for segmentation, ``snr_db``, ``relative_error``).

Results (:class:`AccuracyResult`) hold, per time and per output (ItNet returns one per iteration),
every metric's mean and (population, ``ddof=0``) standard deviation over trials and the float
model's value; JSON keys are the metric names, the headline (``metric``) is the task's
(:data:`~.metrics.HEADLINE`), and ``std`` / ``fidelity_std`` are those of the headline and of its
fidelity. A trial is the top-level, picklable :func:`run_trial` of ``(config, state, trial)`` so an
executor (:func:`graphcost.runtime.executor.make_executor`) can run trials in other processes or on Ray
workers; ``executor=None`` runs them here. Progress is reported per batch (trials x times x batches),
from a local process pool's workers too (:class:`BatchCounter`), for the CLI's bar on a terminal.

The checkpoint names (:func:`load_weights`, :func:`shipped_checkpoint_for`, ...) live in
:mod:`.checkpoints` and are re-exported here for older callers.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from multiprocessing import shared_memory
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from graphcost.errors import UserError, first_line

from .checkpoints import (SHIPPED, SHIPPED_CONFIG, WEIGHT_KINDS, ShippedModel, check_weights, default_weights_path,
                          load_weights, shipped_checkpoint_for)
from .data import Batch, DataSource, parse_data
from .metrics import FidelityTally, Output, Tally, confusion_matrix, headline_metric, miou, model_outputs
from .specs import ArraySpec, NoiseSpec

__all__ = ["ShippedModel", "SHIPPED", "WEIGHT_KINDS", "check_weights", "AccuracyConfig", "AccuracyResult",
           "OutputAccuracy", "TimeAccuracy", "TrialState", "TrialResult", "evaluate_accuracy", "prepare", "run_trial",
           "confusion_matrix", "miou", "load_weights", "default_weights_path", "shipped_checkpoint_for",
           "SHIPPED_CONFIG", "EVAL_BATCH", "BatchCounter"]

#: Samples per forward pass during evaluation (and the calibration batch: the first one).
EVAL_BATCH = 4


@dataclass(frozen=True)
class AccuracyConfig:
    """What to simulate and on which data (built by ``graphcost map --accuracy``)."""

    array: ArraySpec
    noise: NoiseSpec
    data: str = "synthetic"  # any --data form (graphcost.crossbar.data.DATA_KINDS)
    samples: int = 8
    trials: int = 3
    seed: int = 0
    #: The model's class count where the data makes its labels up (synthetic); ``None``: the model's output.
    classes: Optional[int] = None
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


# --------------------------------------------------------------------------- results
def fidelity_key(metric: str, values: Mapping[str, float]) -> str:
    """The fidelity reported beside ``metric``: ``fidelity_miou`` for mIoU, else ``fidelity_top1`` (logits)
    or ``snr_db``."""
    for key in (f"fidelity_{metric}", "fidelity_top1", "snr_db"):
        if key in values:
            return key
    return "snr_db"


@dataclass(frozen=True)
class OutputAccuracy:
    """One output at one time: every metric's mean (``means``) and std (``stds``) over trials, and the
    float model's labelled metrics (``floats``); ``metric`` names the headline."""

    index: int  # from 1
    metric: str
    means: Mapping[str, float]
    stds: Mapping[str, float]
    floats: Mapping[str, float]

    @property
    def score(self) -> float:
        return self.means[self.metric]

    @property
    def std(self) -> float:
        return self.stds[self.metric]

    @property
    def float_score(self) -> Optional[float]:
        return self.floats.get(self.metric)

    @property
    def fidelity(self) -> float:
        return self.means[fidelity_key(self.metric, self.means)]

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"index": self.index, **self.means}
        out.update({f"{k}_std": v for k, v in self.stds.items()})
        out.update({f"float_{k}": v for k, v in self.floats.items()})
        out["std"] = self.std
        out["fidelity_std"] = self.stds[fidelity_key(self.metric, self.means)]
        return out


@dataclass(frozen=True)
class TimeAccuracy:
    """All outputs at one time after programming."""

    t_seconds: float
    outputs: Tuple[OutputAccuracy, ...]

    def to_dict(self) -> Dict[str, Any]:
        last = self.outputs[-1].to_dict()
        last.pop("index")
        return {"t_seconds": self.t_seconds, **last, "outputs": [o.to_dict() for o in self.outputs]}


@dataclass(frozen=True)
class AccuracyResult:
    """Plain data: per-time, per-output accuracies; the headline numbers are those of the last output
    at the first time. ``metric`` is the headline metric, ``task`` the data's."""

    times: Tuple[TimeAccuracy, ...]
    trials: int
    samples: int
    data: str
    task: str
    metric: str
    #: [trial][time][output] -> metric -> value
    per_trial: Tuple[Tuple[Tuple[Mapping[str, float], ...], ...], ...] = ()

    @property
    def outputs(self) -> Tuple[OutputAccuracy, ...]:
        return self.times[0].outputs

    @property
    def score(self) -> float:
        return self.outputs[-1].score

    @property
    def std(self) -> float:
        return self.outputs[-1].std

    @property
    def fidelity(self) -> float:
        return self.outputs[-1].fidelity

    @property
    def float_score(self) -> Optional[float]:
        return self.outputs[-1].float_score

    def to_dict(self) -> Dict[str, Any]:
        first = self.times[0].to_dict()
        first.pop("t_seconds")
        return {**first, "task": self.task, "metric": self.metric, "times": [t.to_dict() for t in self.times],
                "trials": self.trials, "samples": self.samples, "data": self.data}


@dataclass(frozen=True)
class TrialState:
    """Everything a trial needs besides the config: picklable (ships to process / Ray workers)."""

    model: nn.Module
    batches: Tuple[Batch, ...]
    float_outputs: Tuple[Tuple[Output, ...], ...]  # [batch][output]
    task: str
    classes: Optional[int]


@dataclass(frozen=True)
class TrialResult:
    trial: int
    seed: int
    per_time: Tuple[Tuple[Mapping[str, float], ...], ...]  # [time][output] -> metric -> value

    @property
    def fidelity(self) -> Tuple[float, ...]:
        """Per output at the first time: the headline fidelity."""
        return tuple(v[fidelity_key("miou", v)] for v in self.per_time[0])


# --------------------------------------------------------------------------- running
def _forward(model: nn.Module, batch: Batch, task: str) -> List[Output]:
    return model_outputs(model(*batch.args, **batch.kwargs), task)


def _vocab(model: nn.Module) -> Optional[int]:
    """The rows of the model's first embedding (token ids random data may draw), if it has one."""
    return next((m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)), None)


def _probe(model: nn.Module, source: DataSource, batch: Batch) -> List[Output]:
    """The float model on one batch; a model that cannot run on the data is the user's error."""
    try:
        with torch.inference_mode():
            return _forward(model, batch, source.task)
    except (RuntimeError, IndexError, ValueError, TypeError) as exc:
        raise UserError(f"the model cannot run on the {source.scheme} data ({first_line(exc)[:160]}); pick data "
                        f"of the model's task and input") from None


def check_fits(name: str, task: str, outputs: Sequence[Output], classes: Optional[int]) -> None:
    """The data's task must fit the model's last output: segmentation ``N x C x H x W``, classification
    ``N x C``, language model ``N x V x T`` (``V`` at least the data's vocabulary), ``C`` the data's classes."""
    last = outputs[-1].value
    want = {"segmentation": 4, "classification": 2, "language-model": 3}.get(task)
    if want is None:
        return
    if last.dim() != want or not outputs[-1].logits:
        raise UserError(f"the {name} data is a {task} set but the model returns shape {tuple(last.shape)}; pick a "
                        f"{task} model, or random data")
    channels = int(last.shape[1])
    if task == "language-model":
        if channels < (classes or 0):
            raise UserError(f"the model predicts {channels} tokens but the {name} data has {classes} "
                            f"(byte-level); build it with a vocabulary of at least {classes}")
    elif classes is not None and channels != classes:
        raise UserError(f"the model predicts {channels} classes but the {name} data has {classes}; "
                        f"build the model with classes={classes}")


def prepare(model: nn.Module, config: AccuracyConfig, model_inputs: Any) -> TrialState:
    """The data of ``config`` for ``model`` (called with ``model_inputs``), checked to fit, and the float
    model's outputs on it: the state every trial starts from.

    Raises :class:`UserError` for data that cannot be opened or does not fit the model's task / classes.
    """
    source = parse_data(config.data)
    model = model.eval()
    classes = config.classes if config.classes is not None else (_vocab(model) if source.task == "none" else None)
    samples = source.load(model_inputs, config.samples, seed=config.seed, classes=classes)
    if source.task == "segmentation" and source.classes is None and config.classes is None:
        # the synthetic set makes its labels up: as many classes as the model predicts
        probe = _probe(model, source, samples.take(slice(0, 1)))
        if probe[-1].value.dim() == 4:
            samples = source.load(model_inputs, config.samples, seed=config.seed, classes=int(probe[-1].value.shape[1]))
    batches = tuple(samples.batches(EVAL_BATCH))
    first = _probe(model, source, batches[0])
    check_fits(source.scheme, source.task, first, samples.classes)
    with torch.inference_mode():
        float_outputs = (tuple(first),) + tuple(tuple(_forward(model, b, source.task)) for b in batches[1:])
    return TrialState(model, batches, float_outputs, source.task, samples.classes)


def _score(state: TrialState, outputs_per_batch: Sequence[Sequence[Output]], fidelity: bool = True
           ) -> Tuple[Dict[str, float], ...]:
    """Per output: the task's metrics against the labels and (``fidelity``) against the float outputs."""
    count = len(state.float_outputs[0])
    seg = state.classes if state.task == "segmentation" else None
    tallies = [Tally(state.task, state.classes) for _ in range(count)]
    fidelities = [FidelityTally(seg) for _ in range(count)]
    for batch, outs, refs in zip(state.batches, outputs_per_batch, state.float_outputs):
        if len(outs) != count:
            raise RuntimeError("the simulated model returned a different number of outputs than the float model")
        for k, (out, ref) in enumerate(zip(outs, refs)):
            if batch.labels is not None:
                tallies[k].add(out.value, batch.labels, out.pred)
            if fidelity:
                fidelities[k].add(out, ref)
    return tuple({**t.values(), **(f.values() if fidelity else {})} for t, f in zip(tallies, fidelities))


def float_scores(state: TrialState) -> Tuple[Dict[str, float], ...]:
    """Per output: the float model's metrics against the labels."""
    return _score(state, state.float_outputs, fidelity=False)


def run_trial(config: AccuracyConfig, state: TrialState, trial: int,
              tick: Optional[Callable[[], None]] = None) -> TrialResult:
    """One Monte-Carlo trial: program the arrays with seed ``config.seed + trial``, evaluate at every
    time of ``config.times`` (the same seed, so the same programmed cells and drift exponents);
    ``tick()`` after every batch."""
    from .sim import CrossbarModel

    seed = config.seed + trial
    per_time = []
    for t in config.times:
        with torch.inference_mode():
            sim = CrossbarModel(state.model, config.array, replace(config.noise, t_seconds=t), seed=seed,
                                depthwise=config.depthwise)
            first = state.batches[0]
            sim.calibrate(*first.args, **first.kwargs)
            outputs = []
            for batch in state.batches:
                outputs.append(_forward(sim, batch, state.task))
                if tick is not None:
                    tick()
        per_time.append(_score(state, outputs))
    return TrialResult(trial, seed, tuple(per_time))


def _run_trial_item(item: Tuple[AccuracyConfig, TrialState, int, Optional[str]]) -> TrialResult:
    """Executor entry point (top level, so it pickles): ``run_trial`` of ``(config, state, trial)``,
    counting its batches in the :class:`BatchCounter` named by the item's last element (if any)."""
    config, state, trial, counter = item
    if counter is None:
        return run_trial(config, state, trial)
    shm = shared_memory.SharedMemory(name=counter)
    counts = shm.buf.cast("q")
    try:
        def tick() -> None:
            counts[trial] += 1  # only this trial's worker writes its slot

        return run_trial(config, state, trial, tick=tick)
    finally:
        counts.release()
        shm.close()


class BatchCounter:
    """Batches done per trial, counted across worker processes: one 64-bit slot per trial in shared
    memory (the workers find it by :attr:`name`), read by a thread that calls ``progress(done, total)``
    whenever the sum moves. A context manager: it reports the final count and frees the memory on exit.

    >>> seen = []
    >>> with BatchCounter(2, 3, lambda done, total: seen.append((done, total))) as counter:
    ...     counter.finish(0); counter.finish(1)
    >>> seen[-1]
    (6, 6)
    """

    POLL_S = 0.1

    def __init__(self, trials: int, per_trial: int, progress: Callable[[int, int], None]):
        self.per_trial, self.total, self.progress = per_trial, trials * per_trial, progress
        self._shm = shared_memory.SharedMemory(create=True, size=8 * max(1, trials))
        self._counts = self._shm.buf.cast("q")
        for i in range(trials):
            self._counts[i] = 0
        self._finished = [False] * trials
        self._reported, self._stop, self._lock = 0, threading.Event(), threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="graphcost-batch-progress", daemon=True)

    @property
    def name(self) -> str:
        return self._shm.name

    def finish(self, trial: int) -> None:
        """A trial is done: all its batches count (its worker may not have shared memory, Ray's on another node)."""
        self._finished[trial] = True
        self._report()

    def _report(self) -> None:
        with self._lock:  # the watching thread and the caller's: one report at a time, never backwards
            done = sum(self.per_trial if fin else min(self.per_trial, count)
                       for fin, count in zip(self._finished, self._counts))
            if done > self._reported:
                self._reported = done
                self.progress(done, self.total)

    def _watch(self) -> None:
        while not self._stop.wait(self.POLL_S):
            self._report()

    def __enter__(self) -> "BatchCounter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if exc[0] is None:
            self._report()
        self._counts.release()
        self._shm.close()
        self._shm.unlink()


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / n)


def _run_trials(config: AccuracyConfig, state: TrialState, executor,
                progress: Optional[Callable[[int, int], None]]) -> List[TrialResult]:
    """Each trial's result, by ``executor`` or one after another here; ``progress(done, total)`` per batch,
    ``total`` = trials x times x batches (a local process pool counts its workers' batches in a
    :class:`BatchCounter`; other executors' trials count whole as they finish)."""
    per_trial = len(config.times) * len(state.batches)
    if executor is None:
        total, done = config.trials * per_trial, [0]

        def tick() -> None:
            done[0] += 1
            if progress is not None:
                progress(done[0], total)

        return [run_trial(config, state, t, tick=tick) for t in range(config.trials)]
    if progress is None:
        return executor.map(_run_trial_item, [(config, state, t, None) for t in range(config.trials)])
    shared = getattr(executor, "kind", None) in ("local", "inline")  # the same machine: shared memory reaches it
    with BatchCounter(config.trials, per_trial, progress) as counter:
        items = [(config, state, t, counter.name if shared else None) for t in range(config.trials)]
        results: List[Optional[TrialResult]] = [None] * config.trials
        for index, result in executor.as_completed(_run_trial_item, items):
            results[index] = result
            counter.finish(index)
    return results


def evaluate_accuracy(model: nn.Module, config: AccuracyConfig, *, model_inputs: Any = None, executor=None,
                      progress: Optional[Callable[[int, int], None]] = None,
                      state: Optional[TrialState] = None) -> AccuracyResult:
    """The task's metrics and the fidelity of the simulated ``model`` per output, mean and std over trials.

    Parameters
    ----------
    model : nn.Module
        Any model with its weights: a segmentation or classification network, a language model (HF
        ``ModelOutput``\\ s are read by their ``logits``), anything returning tensors (``--data random``).
    config : AccuracyConfig
        Array and noise specs, data (any ``--data`` form), samples, trials (trial ``t`` draws its noise
        with seed ``config.seed + t``), depthwise strategy, times after programming.
    model_inputs : optional
        The model's input specs (:attr:`graphcost.resolve.BuiltModel.call_inputs`); ``None``: one image
        input, shaped by the data.
    executor : optional
        Runs the trials (``executor.as_completed(fn, items)``); ``None``: one after another here.
    progress : callable, optional
        ``progress(done, total)`` per batch, ``total`` = trials x times x batches (with a Ray executor,
        as each trial finishes: it counts its batches whole).
    state : TrialState, optional
        A :func:`prepare`\\ d state (the caller checked the data before longer work).

    Returns
    -------
    AccuracyResult

    Raises
    ------
    UserError
        The data cannot be opened or does not fit the model's task, classes or inputs.

    Examples
    --------
    >>> from graphcost.crossbar.specs import ArraySpec, NoiseSpec
    >>> net = torch.nn.Conv2d(3, 11, 1)
    >>> exact = ArraySpec(64, 64, weight_bits=16, cell_bits=16, dac_bits=16, adc_bits=16)
    >>> result = evaluate_accuracy(net, AccuracyConfig(exact, NoiseSpec(), samples=2, trials=1))
    >>> result.metric, len(result.outputs), round(result.fidelity, 2)   # noise-free 16-bit: the float predictions
    ('miou', 1, 1.0)
    """
    if state is None:
        state = prepare(model, config, model_inputs if model_inputs is not None else (1, 3, 8, 8))
    floats = float_scores(state)
    results = _run_trials(config, state, executor, progress)
    metric = headline_metric(state.task, list(state.float_outputs[0]))
    times = tuple(TimeAccuracy(t, _summarise([r.per_time[i] for r in results], floats, metric))
                  for i, t in enumerate(config.times))
    samples = sum(len(b) for b in state.batches)
    return AccuracyResult(times, config.trials, samples, config.data, state.task, metric,
                          tuple(r.per_time for r in results))


def _summarise(per_trial: Sequence[Sequence[Mapping[str, float]]], floats: Sequence[Mapping[str, float]],
               metric: str) -> Tuple[OutputAccuracy, ...]:
    """Mean and std over trials of every output's metrics at one time."""
    outputs = []
    for k, float_values in enumerate(floats):
        names = list(per_trial[0][k])
        stats = {name: _mean_std([trial[k][name] for trial in per_trial]) for name in names}
        outputs.append(OutputAccuracy(k + 1, metric, {n: m for n, (m, _) in stats.items()},
                                      {n: s for n, (_, s) in stats.items()}, dict(float_values)))
    return tuple(outputs)
