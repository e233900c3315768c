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

The same idea runs earlier, in fx symbolic tracing (:class:`TraceReplay`): when one module instance (not a
leaf; ItNet's shared block, called N times) is called again with arguments of the same structure (proxies
in the same positions, every other value equal by :func:`freeze`) while its subtree is as it was at its
recorded call (:class:`SubtreeState`: every module's instance attributes, its parameters' and buffers'
identities and versions, no hook anywhere), the recorded call's nodes are copied with the new inputs in
place of the old, named and numbered (``nn_module_stack``'s ``path@n``) as fx would have; its ``forward``
does not run again. A module's first call is only traced, its second recorded, later ones copied. Another
instance of the same type whose state equals the recorded one's by value (:func:`module_key`; ItNet's N
classifier heads, its independent blocks) gets a copy too, module paths renamed, where the recorded call
read no parameter (fx names a parameter by where it was first registered, which renaming cannot know). A
forward that changes its own subtree, its arguments, or makes nodes in other ways is never recorded. What
the replay cannot see is state outside the module: a ``forward`` that reads global mutable state (a module
global it changes, a counter elsewhere) would be copied wrongly; ``memoise=False`` traces every call.
The fake-tensor run then knows copied calls are the same code (:meth:`Invocation.code`).

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

import collections
import functools
import itertools
import operator
import re
import types
from collections import Counter
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

import torch
from torch import fx, nn
from torch.fx import traceback as fx_traceback
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily

from .fx_fast import append_node, can_append, name_candidate
from .ops import tensors_in

#: where a function's code must live for its result to depend on its arguments alone
_PURE_FUNCTION_HOMES = ("torch", "_operator", "operator", "builtins", "math")
#: a module's own containers, keyed by their contents below (not as attributes)
_MODULE_CONTAINERS = frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"})
#: immutable values kept as they are, in a key and in a replayed output
_PLAIN = frozenset({bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device, torch.layout,
                    torch.memory_format})


_INTS = {int}


class _Unkeyable(Exception):
    """A value the memo cannot prove equal by looking at it."""


def freeze(value, tensor_key=None) -> Hashable:
    """``value`` as a hashable key with its type, or :class:`_Unkeyable`. ``tensor_key``: how a tensor is
    keyed (default: its metadata, and a real scalar's value).

    >>> freeze((1, 2.0, [None, "a"])) == freeze((1, 2.0, [None, "a"])), freeze(1) == freeze(True)
    (True, False)
    """
    kind = type(value)
    if kind in _PLAIN or value is Ellipsis:
        return kind, value
    if kind is tuple or kind is list:  # (exact types: a namedtuple or a list subclass is not taken for one)
        if set(map(type, value)) == _INTS:  # a kernel size, a padding: spared a call per element
            return kind, tuple(value)
        return kind, tuple(freeze(v, tensor_key) for v in value)
    if isinstance(value, torch.Tensor):
        return (tensor_key or _tensor_key)(value)
    if kind is torch.Size:
        return kind, tuple(value)
    if kind is dict:
        return kind, tuple((freeze(k, tensor_key), freeze(v, tensor_key)) for k, v in value.items())
    if kind is slice:
        return kind, freeze(value.start, tensor_key), freeze(value.stop, tensor_key), freeze(value.step, tensor_key)
    if kind in (set, frozenset):
        return kind, frozenset(freeze(v, tensor_key) for v in value)
    if kind in (types.FunctionType, types.BuiltinFunctionType) and pure_function(value):
        return kind, value  # e.g. a layer's ``activation=F.relu``: the very function
    raise _Unkeyable(kind.__name__)


def _tensor_key(t: torch.Tensor, own: bool = False) -> Hashable:
    """A tensor's metadata, and a real scalar's value (the one value fake tensors propagate). A real
    tensor of more elements is unkeyable as an argument (``.tolist()`` could read it), not as a
    module's ``own`` parameter or buffer (a leaf runs on fake or meta copies of those)."""
    real = not t.is_meta and not isinstance(t, FakeTensor)  # (``is_meta`` first: a fifth of ``device.type``'s time)
    scalar = real and t.numel() == 1
    if real and not scalar and not own:
        raise _Unkeyable("a real tensor (its values may decide a shape)")
    meta = (type(t), tuple(t.shape), tuple(t.stride()), t.storage_offset(), t.dtype, t.device, t.requires_grad)
    if scalar:
        with unset_fake_temporarily():
            return meta + (t.item(),)
    return meta


def module_key(module: nn.Module, known: Optional[Dict[int, Hashable]] = None,
               taken: Optional["ModuleKeys"] = None) -> Hashable:
    """A module's type, attributes, tensor metadata and children's keys (:class:`_Unkeyable` when a hook
    anywhere in it, or an attribute of another type, could make two calls differ). ``known``: keys of
    modules no code has run in since they were taken (:meth:`CallMemo.code_ran` forgets them); ``taken``:
    keys taken earlier in the capture, each given back only where :class:`ModuleKeys` finds its module as it was."""
    if _global_hooks():
        raise _Unkeyable("a global module hook")
    return _module_key(module, {} if known is None else known, taken)


def _module_key(module: nn.Module, known: Dict[int, Hashable], taken: Optional["ModuleKeys"] = None) -> Hashable:
    found = known.get(id(module))
    if found is None and taken is not None:
        found = taken.still(module, known)
    if found is not None:
        return found
    attributes = vars(module)
    if any(map(attributes.get, _HOOK_DICTS)):
        raise _Unkeyable("a module with hooks")
    names, values = tuple(attributes), tuple(attributes.values())
    immutable = True
    state = []
    for i, named_for_hooks in _state_plan(names):
        value = values[i]
        kind = type(value)
        if named_for_hooks and isinstance(value, dict):  # another dict of hooks: empty, or the module is not keyed
            if value:
                raise _Unkeyable("a module with hooks")
            immutable = False  # (a dict: it may fill)
        elif kind in _PLAIN:
            state.append((names[i], kind, value))  # (plain: spared a call)
        else:
            state.append((names[i], freeze(value)))
            immutable = immutable and _immutable(value)
    key = ModuleKey(type(module), tuple(state), _own_tensor_keys(module),
                    tuple((name, None if child is None else _module_key(child, known, taken))
                          for name, child in module._modules.items()))
    if taken is not None:
        key = taken.interned(key)
        if immutable:
            taken.keep(module, names, values, key)
    known[id(module)] = key
    return key


class ModuleKey:
    """A module's key (:func:`module_key`): its type, state, own tensors' keys and children's keys, hashed once.

    A tuple hashes everything it holds on every lookup (an ItNet block's nested key: ~20 us a hash and as much
    an equality test, met in each dict lookup of its calls); children's keys are ``ModuleKey`` s, so a key's hash
    reads theirs, and :meth:`ModuleKeys.interned` makes equal keys of one capture the same object, so two
    equal blocks' keys compare their own state and their children's by identity."""

    __slots__ = ("type", "state", "tensors", "children", "_hash")

    def __init__(self, module_type: type, state: tuple, tensors: tuple, children: tuple) -> None:
        self.type, self.state, self.tensors, self.children = module_type, state, tensors, children
        self._hash = hash((module_type, state, tensors, children))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return other is self or (type(other) is ModuleKey and other._hash == self._hash and
                                 other.type is self.type and other.state == self.state and
                                 other.tensors == self.tensors and other.children == self.children)


#: per tuple of attribute names (a module class's, mostly): the attributes a key reads, and which are named for hooks
_STATE_PLANS: Dict[tuple, Tuple[Tuple[int, bool], ...]] = {}


def _state_plan(names: tuple) -> Tuple[Tuple[int, bool], ...]:
    """``(position, named for hooks)`` of each of a module's attributes that its key reads, in order: not its
    containers nor nn.Module's own hook dicts (keyed or checked apart). Worked out once per list of names: most
    of a module's attributes are nn.Module's own, and skipping them one by one was a third of keying it."""
    plan = _STATE_PLANS.get(names)
    if plan is None:
        plan = _STATE_PLANS[names] = tuple((i, "hook" in name) for i, name in enumerate(names) if name not in _SKIPPED)
    return plan


def _own_tensor_keys(module: nn.Module) -> tuple:
    return tuple((name, None if t is None else _tensor_key(t, own=True))
                 for name, t in (*module._parameters.items(), *module._buffers.items()))


class ModuleKeys:
    """The module keys taken during one capture (fx tracing and the run after it), each given back where its
    module still holds the very attribute objects it was keyed from (every one immutable: numbers, strings,
    tuples of them), no hook, equal tensor metadata and children whose own keys are given back unchanged.
    Checking that is a fraction of keying afresh (an iterated block of 73 modules: keyed in ~0.9 ms), and
    an independent ItNet's blocks are keyed at trace time (:class:`TraceReplay`) and again by the run's memo.
    A module with a mutable attribute (a list, a dict) is keyed afresh every time."""

    def __init__(self) -> None:
        self._taken: Dict[int, Tuple[nn.Module, tuple, tuple, Hashable]] = {}  # id -> (module, names, values, key)
        self._interned: Dict["ModuleKey", "ModuleKey"] = {}

    def interned(self, key: "ModuleKey") -> "ModuleKey":
        """The capture's one key equal to ``key`` (``key`` itself the first time): equal subtrees, one object."""
        return self._interned.setdefault(key, key)

    def keep(self, module: nn.Module, names: tuple, values: tuple, key: Hashable) -> None:
        """Keep ``key``, taken from ``module``'s attribute ``names`` and ``values`` (every one immutable)."""
        self._taken[id(module)] = (module, names, values, key)

    def still(self, module: nn.Module, known: Dict[int, Hashable]) -> Optional[Hashable]:
        """``module``'s key as taken before, if it holds now (then also in ``known``), else None."""
        entry = self._taken.get(id(module))
        if entry is None or entry[0] is not module:
            return None
        _, names, values, key = entry
        if not _holds_attributes(module, names, values):
            return None
        if _own_tensor_keys(module) != key.tensors:
            return None
        children = key.children
        if len(module._modules) != len(children):
            return None
        for (name, child), (was_name, was_key) in zip(module._modules.items(), children):
            if name != was_name or (child is None) != (was_key is None) or \
                    (child is not None and _module_key(child, known, self) is not was_key):
                return None
        known[id(module)] = key
        return key


def _holds_attributes(module: nn.Module, names: tuple, values: tuple) -> bool:
    """Whether ``module``'s instance attributes are still ``names`` bound to the very objects ``values``, and it
    has no hook (what :class:`ModuleKeys` and :class:`SubtreeState` check before trusting what they took)."""
    attributes = vars(module)
    return len(attributes) == len(values) and all(map(operator.is_, attributes.values(), values)) and \
        tuple(attributes) == names and not any(map(attributes.get, _HOOK_DICTS))


class ParameterShapes:
    """``shapes(module)``: the shapes of the parameters in ``module``'s subtree, holder by holder, children in
    order (a module held twice counted twice, as its key keys it twice): a sketch of its state, equal module
    keys imply equal sketches. Read off the modules' own dicts, and each subtree's made once from its children's
    (a model's blocks and their layers are sketched alike: one walk, not one per level). Only ever a filter in
    front of a full key, so a sketch gone stale (a parameter replaced after it was taken) costs a replay, never
    an answer."""

    def __init__(self) -> None:
        self._known: Dict[int, Tuple[tuple, nn.Module]] = {}  # id -> (sketch, the module: its id stays its own)

    def __call__(self, module: nn.Module) -> tuple:
        found = self._known.get(id(module))
        if found is not None:
            return found[0]
        sketch = tuple(p.shape for p in module._parameters.values() if p is not None)
        for child in module._modules.values():
            if child is not None:
                sketch += self(child)
        self._known[id(module)] = (sketch, module)
        return sketch


#: torch's registries of hooks on every module (looked up by name each time: torch may rebind them)
_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks", "_global_module_registration_hooks")


def _global_hooks() -> bool:
    return any(map(vars(torch.nn.modules.module).get, _GLOBAL_HOOKS))


def pure_function(fn) -> bool:
    """Whether ``fn`` is torch's, ``operator``'s, a builtin or ``math``'s: its result depends on its arguments."""
    return (getattr(fn, "__module__", None) or "").split(".")[0] in _PURE_FUNCTION_HOMES


class CallMemo:
    """Outcomes of the calls of one capture, by key; outputs replayed as fresh fake (or meta) tensors."""

    def __init__(self, keys: Optional[ModuleKeys] = None) -> None:
        self._outcomes: Dict[Hashable, Tuple[Any, Any]] = {}
        self._mode: Optional[FakeTensorMode] = None
        self._module_keys: Dict[int, Hashable] = {}  # modules' keys while no code that could change them runs
        self.keys = keys if keys is not None else ModuleKeys()  # the capture's keys, given back where they hold
        self.hits = 0

    def code_ran(self) -> None:
        """A module's own ``forward`` or a user function ran: it may have changed any module's state."""
        self._module_keys.clear()

    def key(self, op: str, target, args, kwargs) -> Optional[Hashable]:
        """The key of a call (``op``: an fx node op; ``target``: the module, function or method name), or None."""
        try:
            if op == "call_module":
                what = module_key(target, self._module_keys, self.keys)
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
            return ("invocation", module_key(module, self._module_keys, self.keys), freeze(tuple(inputs)),
                    invocation.code(opaque))
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
        with unset_fake_temporarily():  # (once per output, not per tensor)
            return self._rebuild(template), outcome

    def _template(self, out, inputs_seen) -> Any:
        kind = type(out)
        fake = isinstance(out, FakeTensor)
        if fake or (kind is torch.Tensor and out.is_meta):  # (a meta run's values: a model built on meta)
            if id(out) in inputs_seen or out.storage_offset() != 0 or any(type(s) is not int for s in out.shape):
                raise _Unkeyable("an output aliasing an input")
            if fake:
                self._mode = self._mode or out.fake_mode
                if out.fake_mode is not self._mode:
                    raise _Unkeyable("another fake mode")
            return ("tensor", tuple(out.shape), tuple(out.stride()), out.dtype, out.device, out.requires_grad,
                    fake)
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
            _, shape, stride, dtype, device, requires_grad, fake = template
            meta = torch.empty_strided(shape, stride, dtype=dtype, device="meta", requires_grad=requires_grad)
            return self._mode.fake_tensor_converter.from_meta_and_device(self._mode, meta, device) if fake else meta
        if kind is dict:
            return {k: self._rebuild(v) for k, v in template[1].items()}
        return kind(self._rebuild(v) for v in template[1])



#: an fx node's inputs in order, as ``all_input_nodes`` lists them (its own dict, not a new list)
_INPUT_NODES = operator.attrgetter("_input_nodes")


class Invocation:
    """One call of a submodule in an fx graph: its nodes (contiguous, in order), the nodes outside it that
    it reads (``external``) and those of its own that the rest of the graph reads (``escaping``), both
    found when first asked for (most calls lie inside a replayed one and are never asked). ``source``: the
    invocation whose nodes fx tracing copied into this one (:class:`TraceReplay`), if any."""

    def __init__(self, path: str, nodes: list, source: Optional["Invocation"] = None) -> None:
        self.path = path
        self.nodes = nodes
        self._source = source
        self._code: Any = None

    @functools.cached_property
    def external(self) -> list:
        inside = self._inside  # (each node's own dict of its inputs, read in C: not a list per node)
        return [a for a in dict.fromkeys(itertools.chain.from_iterable(map(_INPUT_NODES, self.nodes)))
                if a not in inside]

    @functools.cached_property
    def escaping(self) -> list:
        inside = self._inside
        return [n for n in self.nodes if not inside.issuperset(n.users)]

    @functools.cached_property
    def _inside(self) -> set:
        return set(self.nodes)

    @functools.cached_property
    def names(self) -> List[str]:
        """Its nodes' names, in order."""
        return [n.name for n in self.nodes]

    @functools.cached_property
    def name_set(self) -> frozenset:
        return frozenset(self.names)

    @functools.cached_property
    def position(self) -> Dict[Any, Tuple[str, int]]:
        """Where each node an argument may name sits: ``("own", i)`` or ``("external", i)``."""
        position = {n: ("own", i) for i, n in enumerate(self.nodes)}
        position.update((n, ("external", i)) for i, n in enumerate(self.external))
        return position

    def code(self, opaque) -> "_Code":
        """The invocation's :class:`_Code` (:class:`_Unkeyable` as :meth:`ops`), made once. A copy of a call
        (``source``) reading and leaving the same kinds of nodes shares its source's: keys of the two then
        compare by identity, not node by node."""
        if self._code is None:
            try:
                self._code = self._copied_code(opaque) or _Code(self, opaque)
            except _Unkeyable as exc:
                self._code = exc
        if isinstance(self._code, _Unkeyable):
            raise self._code
        return self._code

    def _copied_code(self, opaque) -> Optional["_Code"]:
        source = self._source
        if source is None or len(source.nodes) != len(self.nodes):
            return None
        code = source.code(opaque)
        same = code.ops[1:] == self._boundary()
        return code if same else None

    def _boundary(self) -> tuple:
        """Which external nodes are parameters, and the positions of the escaping nodes."""
        own = dict(zip(self.nodes, itertools.count()))
        return tuple(e.op == "get_attr" for e in self.external), tuple(map(own.__getitem__, self.escaping))

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
        return (tuple(ops), *self._boundary())


class _Code:
    """An invocation's code as a key part: equal when every node has the same op and relative target and
    its arguments name the same own / external positions and equal constants (compared only when the
    cheaper parts of two keys, the module's and the inputs', are already equal). Codes found equal are
    joined (``_same_as``, towards one representative): an iterated block's stored key is then matched by
    every later call's code by identity, not node by node again (the same two codes met once per copy)."""

    def __init__(self, invocation: Invocation, opaque) -> None:
        self.invocation = invocation
        self.ops = invocation.ops(opaque)
        self._hash = hash(self.ops)
        self._same_as: Optional["_Code"] = None  # a code proven equal to this one (None: it represents itself)

    def __hash__(self) -> int:
        return self._hash

    def _representative(self) -> "_Code":
        code = self
        while code._same_as is not None:
            code = code._same_as
        return code

    def __eq__(self, other) -> bool:
        if other is self:
            return True
        if not isinstance(other, _Code) or self.ops != other.ops:
            return False
        mine, theirs = self._representative(), other._representative()
        if mine is theirs:
            return True
        a, b = mine.invocation, theirs.invocation
        same = all(_same_arg(x.args, y.args, a.position, b.position) and
                   _same_arg(x.kwargs, y.kwargs, a.position, b.position) for x, y in zip(a.nodes, b.nodes))
        if same:  # (equality of codes is an equivalence: a representative stands for its whole class)
            theirs._same_as = mine
        return same


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


def invocations(graph, copies: Optional[Dict[str, str]] = None) -> Dict[str, List[Invocation]]:
    """Submodule calls of an fx graph whose module type is called more than once (the only ones that can
    repeat), by the name of their first node, outermost first; calls whose nodes interleave are left out.
    ``copies``: calls (``nn_module_stack`` keys) that fx tracing copied from another (:class:`TraceReplay`)."""
    members: Dict[str, list] = {}
    paths: Dict[str, Tuple[str, Any]] = {}
    order: Dict[fx.Node, int] = {}
    for i, n in enumerate(graph.nodes):
        order[n] = i
        stack = n.meta.get("nn_module_stack")
        for call in stack or ():
            nodes = members.get(call)
            if nodes is None:
                members[call], paths[call] = [n], stack[call]
            else:
                nodes.append(n)
    kinds = Counter(str(kind) for _, kind in paths.values())
    found: Dict[str, List[Invocation]] = {}
    made: Dict[str, Invocation] = {}
    for call, nodes in members.items():  # outer calls come first: a node lists its stack outermost first
        path, kind = paths[call]
        contiguous = order[nodes[-1]] - order[nodes[0]] == len(nodes) - 1
        outer = found.get(nodes[0].name, [])
        if path and kinds[str(kind)] > 1 and contiguous and len(nodes) > 1 and not (outer and outer[-1].nodes == nodes):
            made[call] = Invocation(path, nodes, made.get(copies.get(call)) if copies else None)
            found.setdefault(nodes[0].name, []).append(made[call])  # (a wrapper's twin: one check)
    return found


def release_codes(found: Dict[str, List[Invocation]]) -> None:
    """Drop the codes of invocations that are done (``found``, as :func:`invocations` returns): a code and its
    invocation name each other, and unlinked they die by reference counting, not in a collector pass."""
    for calls in found.values():
        for invocation in calls:
            invocation._code = None


# --- trace-time replay: a repeated call of one module copied, not traced again ------------------------


class _Same:
    """An object in a key by identity (a module, a tensor: fx names them by where they live)."""

    __slots__ = ("obj",)

    def __init__(self, obj) -> None:
        self.obj = obj  # held, so its id is not reused while a key names it

    def __eq__(self, other) -> bool:
        return type(other) is _Same and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


#: every ``nn.Module``'s own hook dictionaries (all empty: no hook)
_HOOK_DICTS = tuple(name for name, value in vars(nn.Module()).items() if "hook" in name and isinstance(value, dict))
#: what a module's state leaves to other checks: its containers (their contents are keyed), its hooks
_SKIPPED = _MODULE_CONTAINERS | frozenset(_HOOK_DICTS)


def _tensor_identity(t: torch.Tensor) -> Hashable:
    """A tensor as fx's tracer sees it: the object (its path, or its constant's name) at its version."""
    return _Same(t), t._version


def _immutable(value) -> bool:
    """Whether ``value`` can never change (so the same object is the same value)."""
    kind = type(value)
    if kind in _PLAIN or kind is torch.Size:
        return True
    # a tuple of plain values (a kernel size) in one pass, nested ones element by element
    return (kind is tuple or kind is frozenset) and (set(map(type, value)) <= _PLAIN or all(map(_immutable, value)))


class SubtreeState:
    """What a module's traced ``forward`` may read of it and its submodules, taken now (:meth:`unchanged`
    says whether it still holds): each module's instance attributes (immutable ones by identity, the
    others frozen, tensors by identity and version), its parameters, buffers and children by name and
    identity, its tensors' versions. :class:`_Unkeyable` where a hook, or an attribute of another type, could
    make two calls differ. Identity spares freezing every attribute of every module at every call; the
    objects of the whole subtree are compared as one flat list (an iterated block is checked at every copy)."""

    def __init__(self, module: nn.Module) -> None:
        if _global_hooks():
            raise _Unkeyable("a global module hook")
        self._modules: List[nn.Module] = []
        self._deep: List[Tuple[nn.Module, str, Hashable]] = []  # attributes compared by value: (module, name, frozen)
        self._take(module)
        self._objects = _state_objects(self._modules)
        # every module's hook dicts (the very objects: the flat list checks they are still the modules')
        self._hook_dicts = [hooks for m in self._modules for hooks in map(vars(m).get, _HOOK_DICTS)
                            if hooks is not None]
        self._tensors = [t for m in self._modules for t in (*m._parameters.values(), *m._buffers.values())
                         if t is not None]
        self._versions = _versions(self._tensors)

    def _take(self, module: nn.Module) -> None:
        attributes = vars(module)
        if any(map(attributes.get, _HOOK_DICTS)):
            raise _Unkeyable("a module with hooks")
        for name, value in attributes.items():
            if name in _SKIPPED or _immutable(value):
                continue
            if "hook" in name and isinstance(value, dict) and value:
                raise _Unkeyable("a module with hooks")
            self._deep.append((module, name, freeze(value, _tensor_identity)))
        self._modules.append(module)
        for child in module._modules.values():
            if child is not None:
                self._take(child)

    def unchanged(self) -> bool:
        """Whether every module of the subtree is as it was when this state was taken."""
        if _global_hooks() or any(self._hook_dicts):
            return False
        now = _state_objects(self._modules)
        if len(now) != len(self._objects) or not all(map(operator.is_, now, self._objects)) or \
                _versions(self._tensors) != self._versions:
            return False
        try:
            return not any(freeze(vars(module)[name], _tensor_identity) != frozen
                           for module, name, frozen in self._deep)
        except (_Unkeyable, TypeError):
            return False


def _state_objects(modules: List[nn.Module]) -> list:
    """Every object a subtree's state is made of, flat: per module its attribute names and values, its
    parameters', buffers' and children's names and objects (a name or object replaced, one added or
    removed: another list, by identity)."""
    objects: list = []
    for module in modules:
        attributes = vars(module)
        objects += attributes
        objects += attributes.values()
        for owned in (module._parameters, module._buffers, module._modules):
            objects += owned
            objects += owned.values()
    return objects


def _versions(tensors) -> tuple:
    return tuple(None if t is None else t._version for t in tensors)


class _Inputs:
    """A module call's arguments as a key: each proxy by the first position of its object and of its node
    (``f(a, a)`` and ``f(a, b)`` differ), every other value frozen (tensors by identity); the distinct
    proxies in order, and the ids of the containers they came in."""

    def __init__(self, args: tuple, kwargs: dict) -> None:
        self.proxies: List[fx.Proxy] = []
        self._objects: Dict[int, int] = {}
        self._nodes: Dict[fx.Node, int] = {}
        self.containers: set = set()
        self.key = (self._walk(args), self._walk(kwargs))

    def _walk(self, value) -> Hashable:
        kind = type(value)
        if kind is fx.Proxy:
            at = self._objects.setdefault(id(value), len(self._objects))
            if at == len(self.proxies):
                self.proxies.append(value)
            return "proxy", at, self._nodes.setdefault(value.node, len(self._nodes))
        if isinstance(value, fx.Proxy):
            raise _Unkeyable("a proxy of another kind (an attribute fx creates lazily)")
        if kind in (tuple, list):
            self.containers.add(id(value))
            return kind, tuple(self._walk(v) for v in value)
        if kind is dict:
            self.containers.add(id(value))
            return kind, tuple((freeze(k), self._walk(v)) for k, v in value.items())
        return freeze(value, _tensor_identity)


class _Recording:
    """The fx nodes one call of a module created, ready to be copied for a later equal call."""

    def __init__(self, path: str, state, inputs: _Inputs, entries, nodes, fixed, output) -> None:
        self.path = path
        self.state = state
        self.input_nodes = [p.node for p in inputs.proxies]
        self.entries = entries  # (module path, its nn_module_stack key then) of every module call in it
        self.nodes = nodes  # (node, name and type fx was asked for, nn_module_stack below the caller's)
        self.fixed = fixed  # nodes fx reuses rather than creates again (cached parameter proxies)
        self.output = output  # the forward's return value, proxies by where their node is
        self.plans: Dict[Tuple[str, bool], tuple] = {}  # by path: what every copy there needs (TraceReplay._plan)
        # another instance's call may be a copy with its own path in place of this one's: no parameter read
        # (fx names a parameter by where it was first registered), every module path below this one, names
        # given only to functions and methods (fx names a torch function's node after the function)
        below = path + "."
        self.portable = not fixed and all(p == path or p.startswith(below) for p, _ in entries) and all(
            n.target.startswith(below) and given == (None, None) if n.op == "call_module" else
            n.op in ("call_function", "call_method") for n, given, _ in nodes)


_UNNAMED = (None, None)


class TraceReplay:
    """Repeated calls of one module during ``torch.fx`` symbolic tracing (see the module doc): a module's
    first call is traced, a later one with a given argument structure is traced and recorded, and a call
    after that with an equal structure while the module's subtree is as it was (or of another instance of
    equal state, where the recording is portable) copies the recorded nodes, the call's inputs in place of
    the recorded ones, numbering module calls and naming nodes as fx would. The tracer reports every
    module call (:meth:`log_call`, :meth:`call`), every node it creates (:meth:`created_node`) and its
    parameter-proxy cache (``parameter_proxies``)."""

    def __init__(self, tracer: fx.Tracer, keys: Optional[ModuleKeys] = None) -> None:
        self.tracer = tracer
        self.keys = keys if keys is not None else ModuleKeys()  # the capture's module keys (the run's memo reuses them)
        self.log: List[Tuple[str, int]] = []  # every module call so far: (its path, fx's count of its calls before)
        self.named: Dict[fx.Node, Tuple[Any, Any]] = {}  # nodes fx was asked to name (or type) explicitly
        self.created = 0  # nodes created by the tracer or copied
        self.copies: Dict[str, str] = {}  # nn_module_stack key of a copied call -> the recorded call's
        self.parameter_proxies: Dict[str, fx.Proxy] = {}  # fx's cache of parameter proxies (reused, not recreated)
        self._recordings: Dict[Hashable, _Recording] = {}
        self._called: Dict[int, nn.Module] = {}  # non-leaf modules called so far
        self._kinds: Dict[Hashable, Optional[_Recording]] = {}  # (module key, inputs) -> a recording, once made
        self._types: Optional[Counter] = None  # instances of each module type in the model
        self._sketches: Dict[Hashable, nn.Module] = {}  # (type, inputs, parameter shapes) -> first module called
        self._twinned: set = set()  # sketches whose first module's kind is marked (a second one was called)
        self._parameter_shapes = ParameterShapes()

    def log_call(self, path: str) -> None:
        """fx is about to call the module at ``path`` (a leaf's node or a forward)."""
        self.log.append((path, self.tracer.num_calls.get(path, 0)))

    def created_node(self, node: fx.Node, name, type_expr) -> None:
        """The tracer created ``node``, asked for ``name`` and ``type_expr``."""
        self.created += 1
        if name is not None or type_expr is not None:
            self.named[node] = (name, type_expr)

    def call(self, module: nn.Module, path: str, args: tuple, kwargs: dict, run: Callable[[], Any]) -> Any:
        """The value of calling the non-leaf ``module`` at ``path``: ``run()`` (fx's own call), recorded, or
        a copy of an equal call's nodes (this module's, or another instance's of equal type and state)."""
        self.log_call(path)
        if self.tracer.record_stack_traces or fx_traceback.has_preserved_node_meta():
            return run()  # node meta fx writes from elsewhere
        first = id(module) not in self._called
        self._called[id(module)] = module  # held: its id is not reused
        try:
            inputs = _Inputs(args, kwargs)
            where = (id(module), inputs.key)
            recording = self._recordings.get(where)
            if recording is not None and recording.state.unchanged():
                return self._replay(recording, inputs, path)
            kind = self._kind(module, inputs)
            recording = self._kinds.get(kind) if kind is not None else None
            if recording is not None and recording.portable:
                return self._replay(recording, inputs, path)
            if first and (kind is None or kind not in self._kinds):
                if kind is not None:
                    self._kinds[kind] = None
                return run()  # a first call of its kind is only traced: most modules are called once
            state = SubtreeState(module)
        except (_Unkeyable, TypeError):  # TypeError: an unhashable value
            return run()
        return self._record((where, kind), path, state, inputs, (args, kwargs), run)

    def _kind(self, module: nn.Module, inputs: _Inputs) -> Optional[Hashable]:
        """The call by value (another instance of equal state and equal arguments matches), or None while no
        other instance of its type, argument structure and parameter shapes has been called.

        The full key (:func:`module_key`, the whole subtree's state) is only taken once a second module of
        one sketch is called: most models call many containers of one type (a ResNet's ``Sequential``
        stages and blocks) whose parameter shapes differ, and keying each one's subtree cost more than the
        replay saved. Equal keys imply equal sketches, so no match is missed; the sketch's first module gets
        its key then (marking its kind as traced once, as its own call would have)."""
        if self._types is None:
            known = self.tracer.submodule_paths  # fx's own walk of the model's modules, not a second one
            self._types = Counter(map(type, known if known is not None else self.tracer.root.modules()))
        if self._types[type(module)] <= 1:
            return None
        sketch = (type(module), inputs.key, self._parameter_shapes(module))
        first = self._sketches.setdefault(sketch, module)
        if first is module:
            return None
        if sketch not in self._twinned:  # (once: the marker only decides whether a first call is recorded)
            self._twinned.add(sketch)
            self._kinds.setdefault((module_key(first, taken=self.keys), inputs.key), None)
        return module_key(module, taken=self.keys), inputs.key

    def _record(self, keys, path: str, state: SubtreeState, inputs: _Inputs, arguments, run) -> Any:
        tracer, graph = self.tracer, self.tracer.graph
        depth, log_start = len(tracer.module_stack), len(self.log) - 1
        nodes_before, created_before = len(graph.nodes), self.created
        constants = len(getattr(tracer, "tensor_attrs", ()))
        out = run()
        where, kind = keys
        self._recordings.pop(where, None)
        count = len(graph.nodes) - nodes_before
        try:
            if self.created - created_before != count or len(getattr(tracer, "tensor_attrs", ())) != constants:
                raise _Unkeyable("nodes made outside the tracer, or a new tensor constant")
            if _Inputs(*arguments).key != inputs.key or not state.unchanged():
                raise _Unkeyable("a forward that changes its arguments or its modules")
            new = list(itertools.islice(reversed(graph.nodes), count))[::-1]
            entries = [(p, f"{p}@{n}" if n else p) for p, n in self.log[log_start:]]
            recording = self._recordings[where] = self._recording(path, state, inputs, entries, new, depth, out)
            if kind is not None and self._kinds.get(kind) is None:
                self._kinds[kind] = recording
        except (_Unkeyable, TypeError):
            pass
        return out

    def _recording(self, path: str, state, inputs: _Inputs, entries, new: List[fx.Node], depth: int, out
                   ) -> _Recording:
        cached = {p.node: p for p in self.parameter_proxies.values()}
        inside, given = set(new), {p.node for p in inputs.proxies}
        fixed, nodes = {}, []
        for n in new:
            if n in cached:
                fixed[n] = n  # fx hands out the cached proxy again
                continue
            stack = n.meta.get("nn_module_stack")
            if len(n.meta) != 1 or stack is None or len(stack) <= depth:
                raise _Unkeyable("node meta beyond the module stack")
            for a in n.all_input_nodes:
                if a in cached:
                    fixed[a] = a
                elif a not in inside and a not in given:
                    raise _Unkeyable("a node reached other than through the arguments")
            nodes.append((n, self.named.get(n, (None, None)), tuple(itertools.islice(stack.items(), depth, None))))
        if given & fixed.keys():
            raise _Unkeyable("a cached parameter proxy passed as an argument")
        output = self._template(out, inputs, inside, cached)
        return _Recording(path, state, inputs, entries, nodes, fixed, output)

    def _template(self, value, inputs: _Inputs, inside, cached) -> Any:
        """The forward's return value with each proxy by where its node comes from."""
        kind = type(value)
        if kind is fx.Proxy:
            if id(value) in inputs._objects:
                return "input", inputs._objects[id(value)]
            if cached.get(value.node) is value:
                return "cached", value
            if value.node in inside:
                return "own", value.node
            raise _Unkeyable("a proxy from elsewhere")
        if isinstance(value, fx.Proxy) or (kind in (tuple, list, dict) and id(value) in inputs.containers):
            raise _Unkeyable("a lazy proxy, or an argument's container returned")
        if kind in (tuple, list):
            return kind, tuple(self._template(v, inputs, inside, cached) for v in value)
        if kind is dict:
            if not all(type(k) in _PLAIN for k in value):
                raise _Unkeyable("a dict keyed by other than plain values")
            return kind, tuple((k, self._template(v, inputs, inside, cached)) for k, v in value.items())
        if kind in _PLAIN or kind is torch.Size:
            return "value", value
        raise _Unkeyable(kind.__name__)

    def _replay(self, recording: _Recording, inputs: _Inputs, path: str) -> Any:
        """Copy ``recording``'s nodes for this call of the module at ``path`` (the recorded path, or another
        instance's: then every module path below the recorded one is renamed)."""
        tracer, graph = self.tracer, self.tracer.graph
        fast = can_append(graph)
        entries, nodes = self._plan(recording, path, fast)
        keys = {}
        for i, (called, old) in enumerate(entries):  # entries[0]: this call, logged by call()
            n = tracer.num_calls.get(called, 0)
            if i:
                self.log.append((called, n))
            tracer.num_calls[called] = n + 1
            keys[old] = f"{called}@{n}" if n else called
        outer = list(tracer.module_stack.items())
        env = dict(recording.fixed)
        env.update(zip(recording.input_nodes, (p.node for p in inputs.proxies)))
        lookup, scopes, map_arg = env.__getitem__, tracer.node_name_to_scope, fx.node.map_arg
        append = append_node if fast else fx.Graph.create_node  # (append_node: no scan of copied arguments)
        stacks: Dict[int, collections.OrderedDict] = {}  # by tail (one object per module call in the plan)
        for node, target, candidate, given, tail, scope in nodes:
            kwargs = map_arg(node.kwargs, lookup) if node.kwargs else node.kwargs  # (empty: immutable, shared)
            copy = append(graph, node.op, target, map_arg(node.args, lookup), kwargs, candidate, given[1])
            stack = stacks.get(id(tail))
            if stack is None:
                stack = stacks[id(tail)] = collections.OrderedDict(outer + [(keys[k], v) for k, v in tail])
            copy.meta["nn_module_stack"] = stack.copy()  # each node its own, as fx gives it
            scopes[copy.name] = scope  # the innermost call's (path, type), as fx keeps it
            if given != _UNNAMED:
                self.named[copy] = given
            env[node] = copy
        self.created += len(nodes)
        for old, new in keys.items():
            self.copies[new] = self.copies.get(old, old)
        return self._rebuild(recording.output, inputs, env, {})

    def _plan(self, recording: _Recording, path: str, fast: bool) -> tuple:
        """What copying ``recording`` at ``path`` needs that is the same for every copy there, made once: its
        module calls ``(path, recorded key)``, and per node ``(node, target, name candidate, (name, type) fx
        was asked for, nn_module_stack below the caller's by recorded key, innermost scope)``."""
        plan = recording.plans.get((path, fast))
        if plan is None:
            old_path = recording.path
            rename = (lambda p: path + p[len(old_path):]) if path != old_path else (lambda p: p)
            nodes, tails = [], {}
            for node, given, tail in recording.nodes:
                target = rename(node.target) if node.op == "call_module" else node.target
                candidate = _identifier(name_candidate(self.tracer.graph, target)) if fast and given[0] is None \
                    else given[0]
                tail = tuple((key, (rename(called), kind)) for key, (called, kind) in tail)
                tail = tails.setdefault(tail, tail)  # the nodes of one module call share one (see _replay)
                nodes.append((node, target, candidate, given, tail, tail[-1][1]))
            plan = recording.plans[(path, fast)] = ([(rename(p), key) for p, key in recording.entries], nodes)
        return plan

    def _rebuild(self, template, inputs: _Inputs, env, proxies: Dict[fx.Node, fx.Proxy]) -> Any:
        tag, value = template
        if tag == "value" or tag == "cached":
            return value
        if tag == "input":
            return inputs.proxies[value]
        if tag == "own":
            node = env[value]
            if node not in proxies:
                proxies[node] = self.tracer.proxy(node)
            return proxies[node]
        if tag is dict:
            return {k: self._rebuild(v, inputs, env, proxies) for k, v in value}
        return tag(self._rebuild(v, inputs, env, proxies) for v in value)


def _identifier(candidate: str) -> str:
    """``candidate`` made a Python identifier as fx's namespace makes it before numbering it (each run of
    characters other than letters, digits and ``_`` one ``_``; ``_unnamed`` for nothing; ``_`` before a leading
    digit): a module path's name (``blocks.0.conv``) then takes fx's first regex match, not three, per copy."""
    candidate = _ILLEGAL_CHARACTERS.sub("_", candidate) or "_unnamed"
    return f"_{candidate}" if candidate[0].isdigit() else candidate


#: what fx's namespace replaces in a name (``torch.fx.graph``'s pattern, the same characters)
_ILLEGAL_CHARACTERS = re.compile("[^0-9a-zA-Z_]+")
