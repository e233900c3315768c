"""Performance of a :class:`~graphcost.crossbar.mapping.ModelMapping` on a chip: fit, throughput, latency.

Cheap (no re-mapping, no trace), so reports can sweep the chip size. The model, with every
formula in ``docs/crossbar.md``:

* Every mapped layer is a pipeline stage; all its tiles work in parallel, and its
  ``replicas`` copies share its MVMs. Stage time per frame
  ``s_l = (mvms_l + extra_cycles_l) * t_mvm / replicas_l`` (a looped layer's MVMs count every
  call). Weight-free ops (activations, pooling, adds, resizes) run in digital periphery and
  are assumed to overlap with the MVMs.
* Pipelined throughput ``= 1 / max_l s_l`` (frames stream through the stages); with
  ``chip.layer_by_layer`` (NeuroSim's default, one image at a time) ``= 1 / sum_l s_l``.
* Tile buffers (``chip.tile_input_bits_per_cycle`` / ``tile_output_bits_per_cycle``, NeuroSim
  ``Tile.cpp``): each MVM also writes and reads its input vector (``min(rows, tile rows) x
  dac_bits``) and its partial sums (``min(outputs, tile outputs) x partial_sum_bits``) through
  one tile's buffers (a layer's tiles work in parallel), ``cycle_ns`` per transfer; this time
  adds to every MVM of the layer.
* Latency of an output = the longest path to it in the execution DAG, each weight-layer call
  costing ``mvms_call * cycles_per_mvm * t_mvm / replicas`` (a call starts when all its inputs
  are complete; one frame in flight).
* ``fits = arrays_used <= arrays_available``. When the graph does not fit, the layers that are
  called most stay resident (greedily, while a swap pool large enough for the largest
  remaining layer is left); every other layer is programmed into the swap pool each time it
  is called, which costs ``tiles * R * write_ns_per_row`` per call, and the pool runs these
  layers one after another: it is a stage of time ``sum(compute + rewrite)`` per frame.
  A layer larger than the pool runs in ``ceil(tiles / pool)`` passes.
* ``replicate``: with ``target_fps`` each layer gets ``r_l = ceil(s_l * target_fps)`` copies
  (at most ``max_replicas_l``), ``arrays_for_target = sum(tiles_l * r_l)``; without a target,
  or when that exceeds the chip, the pipeline is balanced within the chip: the smallest
  bottleneck ``T`` with ``sum(tiles_l * ceil(s_l / T)) <= arrays`` (bisection).

>>> import torch
>>> from graphcost.crossbar.mapping import map_model
>>> from graphcost.crossbar.specs import ArraySpec, ChipSpec
>>> m = map_model(torch.nn.Conv2d(3, 16, 3, padding=1), (1, 3, 32, 32), ArraySpec(256, 256))
>>> p = performance(m, ChipSpec(arrays=4, mvm_latency_ns=100))
>>> p.fits, round(p.throughput_fps), round(p.latency_s, 9)     # 1024 MVMs x 100 ns
(True, 9766, 0.0001024)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from graphcost.errors import UserError

from .mapping import LayerMapping, ModelMapping, Work
from .specs import ArraySpec, ChipSpec
from .tech import TechSpec

_EPS = 1e-9


@dataclass(frozen=True)
class LayerPerf:
    """One layer as a pipeline stage: its copies, time per frame, residency and rewrites."""

    name: str
    tiles: int
    replicas: int
    arrays: int
    cycles: int
    stage_time_s: float
    resident: bool = True
    passes: int = 1
    rewrite_s: float = 0.0

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class OutputPerf:
    """One (anytime) output: its latency and the arrays the layers it needs occupy."""

    index: int
    node: str
    latency_s: float
    arrays_used: int

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Performance:
    """The mapping on one chip. ``arrays_used`` counts replicas; ``arrays_needed`` is the minimum
    to keep every unique layer resident (the mapping's ``sum(tiles)``)."""

    mapping: ModelMapping
    chip: ChipSpec
    target_fps: Optional[float]
    fits: bool
    arrays_needed: int
    arrays_available: Optional[int]
    arrays_used: int
    throughput_fps: float
    latency_s: float
    frame_time_s: float
    bottleneck: str
    resident_fps: float
    rewrite_s: float
    rewritten_arrays: int
    arrays_for_target: Optional[int]
    target_reachable: Optional[bool]
    layers: Tuple[LayerPerf, ...]
    outputs: Tuple[OutputPerf, ...]
    #: time per frame of the digital unit (0 without a tech: the arrays alone)
    digital_s: float = 0.0
    #: chips the arrays are spread over, each layer's chip, activation bytes crossing chips per frame
    chips: int = 1
    layer_chips: Tuple[int, ...] = ()
    link_bytes: float = 0.0
    #: per weight-layer call: the time it also waits for work off the arrays and chip crossings
    call_off_s: Tuple[float, ...] = ()

    @property
    def utilization(self) -> float:
        return self.mapping.utilization

    @property
    def collapse(self) -> float:
        """Throughput if everything were resident over throughput on this chip (1 when it fits)."""
        return self.resident_fps / self.throughput_fps if self.throughput_fps else math.inf

    def to_dict(self) -> Dict[str, object]:
        m = self.mapping
        perf = {layer.name: layer for layer in self.layers}
        layers = []
        for i, layer in enumerate(m.layers):
            d = layer.to_dict()
            p = perf[layer.name]
            d.update(replicas=p.replicas, arrays=p.arrays, stage_time_s=p.stage_time_s, resident=p.resident,
                     rewrite_s=p.rewrite_s)
            if self.chips > 1:
                d["chip"] = self.layer_chips[i]
            layers.append(d)
        outputs = [dict(o.to_dict(), name=s.name, shape=list(s.shape)) for o, s in zip(self.outputs, m.outputs)]
        return {
            "model": m.model,
            "input_shape": list(m.input_shape),
            "crossbar": m.array.label,
            "array": m.array.to_dict(),
            "chip": self.chip.to_dict(),
            "depthwise": m.depthwise,
            "arrays_used": self.arrays_used,
            "arrays_needed": self.arrays_needed,
            "arrays_available": self.arrays_available,
            "utilization": m.utilization,
            "fits": self.fits,
            "throughput_fps": self.throughput_fps,
            "latency_s": self.latency_s,
            "frame_time_s": self.frame_time_s,
            "bottleneck": self.bottleneck,
            "resident_fps": self.resident_fps,
            "rewrite_s": self.rewrite_s,
            "rewritten_arrays": self.rewritten_arrays,
            "target_fps": self.target_fps,
            "arrays_for_target": self.arrays_for_target,
            "target_reachable": self.target_reachable,
            "layers": layers + [g.to_dict() for g in m.digital],
            "outputs": outputs,
            "notes": list(m.notes),
            "coverage": m.coverage.to_dict(),
            "attention": m.attention,
            "digital_s": self.digital_s,
            "embedding_elements": m.embedding_elements,
        }

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.to_dict()["layers"])

    def outputs_frame(self):
        import pandas as pd

        return pd.DataFrame([o.to_dict() for o in self.outputs])


# --------------------------------------------------------------------------- replication
def _replicas_for(stage_s: Sequence[float], caps: Sequence[int], bottleneck_s: float) -> List[int]:
    """Copies per layer so that every stage takes at most ``bottleneck_s`` (within the caps)."""
    return [max(1, min(cap, math.ceil(s / bottleneck_s - _EPS))) for s, cap in zip(stage_s, caps)]


def _balance(stage_s: Sequence[float], tiles: Sequence[int], caps: Sequence[int], arrays: int) -> List[int]:
    """The smallest bottleneck reachable with ``arrays`` arrays; its replicas (bisection on T)."""
    def cost(t: float) -> int:
        return sum(n * r for n, r in zip(tiles, _replicas_for(stage_s, caps, t)))

    hi = max(stage_s)  # every layer once: fits by assumption
    lo = max(s / c for s, c in zip(stage_s, caps))
    if cost(lo) <= arrays:
        return _replicas_for(stage_s, caps, lo)
    for _ in range(200):
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        if cost(mid) <= arrays:
            hi = mid
        else:
            lo = mid
        if hi - lo <= hi * 1e-12:
            break
    return _replicas_for(stage_s, caps, hi)


# --------------------------------------------------------------------------- residency
def _resident_set(mapping: ModelMapping, arrays: int) -> Tuple[List[bool], int]:
    """Which layers stay resident when the graph does not fit, and the swap pool size.

    Layers called most often are kept first (each of their tiles would be rewritten once per
    call otherwise), as long as the arrays left can still hold the largest swapped layer.
    """
    layers = mapping.layers
    order = sorted(range(len(layers)), key=lambda i: (-layers[i].calls, -layers[i].tiles, i))
    resident = [False] * len(layers)
    used = 0
    for i in order:
        rest = [layers[j].tiles for j in range(len(layers)) if not resident[j] and j != i]
        if used + layers[i].tiles + (max(rest) if rest else 0) <= arrays and rest:
            resident[i] = True
            used += layers[i].tiles
    return resident, arrays - used


# --------------------------------------------------------------------------- the model
def _check_target(chip: ChipSpec, target_fps: Optional[float]) -> None:
    if target_fps is not None and (not isinstance(target_fps, (int, float)) or not target_fps > 0
                                   or math.isinf(target_fps)):
        raise UserError(f"a target frame rate (target_fps) must be a positive number, got {target_fps!r}")
    if target_fps is not None and not chip.replicate:
        raise UserError("a target frame rate (target_fps) needs replication (replicate): copies of the slow layers "
                        "are what raise the frame rate")
    if chip.replicate and target_fps is None and chip.arrays is None:
        raise UserError("replication (replicate) needs a chip size (arrays) to balance, or a target frame rate "
                        "(target_fps) to provision arrays for")


def _replication(base_s: List[float], tiles: List[int], caps: List[int], chip: ChipSpec, fits: bool,
                 target_fps: Optional[float]) -> Tuple[List[int], Optional[int], Optional[bool]]:
    """Copies per layer, arrays for ``target_fps`` and whether it is reachable (see the module docstring)."""
    replicas = [1] * len(base_s)
    arrays_for_target: Optional[int] = None
    reachable: Optional[bool] = None
    available = chip.arrays
    if not chip.replicate:
        return replicas, arrays_for_target, reachable
    if target_fps is not None:
        goal = _replicas_for(base_s, caps, 1.0 / target_fps)
        arrays_for_target = sum(n * r for n, r in zip(tiles, goal))
        reachable = all(s / r <= (1.0 / target_fps) * (1 + 1e-9) for s, r in zip(base_s, goal))
        if available is None or arrays_for_target <= available:
            replicas = goal
    if fits and available is not None and (target_fps is None or arrays_for_target > available):
        replicas = _balance(base_s, tiles, caps, available)
    return replicas, arrays_for_target, reachable


@dataclass
class _Swap:
    """Residency when the graph does not fit: per layer resident?, passes, rewrite time, stage time."""

    resident: List[bool]
    passes: List[int]
    rewrite: List[float]
    stage_s: List[float]
    pool_s: float = 0.0


def _swap(mapping: ModelMapping, chip: ChipSpec, fits: bool, base_s: List[float], replicas: List[int],
          write_per_array_s: float) -> _Swap:
    layers = mapping.layers
    n = len(layers)
    swap = _Swap([True] * n, [1] * n, [0.0] * n, [s / r for s, r in zip(base_s, replicas)])
    if fits:
        return swap
    swap.resident, pool = _resident_set(mapping, chip.arrays)
    for i, layer in enumerate(layers):
        if swap.resident[i]:
            continue
        swap.passes[i] = math.ceil(layer.tiles / pool)
        swap.rewrite[i] = layer.calls * layer.tiles * write_per_array_s
        swap.stage_s[i] = base_s[i] * swap.passes[i]
        swap.pool_s += swap.stage_s[i] + swap.rewrite[i]
    return swap


def _frame_time(mapping: ModelMapping, swap: _Swap, chip: ChipSpec, digital_s: float = 0.0, link_s: float = 0.0
                ) -> Tuple[float, str]:
    """Time between frames and what sets it: the slowest resident stage, the swap pool, the digital
    unit or the chip-to-chip links (each a resource of its own); with ``layer_by_layer`` every
    stage in turn (one image at a time)."""
    if chip.layer_by_layer:
        return sum(swap.stage_s) + sum(swap.rewrite) + digital_s + link_s, "layer by layer"
    resident_stage = [(s, mapping.layers[i].name) for i, s in enumerate(swap.stage_s) if swap.resident[i]]
    frame_s, bottleneck = max(resident_stage, default=(0.0, ""))
    for other_s, name in ((swap.pool_s, "swap pool (weight rewrites)"), (digital_s, "digital unit"),
                          (link_s, "chip-to-chip links")):
        if other_s > frame_s:
            frame_s, bottleneck = other_s, name
    return frame_s, bottleneck


def _output_latencies(mapping: ModelMapping, swap: _Swap, replicas: List[int], arrays_of: List[int], t_mvm: float,
                      buffer_s: List[float], write_per_array_s: float, off_s: "_OffArray"
                      ) -> Tuple[OutputPerf, ...]:
    """Latency of every output: the longest path over the weight-layer calls, each call also waiting
    for the digital work before it and its activations crossing chips."""
    finish = _finish_times(mapping, swap.passes, swap.resident, replicas, t_mvm, buffer_s, write_per_array_s,
                           off_s.call_s)
    return tuple(
        OutputPerf(o.index, o.node, max((finish[p] for p in o.preds), default=0.0) + off_s.output_s[j],
                   sum(arrays_of[i] for i in o.layers))
        for j, o in enumerate(mapping.outputs))


def _finish_times(mapping: ModelMapping, passes: Sequence[int], resident: Sequence[bool], replicas: Sequence[int],
                  t_mvm: float, buffer_s: Sequence[float], write_per_array_s: float,
                  off_s: Sequence[float] = ()) -> List[float]:
    """When each weight-layer call of ``mapping.calls`` finishes (one frame in flight); ``off_s``: the
    time each call also waits for work off the arrays and chip crossings."""
    layers = mapping.layers
    finish: List[float] = []
    for k, call in enumerate(mapping.calls):
        i = call.layer
        layer = layers[i]
        t = call.mvms * (layer.cycles_per_mvm * t_mvm + buffer_s[i]) * passes[i] / replicas[i]
        if not resident[i]:
            t += layer.tiles * write_per_array_s
        t += off_s[k] if off_s else 0.0
        finish.append(t + max((finish[p] for p in call.preds), default=0.0))
    return finish


def call_finish_s(perf: Performance) -> Dict[str, float]:
    """When each weight-layer call (by DAG node) of ``perf``'s mapping finishes: the longest path to
    it, as the outputs' latencies are computed (adaptive inference subtracts skipped iterations)."""
    mapping, chip = perf.mapping, perf.chip
    buffer_s = [buffer_s_per_mvm(layer, mapping.array, chip) for layer in mapping.layers]
    finish = _finish_times(mapping, [lp.passes for lp in perf.layers], [lp.resident for lp in perf.layers],
                           [lp.replicas for lp in perf.layers], chip.mvm_latency_ns * 1e-9, buffer_s,
                           mapping.array.rows * chip.write_ns_per_row * 1e-9, perf.call_off_s)
    return {call.node: t for call, t in zip(mapping.calls, finish)}


def work_time_s(work: Work, tech: Optional[TechSpec]) -> float:
    """Time of work off the arrays: digital MACs and element ops on the digital unit, then the
    gain-cell steps (0 without a tech)."""
    if tech is None or not work:
        return 0.0
    return tech.digital_time_s(work.macs, work.ops) + work.gain_cell_steps * tech.gain_cell_step_ns * 1e-9


def layer_chips(mapping: ModelMapping, chip: ChipSpec) -> List[int]:
    """The chip of every layer: layers in execution order filled into chips of ``arrays_per_chip``
    arrays, a new chip where the next layer does not fit (cut at layer boundaries).

    Raises
    ------
    UserError
        A layer needs more arrays than one chip has.
    """
    per = chip.arrays_per_chip
    if per is None:
        return [0] * len(mapping.layers)
    chips, current, used = [], 0, 0
    for layer in mapping.layers:
        if layer.tiles > per:
            raise UserError(f"layer {layer.name} needs {layer.tiles:,} arrays, more than one chip's {per:,} "
                            f"(--chip-arrays); give larger chips or larger arrays")
        if used + layer.tiles > per:
            current, used = current + 1, 0
        used += layer.tiles
        chips.append(current)
    return chips


@dataclass
class _OffArray:
    """Per call and per output: the time of its work off the arrays and of its activations crossing
    chips; the link bytes per frame."""

    call_s: List[float]
    output_s: List[float]
    link_bytes: float = 0.0
    link_s: float = 0.0


def _off_array(mapping: ModelMapping, chip: ChipSpec, chips: List[int], tech: Optional[TechSpec]) -> _OffArray:
    act_bytes = (tech.activation_bits if tech is not None else 8) / 8
    call_s, link_bytes = [], 0.0
    for call in mapping.calls:
        layer = mapping.layers[call.layer]
        crossing = any(chips[mapping.calls[p].layer] != chips[call.layer] for p in call.preds)
        moved = call.mvms * layer.inputs_per_mvm * act_bytes if crossing else 0.0
        link_bytes += moved
        call_s.append(work_time_s(call.before, tech) + moved / chip.link_bytes_per_s)
    output_s = [work_time_s(o.before, tech) for o in mapping.outputs]
    return _OffArray(call_s, output_s, link_bytes, link_bytes / chip.link_bytes_per_s)


def buffer_s_per_mvm(layer: LayerMapping, array: ArraySpec, chip: ChipSpec) -> float:
    """Time one MVM of ``layer`` spends in its tile's input and output buffers (write then read,
    NeuroSim ``Tile.cpp``); 0 when the chip's buffers never limit."""
    cycles = 0.0
    if chip.tile_input_bits_per_cycle is not None:
        rows = min(layer.inputs_per_mvm, chip.tile_side_arrays * array.rows)
        cycles += 2 * rows * array.dac_bits / chip.tile_input_bits_per_cycle
    if chip.tile_output_bits_per_cycle is not None:
        outputs = min(layer.outputs_per_mvm, chip.tile_side_arrays * array.cols // array.columns_per_weight)
        cycles += 2 * outputs * chip.partial_sum_bits / chip.tile_output_bits_per_cycle
    return cycles * chip.cycle_ns * 1e-9


def _layer_perfs(layers, replicas: Sequence[int], arrays_of: Sequence[int], swap) -> Tuple[LayerPerf, ...]:
    """One :class:`LayerPerf` per mapped layer: its tiles, replicas, arrays, stage time and residency."""
    return tuple(LayerPerf(layer.name, layer.tiles, replicas[i], arrays_of[i], layer.cycles, swap.stage_s[i],
                           swap.resident[i], swap.passes[i], swap.rewrite[i])
                 for i, layer in enumerate(layers))


def performance(mapping: ModelMapping, chip: ChipSpec, *, target_fps: Optional[float] = None,
                tech: Optional[TechSpec] = None) -> Performance:
    """Fit, throughput and latency of ``mapping`` on ``chip`` (formulas in the module docstring).

    Parameters
    ----------
    mapping : ModelMapping
        Tiles and MVMs per unique weight layer (:func:`~graphcost.crossbar.mapping.map_trace`).
    chip : ChipSpec
        Arrays available (``None``: unlimited), MVM latency, write time per row, ``replicate``.
    target_fps : float, optional
        With ``chip.replicate``: the frame rate to size the replicas for.
    tech : TechSpec, optional
        Times the digital unit (and gain-cell attention): a call's off-array work adds to its latency, the
        unit is a pipeline stage of its own. ``None``: the arrays alone (off-array work takes no time).

    Returns
    -------
    Performance
        ``fits``, ``throughput_fps``, ``latency_s`` (last output), rewrites when it does not fit, a
        :class:`LayerPerf` per layer, an :class:`OutputPerf` per output.

    Raises
    ------
    UserError
        ``target_fps`` not positive and finite or without ``chip.replicate``; ``replicate`` with neither
        ``chip.arrays`` nor ``target_fps``.

    Examples
    --------
    >>> import torch
    >>> from graphcost.crossbar import ArraySpec, ChipSpec, map_model
    >>> m = map_model(torch.nn.Conv2d(64, 64, 3, padding=1), (1, 64, 8, 8), ArraySpec(128, 128))
    >>> p = performance(m, ChipSpec(arrays=10, mvm_latency_ns=100))  # 576 rows x 512 columns: 5 x 4 arrays
    >>> m.arrays_used, p.fits, p.rewritten_arrays                   # every frame rewrites the 20 arrays
    (20, False, 20)
    """
    _check_target(chip, target_fps)
    layers, t_mvm, tiles = mapping.layers, chip.mvm_latency_ns * 1e-9, [layer.tiles for layer in mapping.layers]
    buffer_s = [buffer_s_per_mvm(layer, mapping.array, chip) for layer in layers]
    base_s = [layer.cycles * t_mvm + layer.mvms * b for layer, b in zip(layers, buffer_s)]  # resident stage times
    fits = chip.arrays is None or mapping.arrays_used <= chip.arrays
    replicas, arrays_for_target, reachable = _replication(base_s, tiles, [layer.max_replicas for layer in layers],
                                                          chip, fits, target_fps)
    write_per_array_s = mapping.array.rows * chip.write_ns_per_row * 1e-9
    swap = _swap(mapping, chip, fits, base_s, replicas, write_per_array_s)
    chips = layer_chips(mapping, chip)
    off_s, digital_s = _off_array(mapping, chip, chips, tech), work_time_s(mapping.digital_work, tech)
    frame_s, bottleneck = _frame_time(mapping, swap, chip, digital_s, off_s.link_s)
    arrays_of = [n * r for n, r in zip(tiles, replicas)]
    outputs = _output_latencies(mapping, swap, replicas, arrays_of, t_mvm, buffer_s, write_per_array_s, off_s)
    return Performance(
        mapping=mapping, chip=chip, target_fps=target_fps, fits=fits, arrays_needed=mapping.arrays_used,
        arrays_available=chip.arrays, arrays_used=sum(arrays_of), throughput_fps=1.0 / frame_s,
        latency_s=outputs[-1].latency_s if outputs else 0.0, frame_time_s=frame_s, bottleneck=bottleneck,
        resident_fps=1.0 / max(base_s), rewrite_s=sum(swap.rewrite),
        rewritten_arrays=sum(layer.calls * layer.tiles for i, layer in enumerate(layers) if not swap.resident[i]),
        arrays_for_target=arrays_for_target, target_reachable=reachable, outputs=outputs, digital_s=digital_s,
        layers=_layer_perfs(layers, replicas, arrays_of, swap), chips=max(chips, default=0) + 1,
        layer_chips=tuple(chips), link_bytes=off_s.link_bytes, call_off_s=tuple(off_s.call_s))
