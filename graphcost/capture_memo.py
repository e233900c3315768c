"""Calls costed once per capture: a memo of provably identical calls (an iterated block's N runs).

Within one capture, a call whose outcome is fully determined by what the key holds is shape-propagated
and costed once; every later call with an equal key gets the first one's cost and fresh fake tensors of
the first one's output metadata. The key (:meth:`CallMemo.key`) holds

* the op: a function of torch / ``operator`` / ``builtins`` / ``math`` (a user function may read state
  the key cannot see: never memoised), a tensor method name, or a **leaf module's type and state**:
  every instance attribute (stride, padding, groups, ``training``, ...) as a frozen value, each
  parameter's and buffer's metadata (shape, stride, dtype, device, ``requires_grad``; a scalar real
  tensor's value too, the one value fake tensors propagate), and its children's keys (an opaque
  ``nn.TransformerEncoderLayer``). Two calls of one shared block are then one key, and so are the
  independent copies of a block (same parameter shapes, same configuration);
* every argument: tensors by their metadata (fake or meta tensors, and real scalars with their value:
  a real tensor's values could decide a shape), Python scalars, strings, ``None``, dtypes, devices,
  slices, and tuples / lists / dicts of them, each with its type (``1``, ``1.0`` and ``True`` differ).

Anything else makes the call unkeyable, and it runs as it always did: a module with hooks anywhere in
it (or any global module hook), an attribute or argument of another type, a real tensor with values.
An outcome is stored only when its outputs are fresh: a tensor that *is* one of the inputs (an in-place
op, ``getitem`` of a list) or a view with an offset, or an output that is not plain data, is never
replayed, so a call that mutates its input always runs.

>>> import torch
>>> from torch._subclasses.fake_tensor import FakeTensorMode
>>> conv_a, conv_b = torch.nn.Conv2d(4, 8, 3), torch.nn.Conv2d(4, 8, 3)
>>> memo = CallMemo()
>>> with FakeTensorMode(allow_non_fake_inputs=True):
...     x = torch.empty(1, 4, 16, 16)
...     key_a = memo.key("call_module", conv_a, (x,), {})
...     memo.store(key_a, conv_a(x), "conv cost", (x,))
...     out, outcome = memo.replay(memo.key("call_module", conv_b, (x,), {}))  # same shapes, same configuration
>>> tuple(out.shape), outcome
((1, 8, 14, 14), 'conv cost')
>>> memo.key("call_module", torch.nn.Conv2d(4, 8, 3, stride=2), (x,), {}) == key_a  # another stride: another key
False
"""
from __future__ import annotations

import types
from collections import Counter
from typing import Any, Dict, Hashable, List, Optional, Tuple

import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily

from .ops import tensors_in

#: where a function's code must live for its result to depend on its arguments alone
_PURE_FUNCTION_HOMES = ("torch", "_operator", "operator", "builtins", "math")
#: a module's own containers, keyed by their contents below (not as attributes)
_MODULE_CONTAINERS = frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"})
#: immutable values kept as they are, in a key and in a replayed output
_PLAIN = (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device, torch.layout,
          torch.memory_format)


class _Unkeyable(Exception):
    """A value the memo cannot prove equal by looking at it."""


def freeze(value) -> Hashable:
    """``value`` as a hashable key with its type, or :class:`_Unkeyable`.

    >>> freeze((1, 2.0, [None, "a"])) == freeze((1, 2.0, [None, "a"])), freeze(1) == freeze(True)
    (True, False)
    """
    kind = type(value)
    if kind in _PLAIN or value is Ellipsis:
        return kind, value
    if isinstance(value, torch.Tensor):
        return _tensor_key(value)
    if kind is torch.Size:
        return kind, tuple(value)
    if kind in (tuple, list):
        return kind, tuple(freeze(v) for v in value)
    if kind is dict:
        return kind, tuple((freeze(k), freeze(v)) for k, v in value.items())
    if kind is slice:
        return kind, freeze(value.start), freeze(value.stop), freeze(value.step)
    if kind in (set, frozenset):
        return kind, frozenset(freeze(v) for v in value)
    if kind in (types.FunctionType, types.BuiltinFunctionType) and pure_function(value):
        return kind, value  # e.g. a layer's ``activation=F.relu``: the very function
    raise _Unkeyable(kind.__name__)


def _tensor_key(t: torch.Tensor, own: bool = False) -> Hashable:
    """A tensor's metadata, and a real scalar's value (the one value fake tensors propagate). A real
    tensor of more elements is unkeyable as an argument (``.tolist()`` could read it), not as a
    module's ``own`` parameter or buffer (a leaf runs on fake or meta copies of those)."""
    real = not isinstance(t, FakeTensor) and t.device.type != "meta"
    scalar = real and t.numel() == 1
    if real and not scalar and not own:
        raise _Unkeyable("a real tensor (its values may decide a shape)")
    meta = (type(t), tuple(t.shape), tuple(t.stride()), t.storage_offset(), t.dtype, t.device, t.requires_grad)
    if scalar:
        with unset_fake_temporarily():
            return meta + (t.item(),)
    return meta


def module_key(module: nn.Module, known: Optional[Dict[int, Hashable]] = None) -> Hashable:
    """A module's type, attributes, tensor metadata and children's keys (:class:`_Unkeyable` when a hook
    anywhere in it, or an attribute of another type, could make two calls differ). ``known``: keys of
    modules no code has run in since they were taken (:meth:`CallMemo.code_ran` forgets them)."""
    if _global_hooks():
        raise _Unkeyable("a global module hook")
    return _module_key(module, {} if known is None else known)


def _module_key(module: nn.Module, known: Dict[int, Hashable]) -> Hashable:
    found = known.get(id(module))
    if found is not None:
        return found
    state = []
    for name, value in vars(module).items():
        if name in _MODULE_CONTAINERS:
            continue
        if "hook" in name and isinstance(value, dict):
            if value:
                raise _Unkeyable("a module with hooks")
            continue
        state.append((name, freeze(value)))
    tensors = tuple((name, None if t is None else _tensor_key(t, own=True))
                    for name, t in (*module._parameters.items(), *module._buffers.items()))
    children = tuple((name, None if child is None else _module_key(child, known))
                     for name, child in module._modules.items())
    key = known[id(module)] = (type(module), tuple(state), tensors, children)
    return key


def _global_hooks() -> bool:
    from torch.nn.modules import module as module_mod

    return any(getattr(module_mod, name, None) for name in (
        "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
        "_global_backward_pre_hooks", "_global_module_registration_hooks"))


def pure_function(fn) -> bool:
    """Whether ``fn`` is torch's, ``operator``'s, a builtin or ``math``'s: its result depends on its arguments."""
    return (getattr(fn, "__module__", None) or "").split(".")[0] in _PURE_FUNCTION_HOMES


class CallMemo:
    """Outcomes of the calls of one capture, by key; outputs replayed as fresh fake tensors."""

    def __init__(self) -> None:
        self._outcomes: Dict[Hashable, Tuple[Any, Any]] = {}
        self._mode: Optional[FakeTensorMode] = None
        self._module_keys: Dict[int, Hashable] = {}  # modules' keys while no code that could change them runs
        self.hits = 0

    def code_ran(self) -> None:
        """A module's own ``forward`` or a user function ran: it may have changed any module's state."""
        self._module_keys.clear()

    def key(self, op: str, target, args, kwargs) -> Optional[Hashable]:
        """The key of a call (``op``: an fx node op; ``target``: the module, function or method name), or None."""
        try:
            if op == "call_module":
                what = module_key(target, self._module_keys)
            elif op == "call_function":
                if not pure_function(target):
                    return None
                what = target
            elif op == "call_method":
                what = target
            else:
                return None
            return op, what, freeze(tuple(args)), freeze(dict(kwargs))
        except (_Unkeyable, TypeError):  # TypeError: an unhashable target or value
            return None

    def invocation_key(self, invocation: "Invocation", module: nn.Module, inputs, opaque) -> Optional[Hashable]:
        """The key of one call of a submodule: the module's key (children included), its inputs' (the
        values of its external nodes) and its code (:class:`_Code`, compared last), or None."""
        try:
            return "invocation", module_key(module, self._module_keys), freeze(tuple(inputs)), _Code(invocation, opaque)
        except (_Unkeyable, TypeError):
            return None

    def store(self, key: Optional[Hashable], out, outcome, inputs) -> None:
        """Keep ``out``'s template and ``outcome`` under ``key`` when ``out`` is fresh plain data."""
        if key is None or key in self._outcomes:
            return
        seen = {id(t) for t in tensors_in(inputs)}
        try:
            template = self._template(out, seen)
        except _Unkeyable:
            return
        self._outcomes[key] = (template, outcome)

    def replay(self, key: Optional[Hashable]):
        """``(fresh output, outcome)`` of an equal call made before, or None."""
        found = self._outcomes.get(key) if key is not None else None
        if found is None:
            return None
        template, outcome = found
        self.hits += 1
        return self._rebuild(template), outcome

    def _template(self, out, inputs_seen) -> Any:
        kind = type(out)
        if isinstance(out, FakeTensor):
            if id(out) in inputs_seen or out.storage_offset() != 0 or any(type(s) is not int for s in out.shape):
                raise _Unkeyable("an output aliasing an input")
            self._mode = self._mode or out.fake_mode
            if out.fake_mode is not self._mode:
                raise _Unkeyable("another fake mode")
            return ("tensor", tuple(out.shape), tuple(out.stride()), out.dtype, out.device, out.requires_grad)
        if kind in _PLAIN or kind is torch.Size:
            return ("value", out)
        if kind in (tuple, list):
            return (kind, [self._template(v, inputs_seen) for v in out])
        if kind is dict:
            return (kind, {k: self._template(v, inputs_seen) for k, v in out.items()})
        raise _Unkeyable(kind.__name__)

    def _rebuild(self, template):
        kind = template[0]
        if kind == "value":
            return template[1]
        if kind == "tensor":
            _, shape, stride, dtype, device, requires_grad = template
            with unset_fake_temporarily():
                meta = torch.empty_strided(shape, stride, dtype=dtype, device="meta", requires_grad=requires_grad)
            return self._mode.fake_tensor_converter.from_meta_and_device(self._mode, meta, device)
        if kind is dict:
            return {k: self._rebuild(v) for k, v in template[1].items()}
        return kind(self._rebuild(v) for v in template[1])



class Invocation:
    """One call of a submodule in an fx graph: its nodes (contiguous, in order), the nodes outside it that
    it reads (``external``) and those of its own that the rest of the graph reads (``escaping``)."""

    def __init__(self, path: str, nodes: list) -> None:
        self.path = path
        self.nodes = nodes
        inside = set(nodes)
        self.external = list(dict.fromkeys(a for n in nodes for a in n.all_input_nodes if a not in inside))
        self.escaping = [n for n in nodes if any(u not in inside for u in n.users)]
        self._position: Optional[Dict[Any, Tuple[str, int]]] = None

    @property
    def position(self) -> Dict[Any, Tuple[str, int]]:
        """Where each node an argument may name sits: ``("own", i)`` or ``("external", i)``."""
        if self._position is None:
            self._position = {n: ("own", i) for i, n in enumerate(self.nodes)}
            self._position.update((n, ("external", i)) for i, n in enumerate(self.external))
        return self._position

    def ops(self, opaque) -> tuple:
        """Each node's op and target (a module path relative to the invocation's); :class:`_Unkeyable` when a
        node calls a user function, a module outside the invocation or one that may run on real inputs."""
        prefix, ops = self.path + ".", []
        for n in self.nodes:
            target = n.target
            if n.op in ("call_module", "get_attr"):
                if not target.startswith(prefix) or target in opaque:
                    raise _Unkeyable("a module outside the invocation, or one run on real inputs")
                target = target[len(prefix):]
            elif n.op == "call_function" and not pure_function(target):
                raise _Unkeyable("a user function")
            ops.append((n.op, target))
        return (tuple(ops), tuple(e.op == "get_attr" for e in self.external),
                tuple(self.nodes.index(n) for n in self.escaping))


class _Code:
    """An invocation's code as a key part: equal when every node has the same op and relative target and
    its arguments name the same own / external positions and equal constants (compared only when the
    cheaper parts of two keys, the module's and the inputs', are already equal)."""

    def __init__(self, invocation: Invocation, opaque) -> None:
        self.invocation = invocation
        self.ops = invocation.ops(opaque)
        self._hash = hash(self.ops)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        if not isinstance(other, _Code) or self.ops != other.ops:
            return False
        a, b = self.invocation, other.invocation
        return all(_same_arg(x.args, y.args, a.position, b.position) and
                   _same_arg(x.kwargs, y.kwargs, a.position, b.position) for x, y in zip(a.nodes, b.nodes))


_SEQUENCES = (tuple, list, fx.immutable_collections.immutable_list)  # fx keeps args in immutable lists
_MAPPINGS = (dict, fx.immutable_collections.immutable_dict)


def _same_arg(x, y, x_position, y_position) -> bool:
    """Whether argument ``x`` of one invocation's node is ``y`` of another's (nodes by position)."""
    if isinstance(x, fx.Node) or isinstance(y, fx.Node):
        return isinstance(x, fx.Node) and isinstance(y, fx.Node) and x_position[x] == y_position[y]
    if type(x) in _SEQUENCES:
        return (type(y) in _SEQUENCES and isinstance(x, tuple) == isinstance(y, tuple) and len(x) == len(y)
                and all(_same_arg(u, v, x_position, y_position) for u, v in zip(x, y)))
    if type(x) in _MAPPINGS:
        return (type(y) in _MAPPINGS and list(x) == list(y)
                and all(_same_arg(x[k], y[k], x_position, y_position) for k in x))
    try:
        return freeze(x) == freeze(y)
    except (_Unkeyable, TypeError):
        return False


def invocations(graph) -> Dict[str, List[Invocation]]:
    """Submodule calls of an fx graph whose module type is called more than once (the only ones that can
    repeat), by the name of their first node, outermost first; calls whose nodes interleave are left out."""
    members: Dict[str, list] = {}
    paths: Dict[str, Tuple[str, str]] = {}
    order = {n: i for i, n in enumerate(graph.nodes)}
    for n in graph.nodes:
        for call, (path, kind) in (n.meta.get("nn_module_stack") or {}).items():
            members.setdefault(call, []).append(n)
            paths[call] = (path, str(kind))
    kinds = Counter(kind for _, kind in paths.values())
    found: Dict[str, List[Invocation]] = {}
    for call, nodes in members.items():  # outer calls come first: a node lists its stack outermost first
        path, kind = paths[call]
        contiguous = order[nodes[-1]] - order[nodes[0]] == len(nodes) - 1
        outer = found.get(nodes[0].name, [])
        if path and kinds[kind] > 1 and contiguous and len(nodes) > 1 and not (outer and outer[-1].nodes == nodes):
            found.setdefault(nodes[0].name, []).append(Invocation(path, nodes))  # (a wrapper's twin: one check)
    return found
