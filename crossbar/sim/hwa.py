"""Hardware-aware (HWA) training: the analog layer's own math in a differentiable mode.

:func:`hwa_model` wraps a model as a :class:`~.convert.CrossbarModel` that SHARES the model's
parameters and buffers (so an optimiser over ``model.parameters()`` trains it) and switches every
:class:`~.layer.AnalogLayer` to :func:`hwa_forward`: the same DAC, tile placement, grouped
convolution over the tiles, per-array ADC and tile combination as inference, but on the CURRENT
weights and differentiable:

* weights are quantised to ``weight_bits`` with ``D = max|W| / Qmax`` (per layer) through a
  straight-through estimator (STE: the forward rounds, the backward passes the gradient as if it
  had not), then get Gaussian noise drawn every batch: with ``weight_noise_levels`` (what
  :meth:`HWASpec.for_noise` sets) of the std, relative to ``max|W|``, that the simulator's own
  programming gives a weight of that integer ``|q|`` at the noise model's time (:func:`programmed_weight_noise`),
  on every cell of the tiles, the structural zeros of grouped convs included (level 0); otherwise of
  a constant ``weight_noise_relative * max|W|`` on every weight;
* inputs go through the ``dac_bits`` DAC and every array's partial sums through Gaussian output
  noise (``output_noise_relative`` of that array's range) and the ``adc_bits`` ADC, both with STE;
  the ranges are the batch's own (``max|x|``, per-array ``max|psum|``), as a calibrated chip would
  have them;
* after every optimiser step :meth:`HWAModel.after_step` clips each analog layer's weights to
  ``clip_sigma`` standard deviations (aihwkit's ``WeightClipType.LAYER_GAUSSIAN``), if set.

Biases are added digitally (aihwkit's ``digital_bias``). The training noise must be the noise the
simulator will apply, not more: measured on the shipped float ItNet (8 synthetic images), the earlier
recipe (a constant 7.3 % of ``max|W|`` on every weight, the spread of a full-scale cell, and aihwkit's
0.04 output noise read as 4 % of each array's range) cut its mIoU to 0.57 where the ``pcm`` simulator
at one day gives 0.85, and 2.5-sigma clipping alone cut its float mIoU from 0.85 to 0.65 (its mixing
convolutions have ``max|W|`` at 11 sigma): fine-tuning against that lost float accuracy and robustness.
The programmed error of a weight is nearly proportional to ``|w|`` (drift-exponent spread, 1/f and
programming noise all scale with the conductance; ~9 % of ``|w|`` at one day), so clipping buys
little and :meth:`HWASpec.for_noise` leaves it off; the simulator's ``pcm`` has no per-MVM read
noise, so ``for_noise`` adds no output noise for it. (Rasch et al., "Hardware-aware training for
large-scale and diverse deep learning inference workloads using in-memory computing-based
accelerators", Nat. Commun. 14, 5282, 2023, is the recipe this follows.)

>>> import torch
>>> x = torch.tensor([0.26, 0.74], requires_grad=True)
>>> y = ste_quantize(x, 2.0, 0.5, -3, 3); y.detach().tolist(), torch.autograd.grad(y.sum(), x)[0].tolist()
([0.5, 0.5], [1.0, 1.0])
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from graphcost.errors import UserError

from ..specs import ArraySpec, NoiseSpec
from .convert import CrossbarModel
from .layer import AnalogLayer
from .noise import cells_at_time, generators, perturbs_cells, program_cells
from .programming import slice_tops
from .quantization import EPS_RANGE, levels, quantize, slice_conductance, weight_qmax

__all__ = ["HWASpec", "HWAModel", "hwa_model", "hwa_forward", "ste_quantize", "programmed_weight_noise"]

#: Weights per integer level :func:`programmed_weight_noise` programs (its standard error is ~2 %).
NOISE_SAMPLES_PER_LEVEL = 1024


def programmed_weight_noise(noise: NoiseSpec, array: ArraySpec, *, samples: int = NOISE_SAMPLES_PER_LEVEL,
                            seed: int = 0) -> Tuple[float, ...]:
    """RMS error, relative to ``max|W|``, of a weight of integer ``|q| = 0 .. Qmax`` as the simulator
    programs it (``array``'s pair / offset encoding and bit slices, ``noise``'s programming noise,
    faults, per-cell drift and 1/f read noise at ``noise.t_seconds``, global drift compensation over
    the levels) against its nominal value; per-MVM read noise is not a weight error.

    >>> from graphcost.crossbar.specs import ArraySpec, NoiseSpec
    >>> table = programmed_weight_noise(NoiseSpec.pcm(), ArraySpec(256, 256))
    >>> len(table), table[0] < table[64] < table[127] < 0.05
    (128, True)
    """
    qmax = weight_qmax(array.weight_bits)
    if not perturbs_cells(noise):
        return (0.0,) * (qmax + 1)
    q = torch.arange(qmax + 1).repeat_interleave(samples)
    gens = generators(seed)
    present = torch.ones(q.shape, dtype=torch.bool)
    cb, tops = array.cell_bits, slice_tops(array.weight_bits, array.cell_bits, array.differential)
    planes = [(q, 1.0), (torch.zeros_like(q), -1.0)] if array.differential else [(q + qmax, 1.0)]
    programmed, drifted = torch.zeros(q.shape), torch.zeros(q.shape)
    for mags, sign in planes:
        for j, top in enumerate(tops):
            g0 = slice_conductance(mags, j, cb, top)
            g, stuck = program_cells(g0, present, noise, gens)
            coef = sign * top * float((2 ** cb) ** j)
            programmed.add_(g, alpha=coef)
            drifted.add_(cells_at_time(g, g0, stuck, noise, gens), alpha=coef)
    compensation = 1.0
    if noise.drift_compensation == "global" and float(drifted.abs().sum()) > 0:
        compensation = float(programmed.abs().sum() / drifted.abs().sum())
    offset = 0 if array.differential else qmax  # subtracted digitally, exactly
    error = (drifted * compensation - offset - q).view(qmax + 1, samples)
    return tuple(round(float(v) / qmax, 6) for v in error.pow(2).mean(1).sqrt())


@dataclass(frozen=True)
class HWASpec:
    """What hardware-aware training simulates (see the module docstring).

    ``weight_noise_relative`` / ``output_noise_relative`` are stds relative to each layer's
    ``max|W|`` / each array's partial-sum range; ``weight_noise_levels``, when given, replaces the
    constant weight noise by one std (relative to ``max|W|``) per weight integer ``|q| = 0 .. Qmax``
    (:func:`programmed_weight_noise`); ``clip_sigma`` ``None`` disables clipping.
    """

    array: ArraySpec = field(default_factory=lambda: ArraySpec(256, 256))
    weight_noise_relative: float = 0.07
    output_noise_relative: float = 0.04
    clip_sigma: Optional[float] = 2.5
    depthwise: str = "dense"
    weight_noise_levels: Tuple[float, ...] = ()

    def __post_init__(self):
        for name in ("weight_noise_relative", "output_noise_relative"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UserError(f"HWA {name} must be a finite number >= 0, got {value!r}")
        if self.clip_sigma is not None and not (self.clip_sigma > 0 and math.isfinite(self.clip_sigma)):
            raise UserError(f"HWA clip_sigma must be > 0 (or None), got {self.clip_sigma!r}")
        table = self.weight_noise_levels
        if table and (len(table) != weight_qmax(self.array.weight_bits) + 1 or
                      not all(math.isfinite(v) and v >= 0 for v in table)):
            raise UserError(f"HWA weight_noise_levels needs one finite std >= 0 per weight integer 0 .. "
                            f"{weight_qmax(self.array.weight_bits)}, got {len(table)} values")

    @classmethod
    def for_noise(cls, noise: NoiseSpec, array: Optional[ArraySpec] = None, **kwargs) -> "HWASpec":
        """The training noise of ``noise`` at its ``t_seconds``: per weight integer the programmed
        weight's error (:func:`programmed_weight_noise`; ``weight_noise_relative`` records its value at
        full scale), output noise only where the device has per-MVM read noise, no clipping (see the
        module docstring for why)."""
        array = array or ArraySpec(256, 256)
        table = programmed_weight_noise(noise, array)
        kwargs.setdefault("weight_noise_levels", table)
        kwargs.setdefault("weight_noise_relative", table[-1])
        kwargs.setdefault("output_noise_relative", cls.output_noise_relative if noise.read > 0 else 0.0)
        kwargs.setdefault("clip_sigma", None)
        return cls(array=array, **kwargs)

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


class _STE(torch.autograd.Function):
    """Quantiser forward, identity backward (one node, no ``x + (q - x).detach()`` temporaries)."""

    @staticmethod
    def forward(ctx, x, inv, scale, qmin, qmax):
        return quantize(x, inv, scale, qmin, qmax)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None, None


def ste_quantize(x: torch.Tensor, inv, scale, qmin: int, qmax: int) -> torch.Tensor:
    """``clamp(round(x * inv), qmin, qmax) * scale`` forward, identity backward (straight-through)."""
    return _STE.apply(x, inv, scale, qmin, qmax)


def _tile_index(layer: AnalogLayer):
    """Gather indices placing a ``(Cout, Cin/g, K)`` weight into the tiles: ``(T, cols)`` output
    channels, ``(T, span)`` input channels within the group, the ``(T, cols, span, K)`` mask of
    cells that hold a weight and the mask of cells that exist (structural zeros of a grouped tile
    included), the same placement as programming."""
    cg, co_g = layer.cin // layer.groups, layer.cout // layer.groups
    o, c = layer.out_index, layer.in_index
    oc, cc = o.clamp(max=layer.cout - 1), c.clamp(max=layer.cin - 1)
    same_group = (oc.unsqueeze(2) // co_g) == (cc.unsqueeze(1) // cg)  # (T, cols, span)
    present = layer.rowmask.unsqueeze(1) & (c < layer.cin).view(layer.T, 1, -1, 1) & \
        (o < layer.cout).view(layer.T, -1, 1, 1)
    mask = present & same_group.unsqueeze(-1)
    return oc, cc % cg, mask.to(torch.float32), (present & ~mask).to(torch.float32)


def _tile_weights(layer: AnalogLayer, w: torch.Tensor, zeros: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Weights ``(Cout, Cin/g, K)`` as the grouped-conv weight of the tiles (differentiable); the
    structural-zero cells hold ``zeros`` (``(T, cols, span, K)``) if given, else 0."""
    oc, cc, mask, _ = layer.hwa_index
    tiles = w[oc.unsqueeze(2), cc.unsqueeze(1)] * mask.to(w.dtype)  # (T, cols, span, K)
    if zeros is not None:
        tiles = tiles + zeros.to(w.dtype)
    T, cols, span = tiles.shape[:3]
    tiles = tiles.reshape(T, cols, span, *layer.kernel)
    if layer.kind == "convT":
        return tiles.transpose(1, 2).reshape(T * span, cols, *layer.kernel)
    return tiles.reshape(T * cols, span, *layer.kernel)


def _noisy_weights(layer: AnalogLayer, spec: "HWASpec", gen: torch.Generator
                   ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The layer's current weights ``(Cout, Cin/g, K)``, quantised (STE), with fresh weight noise, and
    the fresh noise of its tiles' structural-zero cells (tile layout; ``None`` without such cells or
    level noise); see the module docstring."""
    w = layer.geometry.grouped_weight(layer.reference.weight).reshape(layer.cout, layer.cin // layer.groups, layer.K)
    wmax = w.detach().abs().max().clamp(min=EPS_RANGE)
    qmax = weight_qmax(spec.array.weight_bits)
    w = ste_quantize(w, qmax / wmax, wmax / qmax, -qmax, qmax)
    if spec.weight_noise_levels:
        table = layer.hwa_noise_table
        if table is None:
            table = layer.hwa_noise_table = torch.tensor(spec.weight_noise_levels, dtype=w.dtype)
        level = (w.detach().abs() * (table.numel() - 1) / wmax).round_().long().clamp_(max=table.numel() - 1)
        w = w + torch.randn(w.shape, generator=gen).to(w) * (table[level] * wmax)
        zeros = layer.hwa_structural
        if zeros is not None:
            zeros = torch.randn(zeros.shape, generator=gen).to(w).mul_(zeros).mul_(table[0] * wmax)
        return w, zeros
    if spec.weight_noise_relative > 0:
        w = w + torch.randn(w.shape, generator=gen).to(w) * (spec.weight_noise_relative * wmax)
    return w, None


def _batch_weights(layer: AnalogLayer, spec: "HWASpec", gen: torch.Generator,
                   batch: Optional[Dict[int, tuple]]) -> tuple:
    """The layer's noisy weights of this batch (:func:`_noisy_weights`, and the tiles' conv weight
    unless the layer runs split): made at its first call, reused by the other calls of a weight-shared
    layer (a loop's iterations run on the same programmed devices; weights do not change within a forward)."""
    made = batch.get(id(layer)) if batch is not None else None
    if made is None:
        w, zeros = _noisy_weights(layer, spec, gen)
        tiles = None
        if layer.hwa_split is None:
            tiles = _tile_weights(layer, w)
            tiles = tiles if zeros is None else tiles + zeros
        made = (w, zeros, tiles)
        if batch is not None:
            batch[id(layer)] = made
    return made


def _split_index(layer: AnalogLayer) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """For a conv whose tiles hold structural zeros and every output channel in one tile: the output
    channel of every tile column and the mask of columns that hold one, so that the real weights run
    as the layer's own (grouped) conv and only the structural zeros' noise as the tiles' conv,
    without gradient (its forward is exact; the backward leaves out the input gradient through that
    noise). ``None`` otherwise."""
    if layer.hwa_structural is None or layer.kind != "conv" or layer.reference.padding_mode != "zeros":
        return None
    valid = layer.out_index < layer.cout
    channels = layer.out_index[valid]
    if channels.numel() != layer.cout or channels.unique().numel() != layer.cout:
        return None
    if layer.out_index.numel() == layer.cout and torch.equal(layer.out_index.reshape(-1), torch.arange(layer.cout)):
        return ()  # the tile columns are the output channels in order: nothing to gather or combine
    return layer.out_index.clamp(max=layer.cout - 1).reshape(-1), valid.reshape(-1).to(torch.float32)


def _tile_psums(layer: AnalogLayer, xq: torch.Tensor, made: tuple, output_size) -> torch.Tensor:
    """Every tile column's partial sums ``(B, T*cols, *sp)`` of the DAC-quantised input ``xq``."""
    w, zeros, tiles = made
    if layer.hwa_split is None:
        return layer._conv(layer._arrange(xq), tiles, None, layer.T, output_size)
    ref = layer.reference
    fn = (F.conv1d, F.conv2d, F.conv3d)[layer.dims - 1]
    psum = fn(xq, w.reshape(ref.weight.shape), None, ref.stride, ref.padding, ref.dilation, ref.groups)
    if layer.hwa_split:
        index, valid = layer.hwa_split
        psum = psum.index_select(1, index) * valid.to(psum.dtype).view(1, -1, *[1] * layer.dims)
    with torch.no_grad():
        noise = layer._conv(layer._arrange(xq.detach()), zeros, None, layer.T, output_size)
    return psum + noise


def hwa_forward(layer: AnalogLayer, x: torch.Tensor, spec: HWASpec, gen: torch.Generator,
                output_size=None, batch: Optional[Dict[int, torch.Tensor]] = None) -> torch.Tensor:
    """One analog layer's forward on its current weights, differentiable (see the module docstring);
    ``batch`` holds the batch's noisy tiles per layer (``None``: fresh ones)."""
    a = spec.array
    lead = x.shape[:-1]
    made = _batch_weights(layer, spec, gen, batch)
    lo, hi = torch.aminmax(x.detach())  # one pass for the DAC's range and sign
    dac = levels(a.dac_bits, bool(lo < 0))
    xmax = torch.maximum(hi, -lo).clamp(min=EPS_RANGE)
    psum = _tile_psums(layer, ste_quantize(x, dac[1] / xmax, xmax / dac[1], *dac), made, output_size)
    dims = [0] + list(range(2, psum.dim()))
    lo, hi = psum.detach().amin(dim=dims), psum.detach().amax(dim=dims)
    ranges = torch.zeros(int(layer.hwa_arrays.max()) + 1, dtype=psum.dtype).scatter_reduce(
        0, layer.hwa_arrays, torch.maximum(hi, -lo), "amax")[layer.hwa_arrays].clamp(min=EPS_RANGE)
    view = [1, -1] + [1] * (psum.dim() - 2)
    if spec.output_noise_relative > 0:
        noise = torch.randn(psum.shape, generator=gen).to(psum)
        psum = psum + noise * (spec.output_noise_relative * ranges).view(view)
        lo = psum.detach().amin()
    adc = levels(a.adc_bits, bool(lo.min() < 0))
    y = ste_quantize(psum, (adc[1] / ranges).view(view), (ranges / adc[1]).view(view), *adc)
    out = y if layer.hwa_split == () else layer._combine(y)
    bias = layer.reference.bias
    if bias is not None:
        out = out + bias.view(1, -1, *[1] * (out.dim() - 2))
    return out.reshape(*lead, layer.cout) if layer.kind == "linear" else out


def _bound_forward(layer: AnalogLayer, spec: HWASpec, gen: torch.Generator, batch: Dict[int, torch.Tensor]):
    def forward(x, output_size=None):
        return hwa_forward(layer, x, spec, gen, output_size, batch)
    return forward


class HWAModel(nn.Module):
    """``model`` with every analog layer in its differentiable HWA mode; parameters shared with ``model``."""

    def __init__(self, model: nn.Module, spec: HWASpec, seed: int = 0):
        super().__init__()
        self.spec = spec
        self.gen = torch.Generator().manual_seed(int(seed))
        self.batch: Dict[int, torch.Tensor] = {}
        # with noisy zero cells the tiles hold the structural zeros of grouped convs, as the simulator's
        # do under that noise (the cells it programs here are never read: HWA reads the live weights)
        zero_cell = NoiseSpec(programming=spec.weight_noise_levels[0]) if spec.weight_noise_levels else NoiseSpec()
        self.sim = CrossbarModel(model, spec.array, zero_cell, seed=seed, depthwise=spec.depthwise,
                                 share_parameters=True)
        if not self.sim.analog_layers:
            raise UserError("hardware-aware training needs a model with analog layers (conv, transposed conv or "
                            "linear); this one has none")
        for layer in self.sim.analog_layers.values():
            layer.hwa_index = _tile_index(layer)
            layer.hwa_noise_table = None
            structural = layer.hwa_index[3]
            layer.hwa_structural = None if not (spec.weight_noise_levels and bool(structural.any())) else \
                _tile_weights(layer, torch.zeros(layer.cout, layer.cin // layer.groups, layer.K), structural)
            layer.hwa_split = _split_index(layer)
            layer.hwa_arrays = layer.array_ids(1)
            layer.hwa = _bound_forward(layer, spec, self.gen, self.batch)

    def forward(self, *args, **kwargs):
        self.batch.clear()  # a new batch: new weight noise
        try:
            return self.sim.model(*args, **kwargs)
        finally:
            self.batch.clear()  # holds no graph after the forward

    def train(self, mode: bool = True) -> "HWAModel":
        self.training = mode
        self.sim.model.train(mode)
        return self

    @torch.no_grad()
    def after_step(self) -> None:
        """Clip every analog layer's weights to ``clip_sigma`` standard deviations (once per tensor)."""
        if self.spec.clip_sigma is None:
            return
        seen = set()
        for layer in self.sim.analog_layers.values():
            w = layer.reference.weight
            if id(w) in seen:
                continue
            seen.add(id(w))
            bound = float(self.spec.clip_sigma * w.std())
            w.clamp_(-bound, bound)


def hwa_model(model: nn.Module, spec: HWASpec, seed: int = 0) -> HWAModel:
    """``model`` for hardware-aware training; raises :class:`UserError` if it has no analog layers."""
    return HWAModel(model, spec, seed)
