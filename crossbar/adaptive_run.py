"""One adaptive-inference job end to end: what ``graphcost analyze --adaptive`` asks for, as a library call.

:func:`run_adaptive` resolves the data and the weights (the shipped checkpoint of the model and data
by default, built with the parameters and preset recorded in its JSON), builds the model at the data's
image size, traces it ONCE, refuses a model that neither halts nor has several outputs (before the
data is run), maps it on a chip if asked, runs the data eagerly (:func:`.adaptive.observe`; a halting
model once more at every iteration for its fixed-cost score, :func:`.adaptive.observe_at_maximum`) and
turns each sample's iterations or exit into costs (:func:`.adaptive.adaptive_result`).
:func:`run_variants` runs one request as the shared and the independent variant of ItNet or
iterative-resnet on the same chip (the shipped shared weights copied into the independent one)::

    from graphcost.crossbar.adaptive_run import AdaptiveRequest, run_adaptive
    from graphcost.resolve import ModelSpec

    run = run_adaptive(AdaptiveRequest(ModelSpec("iterative-resnet"), data="digits"))
    run.result.to_dict()["macs"]["mean"], run.result.line()
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from graphcost.errors import UserError
from graphcost.models.iterative_resnet import independent_state_dict as iterative_resnet_copy
from graphcost.models.itnet import independent_state_dict as itnet_copy
from graphcost.resolve import ModelSpec, build

from .adaptive import (AdaptiveResult, CostModel, ExitPolicy, HaltingStage, Observations, adaptive_result,
                       cost_model, halting_stages, observe,
                       observe_at_maximum)
from .data import open_dataset, parse_data
from .specs import ArraySpec, ChipSpec
from .tech import DEFAULT_TECH, TECH_PRESETS, TechSpec

#: Images run when ``samples`` is not given (the whole digits test split).
DEFAULT_SAMPLES = 360
#: The policy of an early-exit network when none is given.
DEFAULT_POLICY = ExitPolicy("confidence", 0.9)
#: Models whose shared checkpoint runs as their independent variant: the weight copy (shared -> independent).
INDEPENDENT_COPIES = {"itnet": itnet_copy, "iterative-resnet": iterative_resnet_copy}
UNTRAINED_NOTE = ("no weights given and no shipped checkpoint fits this model and data: its weights are untrained, "
                  "so its halting and confidences are those of a random network")


@dataclass(frozen=True)
class AdaptiveRequest:
    """Model, data (``None``: digits for the digits preset, else synthetic), exit policy (early-exit
    networks; ``None``: :data:`DEFAULT_POLICY`), weights (``float``, ``hwa``, a file, or ``None``: the
    shipped float checkpoint where one fits), images, and optionally an array to map on."""

    model: ModelSpec
    data: Optional[str] = None
    policy: Optional[ExitPolicy] = None
    weights: Optional[str] = None
    samples: int = DEFAULT_SAMPLES
    array: Optional[ArraySpec] = None
    chip: ChipSpec = field(default_factory=ChipSpec)
    tech: TechSpec = TECH_PRESETS[DEFAULT_TECH]
    tracer: str = "auto"
    batch_size: int = 64
    cumulative: bool = True


@dataclass
class AdaptiveRun:
    """The fixed-cost analysis of the traced model, the adaptive result, notes, and what figures
    reuse (the model with its weights, the images, the observations, the cost model, and with a
    crossbar :func:`chip_summary`)."""

    analysis: Any
    result: AdaptiveResult
    notes: List[str]
    model: nn.Module
    images: torch.Tensor
    labels: torch.Tensor
    observed: Observations
    costs: CostModel
    stages: List[HaltingStage]
    chip: Optional[Dict[str, Any]] = None

    def per_input_frame(self):
        """One row per input: its MACs, latency, (energy, seconds,) and iterations per stage or exit output."""
        import pandas as pd

        costs, result = self.result.costs, self.result
        frame = pd.DataFrame({"sample": range(result.samples), "macs": costs.macs,
                              "latency_layers": costs.latency_layers})
        if costs.energy_j is not None:
            frame["energy_j"], frame["latency_s"] = costs.energy_j, costs.latency_s
        if result.iterations is not None:
            for k, stage in enumerate(result.iterations):
                frame[f"iterations:{stage}"] = result.used[:, k]
        else:
            frame["exit"] = result.used
        return frame

    def to_dict(self) -> Dict[str, Any]:
        out = self.analysis.to_dict()
        out["adaptive"] = self.result.to_dict()
        if self.chip is not None:
            out["adaptive"]["chip"] = self.chip
        return out


def _checkpoint_meta(path: str) -> Dict[str, Any]:
    meta_path = Path(path).with_suffix(".json")
    try:
        return json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return {}


def _copies_shared(spec: ModelSpec) -> bool:
    """Whether ``spec`` is the independent variant of a model whose shared weights copy into it."""
    return spec.shared is False and spec.name in INDEPENDENT_COPIES


def _shipped(spec: ModelSpec, kind: Optional[str]) -> Optional[str]:
    """The shipped checkpoint of ``kind`` (``None``: float where one fits) for ``spec``, or for its shared
    variant where ``spec`` is an independent one that the shared weights copy into."""
    from .run import _shipped_path, _shipped_weights

    if _copies_shared(spec):
        spec = replace(spec, shared=True)
    return _shipped_path(spec, "float") if kind is None else _shipped_weights(spec, kind)


def resolve(request: AdaptiveRequest, notes: List[str]):
    """``(spec, data, weights path or None)``: the preset follows digits data; a shipped checkpoint brings
    the parameters and preset it was trained with (the user's own parameters win). The independent
    variant of ItNet or iterative-resnet gets the shared variant's checkpoint (copied in :func:`build_loaded`)."""
    from .accuracy import WEIGHT_KINDS

    spec = request.model
    data = request.data or ("digits" if spec.dataset == "digits" else "synthetic")
    if spec.dataset is None and parse_data(data).scheme == "digits":
        spec = replace(spec, dataset="digits")
    if request.weights is not None and request.weights not in WEIGHT_KINDS:
        return spec, data, request.weights
    weights = _shipped(spec, request.weights)
    if weights is None:
        notes.append(UNTRAINED_NOTE)
        return spec, data, None
    meta = _checkpoint_meta(weights)
    params = {k: v for k, v in (meta.get("params") or {}).items() if not (k == "shared" and spec.shared is not None)}
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    spec = replace(spec, dataset=spec.dataset or meta.get("dataset_preset"), params={**params, **spec.params})
    return spec, data, weights


def build_loaded(spec: ModelSpec, weights: Optional[str], notes: List[str]):
    """The built model with ``weights`` loaded; an independent ItNet / iterative-resnet given a shipped
    shared checkpoint gets it copied into every iteration's block (``independent_state_dict``: the same
    function, outputs and exits as the shared model, as an unrolled graph)."""
    from .accuracy import load_weights

    built = build(spec)
    if weights is None:
        return built
    meta = _checkpoint_meta(weights)  # a checkpoint with its record (a shipped one) says whether it is shared
    if _copies_shared(spec) and meta and (meta.get("params") or {}).get("shared", True):
        shared = build(replace(spec, shared=True)).module
        load_weights(shared, weights)
        built.module.load_state_dict(INDEPENDENT_COPIES[spec.name](shared.state_dict(), built.module))
        notes.append(f"the shared checkpoint {Path(weights).name} copied into every iteration's block of the "
                     f"independent {spec.name}")
    else:
        load_weights(built.module, weights)
    return built


def chip_summary(perf, tech: TechSpec) -> Dict[str, Any]:
    """What the mapping occupies on the chip: arrays, area (mm^2), the array size and the technology."""
    from .energy import area

    occupied = area(perf, tech)
    array = perf.mapping.array
    return {"arrays": occupied.arrays, "area_mm2": occupied.total_mm2, "crossbar": f"{array.rows}x{array.cols}",
            "tech": tech.name, "frame_latency_s": perf.latency_s, "frame_time_s": perf.frame_time_s}


def _check_adaptive(model: nn.Module, captured, stages: List[HaltingStage], policy: Optional[ExitPolicy],
                    name: str) -> Optional[ExitPolicy]:
    """The policy to use; refuses a model that neither halts nor has several outputs, or a policy that
    does not fit it."""
    outputs = len(captured.outputs)
    if stages:
        if policy is not None:
            raise UserError(f"{name} halts by itself (ACT stages); --exit is for networks with several outputs")
        return None
    if outputs < 2:
        raise UserError(f"{name} neither halts (no ACT stage) nor has several outputs (it returns {outputs}); "
                        f"adaptive inference needs a halting or an early-exit (anytime) network")
    policy = policy or DEFAULT_POLICY
    if policy.kind == "output" and policy.value > outputs:
        raise UserError(f"output={int(policy.value)} but {name} has {outputs} outputs")
    return policy


def run_adaptive(request: AdaptiveRequest) -> AdaptiveRun:
    """Check, build, trace once, (map,) run the data and cost every sample (module docstring).

    Raises :class:`~graphcost.UserError` for anything the user can fix, before the data is run.
    """
    from graphcost.analysis import analyze_trace
    from graphcost.tracing import trace

    from .training import check_model_fits_data

    notes: List[str] = []
    spec, data, weights = resolve(request, notes)
    size = tuple(spec.input_shape[-2:]) if spec.input_shape else None  # --input HxW: the synthetic images' size
    dataset = open_dataset(data, request.samples, size=size)
    spec = replace(spec, input_shape=(1, *dataset[0][0].shape))
    built = build_loaded(spec, weights, notes)
    model = built.module.eval()
    captured = trace(model, built.call_inputs, tracer=request.tracer)
    stages = halting_stages(model)
    policy = _check_adaptive(model, captured, stages, request.policy, built.label)
    check_model_fits_data(model, dataset)
    perf, chip = None, None
    if request.array is not None:
        from .mapping import map_trace
        from .perf import performance

        perf = performance(map_trace(captured, request.array, name=built.label), request.chip)
        chip = chip_summary(perf, request.tech)
    costs = cost_model(captured, model, cumulative=request.cumulative, perf=perf, tech=request.tech)
    images, labels = dataset.tensors()
    observed = observe(model, images, labels, dataset.classes, batch_size=request.batch_size)
    at_maximum = (observe_at_maximum(model, images, labels, dataset.classes, batch_size=request.batch_size)
                  if stages else None)
    result = adaptive_result(observed, costs, stages, policy, data, at_maximum)
    return AdaptiveRun(analyze_trace(captured, name=built.label), result, notes, model, images, labels, observed,
                       costs, stages, chip)


#: The two variants of a weight-shared model, in the order figures draw them.
VARIANTS = (("shared", True), ("independent", False))


def run_variants(request: AdaptiveRequest, first: Optional[AdaptiveRun] = None) -> Dict[str, AdaptiveRun]:
    """``request`` run as the shared and as the independent variant (``{"shared": run, "independent":
    run}``), mapped on the same chip: the independent one carries the shared weights copied into every
    iteration's block, so both compute the same outputs and take the same iterations / exits on the
    same data, while the independent graph occupies a block of arrays per iteration. ``first``: a run
    of ``request`` already made (reused for its own variant).

    Raises :class:`~graphcost.UserError` for a model without both variants or a request without an array.
    """
    name = request.model.name
    if name not in INDEPENDENT_COPIES:
        raise UserError(f"{name} has no shared and independent variants to compare; "
                        f"{' and '.join(INDEPENDENT_COPIES)} have")
    if request.array is None:
        raise UserError("comparing the shared and the independent variant on a chip needs a crossbar size")
    own = request.model.shared is not False
    return {variant: first if first is not None and own == shared else
            run_adaptive(replace(request, model=replace(request.model, shared=shared)))
            for variant, shared in VARIANTS}
