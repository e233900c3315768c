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
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

import networkx as nx
from torch import fx, nn

from graphcost.errors import UserError
from graphcost.schema import LayerRecord, call_record

from .specs import DEPTHWISE_STRATEGIES, ArraySpec
from .tiling import (FUNCTIONAL_GROUPS_INDEX, LayerGeometry, ceil_div, geometry_of_module, geometry_of_weight,
                     read_columns, row_drives, tile_grouped)

_GATES = ((nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1), (nn.LSTMCell, 4), (nn.GRUCell, 3), (nn.RNNCell, 1))


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

    def to_dict(self) -> Dict[str, object]:
        d = asdict(self)
        for key in ("mvms_per_call", "inputs_per_mvm", "outputs_per_mvm", "row_drives", "read_columns"):
            d.pop(key)
        return d


@dataclass(frozen=True)
class CallStage:
    """One call of a weight layer in the execution DAG: ``layer`` indexes ``ModelMapping.layers``,
    ``preds`` index earlier ``ModelMapping.calls`` reached through weight-free ops only."""

    node: str
    layer: int
    mvms: int
    preds: Tuple[int, ...] = ()


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
            "layers": [layer.to_dict() for layer in self.layers],
            "notes": list(self.notes),
        }

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([layer.to_dict() for layer in self.layers])


# --------------------------------------------------------------------------- one layer
@dataclass
class _Shape:
    """What the tiling needs from one weight layer (its matrices, groups, MVMs of a call)."""

    matrices: List[Tuple[int, int, int]]  # (rows_g without bias, cols_g in weights, groups)
    has_bias: bool
    call_mvms: List[int] = field(default_factory=list)
    max_replicas: int = 1
    note: Optional[str] = None


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


def _per_vector(out_shape: Tuple[int, ...], channels: int) -> int:
    """Output vectors (MVMs) of a call: elements of its output over its ``channels``."""
    if not out_shape or channels <= 0:
        return 1
    return max(1, math.prod(out_shape) // channels)


def _layer_shape(trace, calls: Sequence[str]) -> _Shape:
    dag = trace.dag
    first = trace.call(calls[0])
    module = None
    if first.calls_module:
        try:
            module = trace.submodule(first.target)
        except AttributeError:
            module = None
    kind = first.kind

    geometry = geometry_of_module(module) if module is not None else None
    if geometry is not None:
        return _geometry_shape(dag, geometry, calls)
    gates = next((g for cls, g in _GATES if isinstance(module, cls)), None)
    if gates is not None:
        return _recurrent_shape(module, gates, [_out_shape(dag, c) for c in calls])
    if module is None and kind in ("conv", "linear"):
        fx_node = _fx_node(trace, calls[0])
        shape = _functional_shape(trace, fx_node, first.op, calls) if fx_node is not None else None
        if shape is not None:
            return shape
    if module is not None:
        return _generic_shape(trace, module, calls)
    raise _Unmappable(f"{first.layer} ({first.op}): its weight is not a parameter of a module")


class _Unmappable(Exception):
    pass


def _functional_shape(trace, fx_node: fx.Node, op: str, calls: Sequence[str]) -> Optional[_Shape]:
    """``F.conv2d(x, w, b, ...)`` / ``F.linear(x, w, b)`` with ``w`` a module attribute."""
    weight = _arg_shape(trace, fx_node, 1, "weight")
    if weight is None:
        return None
    bias = _arg(fx_node, 2, "bias") is not None
    groups = 1 if op == "linear" else int(_arg(fx_node, FUNCTIONAL_GROUPS_INDEX, "groups", 1) or 1)
    return _geometry_shape(trace.dag, geometry_of_weight(op, weight, groups, bias), calls)


def _geometry_shape(dag: nx.DiGraph, geometry: LayerGeometry, calls: Sequence[str]) -> _Shape:
    """A conv / transposed conv / linear layer: one matrix per group, one MVM per output vector."""
    g = geometry.groups
    shape = _Shape([(geometry.rows_per_group, geometry.cout_per_group, g)], geometry.has_bias)
    shape.call_mvms = [_per_vector(_out_shape(dag, c), geometry.cout) for c in calls]
    shape.max_replicas = max(shape.call_mvms, default=1)
    return shape


def _recurrent_shape(module: nn.Module, gates: int, out_shapes: List[Tuple[int, ...]]) -> _Shape:
    hidden = module.hidden_size
    if isinstance(module, nn.RNNCellBase):  # one step: out (N, hidden) or (hidden,)
        matrices = [(module.input_size + hidden, gates * hidden, 1)]
        mvms = [int(s[0]) if len(s) == 2 else 1 for s in out_shapes]
        shape = _Shape(matrices, module.bias)
        shape.call_mvms = mvms
        shape.max_replicas = max(mvms, default=1)
        return shape
    proj = getattr(module, "proj_size", 0) or 0
    hidden_out = proj or hidden
    directions = 2 if module.bidirectional else 1
    matrices = []
    for layer in range(module.num_layers):
        in_size = module.input_size if layer == 0 else hidden_out * directions
        for _ in range(directions):
            matrices.append((in_size + hidden_out, gates * hidden, 1))
            if proj:
                matrices.append((hidden, proj, 1))
    steps_per_vector = module.num_layers * (2 if proj else 1)  # directions run side by side
    mvms, independent = [], 1
    for s in out_shapes:  # output (L, N, D*H), (N, L, D*H) batch_first, or (L, D*H) unbatched
        if len(s) == 3:
            batch = s[0] if module.batch_first else s[1]
            mvms.append(s[0] * s[1] * steps_per_vector)
            independent = max(independent, int(batch))
        else:
            mvms.append((s[0] if s else 1) * steps_per_vector)
    shape = _Shape(matrices, module.bias)
    shape.call_mvms = mvms
    shape.max_replicas = independent
    return shape


def _generic_shape(trace, module: nn.Module, calls: Sequence[str]) -> _Shape:
    """Any other weight module: every >= 2-D parameter is one matrix (``rows = numel / out``,
    ``cols = out``); a call's MVMs are its MACs over the MACs of one pass over all matrices."""
    matrices = []
    for p in module.parameters():
        if p.dim() >= 2:
            out = int(p.shape[0])
            matrices.append((p.numel() // out, out, 1))
    if not matrices:
        raise _Unmappable(f"{trace.layer_of(calls[0])} ({type(module).__name__}) has no weight matrix")
    per_pass = sum(r * c for r, c, _ in matrices)
    mvms = [max(1, ceil_div(trace.call(c).macs, per_pass)) for c in calls]
    has_bias = any(p.dim() == 1 for p in module.parameters())
    shape = _Shape(matrices, has_bias, mvms, max(mvms, default=1),
                   note=f"{trace.layer_of(calls[0])} ({type(module).__name__}): mapped approximately, "
                        f"one matrix per weight tensor")
    return shape


def _map_layer(name: str, data: LayerRecord, shape: _Shape, array: ArraySpec, depthwise: str) -> LayerMapping:
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
        op=data.op,
        kind=data.kind,
        rows=rows0,
        cols=cols0,
        tiles=tiles,
        utilization=used / (tiles * array.cells),
        mvms=mvms,
        calls=int(data.calls),
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
def map_trace(trace, array: ArraySpec, depthwise: str = "dense", *, name: Optional[str] = None) -> ModelMapping:
    """Map every unique weight layer of ``trace``'s loop-keeping graph onto ``array``-sized tiles.

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

    Returns
    -------
    ModelMapping
        Plain data: one :class:`LayerMapping` per mapped layer (rows, cols, tiles, MVMs per frame
        over all its calls), the weight-layer calls with their predecessors, the outputs, and notes
        on layers left digital or mapped approximately.

    Raises
    ------
    UserError
        ``depthwise`` is not a known strategy, or the model has no weight layer.

    Examples
    --------
    >>> import torch
    >>> from graphcost import trace
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.Conv2d(64, 64, 3, groups=64))
    >>> m = map_trace(trace(net, (1, 3, 16, 16)), ArraySpec(128, 128), "packed")
    >>> [(layer.rows, layer.cols, layer.tiles) for layer in m.layers]   # 64 depthwise 9 x 8 blocks: 14 per array
    [(27, 512, 4), (9, 512, 5)]
    >>> m.arrays_used, m.layers[1].mvms
    (9, 196)
    """
    if depthwise not in DEPTHWISE_STRATEGIES:
        raise UserError(f"unknown --depthwise strategy {depthwise!r}; use one of {', '.join(DEPTHWISE_STRATEGIES)}")
    layers, index, call_mvms, notes = _map_layers(trace, array, depthwise)
    if not layers:
        raise UserError("the model has no weight layer (conv, linear, recurrent) to map onto crossbar arrays")
    calls, outputs = _reduce_dag(trace, index, call_mvms)
    return ModelMapping(model=name or type(trace.module).__name__, input_shape=tuple(trace.input_shape), array=array,
                        depthwise=depthwise, layers=tuple(layers), calls=calls, outputs=outputs, notes=tuple(notes))


def _map_layers(trace, array: ArraySpec, depthwise: str
                ) -> Tuple[List[LayerMapping], Dict[str, int], Dict[str, int], List[str]]:
    """Every unique weight layer mapped, in execution order: the mappings, each layer's index
    among them, each call's MVMs, and notes on layers left digital or mapped approximately."""
    loop = trace.loop_graph
    weight_layers = sorted((n for n in loop if trace.layer(n).is_weight_layer),
                           key=lambda n: trace.layer(n).first_order)
    layers: List[LayerMapping] = []
    index: Dict[str, int] = {}
    call_mvms: Dict[str, int] = {}
    notes: List[str] = []
    for layer_name in weight_layers:
        data = trace.layer(layer_name)
        try:
            shape = _layer_shape(trace, data.dag_nodes)
        except _Unmappable as exc:
            notes.append(f"not mapped (computed digitally): {exc}")
            continue
        if shape.note:
            notes.append(shape.note)
        index[layer_name] = len(layers)
        layers.append(_map_layer(layer_name, data, shape, array, depthwise))
        call_mvms.update(zip(data.dag_nodes, shape.call_mvms))
    return layers, index, call_mvms, notes


def _reduce_dag(trace, index: Dict[str, int], call_mvms: Dict[str, int]
                ) -> Tuple[Tuple[CallStage, ...], Tuple[OutputStage, ...]]:
    """The execution DAG reduced to weight-layer calls: a call's ``preds`` are the nearest
    weight-layer calls above it (through weight-free ops only)."""
    dag = trace.dag
    frontier: Dict[str, FrozenSet[int]] = {}
    stages: List[CallStage] = []
    empty: FrozenSet[int] = frozenset()
    for node in sorted(dag.nodes, key=lambda n: trace.call(n).order):
        preds = [frontier[p] for p in dag.predecessors(node)]
        above = preds[0] if len(preds) == 1 else (frozenset().union(*preds) if preds else empty)
        layer = trace.layer_of(node)
        if node in call_mvms and layer in index:
            stages.append(CallStage(node, index[layer], int(call_mvms[node]), tuple(sorted(above))))
            frontier[node] = frozenset((len(stages) - 1,))
        else:
            frontier[node] = above
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
        outputs.append(OutputStage(i, node, _out_shape(dag, node), preds, tuple(sorted(layers)), name))
    return tuple(stages), tuple(outputs)


def map_model(model: nn.Module, inputs: Any, array: ArraySpec, depthwise: str = "dense", *,
              name: Optional[str] = None) -> ModelMapping:
    """Trace ``model`` once on ``inputs`` (as :func:`graphcost.analyze` takes them) and map it
    (see :func:`map_trace`)."""
    from graphcost.tracing import trace

    return map_trace(trace(model, inputs), array, depthwise, name=name or type(model).__name__)
