"""Layer geometry and tiles: the one place that decodes a weight's shape and cuts it into arrays.

:func:`geometry_of_module` / :func:`geometry_of_weight` decode a conv / transposed conv / linear
weight into a :class:`LayerGeometry` (input and output channels, groups, kernel, bias), the
weight matrix of one group having ``rows_g = Cin/groups * prod(kernel)`` rows and ``Cout/groups``
output columns (a transposed conv is the equivalent direct conv over the zero-inserted input).

:func:`tile_grouped` cuts ``groups`` such blocks into arrays for one ``depthwise`` strategy and
returns a :class:`Tiling`: its physical row tiles (balanced, ``ceil(rows / tiles)`` rows each)
and column blocks. The mapping counts ``Tiling.tiles``; :func:`plan_tiles` expands the same
tiling into the per-group pieces the simulator programs, so the two cannot disagree.

>>> g = geometry_of_weight("conv_transpose2d", (8, 2, 3, 3), groups=2, has_bias=False)
>>> g.cin, g.cout, g.groups, g.rows_per_group, g.cout_per_group
(8, 4, 2, 36, 2)
>>> tile_grouped(g.rows_per_group, 2 * 8, g.groups, ArraySpec(32, 32), "dense").tiles
3
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from torch import nn

from graphcost.errors import UserError
from graphcost.ops import recurrent_gates, recurrent_matrices

from .specs import DEPTHWISE_STRATEGIES, ArraySpec

#: Argument index of ``groups`` in ``F.conv*d`` and ``F.conv_transpose*d`` (both put it 7th).
FUNCTIONAL_GROUPS_INDEX = 6


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# --------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class LayerGeometry:
    """A weight layer as the arrays see it: ``kind`` is ``conv``, ``convT`` or ``linear``
    (a linear layer is a 1x1 conv over one pixel)."""

    kind: str
    cin: int
    cout: int
    groups: int
    kernel: Tuple[int, ...]
    has_bias: bool

    @property
    def kernel_size(self) -> int:
        """Kernel positions ``prod(kernel)`` (1 for a linear layer)."""
        return math.prod(self.kernel)

    @property
    def cin_per_group(self) -> int:
        return self.cin // self.groups

    @property
    def cout_per_group(self) -> int:
        return self.cout // self.groups

    @property
    def rows_per_group(self) -> int:
        """Weight rows of one group's matrix, bias row excluded: ``Cin/groups * prod(kernel)``."""
        return self.cin_per_group * self.kernel_size

    def grouped_weight(self, weight):
        """``weight`` (a tensor of this layer's parameter shape) as ``(groups, Cout/g, Cin/g, K)``."""
        g, cg, co_g = self.groups, self.cin_per_group, self.cout_per_group
        if self.kind == "linear":
            return weight.reshape(1, self.cout, self.cin, 1)
        if self.kind == "convT":  # (Cin, Cout/g, k..)
            return weight.reshape(g, cg, co_g, -1).permute(0, 2, 1, 3)
        return weight.reshape(g, co_g, cg, -1)


def geometry_of_weight(op: str, weight_shape: Sequence[int], groups: int = 1, has_bias: bool = False
                       ) -> LayerGeometry:
    """Decode a weight of shape ``weight_shape`` used by op ``op`` (``linear``, ``conv*d``,
    ``conv_transpose*d``, or a module type name such as ``Conv2d``)."""
    shape = tuple(int(s) for s in weight_shape)
    name = op.lower()
    if name == "linear":
        return LayerGeometry("linear", shape[-1], shape[0], 1, (1,), has_bias)
    groups = int(groups or 1)
    if "transpose" in name:  # (Cin, Cout/groups, k..)
        return LayerGeometry("convT", shape[0], shape[1] * groups, groups, shape[2:], has_bias)
    return LayerGeometry("conv", shape[1] * groups, shape[0], groups, shape[2:], has_bias)  # (Cout, Cin/g, k..)


def is_hf_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2 and kin): a linear layer whose weight is stored transposed,
    ``(in, out)``, computing ``x @ W + b`` (``transformers.pytorch_utils.Conv1D``; matched by name and
    its ``nf`` attribute, so transformers need not be imported)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and getattr(module, "weight", None) is not None


def geometry_of_module(module: nn.Module) -> Optional[LayerGeometry]:
    """The geometry of a ``Conv*d`` / ``ConvTranspose*d`` / ``Linear`` module, or HF's ``Conv1D``
    (a linear layer of the transposed weight), ``None`` for others.

    >>> import torch
    >>> class Conv1D(nn.Module):          # HF's layout: weight (in, out)
    ...     def __init__(self, nf, nx):
    ...         super().__init__()
    ...         self.nf, self.weight, self.bias = nf, nn.Parameter(torch.empty(nx, nf)), nn.Parameter(torch.empty(nf))
    >>> geometry_of_module(Conv1D(192, 64)) == geometry_of_module(nn.Linear(64, 192))
    True
    """
    if isinstance(module, nn.Linear):
        return geometry_of_weight("linear", module.weight.shape, 1, module.bias is not None)
    if is_hf_conv1d(module):
        rows, cols = module.weight.shape
        return geometry_of_weight("linear", (cols, rows), 1, getattr(module, "bias", None) is not None)
    if isinstance(module, nn.modules.conv._ConvNd):
        op = "conv_transpose" if module.transposed else "conv"
        return geometry_of_weight(op, module.weight.shape, module.groups, module.bias is not None)
    return None


# --------------------------------------------------------------------------- weight shapes of any layer
@dataclass
class WeightShape:
    """What the tiling needs from one weight layer: its matrices ``(rows_g without bias, cols_g in
    weights, groups)``, whether it has a bias, the MVMs of each call, the independent MVMs of one
    call (``max_replicas``), and whether the decoding is approximate (a module of unknown kind)."""

    matrices: List[Tuple[int, int, int]]
    has_bias: bool
    call_mvms: List[int] = field(default_factory=list)
    max_replicas: int = 1
    approximate: bool = False


def vectors_of(out_shape: Sequence[int], channels: int) -> int:
    """Output vectors (MVMs) of a call: elements of its output over its ``channels``."""
    if not out_shape or channels <= 0:
        return 1
    return max(1, math.prod(out_shape) // channels)


def geometry_shape(geometry: LayerGeometry, out_shapes: Sequence[Sequence[int]]) -> WeightShape:
    """A conv / transposed conv / linear layer: one matrix per group, one MVM per output vector."""
    shape = WeightShape([(geometry.rows_per_group, geometry.cout_per_group, geometry.groups)], geometry.has_bias)
    shape.call_mvms = [vectors_of(s, geometry.cout) for s in out_shapes]
    shape.max_replicas = max(shape.call_mvms, default=1)
    return shape


def recurrent_shape(module: nn.Module, out_shapes: Sequence[Sequence[int]]) -> Optional[WeightShape]:
    """A recurrent module (LSTM / GRU / RNN and cells): one gate matrix per layer and direction
    (:func:`graphcost.ops.recurrent_matrices`); a step's vectors run one after another; ``None``
    for a module that is not recurrent.

    >>> recurrent_shape(nn.LSTM(8, 16), [(5, 2, 16)]).call_mvms      # 5 steps x 2 sequences
    [10]
    """
    if recurrent_gates(module) is None:
        return None
    matrices = [(rows, cols, 1) for rows, cols in recurrent_matrices(module)]
    if isinstance(module, nn.RNNCellBase):  # one step: out (N, hidden) or (hidden,)
        mvms = [int(s[0]) if len(s) == 2 else 1 for s in out_shapes]
        return WeightShape(matrices, module.bias, mvms, max(mvms, default=1))
    proj = getattr(module, "proj_size", 0) or 0
    steps_per_vector = module.num_layers * (2 if proj else 1)  # directions run side by side
    mvms, independent = [], 1
    for s in out_shapes:  # output (L, N, D*H), (N, L, D*H) batch_first, or (L, D*H) unbatched
        if len(s) == 3:
            mvms.append(s[0] * s[1] * steps_per_vector)
            independent = max(independent, int(s[0] if module.batch_first else s[1]))
        else:
            mvms.append((s[0] if s else 1) * steps_per_vector)
    return WeightShape(matrices, module.bias, mvms, independent)


def generic_shape(module: nn.Module, call_macs: Sequence[int]) -> Optional[WeightShape]:
    """Any other weight module, approximately: every >= 2-D parameter is one matrix (``rows = numel
    / out``, ``cols = out``); a call's MVMs are its MACs over the MACs of one pass over all
    matrices. ``None`` when the module has no weight matrix."""
    matrices = [(p.numel() // int(p.shape[0]), int(p.shape[0]), 1) for p in module.parameters() if p.dim() >= 2]
    if not matrices:
        return None
    per_pass = sum(r * c for r, c, _ in matrices)
    mvms = [max(1, ceil_div(macs, per_pass)) for macs in call_macs]
    has_bias = any(p.dim() == 1 for p in module.parameters())
    return WeightShape(matrices, has_bias, mvms, max(mvms, default=1), approximate=True)


# --------------------------------------------------------------------------- tiles
def balanced_split(n: int, parts: int) -> List[Tuple[int, int]]:
    """``range(n)`` cut into at most ``parts`` contiguous pieces of ``ceil(n / parts)`` (balanced)."""
    per = ceil_div(n, parts)
    return [(lo, min(n, lo + per)) for lo in range(0, n, per)]


def row_tiles(rows: int, bias_row: int, R: int) -> Tuple[Tuple[int, int], ...]:
    """``ceil((rows + bias_row) / R)`` balanced row tiles of a matrix whose last row is the bias
    row (if any); ranges are in weight rows, so the last tile keeps room for the bias row."""
    total = rows + bias_row
    return tuple((lo, min(hi, rows)) for lo, hi in balanced_split(total, ceil_div(total, R)))


@dataclass(frozen=True)
class Tiling:
    """How one layer's blocks occupy arrays.

    ``row_tiles``: the weight-row ranges of the physical row tiles (in the rows of the stacked
    block-diagonal matrix for ``dense`` / ``packed`` within an array, in one group's rows when
    every group is tiled alike: ungrouped, ``time-multiplexed``, ``packed`` blocks tiled alone);
    ``col_blocks``: arrays side by side along each row tile's columns; ``per_group``: every group
    has its own row tiles (``packed`` blocks larger than an array).
    """

    tiles: int
    cycles_per_mvm: int
    strategy: str
    row_tiles: Tuple[Tuple[int, int], ...] = ()
    col_blocks: int = 1
    per_group: bool = False
    shared_rows: bool = False  # time-multiplexed: all groups share the row tiles
    packed_groups: Tuple[Tuple[int, int], ...] = ()  # packed in one array: the groups of each array


def row_drives(tiling: Tiling, rows_g: int, groups: int, bias_row: int = 0) -> int:
    """Word lines driven per MVM and input cycle: every row of a block once in each array of its
    row tile (``col_blocks`` arrays side by side share the inputs, each drives its own rows).

    >>> a = ArraySpec(256, 256)
    >>> row_drives(tile_grouped(576, 1024, 1, a, "dense"), 576, 1)    # 3 row tiles x 4 column blocks
    2304
    """
    if groups == 1 or tiling.strategy == "dense":
        return (groups * rows_g + bias_row) * tiling.col_blocks
    if tiling.packed_groups:
        return groups * rows_g + bias_row * len(tiling.packed_groups)
    blocks = tiling.col_blocks if tiling.per_group else 1  # time-multiplexed: a group's rows, in its block
    return groups * (rows_g + bias_row) * blocks


def read_columns(tiling: Tiling, cols_g: int, groups: int) -> int:
    """Physical columns digitised per MVM and input cycle (one ADC conversion each): every column
    of a block once per row tile holding it.

    >>> read_columns(tile_grouped(576, 1024, 1, ArraySpec(256, 256), "dense"), 1024, 1)
    3072
    """
    per_block_tiles = 1 if tiling.packed_groups else len(tiling.row_tiles)
    return per_block_tiles * groups * cols_g


def tile_matrix(rows: int, cols: int, array: ArraySpec) -> int:
    """Tiles of a dense ``rows x cols`` matrix: ``ceil(rows / R) * ceil(cols / C)``.

    >>> tile_matrix(576, 128, ArraySpec(256, 256))
    3
    """
    return ceil_div(rows, array.rows) * ceil_div(cols, array.cols)


def _multiplexed_cycles(cols_g: int, groups: int, C: int) -> int:
    """Most groups any column block holds (they are driven one after another)."""
    total = groups * cols_g
    starts = range(0, total, C)
    return max((min(lo + C, total) - 1) // cols_g - lo // cols_g + 1 for lo in starts)


def tile_grouped(rows_g: int, cols_g: int, groups: int, array: ArraySpec, strategy: str,
                 bias_row: int = 0) -> Tiling:
    """Tiles of ``groups`` independent ``rows_g x cols_g`` blocks (a grouped conv).

    ``rows_g`` excludes the bias row; ``bias_row`` (0 or 1) is one shared row per matrix;
    ``cols_g`` counts physical columns (bit slices and differential pairs included).

    * ``dense`` — the block-diagonal ``(groups*rows_g + bias) x (groups*cols_g)`` matrix, zeros
      included: ``ceil(.. / R) * ceil(.. / C)`` tiles, one cycle per MVM.
    * ``packed`` — ``k = min((R - bias) // rows_g, C // cols_g)`` blocks per array on its
      diagonal: ``ceil(groups / k)`` tiles, one cycle per MVM (blocks larger than an array are
      tiled alone: ``groups * ceil((rows_g + bias) / R) * ceil(cols_g / C)``).
    * ``time-multiplexed`` — one kernel per column, all groups share the rows:
      ``ceil((rows_g + bias) / R) * ceil(groups*cols_g / C)`` tiles; the groups in one array
      are driven one after another, so an MVM takes as many cycles as the most groups any
      array holds.

    >>> a = ArraySpec(256, 256)             # depthwise 3x3 over 64 channels, 8 columns a weight
    >>> [tile_grouped(9, 8, 64, a, s).tiles for s in ("dense", "packed", "time-multiplexed")]
    [6, 3, 2]
    >>> tile_grouped(9, 8, 64, a, "time-multiplexed").cycles_per_mvm
    32
    """
    if strategy not in DEPTHWISE_STRATEGIES:
        raise UserError(f"unknown depthwise strategy {strategy!r}; use one of {', '.join(DEPTHWISE_STRATEGIES)}")
    R, C = array.rows, array.cols
    if groups == 1:
        rt = row_tiles(rows_g, bias_row, R)
        return Tiling(len(rt) * ceil_div(cols_g, C), 1, "dense", rt, ceil_div(cols_g, C))
    if strategy == "dense":
        rt, blocks = row_tiles(groups * rows_g, bias_row, R), ceil_div(groups * cols_g, C)
        return Tiling(len(rt) * blocks, 1, strategy, rt, blocks)
    if strategy == "packed":
        if rows_g + bias_row <= R and cols_g <= C:
            per_array = min((R - bias_row) // rows_g, C // cols_g, groups)
            packs = tuple(balanced_split(groups, ceil_div(groups, per_array)))
            rt = tuple((lo * rows_g, hi * rows_g) for lo, hi in packs)
            return Tiling(len(rt), 1, strategy, rt, 1, packed_groups=packs)
        rt, blocks = row_tiles(rows_g, bias_row, R), ceil_div(cols_g, C)
        return Tiling(groups * len(rt) * blocks, 1, strategy, rt, blocks, per_group=True)
    rt, blocks = row_tiles(rows_g, bias_row, R), ceil_div(groups * cols_g, C)
    return Tiling(len(rt) * blocks, _multiplexed_cycles(cols_g, groups, C), strategy, rt, blocks,
                  shared_rows=True)


def tile_layer(geometry: LayerGeometry, array: ArraySpec, strategy: str) -> Tiling:
    """:func:`tile_grouped` for one layer on ``array`` (bias row when ``array.analog_bias``)."""
    bias_row = int(array.analog_bias and geometry.has_bias)
    return tile_grouped(geometry.rows_per_group, geometry.cout_per_group * array.columns_per_weight,
                        geometry.groups, array, strategy, bias_row)


# --------------------------------------------------------------------------- the simulator's layout
@dataclass(frozen=True)
class TilePiece:
    """One piece the simulator programs: weight rows ``[lo, hi)`` of the stacked matrix (row =
    input channel * K + kernel position) and output channels ``[out_lo, out_hi)``; ``key`` is the
    physical row tile, ``col_base`` the output channel whose first column starts its column block."""

    lo: int
    hi: int
    out_lo: int
    out_hi: int
    key: int
    col_base: int


@dataclass(frozen=True)
class TilePlan:
    """A :class:`Tiling` expanded into :class:`TilePiece` s, with how their partial sums combine:
    ``sum`` (row tiles of a group add up), ``concat`` (packed), ``scatter`` (dense grouped)."""

    tiling: Tiling
    pieces: Tuple[TilePiece, ...]
    K: int
    span: int            # input channels one piece gathers (max over pieces)
    cols: int            # output channels one piece holds (max over pieces)
    combine: str
    groups: int
    tiles_per_group: int
    col_local: bool      # column blocks counted from col_base (True) or from channel 0 (False)
    one_array: bool      # every piece is a single array (packed)
    physical: Optional[Tuple[int, ...]] = None  # sparse plans: the physical piece of every (piece, group) part

    @property
    def arrays(self) -> int:
        """Arrays the layer occupies: ``tiling.tiles`` (the mapping's count)."""
        return self.tiling.tiles


def _plan(tiling, pieces, K, combine, groups, tiles_per_group, col_local, one_array, physical=None) -> TilePlan:
    span = max((p.hi - 1) // K - p.lo // K + 1 for p in pieces)
    cols = max(p.out_hi - p.out_lo for p in pieces)
    return TilePlan(tiling, tuple(pieces), K, span, cols, combine, groups, tiles_per_group, col_local, one_array,
                    physical)


def _physical_plan(geometry: LayerGeometry, tiling: Tiling) -> TilePlan:
    g, K, co_g, rows_g = geometry.groups, geometry.kernel_size, geometry.cout_per_group, geometry.rows_per_group
    cg = geometry.cin_per_group
    weight_tiles = [(lo, hi) for lo, hi in tiling.row_tiles if lo < hi]  # a bias-only tile holds no weight
    if g > 1 and tiling.strategy == "dense":
        pieces = [TilePiece(lo, hi, (lo // K) // cg * co_g, ((hi - 1) // K // cg + 1) * co_g, t, 0)
                  for t, (lo, hi) in enumerate(weight_tiles)]
        return _plan(tiling, pieces, K, "scatter", g, 1, False, False)
    if tiling.packed_groups:
        pieces = [TilePiece(lo * rows_g, hi * rows_g, lo * co_g, hi * co_g, t, lo * co_g)
                  for t, (lo, hi) in enumerate(tiling.packed_groups)]
        return _plan(tiling, pieces, K, "concat", g, 1, True, True)
    per_group, n = tiling.per_group, len(weight_tiles)
    pieces = [TilePiece(gi * rows_g + lo, gi * rows_g + hi, gi * co_g, (gi + 1) * co_g,
                        gi * n + r if per_group else r, gi * co_g if per_group else 0)
              for gi in range(g) for r, (lo, hi) in enumerate(weight_tiles)]
    return _plan(tiling, pieces, K, "sum", g, n, per_group, False)


def plan_tiles(geometry: LayerGeometry, array: ArraySpec, strategy: str, sparse: bool = False) -> TilePlan:
    """The pieces of ``geometry`` on ``array`` the simulator programs.

    ``sparse`` (grouped ``dense`` / ``packed`` layers whose structural zeros are exactly 0, i.e.
    no programming noise or faults, differential cells): every physical tile is split into its
    (tile, group) pieces, so the simulation costs the grouped conv itself and not ``groups``-fold
    more; ADC ranges and read noise still follow the physical tiles."""
    plan = _physical_plan(geometry, tile_layer(geometry, array, strategy))
    if not sparse or geometry.groups == 1 or plan.combine == "sum":
        return plan
    rows_g, co_g = geometry.rows_per_group, geometry.cout_per_group
    pieces, physical = [], []
    for t, tile in enumerate(plan.pieces):
        for gi in range(tile.lo // rows_g, (tile.hi - 1) // rows_g + 1):
            lo, hi = max(tile.lo, gi * rows_g), min(tile.hi, (gi + 1) * rows_g)
            pieces.append(TilePiece(lo, hi, gi * co_g, (gi + 1) * co_g, tile.key, tile.col_base))
            physical.append(t)
    return _plan(plan.tiling, pieces, plan.K, "scatter", geometry.groups, 1, plan.col_local, plan.one_array,
                 tuple(physical))
