"""The analog layer: a conv / transposed conv / linear layer running on its programmed tiles.

All tiles of a layer run as ONE grouped convolution (``groups = tiles``; the input channels a
tile needs are gathered once with ``index_select``, kernel positions that are not rows of that
tile are zero and cell-free), never a Python loop over tiles or pixels. DAC before, read noise
and ADC per tile, digital offset, tile combination and bias after (see the package docstring).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..specs import ArraySpec, NoiseSpec
from ..tiling import geometry_of_module, plan_tiles
from .noise import gaussian, programs_zero_cells
from .programming import ProgrammedCells, program
from .quantization import EPS_RANGE, levels, to_levels


#: Gathers of at most this many runs of consecutive channels are concatenated slices (see ``_arrange``).
MAX_GATHER_RUNS = 64


def _runs(index) -> list:
    """``[(lo, hi), ...]`` runs of consecutive values of ``index``, in order.

    >>> _runs([0, 1, 2, 2, 3, 0, 0])
    [(0, 3), (2, 4), (0, 1), (0, 1)]
    """
    runs = []
    for i in index:
        if runs and runs[-1][1] == i:
            runs[-1][1] += 1
        else:
            runs.append([i, i + 1])
    return [tuple(r) for r in runs]


def grouped_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], groups: int) -> torch.Tensor:
    """``F.conv1d(x, weight, bias, groups=groups)`` for ``x`` of length 1, ``(N, groups * span, 1)``: one
    (batched) matrix product, ~3-4x faster on CPU than oneDNN's grouped convolution of length 1 (measured).

    >>> x, w, b = torch.randn(5, 6, 1), torch.randn(4, 3, 1), torch.randn(4)
    >>> bool(torch.allclose(grouped_linear(x, w, b, 2), F.conv1d(x, w, b, groups=2), atol=1e-5))
    True
    """
    n, ch, span = x.shape[0], weight.shape[0] // groups, weight.shape[1]
    if groups == 1:
        return F.linear(x.reshape(n, span), weight.reshape(ch, span), bias).unsqueeze(-1)
    xt = x.reshape(n, groups, span).transpose(0, 1)
    w = weight.reshape(groups, ch, span).transpose(1, 2)
    y = torch.bmm(xt, w) if bias is None else torch.baddbmm(bias.view(groups, 1, ch), xt, w)
    return y.transpose(0, 1).reshape(n, groups * ch, 1)


class AnalogLayer(nn.Module):
    """A weight layer programmed onto crossbar tiles (see the package docstring for the model).

    Built by :class:`~graphcost.crossbar.sim.CrossbarModel`; ``reference`` is the original float
    module (used for the calibration pass and ``extra_repr``); ``shared_cells`` the
    :class:`ProgrammedCells` of a module with the same weight (programmed once).
    """

    def __init__(self, module: nn.Module, array: ArraySpec, noise: NoiseSpec, *, strategy: str,
                 slice_adc: bool, generators: Dict[str, torch.Generator],
                 shared_cells: Optional[ProgrammedCells] = None):
        super().__init__()
        self.reference = module
        self.array, self.noise, self.strategy, self.slice_adc = array, noise, strategy, slice_adc
        self._read_gen = generators["read"]
        self.calibrating = self.calibrated = False
        self.layout = torch.channels_last  # of 2-d activations; set by CrossbarModel (see its docstring)
        geometry = geometry_of_module(module)
        self.geometry = geometry
        self.hwa: Optional[Callable] = None  # set by sim.hwa: the differentiable forward of HWA training
        self.kind, self.groups, self.cin, self.cout = geometry.kind, geometry.groups, geometry.cin, geometry.cout
        self.kernel, self.K = geometry.kernel, geometry.kernel_size
        self.dims = 1 if self.kind == "linear" else module.weight.dim() - 2
        bias = module.bias.detach() if module.bias is not None else None
        self.analog_bias = bool(array.analog_bias and bias is not None)
        sparse = array.differential and not programs_zero_cells(noise)
        self.plan = plan_tiles(geometry, array, strategy, sparse)
        self._build_index()
        cells = shared_cells if shared_cells is not None else program(
            geometry.grouped_weight(module.weight.detach()), bias if self.analog_bias else None, self, generators)
        self._use_cells(cells)
        self.digital_bias = None if (bias is None or self.analog_bias) else bias
        # calibration state
        self.register_buffer("x_absmax", torch.zeros(()), persistent=False)
        self.register_buffer("psum_absmax", torch.zeros(cells.psum_channels), persistent=False)
        self.x_signed = self.psum_signed = False

    def _use_cells(self, cells: ProgrammedCells) -> None:
        self.cells = cells
        for name in ("weight", "nominal", "bias_psum", "bias_nominal"):
            self.register_buffer(name, getattr(cells, name), persistent=False)
        self.read_scale, self.offset, self.compensation = cells.read_scale, cells.offset, cells.compensation
        self.slice_coef = cells.slice_coef
        self.bias_rows = cells.bias_rows            # (T, cols): 1 where a column's bias row is
        self.bias_rows_psum = cells.bias_rows_psum  # the same per partial-sum channel

    # ------------------------------------------------------------------ layout helpers
    def _build_index(self) -> None:
        p = self.plan
        T, span, cols, K = len(p.pieces), p.span, p.cols, self.K
        in_index = torch.full((T, span), self.cin, dtype=torch.long)  # self.cin marks an empty slot
        rowmask = torch.zeros(T, span, K, dtype=torch.bool)
        out_index = torch.full((T, cols), self.cout, dtype=torch.long)
        for t, tile in enumerate(p.pieces):
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
        self.gather_runs = _runs(self.gather.tolist()) if self.gather is not None else None
        self.register_buffer("rowmask", rowmask, persistent=False)
        self.register_buffer("out_index", out_index, persistent=False)
        # tile columns that are the output channels in order (a dense depthwise layer cut at channel
        # boundaries, a sparse plan): the partial sums need no scatter
        self.in_order = out_index.numel() == self.cout and torch.equal(out_index.reshape(-1), torch.arange(self.cout))
        self.in_index = in_index
        # the conv that sums x (or x**2) over each tile's rows: weight (T, span, k..) as 0/1
        ones = rowmask.to(torch.float32).reshape(T, span, *self.kernel)
        if self.kind == "convT":
            ones = ones.reshape(T * span, 1, *self.kernel)
        self.register_buffer("row_ones", ones, persistent=False)

    @property
    def arrays(self) -> int:
        """Arrays the layer occupies: the tiling's count, as the mapping counts them (``dense``:
        the full block-diagonal width, structural-zero arrays included; ``packed``: one array per
        pack; blocks tiled alone: one group's columns)."""
        return self.plan.arrays

    def array_ids(self, slices: int) -> torch.Tensor:
        """Array id of every partial-sum channel (tile, [slice,] column), for the ADC ranges."""
        p, a = self.plan, self.array
        T, cols = self.T, p.cols
        npol = 2 if a.differential else 1
        keys = torch.tensor([t.key for t in p.pieces]).view(T, 1, 1)
        base = torch.tensor([t.col_base for t in p.pieces]).view(T, 1, 1)
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
        channels_last = self.layout == torch.channels_last and x.dim() == 4
        if channels_last and len(self.gather_runs) <= MAX_GATHER_RUNS and x.is_contiguous(memory_format=self.layout):
            # slices of channel runs keep a channels-last layout (index_select returns NCHW), ~3x faster
            return torch.cat([x[:, lo:hi] for lo, hi in self.gather_runs], 1)
        return x.index_select(1, self.gather.to(x.device))

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], groups: int,
              output_size=None) -> torch.Tensor:
        ref = self.reference
        if self.kind == "linear":
            return grouped_linear(x, weight, bias, groups)
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
        layout = self.layout if y.dim() == 4 and y.is_contiguous(memory_format=self.layout) else torch.contiguous_format
        if p.combine == "sum":
            co_g, n = self.cout // self.groups, p.tiles_per_group
            if n == 1:
                return y
            if layout is torch.channels_last:
                # channels innermost in memory: sum the row tiles over a middle axis of the (B, H, W, C)
                # view, which stays channels-last (a sum over dim 2 of the NCHW view returns NCHW and
                # costs ~15x more on channels-last data, measured)
                hwc = y.permute(0, 2, 3, 1).view(B, *sp, self.groups, n, co_g).sum(-2)
                return hwc.view(B, *sp, self.cout).permute(0, 3, 1, 2)
            return y.view(B, self.groups, n, co_g, *sp).sum(2).reshape(B, self.cout, *sp)
        if p.combine == "concat" or self.in_order:
            return y[:, :self.cout] if y.shape[1] != self.cout else y
        out = torch.empty((B, self.cout + 1) + tuple(sp), dtype=y.dtype, device=y.device, memory_format=layout).zero_()
        out.index_add_(1, self.out_index.reshape(-1), y)
        return out[:, :self.cout]

    # ------------------------------------------------------------------ forward
    # The forward works in converter units: the DAC's integers go into the convolution, whose weights
    # carry the DAC step and each partial-sum channel's 1 / ADC step (folded once, at calibration), so
    # the partial sums come out in ADC steps; ``dac_step * psum_step[c]`` turns them back into the
    # physical partial sum of channel c. Same physics as quantising in physical units, two passes
    # over the data fewer per layer.
    def _dac(self, x: torch.Tensor) -> torch.Tensor:
        """The DAC integers ``clamp(round(x / step))`` of the tiles' inputs (gathered per tile first:
        the DAC is elementwise), 2-d ones in :attr:`layout`: the conv's output, and so the layer's,
        follows it."""
        x = self._arrange(x)
        layout = self.layout if x.dim() == 4 else torch.contiguous_format
        xq = torch.mul(x, self.dac_inv, out=torch.empty_like(x, memory_format=layout))
        return to_levels(xq, *self.dac_levels)

    def _add_read_noise(self, psum: torch.Tensor, xt: torch.Tensor, output_size) -> None:
        """Read noise N(0, read^2 * sum_i x_i^2) per column (exact in distribution), in place; ``xt``
        holds DAC integers and ``psum`` ADC steps (see above)."""
        B, sp, T = psum.shape[0], psum.shape[2:], self.T
        per_tile = psum.shape[1] // T
        var = self._conv(xt * xt, self.row_ones.to(xt.dtype), None, T, output_size)  # (B, T, *sp)
        if self.plan.physical is not None:  # sparse plan: all rows of the physical tile are read
            phys = self.physical_index
            var = var.new_zeros((B, int(phys.max()) + 1) + tuple(sp)).index_add_(1, phys, var).index_select(1, phys)
        std = var.clamp_(min=0).sqrt_().mul_(self.read_scale * self.dac_scale).unsqueeze(2)
        if self.analog_bias:  # the bias row (input 1) adds one cell's variance in its tile
            extra = self.bias_rows_psum.view(1, T, -1, *[1] * len(sp))
            std = torch.sqrt(std * std + extra * self.read_scale ** 2)
        draw = gaussian(psum.shape, self._read_gen, psum.dtype).mul_(self.adc_inv_view)
        psum.view(B, T, per_tile, *sp).addcmul_(draw.view(B, T, per_tile, *sp), std)

    def _digitise(self, psum: torch.Tensor) -> torch.Tensor:
        """ADC per array range (``psum`` in ADC steps), back to physical units times the digital drift
        compensation, plus the digital bias when nothing is left to combine (one pass), in place; then
        the shift-add of the slices in slice mode."""
        B, sp, T = psum.shape[0], psum.shape[2:], self.T
        per_tile = psum.shape[1] // T
        y = to_levels(psum, *self.adc_levels)
        if self.bias_in_adc:
            torch.addcmul(self.digital_bias_view, y, self.adc_out_view, out=y)
        else:
            y.mul_(self.adc_out_view)
        if self.slice_adc:
            S = self.slice_coef.numel()
            y = (y.view(B, T, S, per_tile // S, *sp) * self.slice_coef.view(1, 1, S, 1, *[1] * len(sp))).sum(2)
            y = y.reshape(B, T * (per_tile // S), *sp)
        return y

    def _subtract_offset(self, y: torch.Tensor, xt: torch.Tensor, output_size) -> None:
        """Offset cells: subtract ``D * Qmax * (sum of the tile's inputs (+1 for the bias row))``, in place
        (``xt``: DAC integers)."""
        B, sp, T = y.shape[0], y.shape[2:], self.T
        sx = self._conv(xt, self.row_ones.to(xt.dtype), None, T, output_size).unsqueeze(2).mul_(self.dac_scale)
        if self.analog_bias:
            sx = sx + self.bias_rows.view(1, T, -1, *[1] * len(sp))
        y.view(B, T, -1, *sp).sub_(sx * self.offset)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if self.hwa is not None:
            return self.hwa(x, output_size)
        if self.calibrating:
            return self._calibration_call(x, output_size)
        if not self.calibrated:
            raise RuntimeError("AnalogLayer used before calibration; call CrossbarModel.calibrate(inputs) first")
        lead = x.shape[:-1]
        xt = self._dac(x)
        psum = self._conv(xt, self.step_weight, self.step_bias, self.T, output_size)
        if self.noise.read > 0:
            self._add_read_noise(psum, xt, output_size)
        y = self._digitise(psum)
        if not self.array.differential:
            self._subtract_offset(y, xt, output_size)
        out = self._combine(y)
        if self.digital_bias is not None and not self.bias_in_adc:
            out = out + self.digital_bias_view
        if self.kind == "linear":
            out = out.reshape(*lead, self.cout)
        return out

    # ------------------------------------------------------------------ calibration
    def _calibration_call(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        with torch.no_grad():
            self.x_absmax = torch.maximum(self.x_absmax, x.detach().abs().amax().to(self.x_absmax))
            self.x_signed = self.x_signed or bool((x < 0).any())
            xt = self._arrange(x.detach())
            psum = self._conv(xt, self.nominal.to(xt.dtype), self.bias_nominal, self.T, output_size)
            dims = [0] + list(range(2, psum.dim()))
            self.psum_absmax = torch.maximum(self.psum_absmax, psum.abs().amax(dim=dims).to(self.psum_absmax))
            self.psum_signed = self.psum_signed or bool((psum < 0).any())
        out = self.reference(x, output_size) if output_size is not None else self.reference(x)
        if self.kind != "linear" and out.dim() == 4:
            out = out.contiguous(memory_format=self.layout)  # the layout the forward returns
        return out

    def finish_calibration(self) -> None:
        """Fix the DAC range and every array's ADC range from the calibration pass."""
        a = self.array
        self.dac_levels = levels(a.dac_bits, self.x_signed)
        self.dac_scale = max(float(self.x_absmax), EPS_RANGE) / self.dac_levels[1]
        self.adc_levels = levels(a.adc_bits, self.psum_signed)
        S = self.slice_coef.numel() if self.slice_adc else 1
        ids = self.array_ids(S)
        ranges = torch.zeros(int(ids.max()) + 1).scatter_reduce(0, ids, self.psum_absmax.float(), "amax")
        self.adc_scale = (ranges[ids].clamp(min=EPS_RANGE) / self.adc_levels[1]).to(torch.float32)
        view = [1, -1] + [1] * (self.dims if self.kind != "linear" else 1)
        dtype = self.weight.dtype
        self.adc_inv_view = (1.0 / self.adc_scale).to(dtype).view(view)
        self.adc_out_view = (self.adc_scale * self.compensation).to(dtype).view(view)
        self.dac_inv = 1.0 / self.dac_scale
        self._fold_steps()
        self.calibrated = True

    def _fold_steps(self) -> None:
        """The tiles' conv weight and analog bias in converter units (see the forward's comment):
        ``weight * dac_step / psum_step`` per partial-sum channel, ``bias / psum_step``."""
        inv = 1.0 / self.adc_scale.double()
        w = self.weight.double()
        if self.kind == "convT":  # (T*span, ch, k..): the output channels of tile t are dim 1 of its block
            T = self.T
            w = w.view(T, -1, w.shape[1], *w.shape[2:]) * inv.view(T, 1, -1, *[1] * (w.dim() - 2))
            w = w.view(self.weight.shape)
        else:
            w = w * inv.view(-1, *[1] * (w.dim() - 1))
        layout = self.layout if w.dim() == 4 else torch.contiguous_format  # a channels-last weight makes a channels-last conv
        self.step_weight = (w * self.dac_scale).to(self.weight.dtype).contiguous(memory_format=layout)
        self.step_bias = None if self.bias_psum is None else (self.bias_psum.double() * inv).to(self.bias_psum.dtype)
        differential_sum = self.array.differential and not self.slice_adc
        self.bias_in_adc = self.digital_bias is not None and differential_sum and self.in_order
        if self.digital_bias is not None:
            dims = self.dims if self.kind != "linear" else 1
            self.digital_bias_view = self.digital_bias.to(self.weight.dtype).view(1, -1, *[1] * dims)

    def extra_repr(self) -> str:
        return (f"{type(self.reference).__name__}: {self.cin}->{self.cout}, groups={self.groups}, "
                f"tiles={self.T} ({self.strategy}), {'slice ADC' if self.slice_adc else 'fast ADC'}")
