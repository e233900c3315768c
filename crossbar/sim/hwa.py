"""Hardware-aware (HWA) training: the analog layer's own math in a differentiable mode.

:func:`hwa_model` wraps a model as a :class:`~.convert.CrossbarModel` that SHARES the model's
parameters and buffers (so an optimiser over ``model.parameters()`` trains it) and switches every
:class:`~.layer.AnalogLayer` to :func:`hwa_forward`: the same DAC, tile placement, grouped
convolution over the tiles, per-array ADC and tile combination as inference, but on the CURRENT
weights and differentiable:

* weights are quantised to ``weight_bits`` with ``D = max|W| / Qmax`` (per layer) through a
  straight-through estimator (STE: the forward rounds, the backward passes the gradient as if it
  had not), then get Gaussian noise of std ``weight_noise_relative * max|W|``, drawn every batch;
* inputs go through the ``dac_bits`` DAC and every array's partial sums through Gaussian output
  noise (``output_noise_relative`` of that array's range) and the ``adc_bits`` ADC, both with STE;
  the ranges are the batch's own (``max|x|``, per-array ``max|psum|``), as a calibrated chip would
  have them;
* after every optimiser step :meth:`HWAModel.after_step` clips each analog layer's weights to
  ``clip_sigma`` standard deviations (aihwkit's ``WeightClipType.LAYER_GAUSSIAN``), keeping
  ``max|W|`` — and so the conductance step — from being set by outliers.

Biases are added digitally (aihwkit's ``digital_bias``). The defaults follow aihwkit's HWA recipe
for PCM (Rasch et al., "Hardware-aware training for large-scale and diverse deep learning inference
workloads using in-memory computing-based accelerators", Nat. Commun. 14, 5282, 2023): output noise
0.04 of the range and 2.5-sigma clipping; :meth:`HWASpec.for_noise` sets the weight noise to the
spread the noise model gives a full-scale weight at its ``t_seconds``.

>>> import torch
>>> x = torch.tensor([0.26, 0.74], requires_grad=True)
>>> y = ste_quantize(x, 2.0, 0.5, -3, 3); y.detach().tolist(), torch.autograd.grad(y.sum(), x)[0].tolist()
([0.5, 0.5], [1.0, 1.0])
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional

import torch
from torch import nn

from graphcost.errors import UserError

from ..specs import ArraySpec, NoiseSpec
from .convert import CrossbarModel
from .layer import AnalogLayer
from .noise import DRIFT_T0_SECONDS, programming_std, read_1f_time_factor
from .quantization import EPS_RANGE, levels, weight_qmax

__all__ = ["HWASpec", "HWAModel", "hwa_model", "hwa_forward", "ste_quantize"]


@dataclass(frozen=True)
class HWASpec:
    """What hardware-aware training simulates (see the module docstring).

    ``weight_noise_relative`` / ``output_noise_relative`` are stds relative to each layer's
    ``max|W|`` / each array's partial-sum range; ``clip_sigma`` ``None`` disables clipping.
    """

    array: ArraySpec = field(default_factory=lambda: ArraySpec(256, 256))
    weight_noise_relative: float = 0.07
    output_noise_relative: float = 0.04
    clip_sigma: Optional[float] = 2.5
    depthwise: str = "dense"

    def __post_init__(self):
        for name in ("weight_noise_relative", "output_noise_relative"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UserError(f"HWA {name} must be a finite number >= 0, got {value!r}")
        if self.clip_sigma is not None and not (self.clip_sigma > 0 and math.isfinite(self.clip_sigma)):
            raise UserError(f"HWA clip_sigma must be > 0 (or None), got {self.clip_sigma!r}")

    @classmethod
    def for_noise(cls, noise: NoiseSpec, array: Optional[ArraySpec] = None, **kwargs) -> "HWASpec":
        """Weight noise = the spread ``noise`` gives a full-scale cell at ``noise.t_seconds``: programming
        std at ``g_max``, 1/f read noise and the drift-exponent spread (``std(nu) ln(1 + t / t0)``),
        added in quadrature (``pcm`` at 1 h: 7.3 %)."""
        full = programming_std(torch.ones(1), noise)
        prog = float(full) if isinstance(full, torch.Tensor) else float(full)
        read = noise.read_1f * read_1f_time_factor(noise)
        drift = noise.drift_nu_std * math.log1p(noise.t_seconds / DRIFT_T0_SECONDS)
        kwargs.setdefault("weight_noise_relative", round(math.sqrt(prog ** 2 + read ** 2 + drift ** 2), 4))
        return cls(array=array or ArraySpec(256, 256), **kwargs)

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def ste_quantize(x: torch.Tensor, inv, scale, qmin: int, qmax: int) -> torch.Tensor:
    """``clamp(round(x * inv), qmin, qmax) * scale`` forward, identity backward (straight-through)."""
    with torch.no_grad():
        q = (x * inv).round_().clamp_(qmin, qmax).mul_(scale)
    return x + (q - x).detach()


def _tile_index(layer: AnalogLayer):
    """Gather indices placing a ``(Cout, Cin/g, K)`` weight into the tiles: ``(T, cols)`` output
    channels, ``(T, span)`` input channels within the group, and the ``(T, cols, span, K)`` mask of
    cells that hold a weight (the same placement as programming)."""
    cg, co_g = layer.cin // layer.groups, layer.cout // layer.groups
    o, c = layer.out_index, layer.in_index
    oc, cc = o.clamp(max=layer.cout - 1), c.clamp(max=layer.cin - 1)
    same_group = (oc.unsqueeze(2) // co_g) == (cc.unsqueeze(1) // cg)  # (T, cols, span)
    mask = layer.rowmask.unsqueeze(1) & (c < layer.cin).view(layer.T, 1, -1, 1) & \
        (o < layer.cout).view(layer.T, -1, 1, 1) & same_group.unsqueeze(-1)
    return oc, cc % cg, mask.to(torch.float32)


def _tile_weights(layer: AnalogLayer, w: torch.Tensor) -> torch.Tensor:
    """Weights ``(Cout, Cin/g, K)`` as the grouped-conv weight of the tiles (differentiable)."""
    oc, cc, mask = layer.hwa_index
    tiles = w[oc.unsqueeze(2), cc.unsqueeze(1)] * mask.to(w.dtype)  # (T, cols, span, K)
    T, cols, span = tiles.shape[:3]
    tiles = tiles.reshape(T, cols, span, *layer.kernel)
    if layer.kind == "convT":
        return tiles.transpose(1, 2).reshape(T * span, cols, *layer.kernel)
    return tiles.reshape(T * cols, span, *layer.kernel)


def hwa_forward(layer: AnalogLayer, x: torch.Tensor, spec: HWASpec, gen: torch.Generator,
                output_size=None) -> torch.Tensor:
    """One analog layer's forward on its current weights, differentiable (see the module docstring)."""
    a = spec.array
    lead = x.shape[:-1]
    w = layer.geometry.grouped_weight(layer.reference.weight).reshape(layer.cout, layer.cin // layer.groups, layer.K)
    wmax = w.detach().abs().max().clamp(min=EPS_RANGE)
    qmax = weight_qmax(a.weight_bits)
    w = ste_quantize(w, qmax / wmax, wmax / qmax, -qmax, qmax)
    if spec.weight_noise_relative > 0:
        w = w + torch.randn(w.shape, generator=gen).to(w) * (spec.weight_noise_relative * wmax)
    dac = levels(a.dac_bits, bool((x.detach() < 0).any()))
    xmax = x.detach().abs().max().clamp(min=EPS_RANGE)
    xt = layer._arrange(ste_quantize(x, dac[1] / xmax, xmax / dac[1], *dac))
    psum = layer._conv(xt, _tile_weights(layer, w), None, layer.T, output_size)
    dims = [0] + list(range(2, psum.dim()))
    per_channel = psum.detach().abs().amax(dim=dims)
    ranges = torch.zeros(int(layer.hwa_arrays.max()) + 1, dtype=psum.dtype).scatter_reduce(
        0, layer.hwa_arrays, per_channel, "amax")[layer.hwa_arrays].clamp(min=EPS_RANGE)
    view = [1, -1] + [1] * (psum.dim() - 2)
    if spec.output_noise_relative > 0:
        noise = torch.randn(psum.shape, generator=gen).to(psum)
        psum = psum + noise * (spec.output_noise_relative * ranges).view(view)
    adc = levels(a.adc_bits, bool((psum.detach() < 0).any()))
    y = ste_quantize(psum, (adc[1] / ranges).view(view), (ranges / adc[1]).view(view), *adc)
    out = layer._combine(y)
    bias = layer.reference.bias
    if bias is not None:
        out = out + bias.view(1, -1, *[1] * (out.dim() - 2))
    return out.reshape(*lead, layer.cout) if layer.kind == "linear" else out


def _bound_forward(layer: AnalogLayer, spec: HWASpec, gen: torch.Generator):
    def forward(x, output_size=None):
        return hwa_forward(layer, x, spec, gen, output_size)
    return forward


class HWAModel(nn.Module):
    """``model`` with every analog layer in its differentiable HWA mode; parameters shared with ``model``."""

    def __init__(self, model: nn.Module, spec: HWASpec, seed: int = 0):
        super().__init__()
        self.spec = spec
        self.gen = torch.Generator().manual_seed(int(seed))
        self.sim = CrossbarModel(model, spec.array, NoiseSpec(), seed=seed, depthwise=spec.depthwise,
                                 share_parameters=True)
        if not self.sim.analog_layers:
            raise UserError("hardware-aware training needs a model with analog layers (conv, transposed conv or "
                            "linear); this one has none")
        for layer in self.sim.analog_layers.values():
            layer.hwa_index = _tile_index(layer)
            layer.hwa_arrays = layer.array_ids(1)
            layer.hwa = _bound_forward(layer, spec, self.gen)

    def forward(self, *args, **kwargs):
        return self.sim.model(*args, **kwargs)

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
