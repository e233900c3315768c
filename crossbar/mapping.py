"""Mapping: every unique weight layer of the loop-keeping graph onto crossbar tiles.

One :class:`LayerMapping` per loop-graph node with ``is_weight_layer``: a weight-shared block
called N times is mapped once and used N times (its MVMs count every call). The formulas
(``docs/crossbar.md`` has them all):

* weight matrix of a conv: ``rows = Cin/groups * prod(kernel) (+1 with analog bias)``,
  ``cols = Cout * ceil(weight_bits / cell_bits) * (2 if differential else 1)``;
  a linear layer: ``rows = in_features (+1)``, ``cols = out_features * columns_per_weight``;
* ``tiles = ceil(rows / R) * ceil(cols / C)`` for an ungrouped layer; grouped / depthwise
  convs follow the ``depthwise`` strategy (``dense``, ``packed``, ``time-multiplexed``);
* ``utilization = rows * cols / (tiles * R * C)`` (cells holding weights over cells provided);
* ``mvms`` per frame = output pixels (``N * H_out * W_out`` for a conv, output rows for a
  linear layer, ``N * steps * layers`` for a recurrent one) summed over every call.

Transposed convs are mapped as the equivalent direct conv over the zero-inserted input
(``rows = Cin/groups * k*k``, ``cols = Cout * columns_per_weight``, one MVM per output pixel).
Recurrent layers (LSTM/GRU/RNN and cells) map one gate matrix per layer and direction
(``rows = input + hidden``, ``cols = gates * hidden * columns_per_weight``); steps of one
sequence run one after another.

Besides the per-layer table a :class:`ModelMapping` keeps, as plain data, the execution DAG reduced
to its weight-layer calls (:class:`CallStage`, with predecessor indices) and the outputs, which
is all :mod:`.perf` needs for latencies along longest paths. No trace travels with it, so a
ModelMapping pickles and ships to Ray workers unchanged.

>>> import torch
>>> from graphcost.crossbar.specs import ArraySpec
>>> m = map_model(torch.nn.Conv2d(3, 16, 3, padding=1), (1, 3, 32, 32), ArraySpec(256, 256))
>>> layer = m.layers[0]
>>> layer.rows, layer.cols, layer.tiles, layer.mvms     # 3*3*3 rows, 16 * 4 slices * 2 columns
(27, 128, 1, 1024)
"""
from __future__ import annotations

import math
from dataclasses import asdict, astuple, dataclass, replace
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

import networkx as nx
from torch import fx, nn

from graphcost.errors import UserError
from graphcost.schema import CallRecord, call_record

from .specs import DEPTHWISE_STRATEGIES, ArraySpec
from .tiling import (FUNCTIONAL_GROUPS_INDEX, WeightShape, ceil_div, generic_shape, geometry_of_module,
                     geometry_of_weight, geometry_shape, read_columns, recurrent_shape, row_drives, tile_grouped)


# --------------------------------------------------------------------------- plain data
@dataclass(frozen=True)
class LayerMapping:
    """One unique weight layer on the arrays.

    ``rows`` x ``cols`` is the weight matrix one group's MVM uses (``cols`` in physical columns:
    bit slices and differential pairs included); ``tiles`` the arrays it occupies;
    ``mvms`` its MVMs per frame over all ``calls``; per MVM it reads ``inputs_per_mvm`` and writes
    ``outputs_per_mvm`` activations, drives ``row_drives`` word lines and digitises ``read_columns``
    columns per input cycle (from the tiling, for the energy pass); ``cycles_per_mvm`` the array cycles one MVM
    takes (> 1 only for time-multiplexed grouped convs), so ``extra_cycles = mvms *
    (cycles_per_mvm - 1)``; ``max_replicas`` the independent MVMs of one call (replicating a
    layer more often than that cannot speed it up).
    """

    name: str
    op: str
    kind: str
    rows: int
    cols: int
    tiles: int
    utilization: float
    mvms: int
    calls: int
    extra_cycles: int = 0
    cycles_per_mvm: int = 1
    groups: int = 1
    strategy: str = "dense"
    used_cells: int = 0
    weights: int = 0
    matrices: int = 1
    max_replicas: int = 1
    mvms_per_call: Tuple[int, ...] = ()
    inputs_per_mvm: int = 0
    outputs_per_mvm: int = 0
    row_drives: int = 0
    read_columns: int = 0

    @property
    def cycles(self) -> int:
        """Array cycles per frame: ``mvms + extra_cycles``."""
        return self.mvms + self.extra_cycles

    @property
    def macs(self) -> int:
        """MACs per frame on the arrays: MVMs x weights of the matrix one MVM uses."""
        return self.mvms * self.weights // max(1, self.matrices)

    def to_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["resource"] = "analog"
        d["macs"] = self.macs
        for key in ("mvms_per_call", "inputs_per_mvm", "outputs_per_mvm", "row_drives", "read_columns"):
            d.pop(key)
        return d


#: Where a call of the trace runs (``resource`` of the JSON's layers).
RESOURCES = ("analog", "digital", "gain-cell")
#: ``attention=``: where activation x activation matmuls (QK^T, AV) run.
ATTENTION_KINDS = ("digital", "gain-cell")


@dataclass(frozen=True)
class Work:
    """Work off the arrays: ``macs`` and element ``ops`` on the digital unit, ``lookup_elements``
    read from digital memory (embedding rows), ``gain_cell_macs`` / ``gain_cell_inputs`` /
    ``gain_cell_outputs`` / ``gain_cell_steps`` in gain-cell attention arrays (inputs driven,
    outputs read out, query steps one after another)."""

    macs: int = 0
    ops: int = 0
    lookup_elements: int = 0
    gain_cell_macs: int = 0
    gain_cell_inputs: int = 0
    gain_cell_outputs: int = 0
    gain_cell_steps: int = 0

    def __add__(self, other: "Work") -> "Work":
        return Work(*(a + b for a, b in zip(astuple(self), astuple(other))))

    def __bool__(self) -> bool:
        return any(astuple(self))

    def scaled(self, factor: float) -> "Work":
        return Work(*(int(round(v * factor)) for v in astuple(self)))


@dataclass(frozen=True)
class Coverage:
    """Every MAC of the trace placed: on arrays, on the digital unit, or in gain-cell arrays;
    ``total_macs`` equals ``analyze``'s MACs."""

    analog_macs: int
    digital_macs: int
    gain_cell_macs: int = 0

    @property
    def total_macs(self) -> int:
        return self.analog_macs + self.digital_macs + self.gain_cell_macs

    def to_dict(self) -> Dict[str, int]:
        d = {"analog_macs": self.analog_macs, "digital_macs": self.digital_macs, "total_macs": self.total_macs}
        if self.gain_cell_macs:
            d["gain_cell_macs"] = self.gain_cell_macs
        return d


@dataclass(frozen=True)
class DigitalGroup:
    """The work off the arrays of one module (its calls that hold no mapped weight), per frame."""

    name: str
    resource: str
    work: Work
    calls: int

    def to_dict(self) -> Dict[str, object]:
        return {"name": self.name, "resource": self.resource, "calls": self.calls, "macs": self.work.macs
                + self.work.gain_cell_macs, "other_ops": self.work.ops, "lookup_elements": self.work.lookup_elements}


@dataclass(frozen=True)
class CallStage:
    """One call of a weight layer in the execution DAG: ``layer`` indexes ``ModelMapping.layers``,
    ``preds`` index earlier ``ModelMapping.calls`` reached through weight-free ops only; ``before``
    is the work off the arrays that this call waits for and no earlier weight call does."""

    node: str
    layer: int
    mvms: int
    preds: Tuple[int, ...] = ()
    before: Work = Work()
    #: the work off the arrays attributed to this call, each such call once (per-call energy)
    owned: Work = Work()


@dataclass(frozen=True)
class OutputStage:
    """One model output (``index`` from 1): the calls it waits for and the layers it needs."""

    index: int
    node: str
    shape: Tuple[int, ...]
    preds: Tuple[int, ...]
    layers: Tuple[int, ...]
    #: where forward returned it: dict key, tuple index or dotted path (as ``analyze``'s outputs)
    name: str = ""
    #: work off the arrays after the last weight calls it waits for (latency), and all it waits for (energy)
    before: Work = Work()
    work: Work = Work()


@dataclass(frozen=True)
class ModelMapping:
    """Every unique weight layer of one model on arrays of one :class:`ArraySpec`."""

    model: str
    input_shape: Tuple[int, ...]
    array: ArraySpec
    depthwise: str
    layers: Tuple[LayerMapping, ...]
    calls: Tuple[CallStage, ...]
    outputs: Tuple[OutputStage, ...]
    notes: Tuple[str, ...] = ()
    coverage: Coverage = Coverage(0, 0)
    digital: Tuple[DigitalGroup, ...] = ()
    attention: str = ATTENTION_KINDS[0]
    #: elements of the embedding tables kept in digital memory (their lookups read it)
    embedding_elements: int = 0

    @property
    def digital_work(self) -> Work:
        """All work off the arrays per frame."""
        return sum((g.work for g in self.digital), Work())

    @property
    def arrays_used(self) -> int:
        """Arrays to hold every unique layer once: ``sum(tiles)`` (no replication)."""
        return sum(layer.tiles for layer in self.layers)

    @property
    def used_cells(self) -> int:
        return sum(layer.used_cells for layer in self.layers)

    @property
    def utilization(self) -> float:
        """Cells holding weights over cells of the arrays used."""
        provided = self.arrays_used * self.array.cells
        return self.used_cells / provided if provided else 0.0

    @property
    def classes(self) -> Optional[int]:
        """Channels of the last output (the class count of a segmentation network)."""
        shape = self.outputs[-1].shape if self.outputs else ()
        return int(shape[1]) if len(shape) >= 2 else None

    def layer(self, name: str) -> LayerMapping:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def to_dict(self) -> Dict[str, object]:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "crossbar": self.array.label,
            "array": self.array.to_dict(),
            "depthwise": self.depthwise,
            "arrays_used": self.arrays_used,
            "utilization": self.utilization,
            "layers": [layer.to_dict() for layer in self.layers] + [g.to_dict() for g in self.digital],
            "notes": list(self.notes),
            "coverage": self.coverage.to_dict(),
            "attention": self.attention,
            "embedding_elements": self.embedding_elements,
        }

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([layer.to_dict() for layer in self.layers])


# --------------------------------------------------------------------------- one layer
def _out_shape(dag: nx.DiGraph, node: str) -> Tuple[int, ...]:
    shapes = call_record(dag, node).out_shapes
    return tuple(shapes[0]) if shapes else ()


def _fx_node(trace, name: str) -> Optional[fx.Node]:
    for n in trace.graph.nodes:
        if n.name == name:
            return n
    return None


def _arg_shape(trace, fx_node: fx.Node, index: int, name: str) -> Optional[Tuple[int, ...]]:
    src = fx_node.args[index] if len(fx_node.args) > index else fx_node.kwargs.get(name)
    if not isinstance(src, fx.Node):
        return None
    if src.op == "get_attr":
        return tuple(trace.get_attr(src.target).shape)
    if src.name in trace.dag:
        return _out_shape(trace.dag, src.name)
    return None


def _arg(fx_node: fx.Node, index: int, name: str, default=None):
    if len(fx_node.args) > index:
        return fx_node.args[index]
    return fx_node.kwargs.get(name, default)


class _Unmappable(Exception):
    """A weight layer the arrays cannot hold (``kind`` says why, for the summarised note)."""

    def __init__(self, kind: str, layer: str):
        super().__init__(layer)
        self.kind, self.layer = kind, layer


#: The summarised notes, one line per kind with the count of layers.
_NOTE_TEXT = {
    "functional": "computed digitally: the weight is not a parameter of a module",
    "no-matrix": "computed digitally: the module has no weight matrix",
    "approximate": "mapped approximately (a module of unknown kind: one matrix per weight tensor)",
}


def _weight_owners(model: nn.Module) -> Dict[int, nn.Module]:
    """The module holding each >= 2-D parameter (by identity)."""
    owners: Dict[int, nn.Module] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.dim() >= 2:
                owners.setdefault(id(p), module)
    return owners


def _layer_shape(trace, calls: Sequence[str], owners: Dict[int, nn.Module]) -> WeightShape:
    """Decode the weight of the layer whose weight-layer calls are ``calls`` (:mod:`.tiling` decodes):
    by the module called, else by the module holding the weight an op inside a module uses
    (Mamba's ``conv1d`` / ``dt_proj`` weights called functionally from the mixer)."""
    dag = trace.dag
    first = trace.call(calls[0])
    module = None
    if first.calls_module:
        try:
            module = trace.submodule(first.target)
        except AttributeError:
            module = None
    out_shapes = [_out_shape(dag, c) for c in calls]
    geometry = geometry_of_module(module) if module is not None else None
    if geometry is None and first.kind in ("conv", "linear"):
        held = {owners.get(pid) for pid in first.param_ids} - {None}
        geometry = geometry_of_module(held.pop()) if len(held) == 1 else None
    if geometry is not None:
        return geometry_shape(geometry, out_shapes)
    shape = recurrent_shape(module, out_shapes) if module is not None else None
    if shape is not None:
        return shape
    if module is None and first.kind in ("conv", "linear"):
        fx_node = _fx_node(trace, calls[0])
        shape = _functional_shape(trace, fx_node, first.op, out_shapes) if fx_node is not None else None
        if shape is not None:
            return shape
    if module is None:
        raise _Unmappable("functional", f"{first.layer} ({first.op})")
    shape = generic_shape(module, [trace.call(c).macs for c in calls])
    if shape is None:
        raise _Unmappable("no-matrix", f"{first.layer} ({type(module).__name__})")
    return shape


def _functional_shape(trace, fx_node: fx.Node, op: str, out_shapes) -> Optional[WeightShape]:
    """``F.conv2d(x, w, b, ...)`` / ``F.linear(x, w, b)`` with ``w`` a module attribute."""
    weight = _arg_shape(trace, fx_node, 1, "weight")
    if weight is None:
        return None
    bias = _arg(fx_node, 2, "bias") is not None
    groups = 1 if op == "linear" else int(_arg(fx_node, FUNCTIONAL_GROUPS_INDEX, "groups", 1) or 1)
    return geometry_shape(geometry_of_weight(op, weight, groups, bias), out_shapes)


def _map_layer(name: str, first: CallRecord, calls: int, shape: WeightShape, array: ArraySpec, depthwise: str
               ) -> LayerMapping:
    bias_row = 1 if (array.analog_bias and shape.has_bias) else 0
    cpw = array.columns_per_weight
    tiles = 0
    used = 0
    weights = 0
    cycles = 1
    strategy = "dense"
    rows0 = cols0 = 0
    groups0 = 1
    n = len(shape.matrices)
    inputs = outputs = drives = columns = 0
    for i, (rows_g, cols_g, groups) in enumerate(shape.matrices):
        tiling = tile_grouped(rows_g, cols_g * cpw, groups, array, depthwise, bias_row)
        tiles += tiling.tiles
        inputs, outputs = inputs + rows_g * groups, outputs + cols_g * groups
        drives += row_drives(tiling, rows_g, groups, bias_row)
        columns += read_columns(tiling, cols_g * cpw, groups)
        used += (rows_g + bias_row) * cols_g * cpw * groups
        weights += rows_g * cols_g * groups
        cycles = max(cycles, tiling.cycles_per_mvm)
        if i == 0:
            rows0, cols0, groups0, strategy = rows_g + bias_row, cols_g * groups * cpw, groups, tiling.strategy
    mvms = sum(shape.call_mvms)
    return LayerMapping(
        name=name,
        op=first.op,
        kind=first.kind,
        rows=rows0,
        cols=cols0,
        tiles=tiles,
        utilization=used / (tiles * array.cells),
        mvms=mvms,
        calls=calls,
        extra_cycles=mvms * (cycles - 1),
        cycles_per_mvm=cycles,
        groups=groups0,
        strategy=strategy,
        used_cells=used,
        weights=weights,
        matrices=len(shape.matrices),
        max_replicas=max(1, int(shape.max_replicas)),
        mvms_per_call=tuple(shape.call_mvms),
        # an MVM of a multi-matrix layer (recurrent, generic) uses one of its matrices: the average
        inputs_per_mvm=ceil_div(inputs, n),
        outputs_per_mvm=ceil_div(outputs, n),
        row_drives=ceil_div(drives, n),
        read_columns=ceil_div(columns, n),
    )


# --------------------------------------------------------------------------- the whole graph
def map_trace(trace, array: ArraySpec, depthwise: str = "dense", *, name: Optional[str] = None,
              attention: str = ATTENTION_KINDS[0]) -> ModelMapping:
    """Map every unique weight layer of ``trace``'s loop-keeping graph onto ``array``-sized tiles,
    and place every other call of the trace on the digital unit (or in gain-cell arrays).

    Parameters
    ----------
    trace : graphcost.tracing.Trace
        A traced model (:func:`graphcost.trace`): its loop graph names the unique weight layers,
        its execution DAG the calls and their output shapes.
    array : ArraySpec
        Array size and cell encoding (bits per weight and cell, differential pairs, analog bias).
    depthwise : str
        How grouped / depthwise convs are tiled: ``dense``, ``packed`` or ``time-multiplexed``
        (:data:`~graphcost.crossbar.specs.DEPTHWISE_STRATEGIES`).
    name : str, optional
        The model name recorded in the result (default: the module's class name).
    attention : str
        Where activation x activation matmuls (attention's QK^T and AV) run: ``digital`` (the
        digital unit) or ``gain-cell`` (analog gain-cell arrays written as tokens arrive).

    Returns
    -------
    ModelMapping
        Plain data: one :class:`LayerMapping` per mapped layer (rows, cols, tiles, MVMs per frame
        over all its calls; a weight tied to an embedding is programmed once, for its weight-layer
        calls), the weight-layer calls with their predecessors, the outputs, the work off the arrays
        per module (:class:`DigitalGroup`), the MAC :class:`Coverage`, and summarised notes.

    Raises
    ------
    UserError
        ``depthwise`` or ``attention`` is not a known choice, or the model has no weight layer.

    Examples
    --------
    >>> import torch
    >>> from graphcost import trace
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.Conv2d(64, 64, 3, groups=64))
    >>> m = map_trace(trace(net, (1, 3, 16, 16)), ArraySpec(128, 128), "packed")
    >>> [(layer.rows, layer.cols, layer.tiles) for layer in m.layers]   # 64 depthwise 9 x 8 blocks: 14 per array
    [(27, 512, 4), (9, 512, 5)]
    >>> m.arrays_used, m.layers[1].mvms, m.coverage.digital_macs
    (9, 196, 0)
    """
    return TraceMapper(trace, name=name)(array, depthwise, attention)


#: Array fields the mapping does not depend on (the simulator quantises with them; perf and energy read them).
_NOT_MAPPING_FIELDS = {"dac_bits": 8, "adc_bits": 8}


class TraceMapper:
    """:func:`map_trace` of one trace onto many arrays, each piece of work done once.

    Each weight layer's matrices do not depend on the array, and the placement of every other call
    (the DAG reduced to weight-layer calls, the digital work, the coverage) depends only on where
    attention runs: both are computed at their first use. The tiling depends on the array's geometry
    and encoding only (not its DAC / ADC bits): it is computed once per geometry and depthwise
    strategy, and each result carries the array it was asked for. A sweep over hardware maps every
    architecture's one trace through one mapper.

    >>> import torch
    >>> from graphcost import trace
    >>> mapper = TraceMapper(trace(torch.nn.Conv2d(3, 64, 3), (1, 3, 16, 16)))
    >>> [mapper(ArraySpec(128, 128, adc_bits=b)).arrays_used for b in (4, 8)], mapper.tilings
    ([4, 4], 1)
    """

    def __init__(self, trace, *, name: Optional[str] = None) -> None:
        self.trace = trace
        self.name = name or type(trace.module).__name__
        self._shapes: Optional[list] = None
        self._index: Dict[str, int] = {}
        self._call_mvms: Dict[str, int] = {}
        self._notes: Tuple[str, ...] = ()
        self._placements: Dict[str, tuple] = {}
        self._layers: Dict[Tuple[ArraySpec, str], Tuple[LayerMapping, ...]] = {}

    @property
    def tilings(self) -> int:
        """Distinct (geometry, depthwise) tilings computed so far."""
        return len(self._layers)

    def _prepare(self) -> None:
        shapes, index, call_mvms, notes = _layer_shapes(self.trace)
        if not shapes:
            raise UserError("the model has no weight layer (conv, linear, recurrent) to map onto crossbar arrays")
        self._shapes, self._index, self._call_mvms, self._notes = shapes, index, call_mvms, tuple(notes)

    def _placement(self, attention: str) -> tuple:
        """Every call without a mapped weight placed off the arrays: the reduced DAG, coverage, digital groups."""
        trace, call_mvms = self.trace, self._call_mvms
        off = {n: _off_array_work(trace, n, attention) for n in trace.dag if n not in call_mvms}
        if attention == "gain-cell":
            _fold_into_gain_cells(trace, off)
        calls, outputs = _reduce_dag(trace, self._index, call_mvms, off)
        coverage = Coverage(analog_macs=sum(trace.call(n).macs for n in call_mvms),
                            digital_macs=sum(w.macs for w in off.values()),
                            gain_cell_macs=sum(w.gain_cell_macs for w in off.values()))
        return calls, outputs, coverage, _digital_groups(trace, off), _embedding_elements(trace)

    def __call__(self, array: ArraySpec, depthwise: str = "dense", attention: str = ATTENTION_KINDS[0]
                 ) -> ModelMapping:
        if depthwise not in DEPTHWISE_STRATEGIES:
            raise UserError(f"unknown --depthwise strategy {depthwise!r}; use one of "
                            f"{', '.join(DEPTHWISE_STRATEGIES)}")
        if attention not in ATTENTION_KINDS:
            raise UserError(f"unknown --attention {attention!r}; use one of {', '.join(ATTENTION_KINDS)}")
        if self._shapes is None:
            self._prepare()
        geometry = (replace(array, **_NOT_MAPPING_FIELDS), depthwise)
        layers = self._layers.get(geometry)
        if layers is None:
            layers = tuple(_map_layer(name, first, calls, shape, array, depthwise)
                           for name, first, calls, shape in self._shapes)
            self._layers[geometry] = layers
        if attention not in self._placements:
            self._placements[attention] = self._placement(attention)
        calls, outputs, coverage, digital, embedding_elements = self._placements[attention]
        return ModelMapping(model=self.name, input_shape=tuple(self.trace.input_shape), array=array,
                            depthwise=depthwise, layers=layers, calls=calls, outputs=outputs, notes=self._notes,
                            coverage=coverage, digital=digital, attention=attention,
                            embedding_elements=embedding_elements)


def _weight_calls(trace, nodes: Sequence[str]) -> List[str]:
    """The calls of a layer that multiply by its weight: all of them, except for a weight tied to an
    embedding (GPT-2's LM head), whose table lookups read digital memory."""
    return [n for n in nodes if trace.call(n).is_weight_layer]


def _layer_shapes(trace) -> Tuple[List[Tuple[str, CallRecord, int, WeightShape]], Dict[str, int], Dict[str, int],
                                  List[str]]:
    """Every mappable unique weight layer with its first weight call, its number of weight calls and its
    matrices, in execution order; each layer's index among them, each call's MVMs, and notes (one line
    per kind, with a count) on layers left digital or mapped approximately."""
    loop = trace.loop_graph
    weight_layers = sorted((n for n in loop if _weight_calls(trace, trace.layer(n).dag_nodes)),
                           key=lambda n: trace.layer(n).first_order)
    shapes: List[Tuple[str, CallRecord, int, WeightShape]] = []
    index: Dict[str, int] = {}
    call_mvms: Dict[str, int] = {}
    noted: Dict[str, List[str]] = {}
    owners = _weight_owners(trace.module)
    for layer_name in weight_layers:
        calls = _weight_calls(trace, trace.layer(layer_name).dag_nodes)
        try:
            shape = _layer_shape(trace, calls, owners)
        except _Unmappable as exc:
            noted.setdefault(exc.kind, []).append(exc.layer)
            continue
        if shape.approximate:
            module = trace.submodule(trace.call(calls[0]).target)
            noted.setdefault("approximate", []).append(f"{layer_name} ({type(module).__name__})")
        index[layer_name] = len(shapes)
        shapes.append((layer_name, trace.call(calls[0]), len(calls), shape))
        call_mvms.update(zip(calls, shape.call_mvms))
    notes = [f"{len(names)} layer{'s' if len(names) > 1 else ''} {_NOTE_TEXT[kind]}: {', '.join(names[:3])}"
             f"{', ...' if len(names) > 3 else ''}" for kind, names in noted.items()]
    return shapes, index, call_mvms, notes


def _off_array_work(trace, node: str, attention: str) -> Work:
    """What a call that holds no mapped weight costs off the arrays: activation x activation
    matmuls (gain-cell arrays under ``attention="gain-cell"``), element ops, embedding lookups."""
    rec = trace.call(node)
    out = rec.out_shapes[0] if rec.out_shapes else ()
    lookups = math.prod(out) if rec.op == "embedding" or rec.op.endswith(".embedding") else 0
    if attention == "gain-cell" and rec.kind == "matmul" and rec.macs and len(out) >= 2:
        # one analog step per query row; every head and sequence in arrays of its own
        return Work(ops=rec.other_ops, gain_cell_macs=rec.macs, gain_cell_inputs=rec.macs // max(1, out[-1]),
                    gain_cell_outputs=math.prod(out), gain_cell_steps=int(out[-2]))
    return Work(macs=rec.macs, ops=rec.other_ops, lookup_elements=lookups)


def _fold_into_gain_cells(trace, off: Dict[str, Work]) -> None:
    """Element ops whose every consumer is a gain-cell matmul (through shape-only ops) belong to the
    gain-cell arrays: a constant scale of Q or K is folded into the DAC or the stored K, and the
    mask and softmax between QK^T and AV are the charge-to-pulse stage (HardSigmoid) the readout
    energy covers. Their element ops leave the digital unit."""
    dag = trace.dag

    def consumers(node: str) -> List[str]:
        found, stack, seen = [], list(dag.successors(node)), set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            work = off.get(n)
            if work is not None and not work:  # a shape-only op: look through it
                stack.extend(dag.successors(n))
            else:
                found.append(n)
        return found

    for node in reversed(list(nx.topological_sort(dag))):  # consumers first: a folded op is looked through
        work = off.get(node)
        if work is not None and work.ops and not work.macs and not work.gain_cell_macs:
            targets = consumers(node)
            if targets and all(n in off and off[n].gain_cell_macs for n in targets):
                off[node] = replace(work, ops=0)


def _embedding_elements(trace) -> int:
    """Elements of the embedding tables (each once, a tied one too: it is also on arrays)."""
    total = 0
    for name in trace.loop_graph:
        layer = trace.layer(name)
        first = trace.call(layer.dag_nodes[0])
        if first.op == "embedding" and first.calls_module:
            weight = getattr(trace.submodule(first.target), "weight", None)
            total += weight.numel() if weight is not None else 0
    return total


def _digital_groups(trace, off: Dict[str, Work]) -> Tuple[DigitalGroup, ...]:
    """Work off the arrays summed per module path, in execution order (calls without work skipped)."""
    groups: Dict[Tuple[str, str], List] = {}
    for node in sorted(off, key=lambda n: trace.call(n).order):
        work = off[node]
        if not work:
            continue
        resource = "gain-cell" if work.gain_cell_macs else "digital"
        entry = groups.setdefault((trace.call(node).module or "(model)", resource), [Work(), 0])
        entry[0], entry[1] = entry[0] + work, entry[1] + 1
    return tuple(DigitalGroup(name, resource, work, calls) for (name, resource), (work, calls) in groups.items())


def _sum_bits(bits: int, works: List[Work]) -> Work:
    """The sum of ``works[i]`` for every bit ``i`` set in ``bits``."""
    total, i = Work(), 0
    while bits:
        if bits & 1:
            total += works[i]
        bits >>= 1
        i += 1
    return total


def _owned_work(trace, stages: List[CallStage], frontier: Dict[str, FrozenSet[int]], off: Dict[str, Work]
                ) -> Dict[int, Work]:
    """Each call's share of the work off the arrays, every such call counted once: the first weight
    call (in execution order) that waits for it, else the last weight call above it (a model's tail)."""
    dag = trace.dag
    stage_of = {stage.node: i for i, stage in enumerate(stages)}
    first: Dict[str, Optional[int]] = {}
    for node in reversed(list(nx.topological_sort(dag))):
        below = [stage_of[n] if n in stage_of else first[n] for n in dag.successors(node)]
        below = [i for i in below if i is not None]
        first[node] = min(below) if below else None
    owned: Dict[int, Work] = {}
    for node, work in off.items():
        if not work:
            continue
        above = frontier.get(node)
        owner = first[node] if first[node] is not None else (max(above) if above else None)
        if owner is not None:
            owned[owner] = owned.get(owner, Work()) + work
    return owned


def _reduce_dag(trace, index: Dict[str, int], call_mvms: Dict[str, int], off: Dict[str, Work]
                ) -> Tuple[Tuple[CallStage, ...], Tuple[OutputStage, ...]]:
    """The execution DAG reduced to weight-layer calls: a call's ``preds`` are the nearest
    weight-layer calls above it (through weight-free ops only). Work off the arrays, one bit per
    call in a bitset: a weight call's ``before`` is what it waits for and no weight call above it
    already waited for (so a path counts each such call once); an output's ``work`` is all the work
    off the arrays above it (each call once)."""
    dag = trace.dag
    frontier: Dict[str, FrozenSet[int]] = {}
    pending: Dict[str, int] = {}   # off-array calls above, not yet before a weight call above
    done: Dict[str, int] = {}      # off-array calls before some weight call above
    above_all: Dict[str, int] = {}  # every off-array call above
    works: List[Work] = []
    stages: List[CallStage] = []
    empty: FrozenSet[int] = frozenset()
    for node in sorted(dag.nodes, key=lambda n: trace.call(n).order):
        preds = list(dag.predecessors(node))
        fronts = [frontier[p] for p in preds]
        above = fronts[0] if len(fronts) == 1 else (frozenset().union(*fronts) if fronts else empty)
        bits_done = bits_pending = bits_all = 0
        for p in preds:
            bits_done, bits_pending, bits_all = bits_done | done[p], bits_pending | pending[p], bits_all | above_all[p]
        if node in call_mvms and trace.layer_of(node) in index:
            waits = bits_pending & ~bits_done
            stages.append(CallStage(node, index[trace.layer_of(node)], int(call_mvms[node]), tuple(sorted(above)),
                                    _sum_bits(waits, works)))
            frontier[node], pending[node], done[node] = frozenset((len(stages) - 1,)), 0, bits_done | waits
        else:
            frontier[node], done[node] = above, bits_done
            pending[node] = bits_pending
            work = off.get(node)
            if work:
                bit = 1 << len(works)
                works.append(work)
                pending[node] |= bit
                bits_all |= bit
        above_all[node] = bits_all
    owned = _owned_work(trace, stages, frontier, off)
    stages = [replace(stage, owned=owned.get(i, Work())) for i, stage in enumerate(stages)]
    # layers each call needs: its own plus those of all calls above it
    needed: List[FrozenSet[int]] = []
    for stage in stages:
        acc = {stage.layer}
        for p in stage.preds:
            acc |= needed[p]
        needed.append(frozenset(acc))
    outputs = []
    for i, (node, name) in enumerate(trace.named_outputs(), start=1):
        preds = tuple(sorted(frontier.get(node, empty)))
        layers = frozenset().union(*(needed[p] for p in preds)) if preds else empty
        outputs.append(OutputStage(i, node, _out_shape(dag, node), preds, tuple(sorted(layers)), name,
                                   _sum_bits(pending.get(node, 0) & ~done.get(node, 0), works),
                                   _sum_bits(above_all.get(node, 0), works)))
    return tuple(stages), tuple(outputs)


def map_model(model: nn.Module, inputs: Any, array: ArraySpec, depthwise: str = "dense", *,
              name: Optional[str] = None, attention: str = ATTENTION_KINDS[0]) -> ModelMapping:
    """Trace ``model`` once on ``inputs`` (as :func:`graphcost.analyze` takes them) and map it
    (see :func:`map_trace`)."""
    from graphcost.tracing import trace

    return map_trace(trace(model, inputs), array, depthwise, name=name or type(model).__name__, attention=attention)
