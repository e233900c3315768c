"""Tracing: capture (torch.fx symbolic trace, or torch.export), shape propagation on fake tensors,
and the two graph views.

``trace(model, input_shape)`` returns a :class:`Trace` holding

* ``dag`` — the *execution DAG*: one node per call (fx node name), in execution order; edges
  carry activations. MACs and latency walk this graph.
* ``loop_graph`` — the *loop-keeping graph*: the quotient of the DAG by parameter identity.
  Every call of the same weight tensors (a module called N times, or two modules holding one
  tied ``Parameter``) is one node; re-use shows up as back edges and self-loops.

No activation is ever allocated: shapes come from running the fx graph on ``FakeTensor``s.

Calls without a formula in the op registry — ``nn`` leaf modules nobody registered, fx-wrapped
leaf functions — are costed per aten op (:mod:`graphcost.aten_costs`) on the slow math path;
their modules are listed in ``Trace.opaque_modules``, and aten ops nobody can cost in
``Trace.uncounted`` (``Trace.complete`` is then false).

Fallback: where ``torch.fx`` cannot trace a submodule symbolically (data-dependent control
flow, ``torch.zeros(x.size())``), that submodule is retried as an opaque *leaf*: it becomes a
single node costed per aten op — on fake tensors, or, when its control flow needs real values,
on seeded random inputs of the right shapes (only that submodule's activations are allocated).
If the model's own ``forward`` cannot be traced, ``tracer="auto"`` runs it once on meta tensors
instead (:mod:`graphcost.capture_dispatch`: module calls with a formula kept, every other call an
aten op costed per aten op, parameters the model's own), and where meta tensors cannot run it,
captures it with torch.export (:mod:`graphcost.capture_export`); if none can, a
:class:`~graphcost.UserError` names the layer (or the model) that failed.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import operator
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import networkx as nx
import torch
from torch import fx, nn
from torch.fx._symbolic_trace import _assert_is_none
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily
from torch.utils._pytree import tree_map_only

from . import ops
from .aten_costs import AtenCost, Uncounted, aten_kind, does_no_arithmetic
from .capture_dispatch import DispatchCaptureFailed, dispatch_capture, meta_state
from .capture_export import Exported, ExportFailed, export_graph
from .errors import UserError, quiet_torch_logs
from .inputs import InputSpec, describe, fake_input, split_inputs
from .resolve import TRACERS
from .schema import RECORD, CallRecord, Evaluated, LayerRecord, call_record, layer_record, layer_name

COMPUTE_OPS = ("call_module", "call_function", "call_method")


@dataclass
class Trace:
    """One traced model: the fx graph plus its two networkx views."""

    module: nn.Module
    root: nn.Module  # what fx traced: ``module`` itself, or a holder for a bare leaf module
    graph: fx.Graph
    input_shape: Tuple[int, ...]
    dtype: torch.dtype
    dag: nx.DiGraph
    loop_graph: nx.DiGraph
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
        return torch.empty((), dtype=self.dtype).element_size()

    def call(self, dag_node: str) -> CallRecord:
        """The record of one call (node of the execution DAG)."""
        return call_record(self.dag, dag_node)

    def layer(self, loop_node: str) -> LayerRecord:
        """The record of one unique layer (node of the loop-keeping graph)."""
        return layer_record(self.loop_graph, loop_node)

    def layer_of(self, dag_node: str) -> str:
        """The loop-graph node a call belongs to."""
        return self.call(dag_node).layer

    def get_attr(self, target: str):
        """The value a ``get_attr`` fx node fetches (a parameter, buffer or constant of the model)."""
        return get_attr(self.root, target)


# --------------------------------------------------------------------------- fx tracing
class _Tracer(fx.Tracer):
    """fx tracer that remembers which submodule was being traced when tracing failed."""

    def __init__(self, leaves: Set[str], custom: Dict):
        super().__init__()
        self.leaves = leaves
        self.custom = custom

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # a module type with its own formula is costed whole, not traced into
        return qualname in self.leaves or ops.is_registered_type(m, self.custom) or \
            super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as exc:
            if not hasattr(exc, "_graphcost_module"):
                exc._graphcost_module = self.path_of_module(m)
            raise


class FxUntraceable(UserError):
    """torch.fx cannot trace the model's own ``forward`` (``tracer="auto"`` then tries the other captures)."""


class _Single(nn.Module):
    """Holds a bare leaf module (``nn.Conv2d(...)`` analyzed on its own) so fx sees one call of it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


def _symbolic_trace(model: nn.Module, leaf_modules: Iterable[str], custom: Dict, given: Set[str]
                    ) -> Tuple[nn.Module, fx.Graph, List[str]]:
    leaves = set(leaf_modules)
    opaque: List[str] = []
    defaults = {name: value for name, value in _optional_defaults(model).items() if name not in given}
    while True:
        tracer = _Tracer(leaves, custom)
        try:
            graph = tracer.trace(model, concrete_args=defaults or None)
        except Exception as exc:  # fx raises many types; we only need to know where
            culprit = getattr(exc, "_graphcost_module", "")
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if not culprit or culprit in leaves:
                where = f"module {culprit!r} ({type(model.get_submodule(culprit)).__name__})" if culprit \
                    else f"the forward of {type(model).__name__}"
                raise FxUntraceable(f"torch.fx cannot trace {where}: {first_line}") from None
            leaves.add(culprit)
            opaque.append(culprit)
            continue
        _drop_default_guards(graph)
        return tracer.root, graph, opaque


#: what fx inserts to check that a concrete argument kept its traced value
_GUARDS = (torch._assert, _assert_is_none)


def _optional_defaults(model: nn.Module) -> Dict[str, Any]:
    """Optional ``forward`` arguments after the input, at their defaults: traced as constants so
    ``if mask is None`` / ``is_causal=False`` take the branch an eager call without them takes."""
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # a builtin or C forward: nothing to specialise
        return {}
    named = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return {p.name: p.default for p in named[1:]
            if p.default is None or isinstance(p.default, (bool, int, float, str))}


def _drop_default_guards(graph: fx.Graph) -> None:
    """Remove the placeholders of specialised defaults and the guards fx hangs on them."""
    for ph in [n for n in graph.nodes if n.op == "placeholder"][1:]:
        users = list(ph.users)
        checks = [u for u in users if u.target is operator.eq and all(g.target in _GUARDS for g in u.users)]
        if not ph.args or not all(u in checks or u.target in _GUARDS for u in users):
            continue  # no default, or the argument is used beyond its guard: keep it
        for node in [g for c in checks for g in c.users] + [u for u in users if u not in checks] + checks + [ph]:
            graph.erase_node(node)


# --------------------------------------------------------------------------- shape propagation
class _CostInterpreter(fx.Interpreter):
    """Runs the fx graph on fake tensors and records shapes and per-call costs on each node."""

    def __init__(self, root: nn.Module, graph: fx.Graph, opaque: Set[str], custom: Dict):
        super().__init__(root, garbage_collect_values=True, graph=graph)
        self.extra_traceback = False  # errors are one line, naming the layer (see _blame)
        self.opaque = opaque
        self.custom = custom
        self.records: Dict[str, Evaluated] = {}
        self.unknown: Set[str] = set()  # functions / methods without a formula, costed per aten op
        self.opaque_calls: Dict[str, None] = {}  # leaf modules without a formula, in call order
        self.uncounted: Dict[str, Tuple[int, tuple]] = {}  # aten op -> (calls, example shapes)

    def run_node(self, n: fx.Node):
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        module = self.module.get_submodule(n.target) if n.op == "call_module" else None
        info = self._info(n, module)
        with _blame(functools.partial(_where, self.module, n, module), args, kwargs):
            if info is None and n.op in COMPUTE_OPS:
                out, info, cost = self._run_per_aten_op(n, module, args, kwargs)
            else:
                out = self._shortcut(info, module, args, kwargs)
                if out is None:
                    out = getattr(self, n.op)(n.target, args, kwargs)
                cost = None
        if cost is None:
            cost = info.cost(ops.Call(module, args, kwargs, out)) if n.op in COMPUTE_OPS else ops.OpCost()
        self.records[n.name] = Evaluated(info, cost, tuple(tuple(t.shape) for t in ops.tensors_in(out)), ops.nbytes(out),
                                         _activation_bytes(n, args, kwargs))
        return out

    def _run_per_aten_op(self, n: fx.Node, module: Optional[nn.Module], args, kwargs):
        """Run a call without a formula under :class:`AtenCost`: an opaque module, or a function /
        method (e.g. an fx-wrapped leaf function) costed by the aten ops it runs."""
        if module is not None:
            out, counter = self._run_opaque(n, args, kwargs)
            self.opaque_calls.setdefault(n.target, None)
            info = ops.OpInfo("opaque:" + type(module).__name__, "opaque", ops.free)
        else:
            out, counter = self._run_counted(n, args, kwargs)
            if isinstance(n.target, torch._ops.OpOverload):  # an exported graph's node: aten is its language
                uses_parameters = any(src.op == "get_attr" and isinstance(get_attr(self.module, src.target), nn.Parameter)
                                      for src in n.all_input_nodes)
                info = ops.OpInfo(str(n.target.overloadpacket), aten_kind(n.target, counter.macs, counter.other_ops,
                                  bool(counter.uncounted), uses_parameters), ops.free)
            else:
                self.unknown.add(_target_name(n))
                info = ops.OpInfo(_target_name(n), "opaque", ops.free)
        for op, found in counter.uncounted.items():
            calls, shapes = self.uncounted.get(op, (0, found.shapes))
            self.uncounted[op] = (calls + found.calls, shapes)
        return out, info, ops.OpCost(macs=counter.macs, other_ops=counter.other_ops)

    def _run_counted(self, n: fx.Node, args, kwargs) -> Tuple[Any, AtenCost]:
        """Run a function, method or aten op under :class:`AtenCost` (see :func:`_counted`)."""
        def run(a, k):
            return getattr(self, n.op)(n.target, a, k)
        return _counted(run, run, args, kwargs)

    @staticmethod
    def _shortcut(info: Optional[ops.OpInfo], module, args, kwargs):
        """The op's output from a shape rule, without dispatching the op (None: run it).

        Only floating-point fake tensors of one dtype and device, matching the module's own
        tensors, take the shortcut: anything else (dtype promotion, integer inputs, a float64
        input to a float32 layer) runs the op, so torch decides what it accepts."""
        if info is None or not args or not (info.preserves_shape or info.shape):
            return None
        tensors = ops.tensors_in(args)
        if not tensors or not isinstance(tensors[0], FakeTensor) or not tensors[0].is_floating_point() or \
                not _same_kind(tensors[0], tensors[1:]) or \
                (module is not None and not _same_kind(tensors[0], _module_tensors(module))):
            return None
        shape = info.shape(module, args, kwargs) if info.shape else ()
        if shape is None:
            return None
        if info.preserves_shape:
            return args[0] if args[0] is tensors[0] else None
        return _fake_empty(tensors[0], shape)

    def _run_opaque(self, n: fx.Node, args, kwargs) -> Tuple[Any, AtenCost]:
        """Run a leaf nobody registered per aten op: on fake tensors when it can, else
        (data-dependent control flow) on real seeded inputs of the same shapes."""
        module = self.module.get_submodule(n.target)
        try:
            return _counted(lambda a, k: torch.func.functional_call(module, meta_state(module), tuple(a), k),
                            lambda a, k: self.call_module(n.target, a, k), args, kwargs)
        except Exception:
            if n.target not in self.opaque:
                raise
        fake_mode = _active_fake_mode(args)
        gen = torch.Generator().manual_seed(0)
        with unset_fake_temporarily():
            real = tree_map_only(torch.Tensor, lambda t: torch.rand(t.shape, generator=gen).to(t.dtype),
                                 (args, kwargs))
            with AtenCost() as counter:
                out = self.module.get_submodule(n.target)(*real[0], **real[1])
        return tree_map_only(torch.Tensor, fake_mode.from_tensor, out), counter

    def _info(self, n: fx.Node, module: Optional[nn.Module]) -> Optional[ops.OpInfo]:
        if n.op == "call_module":
            return ops.lookup_module(module, self.custom)
        if n.op == "call_function":
            return ops.lookup_function(n.target, self.custom)
        if n.op == "call_method":
            return ops.lookup_method(n.target, self.custom)
        return ops.OpInfo(n.op, "io", ops.free)


def _same_kind(like: torch.Tensor, others: Iterable[torch.Tensor]) -> bool:
    """Whether every floating-point tensor of ``others`` has ``like``'s dtype and device."""
    return all(t.dtype == like.dtype and t.device == like.device for t in others if t.is_floating_point())


def _module_tensors(module: nn.Module) -> List[torch.Tensor]:
    """The module's own parameters and buffers (not its submodules')."""
    return [t for t in (*module._parameters.values(), *module._buffers.values()) if t is not None]


@contextlib.contextmanager
def _blame(where: Callable[[], str], args, kwargs):
    """A call PyTorch rejects (torch's own check, or a shape rule's :class:`~graphcost.ops.ShapeMismatch`)
    becomes one :class:`UserError` line naming the layer, its input shapes and the mismatch."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:  # torch raises RuntimeError, ValueError, IndexError, AssertionError, ...
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        shapes = ", ".join(ops.shape_text(t.shape) for t in ops.tensors_in((args, kwargs))) or "no tensors"
        raise UserError(f"{where()} cannot run on input {shapes}: {detail}") from None


def _where(root: nn.Module, n: fx.Node, module: Optional[nn.Module]) -> str:
    """How an error names a call: the layer's module path, or the function and its owning module."""
    if isinstance(root, _Single) and n.target == "model":
        return type(module).__name__  # the model is this one module
    if module is not None:
        return f"layer {n.target!r} ({type(module).__name__})"
    owner = _owner_module(n)
    return f"{_target_name(n)} in " + (f"layer {owner!r}" if owner else "the model's forward")


class _ExportedCostInterpreter(_CostInterpreter):
    """Runs an exported graph on the fake values export recorded on its nodes (``meta["val"]``):
    inputs, parameters and ops that do no arithmetic (views, copies) take their recorded value;
    only ops that compute run again, to be costed."""

    def run_node(self, n: fx.Node):
        self._node = n
        return super().run_node(n)

    def placeholder(self, target, args, kwargs):
        return self._node.meta["val"]

    def get_attr(self, target, args, kwargs):
        return self._node.meta["val"]

    def call_function(self, target, args, kwargs):
        if isinstance(target, torch._ops.OpOverload) and does_no_arithmetic(target) and "val" in self._node.meta:
            return self._node.meta["val"]
        return super().call_function(target, args, kwargs)


def _fake_empty(like: FakeTensor, shape) -> FakeTensor:
    """A fake tensor of ``shape`` like ``like``, built from a meta tensor: 4x cheaper than
    dispatching ``new_empty`` through the fake mode's cache."""
    with unset_fake_temporarily():
        meta = torch.empty(shape, dtype=like.dtype, device="meta")
    return _fake_from_meta(like, meta)


def _counted(on_meta: Callable, on_fake: Callable, args, kwargs) -> Tuple[Any, AtenCost]:
    """``on_meta`` on meta copies of the tensors in ``args`` / ``kwargs`` under :class:`AtenCost`,
    its output back as fake tensors; where it cannot run (no meta kernel, a CPU tensor made inside,
    or torch refuses the shapes), ``on_fake`` on the fake tensors themselves, whose error is then
    torch's own. Why: a fake-tensor dispatch costs several meta ones (swin_t's fx-wrapped window
    attention was 70% of its trace on fake tensors, nn.TransformerEncoder's opaque run most of its)."""
    fakes = [t for t in ops.tensors_in((args, kwargs)) if isinstance(t, FakeTensor)]
    if fakes:
        try:
            with unset_fake_temporarily(), AtenCost() as counter:
                meta_args, meta_kwargs = tree_map_only(torch.Tensor, _meta_like, (args, kwargs))
                out = on_meta(meta_args, meta_kwargs)
            return tree_map_only(torch.Tensor, functools.partial(_fake_from_meta, fakes[0]), out), counter
        except Exception:  # noqa: BLE001 - the fake run below decides, with torch's own message
            pass
    with AtenCost() as counter:
        out = on_fake(args, kwargs)
    return out, counter


def _meta_like(t: torch.Tensor) -> torch.Tensor:
    """A meta tensor with ``t``'s shape, strides and dtype (``t`` real, fake or meta)."""
    return torch.empty_strided(tuple(t.shape), tuple(t.stride()), dtype=t.dtype, device="meta")


def _fake_from_meta(like: FakeTensor, meta: torch.Tensor) -> FakeTensor:
    """``meta`` as a fake tensor of ``like``'s mode and device."""
    mode = like.fake_mode
    return mode.fake_tensor_converter.from_meta_and_device(mode, meta, like.device)


def _active_fake_mode(args) -> FakeTensorMode:
    for t in ops.tensors_in(args):
        if isinstance(t, FakeTensor):
            return t.fake_mode
    raise RuntimeError("opaque module called without fake tensor inputs")


def _activation_bytes(n: fx.Node, args, kwargs) -> int:
    """Bytes of the node's inputs that are activations (not parameters or constants)."""
    return sum(ops.nbytes(value) for value, src in _zip_inputs(n, args, kwargs)
               if src is not None and src.op != "get_attr")


def _zip_inputs(n: fx.Node, args, kwargs):
    """Pairs of (evaluated value, source fx node or None) for the node's positional and keyword args."""
    for src, value in zip(n.args, args):
        yield value, src if isinstance(src, fx.Node) else _first_node(src)
    for key, src in n.kwargs.items():
        yield kwargs.get(key), src if isinstance(src, fx.Node) else _first_node(src)


def _first_node(value) -> Optional[fx.Node]:
    if isinstance(value, (tuple, list)):
        for v in value:
            found = v if isinstance(v, fx.Node) else _first_node(v)
            if found is not None:
                return found
    return None


def _target_name(n: fx.Node) -> str:
    if n.op == "call_method":
        return f".{n.target}()"
    if isinstance(n.target, torch._ops.OpOverload):
        return str(n.target.overloadpacket)
    return getattr(n.target, "__name__", str(n.target))


# --------------------------------------------------------------------------- parameter identity
class _UnionFind:
    def __init__(self):
        self.parent: Dict[Any, Any] = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def _node_parameters(gm: nn.Module, n: fx.Node) -> List[nn.Parameter]:
    params: List[nn.Parameter] = []
    if n.op == "call_module":
        params.extend(gm.get_submodule(n.target).parameters())
    for src in n.all_input_nodes:
        if src.op == "get_attr":
            value = get_attr(gm, src.target)
            if isinstance(value, nn.Parameter):
                params.append(value)
    return params


def get_attr(root: nn.Module, target: str):
    """The object at dotted path ``target`` below ``root`` (what an fx ``get_attr`` node fetches)."""
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------- the entry point
def trace(model: nn.Module, inputs: Any = None, *, dtype: Optional[torch.dtype] = None,
          leaf_modules: Iterable[str] = (), custom_costs: Optional[Mapping[ops.Op, ops.Formula]] = None,
          input_shape: Optional[Sequence[int]] = None, tracer: str = "auto") -> Trace:
    """Trace ``model`` on fake or meta inputs (nothing allocated); return its execution DAG, each call's
    cost a :class:`~graphcost.schema.CallRecord` on its node, and its loop-keeping graph.

    Parameters
    ----------
    model : torch.nn.Module
        The model; its training mode is restored afterwards (tracing runs in eval mode).
    inputs : shape, InputSpec, tensor, or a tuple / dict of them
        What ``forward`` is called with (:mod:`graphcost.inputs`; a tuple is positional inputs, a
        dict keyword inputs). ``input_shape=`` is the same, by its old name.
    dtype : torch.dtype, optional
        The model's floating-point dtype (default: its first floating-point parameter's, else float32).
    leaf_modules : iterable of str, optional
        Submodule paths to keep as single opaque calls instead of tracing into them.
    custom_costs : dict, optional
        ``{op: formula}`` overriding or adding formulas for this trace only (module type, function
        or method name -> a function of an :class:`~graphcost.ops.Call` returning an ``OpCost``).
    tracer : {"auto", "fx", "dispatch", "export"}, default "auto"
        The capture path (see the module doc): fx symbolic tracing, one forward on meta tensors, or
        ``torch.export``; ``"auto"`` takes the first of them that can run the model. Function and
        method formulas apply to fx traces only (the others see functions as the aten ops they run).

    Returns
    -------
    Trace
        ``dag`` (one node per call), ``loop_graph`` (one node per unique layer), inputs, outputs,
        and what could not be costed exactly (``opaque_modules``, ``unknown_ops``, ``uncounted``).

    Raises
    ------
    UserError
        If an input is malformed or not taken by ``forward``, no capture path asked for can run the
        model on it, ``custom_costs`` is malformed or ``tracer`` is none of the four.

    Examples
    --------
    A convolution run three times is three calls but one layer, with a self-loop:

    >>> class Loop(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    ...     def forward(self, x):
    ...         return self.conv(self.conv(self.conv(x)))
    >>> t = trace(Loop(), (1, 4, 8, 8))
    >>> convs = [n for n in t.dag if t.call(n).kind == "conv"]
    >>> len(convs), t.layer("conv").calls, t.loop_graph.has_edge("conv", "conv")
    (3, 3, True)
    """
    if tracer not in TRACERS:
        raise UserError(f"tracer must be one of {', '.join(TRACERS)}, got {tracer!r}")
    custom = ops.check_custom_costs(custom_costs)
    dtype = dtype or _model_dtype(model)
    root_module = _Single(model) if _is_leaf_model(model, custom) else model
    bound = _bind(root_module, *split_inputs(inputs if input_shape is None else input_shape))
    with _eval_mode(model), quiet_torch_logs():
        captured = _capture(model, root_module, tracer, leaf_modules, custom, bound, dtype)
    return _assemble(model, captured, {name: describe(value, dtype) for name, value in bound.items()}, dtype)


def _is_leaf_model(model: nn.Module, custom: Dict) -> bool:
    """Whether the model is itself one leaf (nn.Conv2d, nn.TransformerEncoder): traced as one call of it."""
    return ops.lookup_module(model, custom) is not None or fx.Tracer().is_leaf_module(model, "")


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _assemble(model: nn.Module, captured: "_Captured", specs: Dict[str, InputSpec], dtype: torch.dtype) -> Trace:
    """The Trace of a captured graph: its execution DAG and loop-keeping graph."""
    dag, placeholders, named_outputs = _build_dag(captured.root, captured.graph, captured.records)
    loop_graph = _build_loop_graph(dag)
    uncounted = {op: Uncounted(calls, shapes) for op, (calls, shapes) in sorted(captured.uncounted.items())}
    first = next(iter(specs.values()))
    return Trace(model, captured.root, captured.graph, first.shape, dtype, dag, loop_graph, placeholders,
                 [node for _, node in named_outputs], captured.opaque_modules, captured.unknown_ops, uncounted,
                 specs, [name for name, _ in named_outputs])


@dataclass
class _Captured:
    """A captured graph with every node's record, whichever path captured it."""

    root: nn.Module  #: what the graph's ``call_module`` and ``get_attr`` targets are paths of
    graph: fx.Graph
    records: Dict[str, Evaluated]
    opaque_modules: List[str]
    unknown_ops: List[str]
    uncounted: Dict[str, Tuple[int, tuple]]


#: the capture paths ``tracer="auto"`` tries, in order: the first that can run the model wins
_AUTO = ("fx", "dispatch", "export")


def _capture(model: nn.Module, root_module: nn.Module, tracer: str, leaf_modules: Iterable[str], custom: Dict,
             bound: Dict[str, Any], dtype: torch.dtype) -> _Captured:
    """The graph and records by the tracer asked for (``auto``: fx, else dispatch, else export)."""
    failures: Dict[str, UserError] = {}
    for path in (_AUTO if tracer == "auto" else (tracer,)):
        try:
            if path == "fx":
                return _capture_fx(model, root_module, leaf_modules, custom, bound, dtype)
            if path == "dispatch":
                return _capture_dispatch(root_module, leaf_modules, custom, bound, dtype)
            return _capture_export(model, root_module, custom, bound, dtype)
        except (FxUntraceable, DispatchCaptureFailed, ExportFailed) as exc:
            failures[path] = exc
    # the fx message says why fx could not trace; the dispatch one names the layer that failed
    shown = [str(failures[p]) for p in ("fx", "dispatch") if p in failures] or [str(e) for e in failures.values()]
    raise UserError("; ".join(shown))


def _capture_fx(model: nn.Module, root_module: nn.Module, leaf_modules: Iterable[str], custom: Dict,
                bound: Dict[str, Any], dtype: torch.dtype) -> _Captured:
    root, graph, opaque = _symbolic_trace(root_module, leaf_modules, custom, given=set(bound))
    interp = _CostInterpreter(root, graph, set(opaque), custom)
    _run_on_fake_inputs(interp, graph, bound, dtype, _model_device(model), type(model).__name__)
    return _Captured(root, graph, interp.records, opaque + [m for m in interp.opaque_calls if m not in opaque],
                     sorted(interp.unknown), interp.uncounted)


def _capture_dispatch(root_module: nn.Module, leaf_modules: Iterable[str], custom: Dict, bound: Dict[str, Any],
                      dtype: torch.dtype) -> _Captured:
    leaves = _Tracer(set(leaf_modules), custom)
    captured = dispatch_capture(root_module, bound, dtype, leaves.is_leaf_module, custom)
    return _Captured(root_module, captured.graph, captured.records, captured.opaque_calls, [], captured.uncounted)


def _capture_export(model: nn.Module, root_module: nn.Module, custom: Dict, bound: Dict[str, Any],
                    dtype: torch.dtype) -> _Captured:
    with FakeTensorMode(allow_non_fake_inputs=True):
        values = [fake_input(value, dtype, _model_device(model)) for value in bound.values()]
    # bound to the model itself (``bound`` names a bare leaf's input as ``_Single`` does)
    exported = export_graph(model, _bind(model, values, {}) if root_module is not model else dict(zip(bound, values)))
    interp = _ExportedCostInterpreter(model, exported.graph, set(), custom)
    _run_on_fake_inputs(interp, exported.graph, bound, dtype, _model_device(model), type(model).__name__, exported)
    return _Captured(model, exported.graph, interp.records, list(interp.opaque_calls), sorted(interp.unknown),
                     interp.uncounted)


def _bind(root: nn.Module, args, kwargs) -> Dict[str, Any]:
    """The inputs by ``forward`` argument name, checked against its signature."""
    try:
        return dict(inspect.signature(root.forward).bind_partial(*args, **kwargs).arguments)
    except TypeError as exc:
        raise UserError(f"{type(root).__name__}.forward cannot take these inputs: {exc}") from None


def _run_on_fake_inputs(interp: "_CostInterpreter", graph: fx.Graph, bound: Dict[str, Any], dtype, device,
                        model_name: str, exported: Optional[Exported] = None) -> None:
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    # an exported graph runs in export's fake mode, on the values export recorded
    with FakeTensorMode(allow_non_fake_inputs=True) if exported is None else exported.fake_mode:
        values = {name: fake_input(value, dtype, device) for name, value in bound.items()} if exported is None else {}
        try:
            interp.run(*(values[p.target] if p.target in values else (p.args[0] if p.args else None)
                         for p in placeholders))
        except UserError:
            raise
        except Exception as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            given = ", ".join(f"{name} {describe(v, dtype).shape}" for name, v in bound.items())
            raise UserError(f"{model_name} cannot run on input {given}: {first_line}") from None


def _model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (the meta device for a model built only for its shapes)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _build_dag(root: nn.Module, graph: fx.Graph, records
               ) -> Tuple[nx.DiGraph, List[str], List[Tuple[str, str]]]:
    """The execution DAG, its input nodes, and its outputs as (name in the returned value, node)."""
    dag = nx.DiGraph()
    inputs: List[str] = []
    order = 0
    ordinals: Dict[str, int] = {}
    for n in graph.nodes:
        if n.op == "placeholder":
            inputs.append(n.name)
        if n.op not in COMPUTE_OPS and n.op != "placeholder":
            continue
        rec = records.get(n.name)
        if rec is None:  # an unused optional placeholder
            continue
        dag.add_node(n.name, **{RECORD: _call_record(root, n, rec, order, ordinals)})
        order += 1
        for src in n.all_input_nodes:
            if src.name in dag:
                dag.add_edge(src.name, n.name)
    returned = next(n for n in graph.nodes if n.op == "output").args[0]
    outputs = [(path or "output", o.name) for path, o in ops.named_leaves(returned, fx.Node) if o.name in dag]
    return dag, inputs, outputs


def _call_record(root: nn.Module, n: fx.Node, rec: Evaluated, order: int, ordinals: Dict[str, int]
                 ) -> CallRecord:
    info: ops.OpInfo = rec.info
    cost: ops.OpCost = rec.cost
    param_ids = tuple(sorted({id(p) for p in _node_parameters(root, n)}))
    target = _record_target(root, n, param_ids)
    # a module without a formula still holds a weight layer when torch counted MACs in it
    computes_with_weights = info.kind == "opaque" or (info.kind == "custom" and param_ids)
    return CallRecord(
        order=order,
        op=info.name,
        kind=info.kind,
        is_weight_layer=info.is_weight_layer or bool(computes_with_weights and cost.macs > 0),
        target=target,
        module=n.target if n.op == "call_module" else _owner_module(n),
        macs=int(cost.macs),
        other_ops=int(cost.other_ops),
        in_bytes=int(rec.in_bytes),
        out_bytes=int(rec.out_bytes),
        out_shapes=rec.out_shapes,
        param_ids=param_ids,
        site=_call_site(n, target, ordinals),
    )


def _record_target(root: nn.Module, n: fx.Node, param_ids: Tuple[int, ...]) -> str:
    """A call's target: a module call's path, else the function / method name. An aten op of an
    exported graph stands for its module (path), so its layer reads as in an fx trace, when it
    uses weights, or runs in a leaf module without any (an activation module)."""
    if isinstance(n.target, str):
        return n.target
    owner = _owner_module(n)
    if isinstance(n.target, torch._ops.OpOverload) and owner and (param_ids or _is_weightless_leaf(root, owner)):
        return owner
    return _target_name(n)


def _is_weightless_leaf(root: nn.Module, path: str) -> bool:
    try:
        module = root.get_submodule(path)
    except AttributeError:  # a path export recorded that is no attribute chain (a module called by hooks)
        return False
    return next(module.children(), None) is None and next(module.parameters(), None) is None


def _call_site(n: fx.Node, target: str, ordinals: Dict[str, int]) -> Optional[Tuple[str, int]]:
    """(owning module path, position among that module call's nodes), or None at the top level.

    fx (and export) name the i-th call of a module ``path@i`` in ``nn_module_stack``; the
    position counts nodes within one such call, so the same line of a re-used module gets the
    same site.
    """
    stack = list((n.meta.get("nn_module_stack") or {}).items())
    if stack and stack[-1][1][0] == target:
        stack = stack[:-1]  # a leaf's own entry: its owner is the module that called it
    if not stack:
        return None
    invocation, (path, _) = stack[-1]
    ordinal = ordinals.get(invocation, 0)
    ordinals[invocation] = ordinal + 1
    return (path, ordinal)


def _owner_module(n: fx.Node) -> str:
    stack = n.meta.get("nn_module_stack") or {}
    if stack:
        path = list(stack.values())[-1]
        return path[0] if isinstance(path, tuple) else str(path)
    return ""


def _build_loop_graph(dag: nx.DiGraph) -> nx.DiGraph:
    """Quotient of ``dag`` by parameter identity (union of calls sharing any parameter).

    A parameter-free call (activation, add, resize) joins the calls made from the same place of
    the same module's code: the relu inside a shared block run N times is one node, like the
    block's convs. Parameter-free code of a module that runs once (e.g. the model's own loop
    body, where per-iteration batch norms live) stays unrolled, one node per call.
    """
    groups = _parameter_groups(dag)
    layer_of: Dict[str, str] = {}
    loop = nx.DiGraph()
    for calls in groups:
        first = call_record(dag, calls[0])
        name = layer_name(calls[0], first)
        if name in loop:  # module path reused by a distinct parameter group: disambiguate
            name = calls[0]
        for c in calls:
            layer_of[c] = name
            dag.nodes[c][RECORD] = replace(call_record(dag, c), layer=name)
        params = {pid for c in calls for pid in call_record(dag, c).param_ids}
        loop.add_node(name, **{RECORD: LayerRecord(
            op=first.op,
            kind=first.kind,
            is_weight_layer=first.is_weight_layer,
            calls=len(calls),
            dag_nodes=tuple(calls),
            param_ids=tuple(sorted(params)),
            first_order=first.order,
        )})
    for u, v in dag.edges:
        lu, lv = layer_of[u], layer_of[v]
        if loop.has_edge(lu, lv):
            loop.edges[lu, lv]["count"] += 1
        else:
            back = layer_record(loop, lv).first_order <= layer_record(loop, lu).first_order
            loop.add_edge(lu, lv, count=1, back_edge=back)
    return loop


def _parameter_groups(dag: nx.DiGraph) -> List[List[str]]:
    """The DAG's calls grouped into unique layers (each group in execution order, groups by first call)."""
    uf = _UnionFind()
    param_owner: Dict[int, str] = {}
    site_owner: Dict[Tuple[str, int], str] = {}
    for name in dag.nodes:
        record = call_record(dag, name)
        uf.find(name)
        for pid in record.param_ids:
            if pid in param_owner:
                uf.union(param_owner[pid], name)
            else:
                param_owner[pid] = name
        if record.site is not None and not record.param_ids:
            if record.site in site_owner:
                uf.union(site_owner[record.site], name)
            else:
                site_owner[record.site] = name
    groups: Dict[Any, List[str]] = {}
    for name in dag.nodes:  # dag node order is execution order
        groups.setdefault(uf.find(name), []).append(name)
    return list(groups.values())
