"""The per-node records tracing writes and every other room reads.

As ``torch.fx.passes.shape_prop`` stores one ``TensorMetadata`` per fx node, tracing stores one
frozen record per graph node under the single key :data:`RECORD`:

* a :class:`CallRecord` on every node of the execution DAG (one per call);
* a :class:`LayerRecord` on every node of the loop-keeping graph (one per unique layer).

Readers use :func:`call_record` / :func:`layer_record` (or ``Trace.call`` / ``Trace.layer``) and
attribute names, never string keys; :func:`flat_attributes` gives the flat scalar view that
GraphML and DOT export need.

>>> rec = CallRecord(order=0, op="conv2d", kind="conv", is_weight_layer=True, target="conv",
...                  module="conv", macs=9, other_ops=0, in_bytes=4, out_bytes=4, out_shapes=((1, 1, 1, 1),),
...                  param_ids=(1,), site=None, layer="conv")
>>> rec.calls_module, layer_name("conv_1", rec)
(True, 'conv')
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import networkx as nx

#: the node attribute holding a node's record, in both graphs
RECORD = "record"

Shape = Tuple[int, ...]


@dataclass(frozen=True)
class CallRecord:
    """One call (node of the execution DAG): what ran, what it cost, what it produced."""

    order: int  #: position in execution order
    op: str  #: the registry's op name (``conv2d``, ``linear``, ``opaque:Foo``, ``unknown``)
    kind: str  #: the registry's kind (``conv``, ``linear``, ``matmul``, ``norm``, ``io``, ...)
    is_weight_layer: bool  #: one of the paper's "conv layers" (graph size, latency)
    target: str  #: module path for a module call, else the function / ``.method()`` name
    module: str  #: the module path the call belongs to ("" at the top level)
    macs: int
    other_ops: int
    in_bytes: int  #: activation inputs (not parameters or constants)
    out_bytes: int
    out_shapes: Tuple[Shape, ...]
    param_ids: Tuple[int, ...]  #: ``id`` of every Parameter the call uses, sorted
    site: Optional[Tuple[str, int]]  #: (owning module path, position in that module call), for grouping
    layer: str = ""  #: name of its node in the loop-keeping graph

    @property
    def calls_module(self) -> bool:
        """Whether this is a call of a submodule (``target`` is then that submodule's path)."""
        return bool(self.module) and self.target == self.module


@dataclass(frozen=True)
class Evaluated:
    """What a capture measured of one graph node, before the DAG is built: the registry entry it
    was costed by, its cost, its outputs and its activation inputs."""

    info: Any  #: the node's :class:`~graphcost.ops.OpInfo`
    cost: Any  #: its :class:`~graphcost.ops.OpCost`
    out_shapes: Tuple[Shape, ...]
    out_bytes: int
    in_bytes: int


@dataclass
class Captured:
    """What a capture path returns, whichever it was: the graph and every node's record."""

    root: Any  #: the module the graph's ``call_module`` and ``get_attr`` targets are paths of
    graph: Any  #: the :class:`torch.fx.Graph`
    records: Dict[str, Evaluated]
    #: leaf modules without a formula, costed per aten op, in call order
    opaque_modules: List[str]
    #: functions / methods without a formula, costed per aten op (fx path only)
    unknown_ops: List[str]
    #: aten ops that compute but have no formula: op -> (calls, example shapes)
    uncounted: Dict[str, Tuple[int, tuple]]
    #: the capture path that produced it: ``fx``, ``dispatch``, ``export`` or ``eager``
    capture: str = ""
    #: ``root``'s submodules by path as the capture found them (``named_modules``), where it walked them anyway
    modules: Optional[Dict[str, Any]] = None
    #: node -> an earlier node of an equal call of the same module (same path), whose DAG record it shares but
    #: for its order (the fx capture's replayed invocations; :func:`graphcost.graphs.build_dag`)
    templates: Optional[Dict[str, str]] = None


@dataclass(frozen=True)
class LayerRecord:
    """One unique layer (node of the loop-keeping graph): the calls sharing its parameters."""

    op: str
    kind: str
    is_weight_layer: bool
    calls: int
    dag_nodes: Tuple[str, ...]  #: its calls (DAG node names), in execution order
    param_ids: Tuple[int, ...]
    first_order: int  #: execution order of its first call


def new_record(cls: type, fields: Dict[str, Any]) -> Any:
    """``cls(**fields)`` for a frozen record class, without running its ``__init__``: a frozen dataclass sets
    each field through ``object.__setattr__``, most of the time of building a graph's records. ``fields``
    (every field, in declaration order, so that ``vars`` reads as after ``__init__``) becomes the record's
    ``__dict__``.

    >>> new_record(LayerRecord, {"op": "relu", "kind": "act", "is_weight_layer": False, "calls": 1,
    ...            "dag_nodes": ("relu",), "param_ids": (), "first_order": 3}) == LayerRecord("relu", "act", False, 1,
    ...                                                                            ("relu",), (), 3)
    True
    """
    record = object.__new__(cls)
    object.__setattr__(record, "__dict__", fields)  # the frozen class's own __setattr__ refuses
    return record


def with_layer(record: CallRecord, layer: str) -> CallRecord:
    """``dataclasses.replace(record, layer=layer)``, without re-running the frozen ``__init__``."""
    return _replaced(record, "layer", layer)


def with_order(record: CallRecord, order: int) -> CallRecord:
    """``dataclasses.replace(record, order=order)``, without re-running the frozen ``__init__``."""
    return _replaced(record, "order", order)


def _replaced(record: Any, field: str, value: Any) -> Any:
    """``record`` with one field replaced; the other fields copied as they are."""
    fields = record.__dict__.copy()
    fields[field] = value
    return new_record(type(record), fields)


def layer_name(first_call: str, record: CallRecord) -> str:
    """The loop-graph name of a layer whose first call is DAG node ``first_call``: the module
    path for a module call (``blocks.0.c1``), else the first call's fx node name (``relu_2``)."""
    return record.module if record.calls_module else first_call


def call_record(dag: nx.DiGraph, node: str) -> CallRecord:
    return dag.nodes[node][RECORD]


def layer_record(loop: nx.DiGraph, node: str) -> LayerRecord:
    return loop.nodes[node][RECORD]


def flat_attributes(record: Any) -> Dict[str, Any]:
    """The record as flat attributes (tuples of shapes and call names as lists), for exports."""
    flat = asdict(record)
    for key in ("out_shapes", "dag_nodes"):
        if key in flat:
            flat[key] = list(flat[key])
    return flat
