"""Costs of calls graphcost has no formula for, counted per aten op on fake tensors.

An opaque module (an ``nn`` leaf nobody registered, or a submodule fx cannot trace) and an
fx-wrapped leaf function (``torch.fx.wrap``, e.g. torchvision's ``shifted_window_attention``)
run once under :class:`AtenCost`, a dispatch mode that sees every aten op they execute:

* ops with a formula in ``torch.utils.flop_counter`` (mm, bmm, addmm, convolution, attention),
  and the grouped matmuls of mixture-of-experts layers, count ``flops // 2`` MACs;
* pointwise ops (``torch.Tag.pointwise``), reductions, normalisations and integer division count
  ``other_ops``, and so do ops that compute without any multiply-accumulate: sorting, top-k,
  medians, histograms and counts, scatter-adds (one per element they read);
* views, copies, factories, indexing, comparisons, random draws and asserts do no arithmetic;
* anything else is *uncounted*: listed with its calls and an example shape, so an analysis can
  say it is incomplete instead of silently counting 0. Only ops that may multiply-accumulate
  land here (FFTs, linear algebra, an unknown custom kernel): ``complete`` means every MAC was
  counted.

They run on the slow, complete path: fused fast paths (``nn.TransformerEncoderLayer``'s
``_transformer_encoder_layer_fwd``) hide their matmuls from any counter, so they are switched off;
attention counts as QKᵀ + AV whatever kernel runs it (math, flash, CPU flash).

>>> import torch
>>> with AtenCost() as cost, torch.no_grad():
...     _ = torch.softmax(torch.ones(2, 3) @ torch.ones(3, 4), -1)
>>> cost.macs, cost.other_ops, dict(cost.uncounted)
(24, 8, {})
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from . import ops

aten = torch.ops.aten

#: aten ops that do no arithmetic besides the views (``func.is_view``): copies, factories,
#: gathers, concatenation, padding, random masks, asserts and metadata queries
_FREE = frozenset(p for p in (
    aten.clone, aten._to_copy, aten.copy_, aten.copy, aten.empty, aten.empty_like, aten.empty_strided,
    aten.new_empty, aten.new_empty_strided, aten.zeros, aten.zeros_like, aten.ones, aten.ones_like, aten.full,
    aten.full_like, aten.new_zeros, aten.new_ones, aten.new_full, aten.arange, aten.scalar_tensor, aten.fill_,
    aten.zero_, aten.fill, aten.lift_fresh, aten.lift_fresh_copy, aten.detach, aten.alias, aten.cat, aten.stack,
    aten.index, aten.index_select, aten.gather, aten.embedding, aten.constant_pad_nd, aten.reflection_pad1d,
    aten.reflection_pad2d, aten.replication_pad1d, aten.replication_pad2d, aten.roll, aten.flip, aten.repeat,
    aten.tril, aten.triu, aten.split_with_sizes_copy, aten.slice_scatter, aten.select_scatter, aten.index_put,
    aten.index_put_, aten.masked_fill, aten.masked_fill_, aten.dropout, aten.native_dropout, aten.bernoulli,
    aten.bernoulli_, aten.rand, aten.rand_like, aten.randn, aten.randn_like, aten._assert_async,
    aten._assert_scalar, aten.sym_constrain_range_for_size, aten._local_scalar_dense, aten.item,
    aten.is_nonzero, aten.unfold, aten.im2col, aten.pixel_shuffle, aten.pixel_unshuffle, aten.one_hot,
    aten.resize_, aten.set_, aten.contiguous, aten.linspace, aten.eye, aten.tensor_split, aten.split,
    aten.chunk, aten.unbind, aten.unsafe_split, aten.as_strided_scatter, aten.scatter, aten.scatter_,
    aten.channel_shuffle, aten.native_channel_shuffle, aten._unsafe_view, aten.as_strided, aten.as_strided_,
    torch.ops.prim.device,
    getattr(aten, "_assert_tensor_metadata", None),
    aten.masked_scatter, aten.where, aten.eq, aten.ne, aten.lt, aten.le, aten.gt, aten.ge, aten.logical_not,
    aten.logical_and, aten.logical_or, aten.isnan, aten.isinf, aten.any, aten.all, aten.argmax, aten.argmin,
    # comparisons in place, selections of data-dependent size, indexing and index builders
    aten.eq_, aten.ne_, aten.lt_, aten.le_, aten.gt_, aten.ge_, aten.nonzero, aten.nonzero_static,
    getattr(aten, "nonzero_numpy", None), aten.masked_select, aten.take, aten.index_copy, aten.index_copy_,
    aten.index_fill, aten.index_fill_, aten._unsafe_index, aten._unsafe_index_put, aten._unsafe_masked_index,
    getattr(aten, "_unsafe_masked_index_put_accumulate", None), aten.repeat_interleave, aten.tril_indices,
    aten.triu_indices, aten.diag_embed, aten.diagonal_scatter, aten.rot90, aten._reshape_copy, aten.resize_as_,
    aten._resize_output_, aten.lift, aten.masked_scatter_, aten.unsafe_chunk, aten.unsafe_split_with_sizes,
    aten.meshgrid, aten.broadcast_tensors, aten.empty_permuted, aten.max_unpool2d, aten.max_unpool3d, aten.zero,
    aten.tril_, aten.triu_, getattr(aten, "_chunk_cat", None), getattr(aten, "_make_dep_token", None),
    getattr(aten, "_functional_assert_async", None), getattr(aten, "_functional_sym_constrain_range", None),
    getattr(aten, "_functional_sym_constrain_range_for_size", None), getattr(aten, "sym_constrain_range", None),
    # random draws (as bernoulli and rand above)
    aten.randperm, aten.randint, aten.randint_like, aten.multinomial, aten.normal, aten.normal_, aten.uniform,
    aten.uniform_, aten.exponential_, aten.cauchy_, aten.geometric_, aten.log_normal_, aten.poisson,
) if p is not None)

#: ops that compute but never multiply-accumulate (sorting, top-k, selection statistics, histograms
#: and counts, scatter-adds): one other op per element of the argument at this position
_NO_MAC_ARG = {p: position for p, position in (
    (aten.sort, 0), (aten.topk, 0), (aten.kthvalue, 0), (aten.median, 0), (aten.nanmedian, 0), (aten.mode, 0),
    (aten.histc, 0), (getattr(aten, "histogram", None), 0), (aten.bincount, 0), (aten._unique, 0),
    (aten._unique2, 0), (aten.unique_dim, 0), (aten.unique_consecutive, 0), (aten.searchsorted, 1),
    (aten.bucketize, 0), (aten.isin, 0), (aten.cummax, 0), (aten.cummin, 0), (aten.cumprod, 0),
    (aten.logcumsumexp, 0), (aten.index_add, 3), (aten.index_add_, 3), (aten.scatter_add, 3),
    (aten.scatter_add_, 3), (aten.scatter_reduce, 3), (aten.scatter_reduce_, 3), (aten.index_reduce, 3),
    (aten.index_reduce_, 3),
) if p is not None}

#: CPU / vendor attention kernels FlopCounterMode has no formula for: the flash formula
#: (QKᵀ + AV) applies as it stands, so attention counts the same whatever the backend
_ATTENTION_KERNELS = {
    packet: flop_registry[aten._scaled_dot_product_flash_attention]
    for packet in (aten._scaled_dot_product_flash_attention_for_cpu,
                   getattr(aten, "_scaled_dot_product_fused_attention_overrideable", None))
    if packet is not None
}


def _grouped_mm_flops(input, weight, *args, out_val=None, **kwargs) -> int:
    """A grouped matmul (mixture-of-experts experts): every row of ``input`` meets one group's weight,
    so its FLOPs are a plain matmul's whatever the grouping: 2·M·K·N for (M, K) x (G, K, N)
    (and for (M, K) x (K, N) grouped along K), 2·G·M·K·N for (G, M, K) x (G, K, N)."""
    if input.dim() == 2 and weight.dim() == 2:
        return 2 * input.shape[0] * input.shape[1] * weight.shape[1]
    return 2 * out_val.numel() * input.shape[-1]


def _int_mm_flops(a, b, *args, out_val=None, **kwargs) -> int:
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


_MAC_FORMULAS = {**flop_registry, **_ATTENTION_KERNELS, aten._grouped_mm: _grouped_mm_flops,
                 aten._int_mm: _int_mm_flops}
#: custom ops of libraries graphcost knows, by name (they may not be loaded): transformers' CPU
#: grouped matmul, which its MoE experts run where ``torch._grouped_mm`` cannot
_MAC_FORMULAS_BY_NAME = {"transformers.grouped_mm_fallback": _grouped_mm_flops}
#: torchvision's detection kernels without a multiply-accumulate: non-maximum suppression (one op
#: per box coordinate it reads) and RoI pooling / alignment (one per output element, as a resize)
_NO_MAC_BY_NAME = {"torchvision.nms": "input", "torchvision.batched_nms": "input", "torchvision.roi_align": "output",
                   "torchvision.roi_pool": "output", "torchvision.ps_roi_align": "output",
                   "torchvision.ps_roi_pool": "output"}

#: normalisations, softmax, resizes, pooling and integer division: one op per output element, like the
#: registry's modules
_PER_OUTPUT = frozenset((
    aten.floor_divide, aten.floor_divide_,
    aten._softmax, aten._log_softmax, aten.softmax, aten.log_softmax, aten.native_layer_norm,
    aten.native_group_norm, aten.native_batch_norm, aten._native_batch_norm_legit_no_training,
    aten._native_batch_norm_legit, aten._native_batch_norm_legit_functional, aten.upsample_nearest2d,
    aten.upsample_bilinear2d, aten.upsample_bicubic2d, aten._upsample_bilinear2d_aa, aten.upsample_nearest1d,
    aten.upsample_linear1d, aten.upsample_nearest3d, aten.upsample_trilinear3d, aten.max_pool2d_with_indices,
    aten.avg_pool2d, aten.avg_pool1d, aten.avg_pool3d, aten.max_pool3d_with_indices, aten._adaptive_avg_pool2d,
    aten._adaptive_avg_pool3d, aten.adaptive_max_pool2d, aten.cumsum, aten.rms_norm, aten._fused_rms_norm,
    aten._safe_softmax,
))

#: metadata queries FlopCounterMode skips as well: they never reach arithmetic
_METADATA = frozenset(p for p in (
    aten.sym_size, aten.sym_stride, aten.sym_numel, aten.sym_storage_offset, aten.size, aten.stride, aten.numel,
    aten.dim, aten.is_contiguous, aten.sym_is_contiguous, aten.is_strides_like_format,
    aten.is_non_overlapping_and_dense, aten.storage_offset,
) if p is not None)


@dataclass(frozen=True)
class Uncounted:
    """An aten op that computes but has no formula: how often it ran and one example's shapes."""

    calls: int
    shapes: Tuple[Tuple[int, ...], ...]


def _numel(value) -> int:
    return sum(t.numel() for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor))


def _does_no_arithmetic(func, packet) -> bool:
    return packet in _FREE or packet in _METADATA or getattr(func, "is_view", False) or \
        torch.Tag.view_copy in func.tags


def does_no_arithmetic(func: torch._ops.OpOverload) -> bool:
    """Whether an aten op only moves, views, makes or checks data (never counted, see the module doc).

    >>> does_no_arithmetic(aten.transpose.int), does_no_arithmetic(aten.mm.default)
    (True, False)
    """
    return _does_no_arithmetic(func, func.overloadpacket)


class AtenCost(TorchDispatchMode):
    """Counts MACs, other ops and uncounted ops of everything run inside it (see the module doc)."""

    def __init__(self):
        super().__init__()
        self.macs = 0
        self.other_ops = 0
        self._uncounted: Dict[str, Tuple[int, tuple]] = {}
        self._math: Optional[contextlib.ExitStack] = None

    @property
    def uncounted(self) -> Dict[str, Uncounted]:
        return {op: Uncounted(calls, shapes) for op, (calls, shapes) in self._uncounted.items()}

    def __enter__(self):
        self._math = contextlib.ExitStack()
        self._math.enter_context(slow_math_path())
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._math.close()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if is_metadata_query(func):
            return NotImplemented  # as FlopCounterMode: tensor subclasses answer these themselves
        out = decomposed(self, func, args, kwargs)
        if out is not NotImplemented:
            return out
        out = func(*args, **kwargs)
        macs, other_ops, uncounted = op_cost(func, args, kwargs, out)
        self.macs += macs
        self.other_ops += other_ops
        if uncounted:
            tally_uncounted(self._uncounted, func, args, kwargs)
        return out


def decomposed(mode: TorchDispatchMode, func, args, kwargs):
    """``func``'s decomposition run under ``mode`` when :func:`op_cost` has no rule for ``func`` (a
    composite op may decompose into ops it knows, as FlopCounterMode does); else, or when ``func``
    has none, ``NotImplemented``."""
    if is_costed(func):
        return NotImplemented
    with mode:
        return func.decompose(*args, **kwargs)


def tally_uncounted(table: Dict[str, Tuple[int, tuple]], func, args, kwargs) -> None:
    """One more call of an op nobody can count in ``table`` (op -> calls, the first call's shapes)."""
    op = str(func.overloadpacket)
    calls, shapes = table.get(op, (0, ops.shapes_of((args, kwargs))))
    table[op] = (calls + 1, shapes)


def is_metadata_query(func) -> bool:
    """Whether an aten op only asks a tensor for its metadata (sizes, strides, layout)."""
    return func.overloadpacket in _METADATA or func is torch.ops.prim.layout.default


def is_costed(func) -> bool:
    """Whether :func:`op_cost` knows what ``func`` costs (else a composite op may decompose into ops it knows)."""
    packet = func.overloadpacket
    return _mac_formula(packet) is not None or packet in _PER_OUTPUT or packet in _NO_MAC_ARG or \
        str(packet) in _NO_MAC_BY_NAME or \
        torch.Tag.pointwise in func.tags or torch.Tag.reduction in func.tags or _does_no_arithmetic(func, packet)


def _mac_formula(packet):
    return _MAC_FORMULAS.get(packet) or _MAC_FORMULAS_BY_NAME.get(str(packet))


def op_cost(func, args, kwargs, out) -> Tuple[int, int, bool]:
    """(MACs, other ops, uncounted) of one aten call; uncounted when it computes and has no formula.

    >>> a, b = torch.ones(2, 3), torch.ones(3, 4)
    >>> op_cost(aten.mm.default, (a, b), {}, a @ b), op_cost(aten.relu.default, (a,), {}, a)
    ((24, 0, False), (0, 6, False))
    """
    packet = func.overloadpacket
    formula = _mac_formula(packet)
    if formula is not None:
        return int(formula(*args, **kwargs, out_val=out)) // 2, 0, False
    if _does_no_arithmetic(func, packet):  # before the tags: a copy or a comparison is tagged pointwise too
        return 0, 0, False
    if packet in _NO_MAC_ARG:
        position = _NO_MAC_ARG[packet]
        return 0, _numel(args[position:position + 1]), False
    if str(packet) in _NO_MAC_BY_NAME:
        return 0, _numel(args[:1] if _NO_MAC_BY_NAME[str(packet)] == "input" else tree_flatten(out)[0][:1]), False
    if packet in _PER_OUTPUT or torch.Tag.pointwise in func.tags:
        return 0, _numel(out if packet not in _PER_OUTPUT else tree_flatten(out)[0][:1]), False
    if torch.Tag.reduction in func.tags:
        return 0, _numel(args[:1]), False
    return 0, 0, True


#: aten ops (overload packets) that are a layer of weights when a parameter is their weight
_CONV_OPS = frozenset(p for p in (
    aten.conv1d, aten.conv2d, aten.conv3d, aten.convolution, aten._convolution, aten.conv_transpose1d,
    aten.conv_transpose2d, aten.conv_transpose3d, aten.conv_tbc) if p is not None)


def aten_kind(func, macs: int, other_ops: int, uncounted: bool, uses_parameters: bool) -> str:
    """The registry kind of one aten call (a node of a captured aten graph) by what it computed.

    ``conv`` / ``linear`` when it multiplies by parameters (a layer of weights), ``matmul`` when
    it multiplies activations (attention), ``elementwise`` for other arithmetic, ``opaque`` when
    some op it ran has no formula, ``shape`` when it does no arithmetic (views, copies).

    >>> aten_kind(aten.mm.default, 24, 0, False, uses_parameters=True), aten_kind(aten.mm.default, 24, 0, False, False)
    ('linear', 'matmul')
    """
    packet = getattr(func, "overloadpacket", None)
    if macs and uses_parameters:
        return "conv" if packet in _CONV_OPS else "linear"
    if macs:
        return "matmul"
    if uncounted:
        return "opaque"
    return "elementwise" if other_ops else "shape"


@contextlib.contextmanager
def slow_math_path() -> Iterator[None]:
    """No fused ``nn`` fast paths (``_transformer_encoder_layer_fwd``, ``_native_multi_head_attention``)
    while counting, restored afterwards."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
