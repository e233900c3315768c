"""Capture by ``torch.fx`` symbolic tracing, and the interpreter that costs an fx graph on fake tensors.

:func:`fx_capture` traces the model's ``forward`` symbolically (:class:`LeafTracer`: a module type
with a formula is one call, not traced into) and runs the graph once on ``FakeTensor``s
(:class:`CostInterpreter`), recording each node's output shapes and cost. No activation is
allocated. A model built on the meta device (every parameter and buffer there: what
:func:`graphcost.resolve.build_for_shapes` builds) runs on plain meta tensors instead, which are what
its fake tensors hold anyway: a meta dispatch costs a fraction of a fake one, and a process that
never makes a fake tensor never imports ``torch._dynamo`` (a second of CPU). So does a model on the
CPU, reading a meta twin of each parameter, buffer and constant (:class:`~graphcost.capture_dispatch.MetaTwins`;
the model itself is not touched). Where that run fails (an op without a meta kernel, code that asks
for a fake tensor), the fake run decides; a model on an accelerator runs on fake tensors of its device.

Calls without a formula in the op registry — ``nn`` leaf modules nobody registered, fx-wrapped
leaf functions — are costed per aten op (:mod:`graphcost.aten_costs`) on the slow math path.

Fallback: where fx cannot trace a submodule symbolically (data-dependent control flow,
``torch.zeros(x.size())``), that submodule is retried as an opaque *leaf*: it becomes a single
node costed per aten op — on fake tensors, or, when its control flow needs real values, on
seeded random inputs of the right shapes (only that submodule's activations are allocated).
Where fx cannot trace the model's own ``forward``, :class:`FxUntraceable` says why, and
:func:`graphcost.trace` tries the other capture paths.

:class:`ExportedCostInterpreter` costs a ``torch.export`` graph the same way
(:mod:`graphcost.capture_export`), re-running only the nodes that compute.

>>> import torch
>>> captured = fx_capture(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()),
...                       {"input": torch.empty(1, 3)}, torch.float32, torch.device("cpu"))
>>> [(n.op, str(n.target)) for n in captured.graph.nodes]
[('placeholder', 'input'), ('call_module', '0'), ('call_module', '1'), ('output', 'output')]
>>> captured.records["_0"].cost
OpCost(macs=6, other_ops=2)
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import operator
from collections import Counter
from typing import Any, Callable, Dict, Hashable, Iterable, List, Optional, Set, Tuple

import torch
from torch import fx, nn
from torch.fx._symbolic_trace import _assert_is_none
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily
from torch.utils._pytree import tree_map_only

from . import ops
from .aten_costs import AtenCost, aten_kind, does_no_arithmetic
from .capture_dispatch import MetaTwins, meta_like, meta_state
from .capture_memo import (CallMemo, Invocation, ModuleKeys, ParameterShapes, TraceReplay, invocations,
                           pure_function, release_codes)
from .errors import UserError, first_line, shape_text
from .fx_fast import CopyableScope, ModuleStack, restore_scan, skip_scan
from .graphs import COMPUTE_OPS, get_attr, owner_module, target_name
from .inputs import describe, fake_input
from .schema import Captured, Evaluated


#: argument types fx's ``create_arg`` returns unchanged
_PLAIN_ARGS = frozenset({int, float, bool, str, type(None)})


class LeafTracer(fx.Tracer):
    """fx tracer that remembers which submodule was being traced when tracing failed."""

    def __init__(self, leaves: Set[str], custom: Dict, memoise: bool = False, keys: Optional[ModuleKeys] = None):
        super().__init__()
        self.leaves = leaves
        self.custom = custom
        self.replay = TraceReplay(self, keys) if memoise else None  # repeated module calls copied, not traced again
        self.module_stack, self.scope = ModuleStack(), CopyableScope("", None)  # copied per node / call: cheaply
        self._unscanned: Optional[fx.Graph] = None  # the graph made to skip fx's scan for symbolic ints

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # a module type with its own formula is costed whole, not traced into
        return qualname in self.leaves or ops.is_registered_type(m, self.custom) or \
            super().is_leaf_module(m, qualname)

    def create_arg(self, a):
        # fx asks isinstance(a, nn.Parameter) first, a Python-level check that was a sixth of a trace
        # (ItNet): a Proxy or a plain scalar is none of the tensors, modules or constants fx looks for
        kind = type(a)
        if kind is fx.Proxy:
            return a.node
        if kind in _PLAIN_ARGS:
            return a
        if kind is tuple or kind is list:  # a plain sequence (not a namedtuple): its elements, as fx's base tracer does
            return kind([self.create_arg(elem) for elem in a])
        return super().create_arg(a)

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        if kind == "output":  # fx's last node: its dict of the root's modules is dropped right after
            self.module_paths = self.submodule_paths
        if self.graph is not self._unscanned:  # (fx makes a graph per trace; restore_scan after it)
            self._unscanned = self.graph
            skip_scan(self.graph)
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        if self.replay is not None:
            self.replay.created_node(node, name, type_expr)
        return node

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        if self.replay is not None:
            self.replay.parameter_proxies = parameter_proxy_cache  # which get_attr nodes fx reuses
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def call_module(self, m, forward, args, kwargs):
        try:
            if self.replay is None:
                return super().call_module(m, forward, args, kwargs)
            path = self.path_of_module(m)
            if self.is_leaf_module(m, path):
                self.replay.log_call(path)
                return super().call_module(m, forward, args, kwargs)
            return self.replay.call(m, path, args, kwargs,
                                    lambda: super(LeafTracer, self).call_module(m, forward, args, kwargs))
        except Exception as exc:
            if not hasattr(exc, "_graphcost_module"):
                exc._graphcost_module = self.path_of_module(m)
            raise


class FxUntraceable(UserError):
    """torch.fx cannot trace the model's own ``forward`` (``tracer="auto"`` then tries the other captures)."""


class Single(nn.Module):
    """Holds a bare leaf module (``nn.Conv2d(...)`` analyzed on its own) so fx sees one call of it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


def _symbolic_trace(model: nn.Module, leaf_modules: Iterable[str], custom: Dict, given: Set[str],
                    memoise: bool = True, keys: Optional[ModuleKeys] = None,
                    modules: Optional[Dict[str, nn.Module]] = None
                    ) -> Tuple[nn.Module, fx.Graph, List[str], Dict[str, str]]:
    """The traced graph, its root, the submodules kept opaque because fx could not trace them, and which
    module calls were copied from an equal earlier call (:class:`~graphcost.capture_memo.TraceReplay`, its
    module keys kept in ``keys``). ``modules``, where given, is filled with the root's submodules by path
    (``dict(root.named_modules())``, from fx's own walk of them: the run and the DAG need no walk of their own)."""
    leaves = set(leaf_modules)
    opaque: List[str] = []
    defaults = {name: value for name, value in _optional_defaults(model).items() if name not in given}
    while True:
        tracer = LeafTracer(leaves, custom, memoise, keys)
        try:
            graph = tracer.trace(model, concrete_args=defaults or None)
        except Exception as exc:  # fx raises many types; we only need to know where
            culprit = getattr(exc, "_graphcost_module", "")
            if not culprit or culprit in leaves:
                where = f"module {culprit!r} ({type(model.get_submodule(culprit)).__name__})" if culprit \
                    else f"the forward of {type(model).__name__}"
                raise FxUntraceable(f"torch.fx cannot trace {where}: {first_line(exc)}") from None
            leaves.add(culprit)
            opaque.append(culprit)
            continue
        restore_scan(graph)
        _drop_default_guards(graph)
        root, copies = tracer.root, tracer.replay.copies if tracer.replay is not None else {}
        if modules is not None:
            modules.update((path, module) for module, path in (getattr(tracer, "module_paths", None) or {}).items())
        _release(tracer)
        return root, graph, opaque, copies


def _release(tracer: fx.Tracer) -> None:
    """Empty a tracer that is done: fx's own closures and patcher keep it in reference cycles, and emptied it
    takes nothing else there (its graph, proxies and replay die by reference counting, no collector pass)."""
    tracer.__dict__.clear()


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


#: a module without submodules: what :class:`CostInterpreter` hands fx's ``Interpreter`` while it walks the model's
#: modules itself (fx's would walk them all again), before putting the model and the dict it has in its place
_NO_SUBMODULES = nn.Module()

#: what costing one node yields besides its output: (OpInfo, OpCost, costed per aten op, uncounted aten ops)
_Outcome = Tuple[ops.OpInfo, ops.OpCost, bool, Dict[str, Any]]


class CostInterpreter(fx.Interpreter):
    """Runs the fx graph on fake (or meta) tensors and records shapes and per-call costs on each node."""

    def __init__(self, root: nn.Module, graph: fx.Graph, opaque: Set[str], custom: Dict, memoise: bool = True,
                 copies: Optional[Dict[str, str]] = None, keys: Optional[ModuleKeys] = None,
                 modules: Optional[Dict[str, nn.Module]] = None, twins: Optional[MetaTwins] = None):
        # values kept to the end: fake tensors hold no data, and fx's last-use bookkeeping (a pass over the graph,
        # a lookup per node) cost more than keeping them
        if modules:  # root's submodules as tracing found them: fx's own walk of them (``named_modules``) spared
            super().__init__(_NO_SUBMODULES, garbage_collect_values=False, graph=graph)
            self.module, self.submodules = root, modules
        else:
            super().__init__(root, garbage_collect_values=False, graph=graph)
        self.copies = copies  # module calls fx tracing copied from an equal earlier call (TraceReplay)
        self.twins = twins  # the model's own tensors as meta ones, for a run on meta inputs (None: as they are)
        self.memo = CallMemo(keys) if memoise else None  # provably identical calls costed once
        self.extra_traceback = False  # errors are one line, naming the layer (see _blame)
        self.opaque = opaque
        self.custom = custom
        self.records: Dict[str, Evaluated] = {}
        self.templates: Dict[str, str] = {}  # node of a replayed invocation -> its source's (same module path)
        self.unknown: Set[str] = set()  # functions / methods without a formula, costed per aten op
        self.opaque_calls: Dict[str, None] = {}  # leaf modules without a formula, in call order
        self.uncounted: Dict[str, Tuple[int, tuple]] = {}  # aten op -> (calls, example shapes)

    def run(self, *args, **kwargs):
        # submodule calls that may repeat; a call whose key was seen before is replayed whole
        self._invocations = self._repeatable(invocations(self.graph, self.copies)) if self.memo is not None else {}
        self._pending: Dict[str, list] = {}  # last node of a call being run -> (invocation, key, its inputs)
        self._effects: Dict[str, Tuple[bool, Dict[str, Any]]] = {}  # node -> (costed per aten op, uncounted)
        try:
            return super().run(*args, **kwargs)
        finally:
            release_codes(self._invocations)

    def _repeatable(self, found: Dict[str, List[Invocation]]) -> Dict[str, List[Invocation]]:
        """``found`` without the submodule calls no other call could equal: an equal key needs the same module
        type, node count and parameter shapes, so a call alone in that is never keyed nor kept (a ResNet's
        stages, most blocks of a plain network), which cost more than replays saved there."""
        calls = [c for cs in found.values() for c in cs]
        kinds = {c: (type(self._submodule(c.path)), len(c.nodes)) for c in calls}
        twins = Counter(kinds.values())
        shapes: Dict[str, tuple] = {}  # per module path: an iterated block's calls share one sketch
        sketch = ParameterShapes()
        for c in calls:
            if twins[kinds[c]] > 1 and c.path not in shapes:
                shapes[c.path] = sketch(self._submodule(c.path))
        sketches = {c: (kinds[c], shapes.get(c.path)) for c in calls}
        counts = Counter(sketches.values())
        kept = {name: [c for c in cs if counts[sketches[c]] > 1] for name, cs in found.items()}
        return {name: cs for name, cs in kept.items() if cs}

    def run_node(self, n: fx.Node):
        for invocation in self._invocations.get(n.name, ()):  # outermost first
            found = self._replay_invocation(invocation)
            if found is not None:
                return found[0]
        out = self._run_call(n)
        self._store_invocations_ending(n, out)
        return out

    def _store_invocations_ending(self, n: fx.Node, out) -> None:
        """Keep the outcome of every submodule call whose last node ``n`` is (``out``: its value)."""
        for invocation, key, inputs in self._pending.pop(n.name, ()):
            values = [out if m is n else self.env[m] for m in invocation.escaping]
            self.memo.store(key, tuple(values), (tuple(self.records[m.name] for m in invocation.nodes),
                                                 tuple(self._effects[m.name] for m in invocation.nodes),
                                                 invocation), inputs)

    def _replay_invocation(self, invocation: Invocation) -> Optional[Tuple[Any]]:
        """``(value of its first node,)`` when an equal call of the invocation's module ran before: every
        node's record and effects as then, the values the rest of the graph reads as fresh fake tensors
        (the loop of ``run`` skips nodes whose value is set). Otherwise None, its outcome kept at its end."""
        inputs = [self.env[e] for e in invocation.external]
        key = self.memo.invocation_key(invocation, self._submodule(invocation.path), inputs, self.opaque)
        found = self.memo.replay(key) if key is not None else None
        if found is None:
            if key is not None:
                self._pending.setdefault(invocation.nodes[-1].name, []).append((invocation, key, inputs))
            return None
        values, (records, effects, source) = found
        escaping = dict(zip(invocation.escaping, values))
        nodes, names = invocation.nodes, invocation.names
        if source.path == invocation.path:  # the same module again: its DAG records are the source's
            self.templates.update(zip(names, source.names))
        self.records.update(zip(names, records))  # (dict updates in C: a block is dozens of nodes)
        self._effects.update(zip(names, effects))
        self.env.update(zip(nodes[1:], map(escaping.get, nodes[1:])))  # set: the loop of ``run`` skips them
        if any(map(any, effects)):  # some costed per aten op: listed (as _run_call lists them)
            for m, effect in zip(nodes, effects):
                if effect[0] or effect[1]:
                    self._note(m, *effect)
        if self._pending.keys() & invocation.name_set:  # an outer call may end inside this one
            for m in nodes:
                if m.name in self._pending:
                    self._store_invocations_ending(m, escaping.get(m))
        return (escaping.get(nodes[0]),)

    def _run_call(self, n: fx.Node):
        """Shape-propagate and cost one node (or replay an equal call's outcome)."""
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        module = self._submodule(n.target) if n.op == "call_module" else None
        info = self._info(n, module)
        key, passed_through = self._memo_key(n, module, info, args, kwargs)
        found = self.memo.replay(key) if key is not None else None
        if found is None:
            out, outcome = self._evaluate(n, module, info, args, kwargs, passed_through)
            if key is not None:
                self.memo.store(key, out, outcome, (args, kwargs))
        else:
            out, outcome = found
        info, cost, per_aten, uncounted = outcome
        self._effects[n.name] = (per_aten, uncounted)
        self._note(n, per_aten, uncounted)
        self.records[n.name] = Evaluated(info, cost, tuple(tuple(t.shape) for t in ops.tensors_in(out)), ops.nbytes(out),
                                         _activation_bytes(n, args, kwargs))
        return out

    def _submodule(self, path: str) -> nn.Module:
        """The module at ``path``: from fx's dict of them (``get_submodule`` costs microseconds per dot), which
        names a module held twice by its first path only."""
        module = self.submodules.get(path)
        return self.module.get_submodule(path) if module is None else module

    def _memo_key(self, n: fx.Node, module: Optional[nn.Module], info: Optional[ops.OpInfo], args, kwargs
                  ) -> Tuple[Optional[Hashable], Any]:
        """The call's memo key (:mod:`graphcost.capture_memo`) or None, and the output its shape rule gave
        where that is its input (else None). No key: no memo, not a call, a leaf that may run on real inputs,
        or a call whose shape rule returns its input: an outcome the memo never keeps, for this key or an equal
        one, so the key is not worth its time (and :meth:`_evaluate` need not ask the rule again)."""
        if self.memo is None or n.op not in COMPUTE_OPS or (module is not None and n.target in self.opaque):
            return None, None
        if info is not None and info.preserves_shape and args:
            try:
                if self._shortcut(info, module, args, kwargs) is args[0]:
                    return None, args[0]
            except Exception:  # noqa: BLE001 - a shape rule rejecting the call: _evaluate says so, naming the layer
                pass
        return self.memo.key(n.op, module if module is not None else n.target, args, kwargs), None

    def _evaluate(self, n: fx.Node, module: Optional[nn.Module], info: Optional[ops.OpInfo], args, kwargs,
                  passed_through: Any = None) -> Tuple[Any, "_Outcome"]:
        """Shape-propagate and cost one node (``info``: its op's entry in the registry): its output and
        :data:`_Outcome`. ``passed_through``: its output where its shape rule was asked already and gave
        back its input."""
        with _blame(functools.partial(_where, self.module, n, module), args, kwargs):
            if info is None and n.op in COMPUTE_OPS:
                out, info, cost, uncounted = self._run_per_aten_op(n, module, args, kwargs)
                return out, (info, cost, True, uncounted)
            out = self._shortcut(info, module, args, kwargs) if passed_through is None else passed_through
            if out is None:
                self._code_runs(n)
                out = getattr(self, n.op)(n.target, args, kwargs)
        cost = info.cost(ops.Call(module, args, kwargs, out)) if n.op in COMPUTE_OPS else ops.OpCost()
        return out, (info, cost, False, {})

    def _note(self, n: fx.Node, per_aten: bool, uncounted: Dict[str, Any]) -> None:
        """What a call costed per aten op leaves in the capture's lists (its own run or a replayed one)."""
        if per_aten and n.op == "call_module":
            self.opaque_calls.setdefault(n.target, None)
        elif per_aten and not isinstance(n.target, torch._ops.OpOverload):
            self.unknown.add(target_name(n))
        for op, found in uncounted.items():
            calls, shapes = self.uncounted.get(op, (0, found.shapes))
            self.uncounted[op] = (calls + found.calls, shapes)

    def _code_runs(self, n: fx.Node) -> None:
        """A module's forward or a user function is about to run: module keys taken before may be stale.
        (A shape rule, a formula, a torch function or a tensor method changes no module.)"""
        user_code = n.op == "call_module" or (n.op == "call_function" and not pure_function(n.target))
        if self.memo is not None and user_code:
            self.memo.code_ran()

    def _run_per_aten_op(self, n: fx.Node, module: Optional[nn.Module], args, kwargs):
        """Run a call without a formula under :class:`AtenCost`: an opaque module, or a function /
        method (e.g. an fx-wrapped leaf function) costed by the aten ops it runs."""
        self._code_runs(n)
        if module is not None:
            out, counter = self._run_opaque(n, args, kwargs)
            info = ops.OpInfo("opaque:" + type(module).__name__, "opaque", ops.free)
        else:
            out, counter = self._run_counted(n, args, kwargs)
            if isinstance(n.target, torch._ops.OpOverload):  # an exported graph's node: aten is its language
                uses_parameters = any(src.op == "get_attr" and isinstance(get_attr(self.module, src.target), nn.Parameter)
                                      for src in n.all_input_nodes)
                info = ops.OpInfo(str(n.target.overloadpacket), aten_kind(n.target, counter.macs, counter.other_ops,
                                  bool(counter.uncounted), uses_parameters), ops.free)
            else:
                info = ops.OpInfo(target_name(n), "opaque", ops.free)
        return out, info, ops.OpCost(macs=counter.macs, other_ops=counter.other_ops), dict(counter.uncounted)

    def _run_counted(self, n: fx.Node, args, kwargs) -> Tuple[Any, AtenCost]:
        """Run a function, method or aten op under :class:`AtenCost` (see :func:`_counted`)."""
        def run(a, k):
            return getattr(self, n.op)(n.target, a, k)
        return _counted(run, run, args, kwargs)

    def _shortcut(self, info: Optional[ops.OpInfo], module, args, kwargs):
        """The op's output from a shape rule, without dispatching the op (None: run it).

        Only floating-point fake tensors of one dtype and device, matching the module's own
        tensors, take the shortcut: anything else (dtype promotion, integer inputs, a float64
        input to a float32 layer) runs the op, so torch decides what it accepts."""
        if info is None or not args or not (info.preserves_shape or info.shape):
            return None
        tensors = ops.tensors_in(args)
        if not tensors or not _abstract(tensors[0]) or not tensors[0].is_floating_point() or \
                not _same_kind(tensors[0], tensors[1:]) or \
                (module is not None and not self._own_tensors_match(module, tensors[0])):
            return None
        shape = info.shape(module, args, kwargs) if info.shape else ()
        if shape is None:
            return None
        if info.preserves_shape:
            return args[0] if args[0] is tensors[0] else None
        return _fake_empty(tensors[0], shape)

    def _own_tensors_match(self, module: nn.Module, like: torch.Tensor) -> bool:
        """Whether the module's own floating-point parameters and buffers, as this run sees them, have ``like``'s
        dtype and device. On a twinned run each is its meta twin (its dtype, the meta device): asked of the
        tensor itself, no twin made for a module whose call a shape rule answers."""
        own = _module_tensors(module)
        if self.twins is None:
            return _same_kind(like, own)
        return all(t.dtype == like.dtype for t in own if t.is_floating_point()) and \
            (like.is_meta or not any(t.is_floating_point() for t in own))

    def get_attr(self, target, args, kwargs):
        value = super().get_attr(target, args, kwargs)
        return value if self.twins is None or not isinstance(value, torch.Tensor) else self.twins.of(value)

    def call_module(self, target, args, kwargs):
        if self.twins is None:
            return super().call_module(target, args, kwargs)
        return self.twins.call(self._submodule(target), args, kwargs)

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
        abstract = _active_fake_mode(args).from_tensor if _fakes_in(args) else meta_like
        gen = torch.Generator().manual_seed(0)
        with unset_fake_temporarily():
            real = tree_map_only(torch.Tensor, lambda t: torch.rand(t.shape, generator=gen).to(t.dtype),
                                 (args, kwargs))
            with AtenCost() as counter:
                out = self.module.get_submodule(n.target)(*real[0], **real[1])
        return tree_map_only(torch.Tensor, abstract, out), counter

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
        shapes = ", ".join(shape_text(t.shape) for t in ops.tensors_in((args, kwargs))) or "no tensors"
        raise UserError(f"{where()} cannot run on input {shapes}: {first_line(exc)}") from None


def _where(root: nn.Module, n: fx.Node, module: Optional[nn.Module]) -> str:
    """How an error names a call: the layer's module path, or the function and its owning module."""
    if isinstance(root, Single) and n.target == "model":
        return type(module).__name__  # the model is this one module
    if module is not None:
        return f"layer {n.target!r} ({type(module).__name__})"
    owner = owner_module(n)
    return f"{target_name(n)} in " + (f"layer {owner!r}" if owner else "the model's forward")


class ExportedCostInterpreter(CostInterpreter):
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


def _abstract(t: torch.Tensor) -> bool:
    """Whether ``t`` holds no data: a fake tensor (the fake run) or a meta one (the meta run)."""
    return isinstance(t, FakeTensor) or t.is_meta


def _fakes_in(args) -> List[FakeTensor]:
    return [t for t in ops.tensors_in(args) if isinstance(t, FakeTensor)]


def _fake_empty(like: torch.Tensor, shape) -> torch.Tensor:
    """A tensor of ``shape`` like ``like`` (fake or meta), built from a meta tensor: for a fake one 4x
    cheaper than dispatching ``new_empty`` through the fake mode's cache."""
    with unset_fake_temporarily():
        meta = torch.empty(shape, dtype=like.dtype, device="meta")
    return _fake_from_meta(like, meta) if isinstance(like, FakeTensor) else meta


def _counted(on_meta: Callable, on_fake: Callable, args, kwargs) -> Tuple[Any, AtenCost]:
    """``on_meta`` on meta copies of the tensors in ``args`` / ``kwargs`` under :class:`AtenCost`,
    its output back as fake tensors; where it cannot run (no meta kernel, a CPU tensor made inside,
    or torch refuses the shapes), ``on_fake`` on the fake tensors themselves, whose error is then
    torch's own. Why: a fake-tensor dispatch costs several meta ones (swin_t's fx-wrapped window
    attention was 70% of its trace on fake tensors, nn.TransformerEncoder's opaque run most of its)."""
    fakes = _fakes_in((args, kwargs))
    if fakes:  # (on the meta run there are none: ``on_fake`` runs on the meta tensors themselves)
        try:
            with unset_fake_temporarily(), AtenCost() as counter:
                meta_args, meta_kwargs = tree_map_only(torch.Tensor, meta_like, (args, kwargs))
                out = on_meta(meta_args, meta_kwargs)
            return tree_map_only(torch.Tensor, functools.partial(_fake_from_meta, fakes[0]), out), counter
        except Exception:  # noqa: BLE001 - the fake run below decides, with torch's own message
            pass
    with AtenCost() as counter:
        out = on_fake(args, kwargs)
    return out, counter


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


def fx_capture(root_module: nn.Module, bound: Dict[str, Any], dtype: torch.dtype, device: torch.device,
               leaf_modules: Iterable[str] = (), custom: Optional[Dict] = None, memoise: bool = True) -> Captured:
    """Trace ``root_module`` with fx and cost its graph on fake inputs (see the module doc).

    Parameters
    ----------
    root_module : torch.nn.Module
        The model (or :class:`Single` holding a bare leaf module), in the mode it is captured in.
    bound : dict
        ``forward`` arguments by name: :class:`~graphcost.inputs.InputSpec` or example tensors.
    dtype, device : the dtype of an input given without one, and where the model's parameters live.
    leaf_modules : iterable of str
        Submodule paths kept as single opaque calls.
    custom : dict, optional
        Per-call formula overrides.
    memoise : bool, default True
        Cost provably identical calls once (:mod:`graphcost.capture_memo`); False: every call on its own.

    Returns
    -------
    Captured

    Raises
    ------
    FxUntraceable
        If fx cannot trace the model's own ``forward``.
    UserError
        If a layer cannot run on its inputs (one line naming it).
    """
    custom = custom or {}
    keys = ModuleKeys()  # taken while tracing, given back to the run's memo where they still hold
    modules: Dict[str, nn.Module] = {}
    root, graph, opaque, copies = _symbolic_trace(root_module, leaf_modules, custom, given=set(bound), memoise=memoise,
                                                  keys=keys, modules=modules)
    model = root_module.model if isinstance(root_module, Single) else root_module
    interpreter = functools.partial(CostInterpreter, root, graph, set(opaque), custom, memoise, copies, keys, modules)
    interp = _run_on_meta(interpreter, graph, bound, dtype, device, modules.values())
    if interp is None:
        interp = interpreter()
        run_on_fake_inputs(interp, graph, bound, dtype, device, type(model).__name__)
    return Captured(root, graph, interp.records, opaque + [m for m in interp.opaque_calls if m not in opaque],
                    sorted(interp.unknown), interp.uncounted, modules=modules, templates=interp.templates)


def _run_on_meta(interpreter: Callable[..., CostInterpreter], graph: fx.Graph, bound: Dict[str, Any],
                 dtype: torch.dtype, device: torch.device, modules: Iterable[nn.Module]) -> Optional[CostInterpreter]:
    """The interpreter that ran ``graph`` on meta inputs, or None where that run failed or cannot be made.

    A model on the meta device runs as it is; a model on the CPU reads meta twins of its parameters and buffers
    (:class:`~graphcost.capture_dispatch.MetaTwins`): a CPU fake tensor holds a meta one, so both give the same
    shapes, at a fraction of a fake dispatch. A model on an accelerator runs on fake tensors of that device
    (its kernels may differ)."""
    if device.type == "meta" and _all_meta(modules):
        interp = interpreter()
    elif device.type in ("cpu", "meta"):
        interp = interpreter(twins=MetaTwins())
    else:
        return None
    return interp if run_on_meta_inputs(interp, graph, bound, dtype) else None


def _all_meta(modules: Iterable[nn.Module]) -> bool:
    """Whether every parameter and buffer of ``modules`` (a model's) is on the meta device (a model built for
    its shapes)."""
    return all(t.is_meta for m in modules for t in _module_tensors(m))


def run_on_meta_inputs(interp: CostInterpreter, graph: fx.Graph, bound: Dict[str, Any], dtype: torch.dtype) -> bool:
    """Run ``interp`` over ``graph`` on meta inputs made from ``bound``, no fake mode: whether it ran through.

    Only for a model on the meta device, whose fake tensors would hold these very meta tensors: the
    same kernels give the same shapes, dtypes and aten calls. False where anything failed (a tensor made
    on the CPU inside ``forward`` meets a meta one, an op has no meta kernel, a value is read): the
    caller then runs a fresh interpreter on fake tensors, whose outcome and error messages are torch's."""
    values = {name: fake_input(value, dtype, torch.device("meta")) for name, value in bound.items()}
    try:
        _run_with_inputs(interp, graph, values)
    except Exception:  # noqa: BLE001 - the fake run decides, with torch's own message
        return False
    return True


def _run_with_inputs(interp: CostInterpreter, graph: fx.Graph, values: Dict[str, Any]) -> None:
    """``interp.run`` with each placeholder bound to its input in ``values``, else to its default (or None)."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    interp.run(*(values[p.target] if p.target in values else (p.args[0] if p.args else None) for p in placeholders))


def run_on_fake_inputs(interp: CostInterpreter, graph: fx.Graph, bound: Dict[str, Any], dtype: torch.dtype,
                       device: torch.device, model_name: str, fake_mode: Optional[FakeTensorMode] = None) -> None:
    """Run ``interp`` over ``graph`` on fake inputs made from ``bound``; with ``fake_mode`` (an
    exported graph's), in that mode on the values its placeholders recorded."""
    with FakeTensorMode(allow_non_fake_inputs=True) if fake_mode is None else fake_mode:
        values = {name: fake_input(value, dtype, device) for name, value in bound.items()} if fake_mode is None else {}
        try:
            _run_with_inputs(interp, graph, values)
        except UserError:
            raise
        except Exception as exc:
            given = ", ".join(f"{name} {describe(v, dtype).shape}" for name, v in bound.items())
            raise UserError(f"{model_name} cannot run on input {given}: {first_line(exc)}") from None
