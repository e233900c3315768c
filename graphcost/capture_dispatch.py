"""Capture by running ``forward`` once on meta tensors, recording module calls and aten ops.

For models ``torch.fx`` cannot trace symbolically (Hugging Face transformers), :func:`dispatch_capture`
runs the model's own Python once, on meta tensors (shapes, no storage, no arithmetic), with

* global module hooks, which keep the module stack (``nn_module_stack``, as fx and export record
  it) and make every call of a *leaf* module (one with a formula in the registry, or a ``torch.nn``
  leaf as fx sees it) one ``call_module`` node, costed by its formula as on the fx path;
* a dispatch mode below autograd, which makes every other aten op one ``call_function`` node,
  costed per aten op (:func:`graphcost.aten_costs.op_cost`: torch's flop formulas, as
  FlopCounterMode counts them).

Parameters and buffers are fetched by ``get_attr`` of their first name in the model, so a call's
parameter ids are the model's own ``Parameter`` objects and tied weights stay one layer. Views
and copies of parameters alone (``weight.t()``) fold into that ``get_attr``; factories and
views of constants made inside ``forward`` are constants, not nodes.

Why a third capture: torch.export spends more on bert-base (seq 128) than a whole FlopCounterMode
run on fake tensors (0.6 s against 0.4 s), one forward on meta tensors takes 0.1 s. A model this
capture cannot run (an op with no meta kernel, a CPU tensor made inside ``forward``, data-dependent
control flow) is left to torch.export by ``tracer="auto"``.

>>> import torch
>>> captured = dispatch_capture(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()),
...                             {"input": torch.empty(1, 3)}, torch.float32, lambda m, path: path == "0")
>>> [(n.op, str(n.target)) for n in captured.graph.nodes]
[('placeholder', 'input'), ('call_module', '0'), ('call_function', 'aten.relu.default'), ('output', 'output')]
>>> captured.records["relu"].cost
OpCost(macs=0, other_ops=2)
"""
from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import torch
from torch import fx, nn
from torch.nn.modules import module as module_hooks
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from . import ops
from .aten_costs import aten_kind, decomposed, is_metadata_query, op_cost, slow_math_path, tally_uncounted
from .errors import UserError, first_line, shape_text
from .inputs import InputSpec, describe, leaves, map_leaves
from .schema import Captured, Evaluated

#: whether a submodule (at its path) is one call of the graph rather than traced into
IsLeaf = Callable[[nn.Module, str], bool]

_IO = ops.OpInfo("placeholder", "io", ops.free)


class DispatchCaptureFailed(UserError):
    """The model's forward could not run on meta tensors."""


def dispatch_capture(model: nn.Module, inputs: Dict[str, Any], dtype: torch.dtype, is_leaf: IsLeaf,
                     custom: Optional[Dict] = None) -> Captured:
    """Run ``model(**inputs)`` once on meta tensors; return its graph of module calls and aten ops.

    Parameters
    ----------
    model : torch.nn.Module
        The model (parameters real or on the meta device), in the mode it is captured in.
    inputs : dict
        ``forward`` arguments by name: :class:`~graphcost.inputs.InputSpec` or example tensors
        (only their shapes and dtypes count).
    dtype : torch.dtype
        The dtype of an input given without one.
    is_leaf : callable
        ``is_leaf(module, path)``: whether a submodule is one node (costed whole) or traced into.
    custom : dict, optional
        Per-call formula overrides (``analyze(..., custom_costs=...)``).

    Returns
    -------
    Captured
        The fx graph (placeholders, ``get_attr``, ``call_module`` and aten ``call_function``
        nodes, an output dict by the names ``forward`` returned), and each node's record.

    Raises
    ------
    DispatchCaptureFailed
        If ``forward`` raises on meta tensors (one line naming the layer where it did).
    """
    run_on_meta, seen = _meta_parameters(model)
    values = {name: map_leaves(lambda leaf: _meta_input(leaf, dtype), value) for name, value in inputs.items()}
    with _as_exporting(), tensor_attributes_kept(model):
        return record_forward(model, values, run_on_meta, seen, is_leaf, custom, DispatchCaptureFailed)


@contextlib.contextmanager
def tensor_attributes_kept(model: nn.Module) -> Iterator[None]:
    """The model's plain tensor attributes (neither parameters nor buffers) as they were, afterwards:
    a forward that caches tensors on itself (torchvision's anchor generator moves its cell anchors to
    the input's device) must not leave meta tensors in the user's model."""
    kept = [(module, name, value) for module in model.modules() for name, value in vars(module).items()
            if not name.startswith("_") and (isinstance(value, torch.Tensor) or (
                isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value)))]
    try:
        yield
    finally:
        for module, name, value in kept:
            setattr(module, name, value)


def record_forward(model: nn.Module, values: Dict[str, Any], run: Callable[[Dict[str, Any]], Any],
                   seen: Dict[str, torch.Tensor], is_leaf: IsLeaf, custom: Optional[Dict],
                   failed: Callable[[str], UserError]) -> Captured:
    """``run(values)`` once under the module hooks and the recording dispatch mode (see the module doc).

    ``values`` are ``forward``'s arguments by name, tensors or lists / tuples of them, on the device
    they run on; ``seen`` maps every parameter and buffer name to the tensor ``forward`` sees for it
    (the model's own, or a stand-in) so parameters are fetched by ``get_attr``. An exception of the
    model's own code becomes ``failed(one line naming the layer and quoting the error)``.
    """
    recorder = _Recorder(model, seen, is_leaf, custom or {})
    for name, value in values.items():
        recorder.add_input(name, value)
    try:
        with torch.no_grad(), slow_math_path(), recorder.hooks(), recorder:
            returned = run(values)
    except UserError:
        raise
    except Exception as exc:  # the model's own code raises anything; one line names where
        raise failed(recorder.failure(exc)) from None
    recorder.add_output(returned)
    return Captured(model, recorder.graph, recorder.records, list(recorder.opaque_calls), [], recorder.uncounted)


@contextlib.contextmanager
def _as_exporting() -> Iterator[None]:
    """``torch.compiler.is_compiling()`` / ``is_exporting()`` true while capturing, as torch.export
    sets them: model code then skips the data-dependent checks it skips for any graph capture
    (transformers' "is every mask entry 1" before choosing a causal-mask path), which cannot run
    on meta tensors and compute nothing the model's outputs depend on."""
    flags = [name for name in ("_is_compiling_flag", "_is_exporting_flag") if hasattr(torch.compiler, name)]
    previous = [getattr(torch.compiler, name) for name in flags]
    for name in flags:
        setattr(torch.compiler, name, True)
    try:
        yield
    finally:
        for name, value in zip(flags, previous):
            setattr(torch.compiler, name, value)


def _meta_input(value, dtype: torch.dtype) -> torch.Tensor:
    spec: InputSpec = describe(value, dtype)
    return torch.empty(spec.shape, dtype=spec.dtype, device="meta")


def meta_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Every parameter and buffer of ``model`` by name (tied names too), on the meta device: the
    model's own tensors where they are there already, else a meta copy of each (one per tensor,
    so tied names stay tied), for ``torch.func.functional_call``."""
    return MetaTwins().state(model)


def meta_like(t: torch.Tensor) -> torch.Tensor:
    """A meta tensor with ``t``'s shape, strides and dtype (``t`` real, fake or meta)."""
    return torch.empty_strided(tuple(t.shape), tuple(t.stride()), dtype=t.dtype, device="meta")


class MetaTwins:
    """A model's parameters, buffers and tensor constants as meta tensors (same shape, strides, dtype,
    ``requires_grad``; a ``Parameter`` stays one), each made once and shared by every module that holds
    it, so tied weights stay tied: what a real model's run on meta inputs reads in their place.
    A tensor already on the meta device is its own twin."""

    def __init__(self) -> None:
        self._twins: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}  # id -> (the tensor, held: ids stay unique)
        self._states: Dict[int, Tuple[nn.Module, Dict[str, torch.Tensor], bool]] = {}

    def of(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor``'s meta twin."""
        if tensor.is_meta:
            return tensor
        found = self._twins.get(id(tensor))
        if found is None:
            twin = meta_like(tensor)
            twin = nn.Parameter(twin, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else \
                twin.requires_grad_(tensor.requires_grad)
            found = self._twins[id(tensor)] = (tensor, twin)
        return found[1]

    def state(self, module: nn.Module) -> Dict[str, torch.Tensor]:
        """Every parameter and buffer of ``module`` by name (tied names too) as its twin."""
        return self._state(module)[1]

    def call(self, module: nn.Module, args, kwargs) -> Any:
        """``module(*args, **kwargs)`` with its parameters and buffers replaced by their twins."""
        _, state, swaps = self._state(module)
        if not swaps:  # all on the meta device already
            return module(*args, **kwargs)
        return torch.func.functional_call(module, state, tuple(args), kwargs, tie_weights=True, strict=False)

    def _state(self, module: nn.Module) -> Tuple[nn.Module, Dict[str, torch.Tensor], bool]:
        found = self._states.get(id(module))
        if found is None:
            tensors = dict(itertools.chain(module.named_parameters(remove_duplicate=False),
                                           module.named_buffers(remove_duplicate=False)))
            state = {name: self.of(t) for name, t in tensors.items()}
            swaps = any(state[name] is not t for name, t in tensors.items())
            found = self._states[id(module)] = (module, state, swaps)
        return found


def _meta_parameters(model: nn.Module) -> Tuple[Callable[[Dict[str, torch.Tensor]], Any], Dict[str, torch.Tensor]]:
    """A function calling ``model`` with every parameter and buffer on the meta device, and the
    tensor each parameter / buffer name is seen as while it runs."""
    twins = MetaTwins()
    return (lambda kwargs: twins.call(model, (), kwargs)), twins.state(model)


@dataclass
class _Frame:
    """One module call in progress."""

    module: nn.Module
    path: Optional[str]  #: None for a module that is not one of the model's own (made inside forward)
    stack: Dict[str, Tuple[str, str]]  #: nn_module_stack up to and including this call
    leaf: bool  #: a leaf's call, or a call inside one
    info: Optional[ops.OpInfo] = None  #: a leaf's formula (None: costed by its aten ops)
    args: tuple = ()  #: the call's positional arguments (an error names their shapes)
    macs: int = 0  #: a leaf without a formula: what its aten ops cost
    other_ops: int = 0


class _Recorder(TorchDispatchMode):
    """Builds the graph while the model runs (see the module doc)."""

    def __init__(self, model: nn.Module, seen: Dict[str, torch.Tensor], is_leaf: IsLeaf, custom: Dict):
        super().__init__()
        self.model, self.is_leaf, self.custom = model, is_leaf, custom
        self.graph = fx.Graph()
        self.records: Dict[str, Evaluated] = {}
        self.opaque_calls: Dict[str, None] = {}
        self.uncounted: Dict[str, Tuple[int, tuple]] = {}
        self._paths = {id(m): path for path, m in model.named_modules() if path}
        self._attr_names: Dict[int, str] = {}  # a tensor seen while running -> its first name in the model
        for name, t in seen.items():
            self._attr_names.setdefault(id(t), name)
        self._parameter_attrs: Set[str] = {name for name, _ in model.named_parameters()}
        self._node_of: Dict[int, fx.Node] = {}
        self._alive: List[torch.Tensor] = []  # every tensor in _node_of, so no id is reused
        self._frames: List[_Frame] = []
        self._invocations: Dict[str, int] = {}
        self._failed_in: Optional[str] = None

    # ------------------------------------------------------------------ inputs and outputs
    def add_input(self, name: str, value: Any) -> None:
        """One placeholder per tensor of argument ``name`` (``images_0``, ... for a list of them)."""
        for path, tensor in leaves(name, value):
            node = self.graph.placeholder(path.replace(".", "_"))
            self._bind(tensor, node)
            self.records[node.name] = Evaluated(_IO, ops.OpCost(), (tuple(tensor.shape),), ops.nbytes(tensor), 0)

    def add_output(self, returned: Any) -> None:
        leaves, _ = pytree.tree_flatten_with_path(returned)
        named = {".".join(ops.pytree_key_text(k) for k in path) or "output": self._node_of.get(id(v))
                 for path, v in leaves if isinstance(v, torch.Tensor)}
        self.graph.output({name: node for name, node in named.items() if node is not None})

    # ------------------------------------------------------------------ parameters
    def _bind(self, value: torch.Tensor, node: fx.Node) -> None:
        self._node_of[id(value)] = node
        self._alive.append(value)

    def _source(self, t: torch.Tensor) -> Optional[fx.Node]:
        """The node that made ``t``: its op, its placeholder, its parameter's ``get_attr``; None for a constant."""
        node = self._node_of.get(id(t))
        if node is None and id(t) in self._attr_names:
            node = self.graph.get_attr(self._attr_names[id(t)])
            self._bind(t, node)
        return node

    # ------------------------------------------------------------------ module calls
    @contextlib.contextmanager
    def hooks(self) -> Iterator[None]:
        before = module_hooks.register_module_forward_pre_hook(self._enter)
        after = module_hooks.register_module_forward_hook(self._leave, with_kwargs=True)
        try:
            yield
        finally:
            before.remove()
            after.remove()

    def _enter(self, module: nn.Module, args) -> None:
        outer = self._frames[-1] if self._frames else None
        path = self._paths.get(id(module)) if outer is None or not outer.leaf else None
        if path is None:  # inside a leaf, or a module made inside forward: its ops belong to the caller
            self._frames.append(_Frame(module, None, outer.stack if outer else {}, bool(outer and outer.leaf),
                                       outer.info if outer else None))
            return
        calls = self._invocations.get(path, 0)
        self._invocations[path] = calls + 1
        key = path if calls == 0 else f"{path}@{calls}"
        stack = {**(outer.stack if outer else {}), key: (path, type(module).__qualname__)}
        leaf = self.is_leaf(module, path)
        self._frames.append(_Frame(module, path, stack, leaf, ops.lookup_module(module, self.custom) if leaf else None,
                                   args))

    def _leave(self, module: nn.Module, args, kwargs, output=None) -> None:
        frame = self._frames[-1]
        if frame.leaf and frame.path is not None and output is not None:
            if frame.info is not None and frame.info.shape is not None:
                # some meta kernels accept what the eager ones refuse (softmax over a missing dim):
                # the formula's shape rule refuses it here, as on the fx path (ShapeMismatch)
                frame.info.shape(module, args, kwargs)
            self._add_module_call(frame, args, kwargs, output)
        self._frames.pop()

    def _add_module_call(self, frame: _Frame, args, kwargs, output) -> None:
        sources = [(t, self._source(t)) for t in ops.tensors_in((args, kwargs))]
        node = self.graph.call_module(frame.path, tuple(s for _, s in sources if s is not None))
        node.meta["nn_module_stack"] = frame.stack
        info = frame.info
        if info is None:
            info = ops.OpInfo("opaque:" + type(frame.module).__name__, "opaque", ops.free)
            self.opaque_calls.setdefault(frame.path, None)
            cost = ops.OpCost(frame.macs, frame.other_ops)
        else:
            cost = info.cost(ops.Call(frame.module, args, kwargs, output))
        self._finish(node, info, cost, sources, output)

    # ------------------------------------------------------------------ aten ops
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if is_metadata_query(func):
            return NotImplemented
        out = decomposed(self, func, args, kwargs)
        if out is not NotImplemented:
            return out
        try:
            out = func(*args, **kwargs)
        except Exception:
            self._failed_in = self._failed_in or self._where(args, kwargs)
            raise
        frame = self._frames[-1] if self._frames else None
        if frame is not None and frame.info is not None:
            return out  # inside a leaf its formula costs whole
        macs, other_ops, uncounted = op_cost(func, args, kwargs, out)
        if uncounted:
            tally_uncounted(self.uncounted, func, args, kwargs)
        if frame is not None and frame.leaf:
            self._charge_leaf(macs, other_ops)
        else:
            self._add_op(func, args, kwargs, out, ops.OpCost(macs, other_ops), uncounted)
        return out

    def _charge_leaf(self, macs: int, other_ops: int) -> None:
        for frame in reversed(self._frames):  # the leaf's own frame: frames inside a leaf carry no path
            if frame.path is not None:
                frame.macs += macs
                frame.other_ops += other_ops
                return

    def _add_op(self, func, args, kwargs, out, cost: ops.OpCost, uncounted: bool) -> None:
        sources = [(t, self._source(t)) for t in ops.tensors_in((args, kwargs))]
        activations = [s for _, s in sources if s is not None and s.op != "get_attr"]
        if not activations and not cost.macs and not cost.other_ops and not uncounted:
            origin = next((s for _, s in sources if s is not None), None)  # a view of a parameter, or a constant
            if origin is not None:
                for t in ops.tensors_in(out):
                    self._bind(t, origin)
            return
        node_args = pytree.tree_map_only(torch.Tensor, lambda t: self._node_of.get(id(t)), (args, kwargs))
        node = self.graph.create_node("call_function", func, *node_args, name=func.overloadpacket.__name__)
        node.meta["nn_module_stack"] = self._frames[-1].stack if self._frames else {}
        uses_parameters = any(s is not None and s.op == "get_attr" and s.target in self._parameter_attrs
                              for _, s in sources)
        info = ops.OpInfo(str(func.overloadpacket), aten_kind(func, cost.macs, cost.other_ops, uncounted,
                                                              uses_parameters), ops.free)
        self._finish(node, info, cost, sources, out)

    def _finish(self, node: fx.Node, info: ops.OpInfo, cost: ops.OpCost, sources, out) -> None:
        outputs = ops.tensors_in(out)
        # per argument, as the fx path counts: attention called as (x, x, x) reads three inputs
        in_bytes = sum(ops.nbytes(t) for t, s in sources if s is not None and s.op != "get_attr")
        self.records[node.name] = Evaluated(info, cost, tuple(tuple(t.shape) for t in outputs), ops.nbytes(outputs),
                                            in_bytes)
        for t in outputs:
            self._bind(t, node)

    # ------------------------------------------------------------------ errors
    def _where(self, args, kwargs) -> str:
        """Where an op failed: the leaf module running it and that call's inputs, else the innermost
        module and the op's inputs (the module call's, when the model's own code raised)."""
        leaf = next((f for f in self._frames if f.leaf and f.path is not None), None)
        frame = leaf or next((f for f in reversed(self._frames) if f.path is not None), None)
        tensors = ops.tensors_in(leaf.args) if leaf is not None and ops.tensors_in(leaf.args) else \
            ops.tensors_in((args, kwargs)) or (ops.tensors_in(frame.args) if frame is not None else [])
        shapes = ", ".join(shape_text(t.shape) for t in tensors) or "no tensors"
        where = f"layer {frame.path!r} ({type(frame.module).__name__})" if frame else \
            f"the forward of {type(self.model).__name__}"
        return f"{where} cannot run on input {shapes}"

    def failure(self, exc: Exception) -> str:
        """One line: where ``forward`` failed on meta tensors and torch's first line of why."""
        # module calls are not unwound on an error while capturing (torch skips the always-called
        # hooks when compiling): the stack still shows where the model's own code raised
        return f"{self._failed_in or self._where((), {})}: {first_line(exc)}"
