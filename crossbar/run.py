"""One mapping job, start to end: what ``graphcost map`` asks for, as a library call.

A :class:`MapRequest` names the model (a :class:`graphcost.resolve.ModelSpec`), the hardware
(:class:`~.specs.ArraySpec`, :class:`~.specs.ChipSpec`) and, optionally, a simulated-accuracy run
(:class:`AccuracyRequest`); :func:`run_map` checks it before any tracing, builds the model, loads
its weights (the shipped checkpoint where one fits and none is given), maps and times it, and
simulates it if asked::

    from graphcost.crossbar.run import MapRequest, run_map
    from graphcost.crossbar.specs import ArraySpec
    from graphcost.resolve import ModelSpec

    result = run_map(MapRequest(ModelSpec("itnet"), ArraySpec(256, 256)))
    result.performance.throughput_fps, result.to_dict()["arrays_used"]

The defaults of the ``graphcost map`` options are the constants below.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from graphcost.errors import UserError
from graphcost.resolve import ModelSpec, build, build_for_shapes
from graphcost.runtime.executor import EXECUTORS, make_executor
from graphcost.tracing import trace

from .accuracy import AccuracyConfig, evaluate_accuracy, prepare
from .checkpoints import SHIPPED, WEIGHT_KINDS, load_weights, shipped_checkpoint_for
from .data import parse_data
from .energy import AreaReport, EnergyReport, area, energy
from .generation import (DecodeStep, GenerateSpec, Generation, KVShape, Step, TokenLayout, chips_dict,
                         context_note, decoder_config, kv_shape, prefill_inputs, step_of, token_layout)
from .mapping import ATTENTION_KINDS, map_trace
from .perf import Performance, performance
from .specs import DEPTHWISE_STRATEGIES, ArraySpec, ChipSpec, NoiseSpec
from .tech import DEFAULT_TECH, TECH_PRESETS, TechSpec

#: The array size (rows x columns) when none is given.
DEFAULT_CROSSBAR: Tuple[int, int] = (256, 256)
#: Evaluation data when none is given: the built-in synthetic segmentation set.
SYNTHETIC_DATA = "synthetic"
DEFAULT_SAMPLES = 8
DEFAULT_TRIALS = 3
DEFAULT_SEED = 0

UNTRAINED_NOTE = ("no weights given and no shipped checkpoint fits this model: its weights are untrained, so its "
                  "score is that of a random network (fidelity still measures the hardware)")


@dataclass(frozen=True)
class AccuracyRequest:
    """A simulated-accuracy run: device noise, evaluation data, images, Monte-Carlo trials, seed."""

    noise: NoiseSpec = field(default_factory=NoiseSpec.none)
    data: str = SYNTHETIC_DATA
    samples: int = DEFAULT_SAMPLES
    trials: int = DEFAULT_TRIALS
    seed: int = DEFAULT_SEED
    #: Times after programming to evaluate at (``()``: the noise spec's own ``t_seconds``).
    times_seconds: Tuple[float, ...] = ()


@dataclass(frozen=True)
class MapRequest:
    """Everything one mapping job needs (``accuracy=None``: no simulation)."""

    model: ModelSpec
    array: ArraySpec
    chip: ChipSpec = field(default_factory=ChipSpec)
    depthwise: str = DEPTHWISE_STRATEGIES[0]
    target_fps: Optional[float] = None
    weights: Optional[str] = None
    accuracy: Optional[AccuracyRequest] = None
    executor: str = EXECUTORS[0]
    address: Optional[str] = None
    tech: TechSpec = TECH_PRESETS[DEFAULT_TECH]
    #: how the model is captured (see :func:`graphcost.trace`)
    tracer: str = "auto"
    #: where attention's activation x activation matmuls run: ``digital`` or ``gain-cell``
    attention: str = ATTENTION_KINDS[0]
    #: prefill and decode of a language model (``None``: one frame of the model's inputs)
    generate: Optional[GenerateSpec] = None


@dataclass
class MapResult:
    """The performance of the mapped model, its energy and area, its accuracy (a dict) if simulated,
    and notes for the user."""

    performance: Performance
    accuracy: Optional[Dict[str, Any]] = None
    notes: List[str] = field(default_factory=list)
    energy: Optional[EnergyReport] = None
    area: Optional[AreaReport] = None
    generation: Optional[Generation] = None

    def to_dict(self) -> Dict[str, Any]:
        """The JSON contract of ``graphcost map --format json``."""
        result = self.performance.to_dict()
        if self.energy is not None:
            result["energy"] = self.energy.to_dict()
            for layer, layer_energy in zip(result["layers"], self.energy.layers):
                layer["energy_j"] = layer_energy.energy_j
        if self.area is not None:
            result["area"] = self.area.to_dict()
        if self.accuracy is not None:
            result["accuracy"] = self.accuracy
        if self.generation is not None:
            result["generation"] = self.generation.to_dict()
        last = self.generation.last if self.generation is not None else None
        result["chips"] = chips_dict(self.performance, last, self.generation.spec.batch if last else 1)
        return result


def check_request(request: MapRequest) -> None:
    """Refuse an inconsistent request before any tracing (one :class:`~graphcost.UserError`)."""
    chip = request.chip
    if request.target_fps is not None and not chip.replicate:
        raise UserError("a target frame rate (target_fps) needs replication (replicate): copies of the slow layers "
                        "are what raise the frame rate")
    if chip.replicate and chip.arrays is None and request.target_fps is None:
        raise UserError("replication (replicate) needs a chip size (arrays) to balance, or a target frame rate "
                        "(target_fps) to provision for")
    if request.address is not None and request.executor != "ray":
        raise UserError("a cluster address is for the ray executor only")
    if request.weights in WEIGHT_KINDS:
        _shipped_weights(request.model, request.weights)  # none shipped for this model: fail now
    elif request.weights is not None and not os.path.isfile(request.weights):
        raise UserError(f"no such weights file {request.weights!r}")
    acc = request.accuracy
    if acc is not None:
        parse_data(acc.data)  # a missing folder or an empty file fails now, not after tracing
    if request.attention not in ATTENTION_KINDS:
        raise UserError(f"unknown attention {request.attention!r}; use one of {', '.join(ATTENTION_KINDS)}")
    if request.generate is not None and (acc is not None or request.weights is not None):
        raise UserError("--generate models shapes only: drop --accuracy and --weights")


def _shipped_path(spec: ModelSpec, kind: str) -> Optional[str]:
    """The shipped ``kind`` checkpoint of this exact model (``None`` if graphcost ships none)."""
    params = dict(spec.params)
    if spec.shared is not None:
        params["shared"] = spec.shared
    path = shipped_checkpoint_for(spec.name, params, spec.dataset, kind)
    return None if path is None else str(path)


def _shipped_weights(spec: ModelSpec, kind: str) -> str:
    """The shipped ``kind`` checkpoint the user asked for by name; raises when none fits the model."""
    path = _shipped_path(spec, kind)
    if path is None:
        raise UserError(f"graphcost ships no {kind} checkpoint for {spec.name} with these parameters (it ships "
                        f"float and hwa weights for the default {' and '.join(s.name for s in SHIPPED)}); "
                        f"pass a weights file instead")
    return path


def _weights(request: MapRequest, notes: List[str]) -> Optional[str]:
    """The weights to load: the given file or shipped kind, else (for accuracy) the shipped float
    checkpoint of this exact model."""
    if request.weights in WEIGHT_KINDS:
        return _shipped_weights(request.model, request.weights)
    if request.weights is not None or request.accuracy is None:
        return request.weights
    path = _shipped_path(request.model, "float")
    if path is None:
        notes.append(UNTRAINED_NOTE)
    return path


def _decode_step(model, request: MapRequest, kv: KVShape, layout: TokenLayout, own_tokens: int) -> Step:
    """One decode step captured against a self-attention cache of ``own_tokens`` (and an encoder-decoder's
    cross-attention cache of its encoder's outputs), mapped and costed."""
    step = DecodeStep(model, own_tokens, kv, layout.encoder_tokens)
    mapping = map_trace(step.trace(request.generate.batch), request.array, request.depthwise,
                        attention=request.attention)
    perf = performance(mapping, request.chip, tech=request.tech)
    return step_of(step.context, perf, energy(perf, request.tech))


def _build_seeded(request: MapRequest):
    """The model with real weights, its initial ones drawn from the run's seed: an untrained or partly loaded
    model scores the same on every run (the global random state is left as it was)."""
    seed = request.accuracy.seed if request.accuracy is not None else DEFAULT_SEED
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(request.model)


def run_map(request: MapRequest, progress: Optional[Callable[[int, int], None]] = None) -> MapResult:
    """Check, build, map and time the model of ``request``; simulate it if ``request.accuracy`` is set.

    ``progress(done, total)`` follows the accuracy trials. Raises :class:`~graphcost.UserError`
    for anything the user can fix, before tracing where it can be known before.
    """
    check_request(request)
    needs_weights = request.accuracy is not None or request.weights is not None
    built = _build_seeded(request) if needs_weights else build_for_shapes(request.model)  # shapes are enough
    notes: List[str] = []
    weights = _weights(request, notes)
    if weights is not None:
        load_weights(built.module, weights)
    acc = request.accuracy
    config = state = None
    if acc is not None:  # the data must fit the model (task, classes, inputs) before any tracing
        config = AccuracyConfig(array=request.array, noise=acc.noise, data=acc.data, samples=acc.samples,
                                trials=acc.trials, seed=acc.seed, depthwise=request.depthwise,
                                times_seconds=tuple(acc.times_seconds))
        state = prepare(built.module, config, built.call_inputs)
    gen = request.generate
    if gen is not None:
        kv = kv_shape(decoder_config(built.module, built.label))  # refused before any tracing
        notes.extend(filter(None, [context_note(built.module, gen)]))
        layout = token_layout(built.module, gen, built.call_inputs)
    inputs = built.call_inputs if gen is None else prefill_inputs(built.module, gen, built.call_inputs)
    captured = trace(built.module, inputs, tracer=request.tracer)  # every typed / named input
    mapping = map_trace(captured, request.array, request.depthwise, name=built.label, attention=request.attention)
    perf = performance(mapping, request.chip, target_fps=request.target_fps, tech=request.tech)
    result = MapResult(perf, notes=notes, energy=energy(perf, request.tech), area=area(perf, request.tech))
    if gen is not None:
        first = _decode_step(built.module, request, kv, layout, layout.own_first)
        last = first if layout.own_last == layout.own_first else _decode_step(built.module, request, kv, layout,
                                                                              layout.own_last)
        result.generation = Generation(gen, perf.latency_s, first, last, kv, request.tech, request.attention, layout)
    if config is not None:
        with make_executor(request.executor, request.address) as executor:
            result.accuracy = evaluate_accuracy(built.module, config, executor=executor, progress=progress,
                                                state=state).to_dict()
    return result
