"""Functional simulation of a network mapped onto analog crossbar arrays: :class:`CrossbarModel`.

``CrossbarModel(model, array, noise, seed=0, depthwise="dense")`` wraps a copy of ``model`` in
which every weight layer (``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``, ``Linear``) is replaced by
an :class:`AnalogLayer`; everything else (batch norm, activations, pooling, resizing, recurrent
layers) stays digital and exact. A module called N times (ItNet's weight-shared iterative
block) is ONE analog layer: it is programmed once per seed, so all N iterations see the same
programming noise, stuck cells and drift, while read noise is drawn afresh for every call.

The model of one layer (all conductances ``g`` relative to ``g_max = 1``)
-------------------------------------------------------------------------
*Weight matrix and tiles.* A conv's weight matrix has ``Cin/groups * prod(kernel)`` rows (one
per input element of a receptive field; a transposed conv is the equivalent direct conv over
the zero-inserted input, a linear layer has ``in_features`` rows) and one column group per
output channel, as in :mod:`graphcost.crossbar.mapping`. The rows (``+ 1`` with an analog bias
row, the matrix's last) are split into ``ceil(rows / R)`` tiles of at most ``R = array.rows``
rows, *balanced* (``ceil(rows / tiles)`` rows each, so no tile is nearly empty; a tile boundary
may cut a kernel). Grouped / depthwise convs follow the mapping's ``depthwise`` strategy; a
layer occupies as many arrays (:attr:`AnalogLayer.arrays`) as the mapping's ``tiles``:

* ``dense``: the block-diagonal ``groups*rows_g x Cout`` matrix is tiled along its rows; a tile
  holds the columns of every group it touches, and the structural zeros inside it are real
  cells programmed to 0 (they get programming noise, faults, read noise). Simplification:
  columns are assumed aligned with the row tiles, i.e. a column only sees the zero cells of
  the row tiles that hold its weights; arrays holding only structural zeros (their calibrated
  ADC range is 0) contribute nothing. With ``analog_bias`` a column's bias cell sits in the
  last row tile holding its weights (the mapping counts one shared bias row at the bottom).
* ``packed``: ``min((R - bias)//rows_g, C//cols_g)`` groups on the diagonal of one array
  (balanced over ``ceil(groups / that)`` arrays), structural zeros inside an array are cells.
* ``time-multiplexed``: every group is driven on its own (only its ``rows_g`` rows are
  active), so a column only sees its own weights; arrays are shared column-wise.

The simulation runs all tiles of a layer as ONE grouped convolution (``groups = tiles``; the
input channels a tile needs are gathered once with ``index_select``, kernel positions that are
not rows of that tile are zero and cell-free), never a Python loop over tiles or pixels.

*Quantisation and bit slicing.* Weights are quantised per layer to signed ``weight_bits``
integers ``q = round(w / D)`` with ``D = max|W| / (2**(weight_bits-1) - 1)`` (``max`` over
weights and, with ``analog_bias``, biases). ``differential``: ``|q|`` is stored in the
positive (``q > 0``) or negative cell of a pair; otherwise one cell holds ``q + Qmax`` and the
digital periphery subtracts ``D * Qmax * sum(x)`` over the tile's rows (exact). The stored
integer is split into ``S = ceil(weight_bits / cell_bits)`` base-``2**cell_bits`` digits
``d_j``, one cell each, programmed to ``g = d_j / (2**cell_bits - 1)``; the digital
periphery shift-adds the slices: ``w = D (2**cb - 1) sum_j 2**(cb j) (g+_j - g-_j)``.

*Noise* (:class:`~graphcost.crossbar.specs.NoiseSpec`, a PCM-like model after aihwkit's
``PCMLikeNoiseModel``: Nandakumar et al., ICECS 2019; Joshi et al., Nat. Commun. 11, 2473,
2020; Rasch et al., AICAS 2021):

* programming: ``g <- max(0, g + N(0, programming))`` for every cell of an array (zero cells
  too), drawn ONCE per seed (a conductance-independent simplification of aihwkit's
  polynomial; the spec's presets take its value at 50-100 % of ``g_max``);
* stuck-at: each cell independently stuck at ``g_max`` (probability ``stuck_at_on``) or at 0
  (``stuck_at_off``), drawn once per seed;
* drift: ``g(t) = g * (t / t0) ** -drift_nu`` with ``t0 = 20 s`` (aihwkit), for ``t > t0``;
  stuck cells do not drift. *Global drift compensation* (Joshi et al. 2020; aihwkit's
  ``GlobalDriftCompensation``): the digital periphery multiplies each layer's output by
  ``sum g(t0) / sum g(t)`` (a reference read of all cells) *after* the ADC, so drift costs
  ADC resolution and amplifies read noise instead of shrinking the outputs;
* read noise: every cell's conductance fluctuates by ``N(0, read)`` independently for every MVM
  (conductance-independent, an upper bound on aihwkit's 1/f read noise for low conductances).
  A column's partial sum then carries Gaussian noise of std
  ``read * sqrt(sum_i x_i**2)`` over the tile's active rows; this is sampled *exactly in
  distribution* per output element, ``sum_i x_i**2`` coming from one cheap grouped conv (the
  standard normals come from a 65536-level quantile table, see :func:`_gaussian`).

*Periphery.* DAC: inputs are quantised per layer to ``dac_bits`` over ``[0, xmax]`` (unsigned,
when the calibration saw no negative input) or ``[-xmax, xmax]``, ``xmax`` = the largest
``|x|`` that layer saw in calibration; larger inputs clip. ADC: every tile's partial sums are
quantised to ``adc_bits`` over ``[-r, r]`` (``[0, r]`` if no calibration partial sum was
negative), ``r`` = the largest noise-free partial sum of that array (row tile x column tile, the
``cols`` physical columns of one array) in calibration; noisy sums beyond it clip. Partial
sums of the tiles are added digitally, then drift compensation, then the digital bias (or,
with ``analog_bias``, the bias cells are an extra row driven by 1 in each column's last tile).

*Calibration.* :meth:`CrossbarModel.calibrate` (called automatically on the first forward if
you did not) runs the FLOAT model on a batch and records, per analog layer over all its calls,
the input range (DAC) and the per-array range of the noise-free partial sums of the quantised
weights at ``t0`` (ADC). Ranges are then fixed, as on a chip; they do not depend on the seed.

*ADC placement: fast mode and exact slice mode.* Default (``slice_adc=False``, "fast"): the
noisy, drifted cells of all slices (and both cells of a pair) are recombined into one
effective weight per tile before the convolution and the ADC quantises the tile's combined
partial sum. This is exact for everything but the ADC: a chip digitises every slice's column
(pair) separately and shift-adds the digital values, which adds ``S`` quantisation errors
scaled by ``2**(cb j)`` instead of one. ``slice_adc=True`` does exactly that (``S`` times the
partial sums, slower). With ``weight_bits = cell_bits = 16``, 16-bit DAC/ADC and no noise both
modes equal the float model to ~1e-4 relative.

Random numbers: one ``torch.Generator`` each for programming noise, stuck-at faults and read
noise, all derived from ``seed``; the same seed gives the same result, and different noise
magnitudes with the same seed share the underlying draws (common random numbers).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from graphcost.errors import UserError

from .specs import DEPTHWISE_STRATEGIES, ArraySpec, NoiseSpec

__all__ = ["CrossbarModel", "AnalogLayer", "DRIFT_T0_SECONDS", "ANALOG_TYPES"]

#: Reference time of the drift model (aihwkit's PCM ``t_0``).
DRIFT_T0_SECONDS = 20.0

#: Module types simulated on the arrays.
ANALOG_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                nn.Linear)

_EPS_RANGE = 1e-20


def _stream_seed(seed: int, stream: int) -> int:
    """Independent generator seeds for the programming / fault / read streams of one ``seed``."""
    return (int(seed) * 0x9E3779B1 + stream * 0x85EBCA77 + 0x2545F491) % (2 ** 63 - 1)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# --------------------------------------------------------------------------- tiling plan
@dataclass(frozen=True)
class _Tile:
    lo: int            # first global row (row = input channel * K + kernel position)
    hi: int            # one past the last row
    out_lo: int        # first output channel held in this tile
    out_hi: int        # one past the last
    key: int           # physical row-tile id (arrays with the same key and column block share an ADC range)
    col_base: int      # output channel whose first column starts the array's column block


@dataclass
class _Plan:
    tiles: List[_Tile]
    K: int
    span: int          # input channels one tile gathers (max over tiles)
    cols: int          # output columns one tile holds (max over tiles)
    combine: str       # "sum" (tiles of a group add up), "concat" (packed), "scatter" (dense grouped)
    groups: int
    tiles_per_group: int
    col_local: bool    # column blocks counted from col_base (True) or from channel 0 (False)
    one_array: bool    # every tile is a single array (packed)
    physical: Optional[List[int]] = None  # sparse plans: the physical tile of every (tile, group) piece


def _plan_tiles(cin: int, cout: int, groups: int, K: int, array: ArraySpec, strategy: str, bias_row: int,
                sparse: bool = False) -> _Plan:
    """Tiles of one layer. ``sparse`` (grouped ``dense`` / ``packed`` layers whose structural zeros
    are exactly 0, i.e. no programming noise or faults, differential cells): every physical tile
    is split into its (tile, group) pieces, so the simulation costs the grouped conv itself and not
    ``groups``-fold more; ADC ranges and read noise still follow the physical tiles."""
    plan = _plan_physical(cin, cout, groups, K, array, strategy, bias_row)
    if not sparse or groups == 1 or plan.combine == "sum":
        return plan
    rows_g, co_g = (cin // groups) * K, cout // groups
    pieces, physical = [], []
    for t, tile in enumerate(plan.tiles):
        for gi in range(tile.lo // rows_g, (tile.hi - 1) // rows_g + 1):
            lo, hi = max(tile.lo, gi * rows_g), min(tile.hi, (gi + 1) * rows_g)
            pieces.append(_Tile(lo, hi, gi * co_g, (gi + 1) * co_g, tile.key, tile.col_base))
            physical.append(t)
    sparse_plan = _plan(pieces, K, "scatter", groups, 1, plan.col_local, plan.one_array)
    sparse_plan.physical = physical
    return sparse_plan


def _plan_physical(cin: int, cout: int, groups: int, K: int, array: ArraySpec, strategy: str,
                   bias_row: int) -> _Plan:
    cg, co_g = cin // groups, cout // groups
    rows_g = cg * K
    R = array.rows
    cols_g = co_g * array.columns_per_weight
    tiles: List[_Tile] = []
    if groups > 1 and strategy == "dense":
        total = groups * rows_g
        for t, (lo, hi) in enumerate(_row_split(total, bias_row, R)):
            g_lo, g_hi = (lo // K) // cg, ((hi - 1) // K) // cg
            tiles.append(_Tile(lo, hi, g_lo * co_g, (g_hi + 1) * co_g, t, 0))
        return _plan(tiles, K, "scatter", groups, 1, col_local=False, one_array=False)
    if groups > 1 and strategy == "packed" and rows_g + bias_row <= R and cols_g <= array.cols:
        per_array = min((R - bias_row) // rows_g, array.cols // cols_g, groups)
        for t, (g_lo, g_hi) in enumerate(_split(groups, _ceil_div(groups, per_array))):
            tiles.append(_Tile(g_lo * rows_g, g_hi * rows_g, g_lo * co_g, g_hi * co_g, t, g_lo * co_g))
        return _plan(tiles, K, "concat", groups, 1, col_local=True, one_array=True)
    # ungrouped, time-multiplexed, or packed blocks larger than an array ("tiled alone")
    pieces = _row_split(rows_g, bias_row, R)
    Tg = len(pieces)
    alone = groups > 1 and strategy == "packed"
    for gi in range(groups):
        base = gi * rows_g
        for r, (lo, hi) in enumerate(pieces):
            key = gi * Tg + r if alone else r
            tiles.append(_Tile(base + lo, base + hi, gi * co_g, (gi + 1) * co_g, key, gi * co_g if alone else 0))
    return _plan(tiles, K, "sum", groups, Tg, col_local=alone, one_array=False)


def _split(n: int, parts: int) -> List[Tuple[int, int]]:
    """``range(n)`` cut into at most ``parts`` contiguous pieces of ``ceil(n / parts)`` (balanced)."""
    per = _ceil_div(n, parts)
    return [(lo, min(n, lo + per)) for lo in range(0, n, per)]


def _row_split(rows: int, bias_row: int, R: int) -> List[Tuple[int, int]]:
    """The weight rows of ``ceil((rows + bias_row) / R)`` balanced row tiles (as the mapping counts
    them): the bias row is the last row of the matrix, so the last tile keeps room for it."""
    total = rows + bias_row
    return [(lo, min(hi, rows)) for lo, hi in _split(total, _ceil_div(total, R)) if lo < rows]


def _plan(tiles, K, combine, groups, tiles_per_group, col_local, one_array) -> _Plan:
    span = max((t.hi - 1) // K - t.lo // K + 1 for t in tiles)
    cols = max(t.out_hi - t.out_lo for t in tiles)
    return _Plan(tiles, K, span, cols, combine, groups, tiles_per_group, col_local, one_array)


# --------------------------------------------------------------------------- quantisers
def _quantize(x: torch.Tensor, inv, scale, qmin: int, qmax: int, inplace: bool = False) -> torch.Tensor:
    """``clamp(round(x * inv), qmin, qmax) * scale``; ``inv`` / ``scale`` are numbers or broadcastable
    tensors (per channel). Plain vectorised ops: much faster on CPU than ``fake_quantize_*``."""
    y = x.mul_(inv) if inplace else x * inv
    return y.round_().clamp_(qmin, qmax).mul_(scale)


_QUANTILES: Optional[torch.Tensor] = None


def _gaussian(shape, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal draws from 16 random bits each: the 65536 equiprobable quantiles of N(0, 1)
    (rescaled to unit variance, ``|z| <= 4.3``), four per 64-bit word drawn from ``generator``.
    A close, ~2x cheaper stand-in for ``torch.randn`` (whose sampling is single-threaded and
    dominates the read-noise cost)."""
    global _QUANTILES
    if _QUANTILES is None:
        p = (torch.arange(65536, dtype=torch.float64) + 0.5) / 65536
        z = math.sqrt(2.0) * torch.erfinv(2 * p - 1)
        _QUANTILES = (z / z.pow(2).mean().sqrt()).float()
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None, generator=generator)
    index = bits.view(torch.uint16)[:n].to(torch.int32)
    return _QUANTILES.index_select(0, index).view(shape).to(dtype)


def _levels(bits: int, signed: bool) -> Tuple[int, int]:
    if signed:
        q = 2 ** (bits - 1) - 1 if bits > 1 else 1
        return -q, q
    return 0, 2 ** bits - 1


# --------------------------------------------------------------------------- one analog layer
class AnalogLayer(nn.Module):
    """A weight layer programmed onto crossbar tiles (see the module docstring for the model).

    Built by :class:`CrossbarModel`; ``reference`` is the original float module (used for the
    calibration pass and ``extra_repr``).
    """

    def __init__(self, module: nn.Module, array: ArraySpec, noise: NoiseSpec, *, strategy: str,
                 slice_adc: bool, generators: Dict[str, torch.Generator], shared_cells: Optional[dict] = None):
        super().__init__()
        self.reference = module
        self.array, self.noise, self.strategy, self.slice_adc = array, noise, strategy, slice_adc
        self._read_gen = generators["read"]
        self.calibrating = False
        self.calibrated = False
        if isinstance(module, nn.Linear):
            self.kind, self.dims = "linear", 1
            w = module.weight.detach().reshape(module.out_features, 1, module.in_features, 1)
            self.groups, self.cin, self.cout, self.kernel = 1, module.in_features, module.out_features, (1,)
        else:
            self.kind = "convT" if module.transposed else "conv"
            self.dims = module.weight.dim() - 2
            self.groups = module.groups
            self.kernel = tuple(module.weight.shape[2:])
            wt = module.weight.detach()
            if module.transposed:  # (Cin, Cout/g, k..) -> conv-like (g, Cout/g, Cin/g, K)
                self.cin, self.cout = wt.shape[0], wt.shape[1] * self.groups
                cg = self.cin // self.groups
                w = wt.reshape(self.groups, cg, wt.shape[1], -1).permute(0, 2, 1, 3)
            else:
                self.cout, self.cin = wt.shape[0], wt.shape[1] * self.groups
                w = wt.reshape(self.groups, self.cout // self.groups, wt.shape[1], -1)
        self.K = math.prod(self.kernel)
        bias = module.bias.detach() if module.bias is not None else None
        self.analog_bias = bool(array.analog_bias and bias is not None)
        sparse = array.differential and noise.programming == 0 and noise.stuck_at_on == 0 and \
            noise.stuck_at_off == 0
        self.plan = _plan_tiles(self.cin, self.cout, self.groups, self.K, array, strategy, int(self.analog_bias),
                                sparse)
        self._build_index()
        cells = shared_cells if shared_cells is not None else _program(w, bias if self.analog_bias else None,
                                                                        self, generators)
        self.cells = cells
        for name in ("weight", "nominal", "bias_psum", "bias_nominal"):
            value = cells[name]
            self.register_buffer(name, value, persistent=False)
        self.read_scale = cells["read_scale"]
        self.offset = cells["offset"]
        self.compensation = cells["compensation"]
        self.slice_coef = cells["slice_coef"]
        self.bias_rows = cells["bias_rows"]            # (T, cols): 1 where a column's bias row is
        self.bias_rows_psum = cells["bias_rows_psum"]  # the same per partial-sum channel
        self.digital_bias = None if (bias is None or self.analog_bias) else bias
        # calibration state
        self.register_buffer("x_absmax", torch.zeros(()), persistent=False)
        self.register_buffer("psum_absmax", torch.zeros(cells["psum_channels"]), persistent=False)
        self.x_signed = False
        self.psum_signed = False

    # ------------------------------------------------------------------ layout helpers
    def _build_index(self) -> None:
        p = self.plan
        T, span, cols, K = len(p.tiles), p.span, p.cols, self.K
        in_index = torch.full((T, span), self.cin, dtype=torch.long)  # self.cin marks an empty slot
        rowmask = torch.zeros(T, span, K, dtype=torch.bool)
        out_index = torch.full((T, cols), self.cout, dtype=torch.long)
        for t, tile in enumerate(p.tiles):
            c_lo, c_hi = tile.lo // K, (tile.hi - 1) // K
            n = c_hi - c_lo + 1
            in_index[t, :n] = torch.arange(c_lo, c_hi + 1)
            rows = (torch.arange(c_lo, c_lo + span).view(-1, 1) * K + torch.arange(K).view(1, -1))
            rowmask[t] = (rows >= tile.lo) & (rows < tile.hi) & (torch.arange(span).view(-1, 1) < n)
            out_index[t, :tile.out_hi - tile.out_lo] = torch.arange(tile.out_lo, tile.out_hi)
        self.T = T
        self.physical_index = torch.tensor(p.physical) if p.physical is not None else None
        flat = in_index.reshape(-1)
        # pad slots gather channel 0: their weights and row masks are zero, so no padding copy is needed
        self.gather = None if (flat.numel() == self.cin and torch.equal(flat, torch.arange(self.cin))) else \
            torch.where(flat < self.cin, flat, 0)
        self.register_buffer("rowmask", rowmask, persistent=False)
        self.register_buffer("out_index", out_index, persistent=False)
        self.in_index = in_index
        # the conv that sums x (or x**2) over each tile's rows: weight (T, span, k..) as 0/1
        ones = rowmask.to(torch.float32).reshape(T, span, *self.kernel)
        if self.kind == "convT":
            ones = ones.reshape(T * span, 1, *self.kernel)
        else:
            ones = ones.reshape(T, span, *self.kernel)
        self.register_buffer("row_ones", ones, persistent=False)

    @property
    def arrays(self) -> int:
        """Arrays the layer occupies: per physical row tile, the column blocks its columns span
        (``dense``: the full block-diagonal width, structural-zero arrays included, as the mapping
        counts them; ``packed``: one array; blocks tiled alone: one group's columns)."""
        p, a = self.plan, self.array
        if p.one_array:
            blocks = 1
        elif p.col_local:
            blocks = _ceil_div(self.cout // self.groups * a.columns_per_weight, a.cols)
        else:
            blocks = _ceil_div(self.cout * a.columns_per_weight, a.cols)
        return len({t.key for t in p.tiles}) * blocks

    def array_ids(self, slices: int) -> torch.Tensor:
        """Array id of every partial-sum channel (tile, [slice,] column), for the ADC ranges."""
        p, a = self.plan, self.array
        T, cols = self.T, p.cols
        npol = 2 if a.differential else 1
        keys = torch.tensor([t.key for t in p.tiles]).view(T, 1, 1)
        base = torch.tensor([t.col_base for t in p.tiles]).view(T, 1, 1)
        o = self.out_index.view(T, 1, cols)
        s = torch.arange(slices).view(1, slices, 1)
        if p.one_array:
            block = torch.zeros(T, slices, cols, dtype=torch.long)
        else:
            local = (o - base) if p.col_local else o
            block = (local * a.columns_per_weight + s * npol) // a.cols
        valid = (o < self.cout).expand(T, slices, cols)
        nblock = int(block.max()) + 2
        ids = keys * nblock + block
        ids = torch.where(valid, ids, -1 - torch.arange(T * slices * cols).view(T, slices, cols))
        return torch.unique(ids.reshape(-1), return_inverse=True)[1]

    # ------------------------------------------------------------------ the convolutions
    def _arrange(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            x = x.reshape(-1, self.cin, 1)
        if self.gather is None:
            return x
        return x.index_select(1, self.gather.to(x.device))

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], groups: int,
              output_size=None) -> torch.Tensor:
        ref = self.reference
        if self.kind == "linear":
            return F.conv1d(x, weight, bias, groups=groups)
        if self.kind == "convT":
            fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[self.dims - 1]
            out_pad = ref._output_padding(x, output_size, ref.stride, ref.padding, ref.kernel_size, self.dims,
                                          ref.dilation) if output_size is not None else ref.output_padding
            return fn(x, weight, bias, ref.stride, ref.padding, out_pad, groups, ref.dilation)
        fn = (F.conv1d, F.conv2d, F.conv3d)[self.dims - 1]
        if ref.padding_mode != "zeros":
            x = F.pad(x, ref._reversed_padding_repeated_twice, mode=ref.padding_mode)
            return fn(x, weight, bias, ref.stride, 0, ref.dilation, groups)
        return fn(x, weight, bias, ref.stride, ref.padding, ref.dilation, groups)

    def _combine(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, T*cols, *sp)`` per-tile results -> ``(B, Cout, *sp)``."""
        p = self.plan
        B, sp = y.shape[0], y.shape[2:]
        if p.combine == "sum":
            co_g = self.cout // self.groups
            if p.tiles_per_group == 1:
                return y
            return y.view(B, self.groups, p.tiles_per_group, co_g, *sp).sum(2).view(B, self.cout, *sp)
        if p.combine == "concat":
            return y[:, :self.cout] if y.shape[1] != self.cout else y
        out = y.new_zeros((B, self.cout + 1) + tuple(sp))
        out.index_add_(1, self.out_index.reshape(-1), y)
        return out[:, :self.cout]

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if self.calibrating:
            return self._calibration_call(x, output_size)
        if not self.calibrated:
            raise RuntimeError("AnalogLayer used before calibration; call CrossbarModel.calibrate(inputs) first")
        lead = x.shape[:-1]
        a, noise = self.array, self.noise
        # DAC
        xq = _quantize(x, 1.0 / self.dac_scale, self.dac_scale, *self.dac_levels)
        xt = self._arrange(xq)
        T = self.T
        psum = self._conv(xt, self.weight, self.bias_psum, T, output_size)
        B, C, sp = psum.shape[0], psum.shape[1], psum.shape[2:]
        per_tile = C // T
        need_rowsum = noise.read > 0 or not a.differential
        if need_rowsum:
            ones = self.row_ones.to(xt.dtype)
        if noise.read > 0:  # read noise: N(0, read^2 * sum_i x_i^2) per column, exact in distribution
            var = self._conv(xt * xt, ones, None, T, output_size)  # (B, T, *sp)
            if self.plan.physical is not None:  # sparse plan: all rows of the physical tile are read
                phys = self.physical_index
                var = var.new_zeros((B, int(phys.max()) + 1) + tuple(sp)).index_add_(1, phys, var).index_select(1, phys)
            std = var.clamp_(min=0).sqrt_().mul_(self.read_scale).unsqueeze(2)
            draw = _gaussian(psum.shape, self._read_gen, psum.dtype)
            pview = psum.view(B, T, per_tile, *sp)
            if self.analog_bias:  # the bias row (input 1) adds one cell's variance in its tile
                extra = self.bias_rows_psum.view(1, T, -1, *[1] * len(sp))
                std = torch.sqrt(std * std + extra * self.read_scale ** 2)
            pview.addcmul_(draw.view(B, T, per_tile, *sp), std)
        # ADC, per array range; the digital drift compensation is folded into the output scale
        y = _quantize(psum, self.adc_inv_view, self.adc_out_view, *self.adc_levels, inplace=True)
        if self.slice_adc:
            S = self.slice_coef.numel()
            y = (y.view(B, T, S, per_tile // S, *sp) * self.slice_coef.view(1, 1, S, 1, *[1] * len(sp))).sum(2)
            y = y.reshape(B, T * (per_tile // S), *sp)
        if not a.differential:  # digital offset: D * Qmax * (sum of the tile's inputs (+1 for the bias row))
            sx = self._conv(xt, ones, None, T, output_size).unsqueeze(2)
            yv = y.view(B, T, -1, *sp)
            if self.analog_bias:
                sx = sx + self.bias_rows.view(1, T, -1, *[1] * len(sp))
            yv.sub_(sx * self.offset)
        out = self._combine(y)
        if self.digital_bias is not None:
            out = out + self.digital_bias.to(out.dtype).view(1, -1, *[1] * len(sp))
        if self.kind == "linear":
            out = out.reshape(*lead, self.cout)
        return out

    def _calibration_call(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        with torch.no_grad():
            self.x_absmax = torch.maximum(self.x_absmax, x.detach().abs().amax().to(self.x_absmax))
            self.x_signed = self.x_signed or bool((x < 0).any())
            xt = self._arrange(x.detach())
            psum = self._conv(xt, self.nominal.to(xt.dtype), self.bias_nominal, self.T, output_size)
            dims = [0] + list(range(2, psum.dim()))
            self.psum_absmax = torch.maximum(self.psum_absmax, psum.abs().amax(dim=dims).to(self.psum_absmax))
            self.psum_signed = self.psum_signed or bool((psum < 0).any())
        if output_size is not None:
            return self.reference(x, output_size)
        return self.reference(x)

    def finish_calibration(self) -> None:
        a = self.array
        self.dac_levels = _levels(a.dac_bits, self.x_signed)
        self.dac_scale = max(float(self.x_absmax), _EPS_RANGE) / self.dac_levels[1]
        self.adc_levels = _levels(a.adc_bits, self.psum_signed)
        S = self.slice_coef.numel() if self.slice_adc else 1
        ids = self.array_ids(S)
        ranges = torch.zeros(int(ids.max()) + 1).scatter_reduce(0, ids, self.psum_absmax.float(), "amax")
        self.adc_scale = (ranges[ids].clamp(min=_EPS_RANGE) / self.adc_levels[1]).to(torch.float32)
        view = [1, -1] + [1] * (self.dims if self.kind != "linear" else 1)
        dtype = self.weight.dtype
        self.adc_inv_view = (1.0 / self.adc_scale).to(dtype).view(view)
        self.adc_out_view = (self.adc_scale * self.compensation).to(dtype).view(view)
        self.calibrated = True

    def extra_repr(self) -> str:
        return (f"{type(self.reference).__name__}: {self.cin}->{self.cout}, groups={self.groups}, "
                f"tiles={self.T} ({self.strategy}), {'slice ADC' if self.slice_adc else 'fast ADC'}")


# --------------------------------------------------------------------------- programming
def _program(w: torch.Tensor, bias: Optional[torch.Tensor], layer: AnalogLayer,
             generators: Dict[str, torch.Generator]) -> dict:
    """Quantise, slice, place and program ``w`` (conv-like ``(groups, Cout/g, Cin/g, K)``) onto the
    layer's tiles; returns the effective (noisy) and nominal conv weights and the constants."""
    a, noise, plan = layer.array, layer.noise, layer.plan
    dtype = w.dtype if w.is_floating_point() else torch.float32
    T, span, cols, K = layer.T, plan.span, plan.cols, layer.K
    groups, cg = layer.groups, layer.cin // layer.groups
    co_g = layer.cout // groups
    qmax = 2 ** (a.weight_bits - 1) - 1 if a.weight_bits > 1 else 1
    wmax = float(w.abs().max()) if w.numel() else 0.0
    if bias is not None and bias.numel():
        wmax = max(wmax, float(bias.abs().max()))
    delta = wmax / qmax if wmax > 0 else 1.0
    q = torch.round(w.double() / delta).clamp(-qmax, qmax).to(torch.long)  # (g, co_g, cg, K)
    qflat = q.reshape(layer.cout, cg, K)

    # place the integers into tiles: (T, cols, span, K); present = cells that exist
    qt = torch.zeros(T, cols, span, K, dtype=torch.long)
    present = torch.zeros(T, cols, span, K, dtype=torch.bool)
    bias_rows = torch.zeros(T, cols)
    for t in range(T):
        o = layer.out_index[t]
        c = layer.in_index[t]
        ov, cv = o < layer.cout, c < layer.cin
        oc, cc = o.clamp(max=layer.cout - 1), c.clamp(max=layer.cin - 1)
        same_group = (oc.view(-1, 1) // co_g) == (cc.view(1, -1) // cg)
        vals = qflat[oc][:, cc % cg]  # (cols, span, K)
        rows = layer.rowmask[t].unsqueeze(0) & cv.view(1, -1, 1)
        cell = rows & ov.view(-1, 1, 1)
        present[t] = cell
        qt[t] = torch.where(cell & same_group.unsqueeze(-1), vals, 0)
    if bias is not None:  # the bias row sits in each column's last tile
        last = torch.full((layer.cout,), -1, dtype=torch.long)
        for t in range(T):
            o = layer.out_index[t]
            last[o[o < layer.cout]] = t
        qb = torch.round(bias.double() / delta).clamp(-qmax, qmax).to(torch.long)
        qbt = torch.zeros(T, cols, dtype=torch.long)
        for t in range(T):
            o = layer.out_index[t]
            mine = (o < layer.cout) & (last[o.clamp(max=layer.cout - 1)] == t)
            bias_rows[t] = mine.float()
            qbt[t] = torch.where(mine, qb[o.clamp(max=layer.cout - 1)], 0)
        qt = torch.cat([qt.reshape(T, cols, -1), qbt.unsqueeze(-1)], -1)
        present = torch.cat([present.reshape(T, cols, -1), bias_rows.bool().unsqueeze(-1)], -1)
    else:
        qt, present = qt.reshape(T, cols, -1), present.reshape(T, cols, -1)

    # encode: differential pair of magnitudes, or one offset cell; then base-2^cb digits, one
    # (polarity, slice) plane at a time so memory stays at a few copies of the layer's cells
    cb, S = a.cell_bits, a.slices
    base = 2 ** cb
    npol = 2 if a.differential else 1
    unit = delta * (base - 1)  # weight per unit conductance of the least significant slice
    qt = qt.to(torch.int64)
    if a.differential:
        planes = [(qt.clamp(min=0), 1.0), ((-qt).clamp(min=0), -1.0)]
    else:
        planes = [(torch.where(present, qt + qmax, 0), 1.0)]
    pres = present.to(torch.float32)
    noisy = noise.programming > 0 or noise.stuck_at_on > 0 or noise.stuck_at_off > 0 or \
        (noise.drift_nu > 0 and noise.t_seconds > DRIFT_T0_SECONDS)
    decay = (noise.t_seconds / DRIFT_T0_SECONDS) ** (-noise.drift_nu) \
        if (noise.drift_nu > 0 and noise.t_seconds > DRIFT_T0_SECONDS) else 1.0
    per_slice = layer.slice_adc
    shape = qt.shape
    eff = torch.zeros((S,) + shape if per_slice else shape)
    nom = torch.zeros((S,) + shape if per_slice else shape)
    total_0 = total_t = 0.0
    for mags, sign in planes:
        for j in range(S):
            g0 = ((mags >> (cb * j)) & (base - 1)).to(torch.float32).div_(base - 1)
            coef = sign if per_slice else sign * unit * float(base ** j)
            (nom[j] if per_slice else nom).add_(g0, alpha=coef)
            if not noisy:
                continue
            g = g0
            if noise.programming > 0:
                draw = torch.randn(shape, generator=generators["programming"])
                g = draw.mul_(pres).mul_(noise.programming).add_(g0).clamp_(min=0)
            stuck = None
            if noise.stuck_at_on > 0 or noise.stuck_at_off > 0:
                u = torch.rand(shape, generator=generators["faults"])
                on = (u < noise.stuck_at_on) & present
                stuck = (u < noise.stuck_at_on + noise.stuck_at_off) & present
                g = torch.where(stuck, on.to(g.dtype), g)
            if decay != 1.0:
                total_0 += float(g.sum())
                g = torch.where(stuck, g, g * decay) if stuck is not None else g * decay
                total_t += float(g.sum())
            (eff[j] if per_slice else eff).add_(g, alpha=coef)
    compensation = total_0 / total_t if total_t > 0 else 1.0
    if not noisy:
        eff = nom

    def pack(w_rows: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        if per_slice:  # (S, T, cols, rows) -> (T, S*cols, rows): analog pair difference per slice, g units
            w_rows = w_rows.permute(1, 0, 2, 3).reshape(T, S * cols, -1)
        if bias is not None:
            b = w_rows[..., -1].reshape(-1)
            w_rows = w_rows[..., :-1]
        else:
            b = None
        ch = w_rows.shape[1]
        wk = w_rows.reshape(T, ch, span, *layer.kernel)
        if layer.kind == "convT":
            wk = wk.transpose(1, 2).reshape(T * span, ch, *layer.kernel)
        else:
            wk = wk.reshape(T * ch, span, *layer.kernel)
        return wk.to(dtype).contiguous(), (b.to(dtype) if b is not None else None)

    weight, bias_psum = pack(eff)
    nominal, bias_nominal = pack(nom)
    if layer.slice_adc:
        read_scale = noise.read * math.sqrt(npol)
        slice_coef = torch.tensor([unit * base ** j for j in range(S)], dtype=dtype)
    else:
        read_scale = noise.read * unit * math.sqrt(npol * sum(float(base ** (2 * j)) for j in range(S)))
        slice_coef = torch.ones(1, dtype=dtype)
    bias_rows = bias_rows.to(dtype)
    bias_rows_psum = bias_rows.repeat(1, S) if layer.slice_adc else bias_rows
    return {"weight": weight, "nominal": nominal, "bias_psum": bias_psum, "bias_nominal": bias_nominal,
            "read_scale": float(read_scale), "offset": float(delta * qmax), "compensation": compensation,
            "slice_coef": slice_coef, "bias_rows": bias_rows, "bias_rows_psum": bias_rows_psum,
            "psum_channels": T * cols * (S if layer.slice_adc else 1)}


# --------------------------------------------------------------------------- the model
class CrossbarModel(nn.Module):
    """``model`` with every conv / transposed conv / linear layer simulated on crossbar arrays.

    >>> import torch
    >>> from graphcost.crossbar.specs import ArraySpec, NoiseSpec
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    >>> x = torch.rand(2, 3, 16, 16)
    >>> sim = CrossbarModel(net, ArraySpec(256, 256, 16, 16, dac_bits=16, adc_bits=16), NoiseSpec())
    >>> _ = sim.calibrate(x)
    >>> bool(torch.allclose(sim(x), net(x), rtol=1e-3, atol=1e-3))
    True

    ``seed`` seeds the programming noise and faults (drawn here, once) and the read noise
    (drawn per call). ``depthwise``: the mapping strategy of grouped convs (``dense``,
    ``packed``, ``time-multiplexed``). ``slice_adc``: digitise every bit slice separately
    (exact, slower) instead of the tile's recombined partial sum (fast, the default).
    Layers that stay digital (recurrent ones) are listed in ``digital_layers``.
    """

    def __init__(self, model: nn.Module, array: ArraySpec, noise: NoiseSpec, *, seed: int = 0,
                 depthwise: str = "dense", slice_adc: bool = False):
        super().__init__()
        if depthwise not in DEPTHWISE_STRATEGIES:
            raise UserError(f"unknown depthwise strategy {depthwise!r}; use one of {', '.join(DEPTHWISE_STRATEGIES)}")
        self.array, self.noise, self.seed, self.depthwise, self.slice_adc = array, noise, seed, depthwise, slice_adc
        generators = {name: torch.Generator().manual_seed(_stream_seed(seed, i))
                      for i, name in enumerate(("programming", "faults", "read"))}
        self.model = copy.deepcopy(model).eval()
        replaced: Dict[int, AnalogLayer] = {}
        by_weight: Dict[Tuple[int, str], AnalogLayer] = {}
        self.analog_layers: Dict[str, AnalogLayer] = {}
        self.digital_layers: List[str] = []
        for name, module in self.model.named_modules():  # each module once, in definition order
            if isinstance(module, ANALOG_TYPES):
                tied = by_weight.get((id(module.weight), type(module).__name__))
                shared = tied.cells if tied is not None and _same_geometry(tied.reference, module) else None
                layer = AnalogLayer(module, array, noise, strategy=depthwise, slice_adc=slice_adc,
                                    generators=generators, shared_cells=shared)
                replaced[id(module)] = layer
                by_weight.setdefault((id(module.weight), type(module).__name__), layer)
                self.analog_layers[name or type(module).__name__] = layer
            elif isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
                self.digital_layers.append(name)
        if id(self.model) in replaced:
            self.model = replaced[id(self.model)]
        else:
            for parent in list(self.model.modules()):
                for child_name, child in list(parent._modules.items()):
                    if child is not None and id(child) in replaced:
                        parent._modules[child_name] = replaced[id(child)]
        self._layers = list(replaced.values())

    @property
    def calibrated(self) -> bool:
        return all(layer.calibrated for layer in self._layers)

    def calibrate(self, *args, **kwargs) -> Any:
        """Run the float model on ``args`` and fix every layer's DAC and ADC ranges; returns its output."""
        for layer in self._layers:
            layer.calibrating, layer.calibrated = True, False
            layer.x_absmax.zero_()
            layer.psum_absmax.zero_()
            layer.x_signed = layer.psum_signed = False
        try:
            with torch.no_grad():
                out = self.model(*args, **kwargs)
        finally:
            for layer in self._layers:
                layer.calibrating = False
        for layer in self._layers:
            layer.finish_calibration()
        return out

    def forward(self, *args, **kwargs):
        if not self.calibrated:
            self.calibrate(*args, **kwargs)
        return self.model(*args, **kwargs)


def _same_geometry(a: nn.Module, b: nn.Module) -> bool:
    keys = ("stride", "padding", "dilation", "groups", "output_padding", "padding_mode")
    return all(getattr(a, k, None) == getattr(b, k, None) for k in keys)
