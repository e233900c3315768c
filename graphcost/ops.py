"""The op registry: one entry per module type, function or method, giving its cost formula.

A formula sees one *call* (the module, if any, the evaluated arguments — fake tensors — and
the output) and returns an :class:`OpCost`. Formulas never walk graphs; the passes do that.

Each formula is registered by the :func:`register_cost` decorator beside it (as
``torch.utils.flop_counter`` registers its flop formulas); registering an op twice raises.
``analyze(..., custom_costs={op: formula})`` overrides formulas for one call only.

MACs are multiply-accumulates of weight-bearing or activation-activation products (conv,
linear, matmul, recurrent cells, attention). Everything else a layer does (pooling,
interpolation, normalisation, activations, element-wise arithmetic) is ``other_ops``.

>>> import torch
>>> info = lookup_module(torch.nn.Conv2d(3, 8, 3))
>>> info.name, info.kind
('conv2d', 'conv')

User code adds a formula for its own module (or function, or method name) once:

>>> class Doubler(torch.nn.Module):
...     def forward(self, x):
...         return 2 * x
>>> @register_cost(Doubler, name="doubler", kind="elementwise")
... def doubler_cost(call):
...     return OpCost(other_ops=call.out_numel)
>>> lookup_module(Doubler()).name
'doubler'
"""
from __future__ import annotations

import builtins
import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx._symbolic_trace import _assert_is_none

from .errors import UserError, shape_text

#: kinds whose layers hold a weight matrix: the paper's "conv layers" for graph size and latency
#: (a fully-connected layer is a 1x1 convolution; a recurrent cell is a stack of them).
WEIGHT_KINDS = frozenset({"conv", "linear", "recurrent"})


@dataclass(frozen=True)
class OpCost:
    macs: int = 0
    other_ops: int = 0


@dataclass(frozen=True)
class Call:
    """One evaluated call: what a cost handler may look at."""

    module: Optional[nn.Module]
    args: Sequence[Any]
    kwargs: Dict[str, Any]
    output: Any

    def arg(self, index: int, name: str, default=None):
        if len(self.args) > index:
            return self.args[index]
        return self.kwargs.get(name, default)

    @property
    def out_numel(self) -> int:
        return sum(t.numel() for t in tensors_in(self.output))

    @property
    def in_numel(self) -> int:
        return sum(t.numel() for t in tensors_in((self.args, self.kwargs)))


class ShapeMismatch(ValueError):
    """A shape rule's verdict that PyTorch rejects the call; the message says what does not match."""


@dataclass(frozen=True)
class OpInfo:
    """A registered op. Its shape rule is a shortcut past running the op on fake tensors, so it
    must never accept a call PyTorch rejects: it returns the output shape only for a call it
    knows to be valid, ``None`` when unsure (the op then runs on fake tensors and torch itself
    decides), and raises :class:`ShapeMismatch` for a call it knows to be invalid."""

    name: str
    kind: str
    cost: Callable[["Call"], "OpCost"]
    #: output is the first input itself (shape and dtype), so shape propagation need not run the
    #: op (fake-tensor batch norm alone decomposes into dozens of ops) once ``shape``, if given,
    #: accepts the call
    preserves_shape: bool = False
    #: optional shape rule (module or None, args, kwargs) -> output shape or None, used instead of
    #: running the op; the output takes the first input tensor's dtype
    shape: Optional[Callable[[Optional[nn.Module], Sequence[Any], Dict[str, Any]], Optional[tuple]]] = None

    @property
    def is_weight_layer(self) -> bool:
        return self.kind in WEIGHT_KINDS


def leaves(value, cls) -> list:
    """All instances of ``cls`` inside nested tuples / lists / dicts, in order."""
    if isinstance(value, cls):
        return [value]
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in leaves(v, cls)]
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v, cls)]
    return []


def named_leaves(value, cls, path: str = "") -> list:
    """``(path, leaf)`` for every instance of ``cls`` inside nested tuples / lists / dicts, in order;
    a path joins dict keys and sequence indices with dots (``"0"``, ``"logits"``, ``"aux.1"``).

    >>> named_leaves({"out": 1, "aux": [2, 3]}, int)
    [('out', 1), ('aux.0', 2), ('aux.1', 3)]
    """
    if isinstance(value, cls):
        return [(path, value)]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (tuple, list)):
        items = enumerate(value)
    else:
        return []
    return [leaf for key, v in items for leaf in named_leaves(v, cls, f"{path}.{key}" if path else str(key))]


def pytree_key_text(key) -> str:
    """One step of a pytree path as text: a dict key, a sequence index or an attribute name.

    >>> from torch.utils import _pytree as pytree
    >>> [".".join(pytree_key_text(k) for k in path) for path, _ in pytree.tree_flatten_with_path({"aux": [2, 3]})[0]]
    ['aux.0', 'aux.1']
    """
    for attribute in ("key", "idx", "name"):  # MappingKey, SequenceKey, GetAttrKey
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def tensors_in(value) -> list:
    """All tensors inside nested tuples / lists / dicts."""
    return leaves(value, torch.Tensor)


def nbytes(value) -> int:
    """Bytes of the tensors inside ``value``, each at its own dtype."""
    return sum(t.numel() * t.element_size() for t in tensors_in(value))


def shapes_of(value) -> Tuple[Tuple[int, ...], ...]:
    """The shapes of the tensors inside ``value``, in order."""
    return tuple(tuple(int(s) for s in t.shape) for t in tensors_in(value))


# --------------------------------------------------------------------------- the registry
Formula = Callable[[Call], OpCost]
#: what an op is keyed by: a module type, a function (``torch.add``, ``operator.add``) or a method name
Op = Union[type, Callable, str]

_MODULES: Dict[type, OpInfo] = {}
_FUNCTIONS: Dict[Any, OpInfo] = {}
_METHODS: Dict[str, OpInfo] = {}


def _table(op: Op) -> dict:
    if isinstance(op, str):
        return _METHODS
    if isinstance(op, type):
        if not issubclass(op, nn.Module):
            raise TypeError(f"{op.__name__} is a class but not a torch.nn.Module")
        return _MODULES
    if callable(op):
        return _FUNCTIONS
    raise TypeError(f"an op is a module type, a function or a method name, not {type(op).__name__}")


def op_name(op: Op) -> str:
    """How messages name an op: ``Conv2d``, ``add``, ``.view()``."""
    if isinstance(op, str):
        return f".{op}()"
    return getattr(op, "__name__", None) or str(op)


def register_cost(*ops: Op, name: Optional[str] = None, kind: str = "other", preserves_shape: bool = False,
                  shape=None) -> Callable[[Formula], Formula]:
    """Decorator registering a cost formula for module types, functions or method names.

    Parameters
    ----------
    *ops : module type, function or str
        What the formula costs: a module type (its calls are leaves of the trace), a function
        (``torch.add``, ``operator.mul``) or a tensor method's name (``"view"``).
    name : str, optional
        The op name analyses report (default: a method's name, else ``kind``).
    kind : str
        ``conv``, ``linear``, ``recurrent`` (the paper's weight layers), ``matmul``, ``norm``,
        ``activation``, ``pool``, ``resize``, ``elementwise``, ``shape`` or ``other``.
    preserves_shape : bool
        The output is the first input (shape and dtype), so tracing need not run the op.
    shape : callable, optional
        ``(module or None, args, kwargs) -> output shape`` used instead of running the op. It must
        never accept what PyTorch rejects: ``None`` when unsure (the op then runs on fake tensors),
        :class:`ShapeMismatch` when the call is invalid. With ``preserves_shape`` it only validates.

    Returns
    -------
    The decorator; it returns the formula unchanged.

    Raises
    ------
    ValueError
        If one of ``ops`` already has a formula (override per call with ``custom_costs=``).
    """
    tables = [_table(op) for op in ops]

    def decorator(formula: Formula) -> Formula:
        for op, table in zip(ops, tables):
            if op in table:
                raise ValueError(f"{op_name(op)} already has a cost formula ({table[op].name}); "
                                 "pass custom_costs={op: formula} to analyze() to override it for one call")
        for op, table in zip(ops, tables):
            table[op] = OpInfo(name or (op if isinstance(op, str) else kind), kind, formula, preserves_shape, shape)
        return formula

    return decorator


def check_custom_costs(custom_costs: Optional[Mapping[Op, Formula]]) -> Dict[Op, Formula]:
    """``custom_costs`` as a dict, each key a valid op and each value callable (else UserError)."""
    checked: Dict[Op, Formula] = {}
    for op, formula in (custom_costs or {}).items():
        try:
            _table(op)
        except TypeError as exc:
            raise UserError(f"custom_costs key {op!r}: {exc}") from None
        if not callable(formula):
            raise UserError(f"custom_costs[{op_name(op)}] must be a formula (Call -> OpCost), "
                            f"got {type(formula).__name__}")
        checked[op] = formula
    return checked


def _with_custom(op: Op, info: Optional[OpInfo], custom: Mapping[Op, Formula]) -> Optional[OpInfo]:
    formula = custom.get(op) if custom else None
    if formula is None:
        return info
    if info is None:  # an op the registry does not know: reported as itself
        return OpInfo(op_name(op), "custom", formula)
    return OpInfo(info.name, info.kind, formula, info.preserves_shape, info.shape)


def lookup_module(module: nn.Module, custom: Optional[Mapping[Op, Formula]] = None) -> Optional[OpInfo]:
    """The registered op of ``module``'s type (or its nearest registered base class)."""
    for cls in type(module).__mro__:
        info = _with_custom(cls, _MODULES.get(cls), custom)
        if info is not None:
            return info
    return None


def is_registered_type(module: nn.Module, custom: Optional[Mapping[Op, Formula]] = None) -> bool:
    """Whether ``module``'s own type has a formula: tracing keeps such modules as leaves."""
    return type(module) in _MODULES or bool(custom) and type(module) in custom


def lookup_function(fn, custom: Optional[Mapping[Op, Formula]] = None) -> Optional[OpInfo]:
    try:
        return _with_custom(fn, _FUNCTIONS.get(fn), custom)
    except TypeError:  # unhashable target
        return None


def lookup_method(name: str, custom: Optional[Mapping[Op, Formula]] = None) -> Optional[OpInfo]:
    return _with_custom(name, _METHODS.get(name), custom)


# --------------------------------------------------------------------------- formulas
_SHAPE_FUNCTIONS = (torch.stack, torch.flatten, torch.reshape, torch.transpose,
                    torch.permute, torch.squeeze, torch.unsqueeze, torch.chunk, torch.split, torch.narrow,
                    torch.roll, torch.flip, torch.zeros_like, torch.ones_like, torch.full_like, F.pad,
                    operator.getitem, builtins.getattr, torch.t)
_SHAPE_METHODS = ("view", "reshape", "permute", "transpose", "contiguous", "flatten", "size", "dim", "chunk",
                  "split", "expand", "expand_as", "unsqueeze", "squeeze", "repeat", "clone", "float", "half",
                  "to", "type_as", "detach", "narrow", "view_as", "t", "unbind", "__getitem__", "flip", "roll",
                  "new_zeros", "new_ones", "zero_", "fill_")


@register_cost(*_SHAPE_FUNCTIONS, F.dropout, F.dropout2d, F.dropout1d, F.dropout3d, name="shape", kind="shape")
@register_cost(*_SHAPE_METHODS, kind="shape")
@register_cost(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity,
               name="shape", kind="shape", preserves_shape=True)
@register_cost(nn.Flatten, nn.Unflatten, nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d,
               name="shape", kind="shape")
@register_cost(nn.PixelShuffle, nn.PixelUnshuffle, name="pixel_shuffle", kind="shape")
@register_cost(nn.Embedding, name="embedding", kind="other")
# comparisons and asserts guard shapes; they compute nothing a cost should count
@register_cost(operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge, operator.not_,
               torch._assert, _assert_is_none, name="check", kind="shape")
def free(call: Call) -> OpCost:
    """No arithmetic: views, copies, padding, dropout at inference, table look-ups, checks."""
    return OpCost()


# --------------------------------------------------------------------------- shape-preserving rules
# Each accepts (returns the input's shape) only a call PyTorch accepts, else None: torch decides.
def _batch_norm_rule(m: nn.modules.batchnorm._BatchNorm, args, kwargs) -> Optional[tuple]:
    x = args[0]
    try:
        m._check_input_dim(x)
    except ValueError:
        return None
    # without running statistics, eval uses the batch's, which needs more than one value per channel
    return tuple(x.shape) if m.running_mean is not None and x.shape[1] == m.num_features else None


def _instance_norm_rule(m: nn.modules.instancenorm._InstanceNorm, args, kwargs) -> Optional[tuple]:
    x = args[0]
    batched = x.dim() == m._get_no_batch_dim() + 1
    return tuple(x.shape) if batched and x.shape[1] == m.num_features and math.prod(x.shape[2:]) > 1 else None


def _group_norm_rule(m: nn.GroupNorm, args, kwargs) -> Optional[tuple]:
    x = args[0]
    if x.dim() < 2 or x.shape[1] != m.num_channels:
        return None
    values_per_group = x.shape[0] * x.shape[1] // m.num_groups * math.prod(x.shape[2:])
    return tuple(x.shape) if values_per_group > 1 else None


def _layer_norm_rule(m: nn.LayerNorm, args, kwargs) -> Optional[tuple]:
    x, normalized = args[0], tuple(m.normalized_shape)
    return tuple(x.shape) if x.dim() >= len(normalized) and tuple(x.shape[x.dim() - len(normalized):]) == normalized \
        else None


def _min_dims_rule(dims: int):
    def rule(m, args, kwargs) -> Optional[tuple]:
        return tuple(args[0].shape) if args[0].dim() >= dims else None

    return rule


def _prelu_rule(m: nn.PReLU, args, kwargs) -> Optional[tuple]:
    x = args[0]
    return tuple(x.shape) if m.num_parameters == 1 or (x.dim() >= 2 and x.shape[1] == m.num_parameters) else None


def _softmax_rule(m: nn.Softmax, args, kwargs) -> Optional[tuple]:
    x = args[0]
    if m.dim is None:
        return None  # the legacy implicit dim: torch picks it (and warns)
    if not -max(x.dim(), 1) <= m.dim < max(x.dim(), 1):  # fake tensors let this through; eager does not
        raise ShapeMismatch(f"dim {m.dim} is out of range for a {x.dim()}-D input")
    return tuple(x.shape)


def _softmax2d_rule(m, args, kwargs) -> Optional[tuple]:
    return tuple(args[0].shape) if args[0].dim() in (3, 4) else None


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
#: activations that take a tensor of any shape
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Threshold)


@register_cost(*_BATCH_NORMS, name="norm", kind="norm", preserves_shape=True, shape=_batch_norm_rule)
@register_cost(*_INSTANCE_NORMS, name="norm", kind="norm", preserves_shape=True, shape=_instance_norm_rule)
@register_cost(nn.GroupNorm, name="norm", kind="norm", preserves_shape=True, shape=_group_norm_rule)
@register_cost(nn.LayerNorm, name="norm", kind="norm", preserves_shape=True, shape=_layer_norm_rule)
@register_cost(nn.LocalResponseNorm, name="norm", kind="norm", preserves_shape=True, shape=_min_dims_rule(3))
@register_cost(nn.PReLU, name="activation", kind="activation", preserves_shape=True, shape=_prelu_rule)
@register_cost(nn.Softmax, nn.LogSoftmax, name="activation", kind="activation", preserves_shape=True,
               shape=_softmax_rule)
@register_cost(nn.Softmax2d, name="activation", kind="activation", preserves_shape=True, shape=_softmax2d_rule)
@register_cost(F.batch_norm, F.layer_norm, F.group_norm, F.instance_norm, F.normalize, name="norm", kind="norm")
@register_cost(*_ACTIVATIONS, name="activation", kind="activation", preserves_shape=True)
@register_cost(torch.relu, F.relu, F.relu6, F.prelu, F.leaky_relu, F.elu, F.selu, F.gelu, F.silu, F.mish,
               F.hardswish, F.hardsigmoid, F.hardtanh, torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.softmax,
               torch.softmax, F.log_softmax, F.softplus, torch.exp, name="activation", kind="activation")
@register_cost("relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "softmax", "log_softmax", "exp", "clamp",
               "clamp_", kind="activation")
@register_cost(operator.floordiv, operator.neg, torch.div, torch.neg, torch.abs, torch.sqrt, torch.rsqrt,
               torch.pow, torch.where, torch.clamp, name="elementwise", kind="elementwise")
@register_cost("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "neg", "pow", "sqrt", "abs",
               "__add__", "__mul__", "__sub__", "__truediv__", kind="elementwise")
def _per_output_element(call: Call) -> OpCost:
    return OpCost(other_ops=call.out_numel)


def _broadcast_shape(m, args: Sequence[Any], kwargs) -> Optional[tuple]:
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    floating = tensors[0].is_floating_point()
    if kwargs or not all(isinstance(a, torch.Tensor) or isinstance(a, float) or (isinstance(a, int) and floating)
                         for a in args):
        return None  # type promotion or an ``out=``/``alpha=`` we do not model
    return broadcast_shape(*(t.shape for t in tensors))


def broadcast_shape(*shapes: Sequence[int]) -> Optional[tuple]:
    """The shape ``shapes`` broadcast to (NumPy's rule, as ``torch.broadcast_shapes``), None where they do not
    broadcast (the op then runs, and torch says why). Plain Python: torch's own checks each size with
    ``torch._check``, whose first call imports sympy (a third of a second in a fresh sweep worker).

    >>> broadcast_shape((2, 1, 4), (3, 1), ()), broadcast_shape((2,), (3,))
    ((2, 3, 4), None)
    """
    ndim = max(map(len, shapes), default=0)
    out = [1] * ndim
    for shape in shapes:
        for i, size in enumerate(shape, ndim - len(shape)):
            if size != 1 and out[i] != size:
                if out[i] != 1:
                    return None
                out[i] = size
    return tuple(out)


def _in_place_shape(m, args: Sequence[Any], kwargs) -> Optional[tuple]:
    """``x += y`` keeps ``x``'s shape: PyTorch rejects a ``y`` that would broadcast it larger."""
    shape = _broadcast_shape(m, args, kwargs)
    if shape is not None and isinstance(args[0], torch.Tensor) and shape != tuple(args[0].shape):
        return None
    return shape


# binary arithmetic: the output shape is the inputs' broadcast (dtype promotion aside); same cost as
# any element-wise op, registered apart only for the shape rule
@register_cost(operator.iadd, operator.imul, name="elementwise", kind="elementwise", shape=_in_place_shape)
@register_cost(operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul,
               torch.maximum, torch.minimum, name="elementwise", kind="elementwise", shape=_broadcast_shape)
def _broadcast_elementwise(call: Call) -> OpCost:
    return _per_output_element(call)


def _adaptive_pool_shape(spatial: int):
    def shape(m, args: Sequence[Any], kwargs) -> Optional[tuple]:
        x = args[0]
        size = m.output_size if m is not None else (args[1] if len(args) > 1 else kwargs.get("output_size"))
        if size is None or (m is None and set(kwargs) - {"output_size"}) or x.dim() not in (spatial + 1, spatial + 2):
            return None
        if 0 in x.shape[x.dim() - spatial - 1:]:  # fake tensors let this through; eager does not
            raise ShapeMismatch(f"expects non-zero sizes in the non-batch dimensions, got {tuple(x.shape)}")
        size = (size,) * spatial if isinstance(size, int) else tuple(size)
        if len(size) != spatial or any(s is not None and s < 0 for s in size):
            return None
        return tuple(x.shape[:-spatial]) + tuple(i if s is None else int(s)
                                                 for i, s in zip(x.shape[-spatial:], size))

    return shape


@register_cost(nn.AdaptiveAvgPool1d, F.adaptive_avg_pool1d, name="adaptive_pool", kind="pool",
               shape=_adaptive_pool_shape(1))
@register_cost(nn.AdaptiveAvgPool2d, F.adaptive_avg_pool2d, name="adaptive_pool", kind="pool",
               shape=_adaptive_pool_shape(2))
@register_cost(nn.AdaptiveAvgPool3d, F.adaptive_avg_pool3d, name="adaptive_pool", kind="pool",
               shape=_adaptive_pool_shape(3))
# adaptive max pooling may also return indices: no shape rule
@register_cost(nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, F.adaptive_max_pool2d,
               name="adaptive_pool", kind="pool")
@register_cost(nn.MaxUnpool1d, nn.MaxUnpool2d, nn.MaxUnpool3d, name="max_unpool", kind="resize")
@register_cost(torch.mean, torch.sum, torch.amax, torch.amin, torch.max, torch.min, torch.argmax, torch.logsumexp,
               name="reduce", kind="elementwise")
@register_cost("mean", "sum", "max", "min", "amax", "argmax", "norm", kind="elementwise")
def _per_input_element(call: Call) -> OpCost:
    return OpCost(other_ops=call.in_numel)


def _conv_macs(x_shape, w_shape, out_shape, groups: int, transposed: bool) -> int:
    kernel = math.prod(w_shape[2:])
    if transposed:  # every input pixel scatters a Cout/groups x k x k patch
        batch, cin = x_shape[0], x_shape[1]
        return batch * cin * math.prod(x_shape[2:]) * (w_shape[1]) * kernel
    cin_per_group = w_shape[1]
    return math.prod(out_shape) * cin_per_group * kernel


def conv_output_shape(m: nn.Module, args: Sequence[Any], kwargs=None) -> Optional[tuple]:
    """Output shape of conv / transposed-conv module ``m`` on ``args[0]`` (PyTorch's formulas);
    :class:`ShapeMismatch` where PyTorch rejects the input."""
    x = args[0]
    if len(args) != 1 or kwargs or x.dim() != len(m.kernel_size) + 2 or m.padding_mode != "zeros" or 0 in x.shape:
        return None  # unbatched or empty input, an explicit output_size, or F.pad first: let torch decide
    if x.shape[1] != m.in_channels:
        raise ShapeMismatch(f"expects {m.in_channels} input channels, got {x.shape[1]}")
    spatial = tuple(x.shape[2:])
    k, s, d = m.kernel_size, m.stride, m.dilation
    padding = (0,) * len(k) if m.padding == "valid" else m.padding
    if m.padding == "same":
        out = spatial
    elif isinstance(m, nn.modules.conv._ConvTransposeNd):
        op = m.output_padding
        out = tuple((i - 1) * s[j] - 2 * padding[j] + d[j] * (k[j] - 1) + op[j] + 1 for j, i in enumerate(spatial))
        if min(out) < 1:
            raise ShapeMismatch(f"a {shape_text(spatial)} input gives output size {shape_text(out)}")
    else:
        padded = tuple(i + 2 * p for i, p in zip(spatial, padding))
        extent = tuple(dj * (kj - 1) + 1 for dj, kj in zip(d, k))
        if any(pi < e for pi, e in zip(padded, extent)):
            raise ShapeMismatch(f"its kernel spans {shape_text(extent)}, more than the padded input "
                                f"{shape_text(padded)}")
        out = tuple((pi - e) // sj + 1 for pi, e, sj in zip(padded, extent, s))
    return tuple(x.shape[:1]) + (m.out_channels,) + out


@register_cost(nn.Conv1d, name="conv1d", kind="conv", shape=conv_output_shape)
@register_cost(nn.Conv2d, name="conv2d", kind="conv", shape=conv_output_shape)
@register_cost(nn.Conv3d, name="conv3d", kind="conv", shape=conv_output_shape)
@register_cost(nn.ConvTranspose1d, name="conv_transpose1d", kind="conv", shape=conv_output_shape)
@register_cost(nn.ConvTranspose2d, name="conv_transpose2d", kind="conv", shape=conv_output_shape)
@register_cost(nn.ConvTranspose3d, name="conv_transpose3d", kind="conv", shape=conv_output_shape)
def _conv_module(call: Call) -> OpCost:
    m = call.module
    x = call.args[0]
    transposed = isinstance(m, nn.modules.conv._ConvTransposeNd)
    macs = _conv_macs(tuple(x.shape), tuple(m.weight.shape), tuple(call.output.shape), m.groups, transposed)
    return OpCost(macs=macs, other_ops=call.output.numel() if m.bias is not None else 0)


def _functional_conv_cost(call: Call, transposed: bool) -> OpCost:
    x, w = call.arg(0, "input"), call.arg(1, "weight")
    groups = call.arg(6, "groups", 1)  # index 6 for conv*d and conv_transpose*d alike
    macs = _conv_macs(tuple(x.shape), tuple(w.shape), tuple(call.output.shape), groups, transposed)
    bias = call.arg(2, "bias")
    return OpCost(macs=macs, other_ops=call.output.numel() if bias is not None else 0)


@register_cost(F.conv1d, torch.conv1d, name="conv1d", kind="conv")
@register_cost(F.conv2d, torch.conv2d, name="conv2d", kind="conv")
@register_cost(F.conv3d, torch.conv3d, name="conv3d", kind="conv")
def _conv_function(call: Call) -> OpCost:
    return _functional_conv_cost(call, transposed=False)


@register_cost(F.conv_transpose1d, torch.conv_transpose1d, name="conv_transpose1d", kind="conv")
@register_cost(F.conv_transpose2d, torch.conv_transpose2d, name="conv_transpose2d", kind="conv")
@register_cost(F.conv_transpose3d, torch.conv_transpose3d, name="conv_transpose3d", kind="conv")
def _conv_transpose_function(call: Call) -> OpCost:
    return _functional_conv_cost(call, transposed=True)


def _linear_output_shape(m: nn.Linear, args: Sequence[Any], kwargs=None) -> Optional[tuple]:
    x = args[0]
    if len(args) != 1 or kwargs:
        return None
    if x.dim() == 0 or x.shape[-1] != m.in_features:
        got = x.shape[-1] if x.dim() else "a 0-D input"
        raise ShapeMismatch(f"expects {m.in_features} features in the last dimension, got {got}")
    return tuple(x.shape[:-1]) + (m.out_features,)


@register_cost(nn.Linear, name="linear", kind="linear", shape=_linear_output_shape)
def _linear_module(call: Call) -> OpCost:
    m = call.module
    return OpCost(macs=call.output.numel() * m.in_features, other_ops=call.output.numel() if m.bias is not None else 0)


@register_cost(F.linear, name="linear", kind="linear")
def _linear_function(call: Call) -> OpCost:
    w = call.arg(1, "weight")
    bias = call.arg(2, "bias")
    return OpCost(macs=call.output.numel() * w.shape[-1], other_ops=call.output.numel() if bias is not None else 0)


@register_cost(nn.Bilinear, name="bilinear", kind="linear")
def _bilinear_module(call: Call) -> OpCost:
    m = call.module
    return OpCost(macs=call.output.numel() * m.in1_features * m.in2_features)


@register_cost(torch.matmul, operator.matmul, torch.mm, torch.bmm, name="matmul", kind="matmul")
@register_cost("matmul", "mm", "bmm", "__matmul__", name="matmul", kind="matmul")
def _matmul(call: Call) -> OpCost:
    a = call.arg(0, "input")
    if a is None or not isinstance(a, torch.Tensor):
        a = call.args[0]
    inner = a.shape[-1]
    return OpCost(macs=call.output.numel() * inner)


@register_cost(torch.addmm, torch.baddbmm, name="addmm", kind="matmul")
def _addmm(call: Call) -> OpCost:  # addmm(bias, a, b) / baddbmm(bias, a, b)
    a = call.arg(1, "mat1", call.kwargs.get("batch1"))
    return OpCost(macs=call.output.numel() * a.shape[-1], other_ops=call.output.numel())


@register_cost(torch.einsum, name="einsum", kind="matmul")
def _einsum(call: Call) -> OpCost:
    equation = call.args[0]
    operands = call.args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    lhs = equation.replace(" ", "").split("->")[0].split(",")
    sizes: Dict[str, int] = {}
    for letters, t in zip(lhs, operands):
        if "..." in letters:  # broadcast dims count once, taken from the output
            return OpCost(macs=call.output.numel() * _contracted(lhs, equation, sizes, operands))
        for letter, size in zip(letters, t.shape):
            sizes[letter] = max(sizes.get(letter, 1), int(size))
    if len(operands) < 2:
        return OpCost(other_ops=math.prod(sizes.values()))
    return OpCost(macs=math.prod(sizes.values()))


def _contracted(lhs, equation, sizes, operands) -> int:
    out = equation.replace(" ", "").split("->")[1] if "->" in equation else ""
    contracted = 1
    for letters, t in zip(lhs, operands):
        letters = letters.replace("...", "")
        for letter, size in zip(letters, t.shape[-len(letters):] if letters else ()):
            if letter not in out and letter not in sizes:
                sizes[letter] = int(size)
                contracted *= int(size)
    return contracted


@register_cost(F.scaled_dot_product_attention, name="attention", kind="matmul")
def _sdpa(call: Call) -> OpCost:
    q, k, v = call.args[:3]
    scores = math.prod(q.shape[:-1]) * k.shape[-2]
    return OpCost(macs=scores * q.shape[-1] + scores * v.shape[-1], other_ops=scores)


@register_cost(nn.MultiheadAttention, name="multihead_attention", kind="linear")
def _mha_module(call: Call) -> OpCost:
    m: nn.MultiheadAttention = call.module
    q, k = call.args[0], call.args[1]
    e = m.embed_dim
    lq = q.numel() // e
    lk = k.numel() // m.kdim
    batch = q.shape[1] if (q.dim() == 3 and not m.batch_first) else q.shape[0] if q.dim() == 3 else 1
    tgt, src = lq // batch, lk // batch
    proj = lq * e * e + 2 * lk * m.kdim * e  # q, k, v projections (kdim == vdim in the common case)
    attention = 2 * batch * tgt * src * e
    out = lq * e * e
    return OpCost(macs=proj + attention + out, other_ops=batch * m.num_heads * tgt * src)


_GATES = ((nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1), (nn.LSTMCell, 4), (nn.GRUCell, 3), (nn.RNNCell, 1))


def recurrent_gates(module: nn.Module) -> Optional[int]:
    """Gate matrices of a recurrent module (LSTM 4, GRU 3, RNN 1, cells alike); ``None`` for others."""
    return next((g for cls, g in _GATES if isinstance(module, cls)), None)


def recurrent_matrices(module: nn.Module) -> List[Tuple[int, int]]:
    """The weight matrices one step of a recurrent module multiplies, as ``(rows, cols)``: per layer
    and direction one gate matrix ``(input + hidden_out, gates * hidden)`` and, with ``proj_size``,
    a projection ``(hidden, proj)``. The one walk over a recurrent module's layers (MACs and tiles).

    >>> recurrent_matrices(nn.LSTM(8, 16, num_layers=2, bidirectional=True))
    [(24, 64), (24, 64), (48, 64), (48, 64)]
    """
    gates, hidden = recurrent_gates(module), module.hidden_size
    if isinstance(module, nn.RNNCellBase):
        return [(module.input_size + hidden, gates * hidden)]
    proj = getattr(module, "proj_size", 0) or 0
    hidden_out = proj or hidden
    directions = 2 if module.bidirectional else 1
    matrices = []
    for layer in range(module.num_layers):
        in_size = module.input_size if layer == 0 else hidden_out * directions
        for _ in range(directions):
            matrices.append((in_size + hidden_out, gates * hidden))
            if proj:
                matrices.append((hidden, proj))
    return matrices


@register_cost(nn.LSTM, nn.LSTMCell, name="lstm", kind="recurrent")
@register_cost(nn.GRU, nn.GRUCell, name="gru", kind="recurrent")
@register_cost(nn.RNN, nn.RNNCell, name="rnn", kind="recurrent")
def _recurrent_module(call: Call) -> OpCost:
    m = call.module
    gates = recurrent_gates(m)
    x = call.args[0]
    per_step = sum(rows * cols for rows, cols in recurrent_matrices(m))
    if isinstance(m, nn.RNNCellBase):
        steps = x.shape[0] if x.dim() == 2 else 1
        return OpCost(macs=steps * per_step)
    steps = x.shape[0] * x.shape[1] if x.dim() == 3 else x.shape[0]
    directions = 2 if m.bidirectional else 1
    return OpCost(macs=steps * per_step, other_ops=directions * steps * m.num_layers * gates * m.hidden_size)


#: the arguments of F.max_pool2d / F.avg_pool2d, in order (a module holds the same names as attributes)
_MAX_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVG_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")


def _pool_settings(m, args: Sequence[Any], kwargs, names: Tuple[str, ...]) -> Optional[Dict[str, Any]]:
    """A 2-D pool call's arguments by name (a module's from its attributes), None where they are not plain."""
    if m is not None:
        return {"input": args[0], **{k: getattr(m, k) for k in names[1:]}} if len(args) == 1 and not kwargs else None
    given = dict(zip(names, args))
    if len(args) > len(names) or (set(kwargs) - set(names[len(args):])) or "kernel_size" not in {*given, *kwargs}:
        return None
    return {**given, **kwargs}


def _pair(value, default) -> Optional[Tuple[int, int]]:
    """``value`` as (height, width) the way torch's 2-D pools read it, None where it is not plain ints."""
    if value is None or (isinstance(value, (tuple, list)) and len(value) == 0):
        value = default
    if isinstance(value, (tuple, list)) and len(value) in (1, 2):
        value = tuple(value) * (3 - len(value))
    elif type(value) is int:
        value = (value, value)
    return value if isinstance(value, tuple) and len(value) == 2 and all(type(v) is int for v in value) else None


def _pooled_size(size: int, kernel: int, pad: int, stride: int, dilation: int, ceil_mode: bool) -> int:
    """One spatial size after pooling (torch's ``pooling_output_shape``: a window may start in the left
    padding but not in the right one)."""
    out = (size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    return out - 1 if ceil_mode and (out - 1) * stride >= size + pad else out


def _pool2d_shape(names: Tuple[str, ...]):
    """The shape rule of a 2-D max (``names``: :data:`_MAX_POOL_ARGS`) or average pool: the output shape of a
    call torch certainly accepts (contiguous 3-D / 4-D input of non-zero sizes, positive kernel, stride and
    dilation, padding at most half the kernel, an output of at least one element per side), else None."""
    def shape(m, args: Sequence[Any], kwargs) -> Optional[tuple]:
        given = _pool_settings(m, args, kwargs, names)
        if given is None or given.get("return_indices") or given.get("divisor_override") is not None:
            return None
        x, kernel = given["input"], _pair(given["kernel_size"], None)
        stride = _pair(given.get("stride"), kernel) if kernel else None
        padding, dilation = _pair(given.get("padding", 0), None), _pair(given.get("dilation", 1), None)
        if None in (kernel, stride, padding, dilation) or x.dim() not in (3, 4) or 0 in x.shape or \
                not x.is_contiguous() or min(kernel + stride + dilation) < 1 or min(padding) < 0 or \
                any(p > k // 2 for k, p in zip(kernel, padding)):  # (torch's bound, dilation or not)
            return None
        ceil_mode = bool(given.get("ceil_mode", False))
        out = tuple(_pooled_size(n, *settings, ceil_mode)
                    for n, settings in zip(x.shape[-2:], zip(kernel, padding, stride, dilation)))
        return tuple(x.shape[:-2]) + out if min(out) >= 1 else None

    return shape


@register_cost(nn.MaxPool2d, F.max_pool2d, name="pool", kind="pool", shape=_pool2d_shape(_MAX_POOL_ARGS))
@register_cost(nn.AvgPool2d, F.avg_pool2d, name="pool", kind="pool", shape=_pool2d_shape(_AVG_POOL_ARGS))
@register_cost(nn.MaxPool1d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool3d, name="pool", kind="pool")
@register_cost(F.max_pool1d, F.max_pool3d, F.avg_pool1d, F.avg_pool3d, F.max_pool2d_with_indices, name="pool",
               kind="pool")
def _pool(call: Call) -> OpCost:
    m = call.module
    kernel = m.kernel_size if m is not None else call.arg(1, "kernel_size")
    out = tensors_in(call.output)[0]  # max pooling may also return indices
    if isinstance(kernel, int):
        kernel = (kernel,) * max(out.dim() - 2, 1)
    return OpCost(other_ops=out.numel() * math.prod(kernel))


#: interpolation modes and the input dims they take (the rest take 3-D to 5-D inputs)
_MODE_DIMS = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}
_INTERPOLATE_ARGS = ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")


def _interpolate_shape(m, args: Sequence[Any], kwargs) -> Optional[tuple]:
    """F.interpolate's output shape for a call it certainly accepts, else None (torch's checks decide)."""
    given = dict(zip(_INTERPOLATE_ARGS, args), **kwargs)
    if m is not None:
        given.update(size=m.size, scale_factor=m.scale_factor, mode=m.mode, align_corners=m.align_corners)
    x, size, scale, mode = args[0], given.get("size"), given.get("scale_factor"), given.get("mode", "nearest")
    spatial = x.dim() - 2
    if not 1 <= spatial <= 3 or _MODE_DIMS.get(mode, x.dim()) != x.dim() or given.get("antialias") or \
            (given.get("align_corners") is not None and mode not in _MODE_DIMS) or (size is None) == (scale is None):
        return None
    if size is not None:
        out = (size,) * spatial if isinstance(size, int) else tuple(size)
    else:
        scale = (scale,) * spatial if isinstance(scale, (int, float)) else tuple(scale)
        out = tuple(math.floor(i * float(f)) for i, f in zip(x.shape[2:], scale)) if len(scale) == spatial else ()
    if len(out) != spatial or min(out) < 1 or 0 in x.shape[1:]:
        return None
    return tuple(x.shape[:2]) + tuple(int(s) for s in out)


@register_cost(nn.Upsample, nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d, F.interpolate, name="interpolate",
               kind="resize", shape=_interpolate_shape)
@register_cost(F.upsample, F.upsample_bilinear, F.upsample_nearest, name="interpolate", kind="resize")
def _interpolate(call: Call) -> OpCost:
    mode = call.module.mode if call.module is not None else call.arg(3, "mode", "nearest")
    taps = {"nearest": 1, "linear": 2, "bilinear": 4, "bicubic": 16, "trilinear": 8, "area": 1}.get(mode, 1)
    return OpCost(other_ops=call.output.numel() * taps)


def _cat_shape(m, args: Sequence[Any], kwargs) -> Optional[tuple]:
    tensors = args[0] if args else kwargs.get("tensors")
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not isinstance(tensors, (list, tuple)) or not tensors or set(kwargs) - {"tensors", "dim"}:
        return None
    first = tensors[0].shape
    if not first or any(t.dim() != len(first) for t in tensors) or not -len(first) <= dim < len(first):
        return None  # legacy empty-tensor concatenation, a scalar or a bad dim: let torch decide
    dim = dim % len(first)
    if any(t.shape[:dim] != first[:dim] or t.shape[dim + 1:] != first[dim + 1:] for t in tensors):
        return None
    return tuple(first[:dim]) + (sum(t.shape[dim] for t in tensors),) + tuple(first[dim + 1:])


# concatenation does no arithmetic; registered apart from ``free`` only for its shape rule
@register_cost(torch.cat, torch.concat, name="shape", kind="shape", shape=_cat_shape)
def _concatenate(call: Call) -> OpCost:
    return free(call)


#: what an op nobody registered gets: no cost, reported so users see the gap
UNKNOWN = OpInfo("unknown", "other", free)
