"""Tracing: a model's graph captured once, and its two graph views, as one :class:`Trace`.

``trace(model, inputs)`` returns a :class:`Trace` holding ``dag``, the *execution DAG* (one node per call,
fx node name, in execution order; edges carry activations; MACs and latency walk it), and ``loop_graph``, the
*loop-keeping graph*: the quotient of the DAG by parameter identity, every call of the same weight tensors (a
module called N times, two modules holding one tied ``Parameter``) one node, re-use as back edges and self-loops.

No activation is ever allocated: shapes come from fake or meta tensors. The capture paths, one module each,
yield the same graph of costed nodes (:class:`~graphcost.schema.Captured`): ``fx``
(:mod:`graphcost.capture_fx`: torch.fx symbolic tracing, shapes on ``FakeTensor``s, untraceable submodules
opaque leaves); ``dispatch`` (:mod:`graphcost.capture_dispatch`: one ``forward`` on meta tensors under module
hooks and a dispatch mode); ``export`` (:mod:`graphcost.capture_export`: ``torch.export`` on fake tensors, where
meta tensors cannot run the model); ``eager`` (:mod:`graphcost.capture_eager`: one real forward, for models whose
work depends on values, such as NMS or expert routing: its costs hold for the input values it ran on).

``tracer="auto"`` tries the first three in that order, and the eager capture only when all three
failed on data-dependent operations (``Trace.capture`` says which path ran); if none can, a
:class:`~graphcost.UserError` names the layer (or the model) that failed. Calls without a formula are costed per aten op
(:mod:`graphcost.aten_costs`); aten ops nobody can cost are listed in ``Trace.uncounted``
(``Trace.complete`` is then false). :mod:`graphcost.graphs` builds the two views.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import networkx as nx
import torch
from torch import fx, nn

from . import ops
from .aten_costs import Uncounted
from .capture_dispatch import DispatchCaptureFailed, dispatch_capture
from .capture_eager import eager_capture
from .capture_export import ExportFailed, export_capture
from .capture_fx import FxUntraceable, LeafTracer, Single, fx_capture
from .collector import collector_paused
from .errors import UserError, quiet_torch_logs
from .graphs import build_dag, build_loop_graph, get_attr, release
from .inputs import InputSpec, bind_inputs, described, split_inputs
from .schema import RECORD, CallRecord, Captured, LayerRecord

#: how a model's graph is captured (``trace``'s ``tracer``)
TRACERS = ("auto", "fx", "dispatch", "export", "eager")
#: the capture paths ``tracer="auto"`` tries, in order: the first that can run the model wins
_AUTO = ("fx", "dispatch", "export")
#: what the meta and export captures say when a model's work depends on values (then auto runs it eagerly)
_DATA_DEPENDENT = ("data-dependent", "data dependent", "data-independent", "item() cannot be called on meta",
                   "unbacked", "nonzero")
#: what a Trace of the eager capture says of its costs
EAGER_NOTE = "counted by one real forward: costs hold for these input values"


def parse_tracer(text: str) -> str:
    """A capture path: ``auto`` (fx, then dispatch, then export), ``fx``, ``dispatch``, ``export`` or ``eager``.

    >>> parse_tracer("Export")
    'export'
    """
    value = text.strip().lower()
    if value not in TRACERS:
        raise UserError(f"a tracer is one of {', '.join(TRACERS)}, got {text!r}")
    return value


@dataclass
class Trace:
    """One traced model: the fx graph plus its two networkx views."""

    module: nn.Module
    root: nn.Module  # what fx traced: ``module`` itself, or a holder for a bare leaf module
    graph: fx.Graph
    input_shape: Tuple[int, ...]
    dtype: torch.dtype
    #: the execution DAG as captured: records not yet naming their layer (``dag`` names them)
    captured_dag: nx.DiGraph
    inputs: List[str]
    outputs: List[str]
    opaque_modules: List[str] = field(default_factory=list)
    unknown_ops: List[str] = field(default_factory=list)
    #: aten ops that compute but have no formula anywhere: op -> calls, example shapes
    uncounted: Dict[str, Uncounted] = field(default_factory=dict)
    #: every input given, by ``forward`` argument name: its shape and dtype
    input_specs: Dict[str, InputSpec] = field(default_factory=dict)
    #: where each of ``outputs`` sits in what ``forward`` returns: a dict key, a tuple index, or a
    #: dotted path of them (``"aux.1"``); ``"output"`` for a lone tensor
    output_names: List[str] = field(default_factory=list)
    #: the capture path that ran: ``fx``, ``dispatch``, ``export`` or ``eager`` (costs for these input values)
    capture: str = ""

    def release(self) -> None:
        """Free this trace's fx graph now (:func:`graphcost.graphs.release`), not at the cycle collector's next
        pass: for code that made the trace and will not read its ``graph`` again (the DAG, loop graph and
        records stay readable). ``analyze`` does it with the trace it made; a sweep with every trace it drops."""
        release(self.graph)

    def named_outputs(self) -> List[Tuple[str, str]]:
        """``(dag node, name)`` of every output in the order ``forward`` returns them; the name is the dict key,
        tuple index or dotted path (the position when the capture recorded none)."""
        names = self.output_names or [str(i) for i in range(len(self.outputs))]
        return list(zip(self.outputs, names))

    @property
    def complete(self) -> bool:
        """Whether every call that computes was counted (nothing in ``uncounted``)."""
        return not self.uncounted

    @functools.cached_property
    def graph_module(self) -> fx.GraphModule:
        """The fx GraphModule (built on first use: code generation is a third of tracing time)."""
        return fx.GraphModule(self.root, self.graph, type(self.module).__name__)

    @functools.cached_property
    def parameter_numel(self) -> Dict[int, int]:
        """Elements of every unique model parameter, keyed by ``id`` (as in ``param_ids``)."""
        return {id(p): p.numel() for p in self.module.parameters()}

    def submodule(self, target: str) -> nn.Module:
        """The module a ``call_module`` node calls (the very object in ``module``)."""
        return self.root.get_submodule(target)

    @property
    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def dag(self) -> nx.DiGraph:
        """The execution DAG, each record naming its layer (built with the loop graph, on first use)."""
        return self._views[0]

    @property
    def loop_graph(self) -> nx.DiGraph:
        """The loop-keeping graph (built on first use: a width search's probes only need MACs)."""
        return self._views[1]

    @functools.cached_property
    def _views(self) -> Tuple[nx.DiGraph, nx.DiGraph]:  # (dag, loop_graph), built as the DAG was: collector paused
        with collector_paused():
            return build_loop_graph(self.captured_dag)

    def call(self, dag_node: str) -> CallRecord:
        """The record of one call (node of the execution DAG)."""
        return self._records("_calls", self.dag)[dag_node]

    def cost_record(self, dag_node: str) -> CallRecord:
        """A call's record as captured (costs, shapes, bytes; ``layer`` empty), without building the loop graph."""
        return self._records("_captured", self.captured_dag)[dag_node]

    def layer(self, loop_node: str) -> LayerRecord:
        """The record of one unique layer (node of the loop-keeping graph)."""
        return self._records("_layers", self.loop_graph)[loop_node]

    def _records(self, name: str, graph: nx.DiGraph) -> Dict[str, Any]:  # one dict per graph: passes read each often
        if name not in self.__dict__:
            self.__dict__[name] = {node: data[RECORD] for node, data in graph._node.items()}  # (no view per item)
        return self.__dict__[name]

    def layer_of(self, dag_node: str) -> str:
        """The loop-graph node a call belongs to."""
        return self.call(dag_node).layer

    def get_attr(self, target: str):
        """The value a ``get_attr`` fx node fetches (a parameter, buffer or constant of the model)."""
        return get_attr(self.root, target)


def trace(model: nn.Module, inputs: Any = None, *, dtype: Optional[torch.dtype] = None,
          leaf_modules: Iterable[str] = (), custom_costs: Optional[Mapping[ops.Op, ops.Formula]] = None,
          tracer: str = "auto", memoise: bool = True) -> Trace:
    """Trace ``model`` on fake or meta inputs (nothing allocated; ``tracer="eager"``: one real forward); return its
    execution DAG, each call's cost a :class:`~graphcost.schema.CallRecord` on its node, and its loop-keeping graph.

    Parameters
    ----------
    model : torch.nn.Module
        The model; traced in eval mode, its training mode restored afterwards.
    inputs : shape, InputSpec, tensor, or a tuple / dict of them
        What ``forward`` is called with (:mod:`graphcost.inputs`; tuple: positional, dict: keyword).
    dtype : torch.dtype, optional
        The model's floating-point dtype (default: its first floating-point parameter's, else float32).
    leaf_modules : iterable of str, optional
        Submodule paths to keep as single opaque calls instead of tracing into them.
    custom_costs : dict, optional
        ``{op: formula}`` overriding or adding formulas for this trace only (module type, function
        or method name -> a function of an :class:`~graphcost.ops.Call` returning an ``OpCost``).
    tracer : {"auto", "fx", "dispatch", "export", "eager"}, default "auto"
        The capture path (module doc): fx, a meta forward, ``torch.export``, or one real forward (``"eager"``: costs
        for its input values); ``"auto"``: the first of the first three that runs, ``"eager"`` when all failed on
        data-dependent ops. Function / method formulas apply to fx traces only.
    memoise : bool, default True
        Cost provably identical calls once (:mod:`graphcost.capture_memo`); the trace is the same.

    Returns
    -------
    Trace
        ``dag`` (a node per call), ``loop_graph`` (one per unique layer), inputs, outputs, what was not costed.

    Raises
    ------
    UserError
        An input malformed or not taken by ``forward``, no capture path asked for runs the model (eager: the line
        names the layer, quotes the model's error), bad ``custom_costs``, ``tracer`` not in :data:`TRACERS`.

    Examples
    --------
    A convolution run three times is three calls but one layer, with a self-loop:

    >>> class Loop(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    ...     def forward(self, x):
    ...         return self.conv(self.conv(self.conv(x)))
    >>> t = trace(Loop(), (1, 4, 8, 8))
    >>> sum(t.call(n).kind == "conv" for n in t.dag), t.layer("conv").calls, t.loop_graph.has_edge("conv", "conv")
    (3, 3, True)
    """
    if tracer not in TRACERS:
        raise UserError(f"tracer must be one of {', '.join(TRACERS)}, got {tracer!r}")
    custom = ops.check_custom_costs(custom_costs)
    dtype, root_module = dtype or _model_dtype(model), Single(model) if _is_leaf_model(model, custom) else model
    bound = bind_inputs(root_module, *split_inputs(inputs))
    with _eval_mode(model), quiet_torch_logs(), collector_paused():  # graphs built with the collector paused too
        captured = _capture(model, root_module, tracer, leaf_modules, custom, bound, dtype, memoise)
        specs = {path: spec for name, value in bound.items() for path, spec in described(name, value, dtype).items()}
        return _assemble(model, captured, specs, dtype)


def _is_leaf_model(model: nn.Module, custom: Dict) -> bool:
    """Whether the model is itself one leaf (nn.Conv2d, nn.TransformerEncoder): traced as one call of it."""
    return ops.lookup_module(model, custom) is not None or fx.Tracer().is_leaf_module(model, "")


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block; afterwards each module in the mode it was in. A model already in
    eval mode is left alone: ``eval()`` and ``train()`` walk every module through ``nn.Module.__setattr__``
    (4% of analysing an independent ItNet)."""
    training = [m for m in model.modules() if m.training]
    if training:
        model.eval()
    try:
        yield
    finally:
        for m in training:
            m.training = True


def _assemble(model: nn.Module, captured: Captured, specs: Dict[str, InputSpec], dtype: torch.dtype) -> Trace:
    """The Trace of a captured graph: its execution DAG and loop-keeping graph."""
    dag, placeholders, named_outputs = build_dag(captured.root, captured.graph, captured.records, captured.modules,
                                                 captured.templates)
    uncounted = {op: Uncounted(calls, shapes) for op, (calls, shapes) in sorted(captured.uncounted.items())}
    first = next(iter(specs.values()))
    return Trace(model, captured.root, captured.graph, first.shape, dtype, dag, placeholders,
                 [node for _, node in named_outputs], captured.opaque_modules, captured.unknown_ops, uncounted,
                 specs, [name for name, _ in named_outputs], captured.capture)


def _capture(model: nn.Module, root_module: nn.Module, tracer: str, leaf_modules: Iterable[str], custom: Dict,
             bound: Dict[str, Any], dtype: torch.dtype, memoise: bool = True) -> Captured:
    """The graph and records by the tracer asked for (``auto``: fx, else dispatch, else export, and
    the eager capture when those failed on data-dependent operations)."""
    failures: Dict[str, UserError] = {}
    for path in (_AUTO if tracer == "auto" else (tracer,)):
        try:
            return replace(_capture_by(path, model, root_module, leaf_modules, custom, bound, dtype, memoise),
                           capture=path)
        except (FxUntraceable, DispatchCaptureFailed, ExportFailed) as exc:
            failures[path] = exc
    if tracer == "auto" and all(any(m in str(failures[p]) for m in _DATA_DEPENDENT) for p in ("dispatch", "export")):
        return replace(_capture_by("eager", model, root_module, leaf_modules, custom, bound, dtype), capture="eager")
    # the meta capture's message names the layer that failed and quotes the model's own error; fx's
    # says why fx's tracer could not follow the code (an internal), shown only when it is all there is
    raise UserError(str(failures.get("dispatch") or next(iter(failures.values()))))


def _capture_by(path: str, model: nn.Module, root_module: nn.Module, leaf_modules: Iterable[str], custom: Dict,
                bound: Dict[str, Any], dtype: torch.dtype, memoise: bool = True) -> Captured:
    if path == "fx":
        return fx_capture(root_module, bound, dtype, _model_device(model), leaf_modules, custom, memoise)
    if path == "export":
        return export_capture(model, bound, dtype, _model_device(model), custom, bound_to_model=root_module is model)
    is_leaf = LeafTracer(set(leaf_modules), custom).is_leaf_module
    capture = dispatch_capture if path == "dispatch" else eager_capture
    return capture(root_module, bound, dtype, is_leaf, custom)


def _model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (the meta device for a model built only for its shapes)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32
