"""Quantisation on the chip: the DAC / ADC quantisers, signed weight integers and bit slices.

>>> levels(4, signed=True), levels(4, signed=False)
((-7, 7), (0, 15))
>>> import torch
>>> slice_conductance(torch.tensor([11]), slice_index=1, cell_bits=2)   # 11 = 0b1011: digit 1 is 0b10
tensor([0.6667])
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

#: Smallest range a calibrated quantiser may have (an all-zero range would divide by zero).
EPS_RANGE = 1e-20


def quantize(x: torch.Tensor, inv, scale, qmin: int, qmax: int) -> torch.Tensor:
    """``clamp(round(x * inv), qmin, qmax) * scale``; ``inv`` / ``scale`` are numbers or broadcastable
    tensors (per channel). Plain vectorised ops: much faster on CPU than ``fake_quantize_*``."""
    return to_levels(x * inv, qmin, qmax).mul_(scale)


def to_levels(x: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """``clamp(round(x), qmin, qmax)`` in place: a converter's integer of ``x`` given in its steps."""
    return x.round_().clamp_(qmin, qmax)


def levels(bits: int, signed: bool) -> Tuple[int, int]:
    """Integer range of a ``bits``-bit DAC / ADC: symmetric when ``signed``, else ``[0, 2**bits - 1]``."""
    if signed:
        q = 2 ** (bits - 1) - 1 if bits > 1 else 1
        return -q, q
    return 0, 2 ** bits - 1


def weight_qmax(weight_bits: int) -> int:
    """Largest signed weight integer: ``2**(weight_bits-1) - 1`` (1 for binary weights)."""
    return 2 ** (weight_bits - 1) - 1 if weight_bits > 1 else 1


def weight_step(w: torch.Tensor, bias: Optional[torch.Tensor], qmax: int) -> float:
    """Per-layer step ``D = max|W| / qmax`` (``max`` over weights and the analog bias, if any)."""
    wmax = float(w.abs().max()) if w.numel() else 0.0
    if bias is not None and bias.numel():
        wmax = max(wmax, float(bias.abs().max()))
    return wmax / qmax if wmax > 0 else 1.0


def quantize_weights(w: torch.Tensor, step: float, qmax: int) -> torch.Tensor:
    """Signed integers ``clamp(round(w / step), -qmax, qmax)`` (int64)."""
    return torch.round(w.double() / step).clamp(-qmax, qmax).to(torch.long)


def slice_conductance(magnitudes: torch.Tensor, slice_index: int, cell_bits: int,
                      top: Optional[int] = None) -> torch.Tensor:
    """Conductance ``d_j / top`` of base-``2**cell_bits`` digit ``j`` of ``magnitudes``; ``top`` is the
    largest digit that slice holds (default ``2**cell_bits - 1``), which is programmed to ``g_max``."""
    mask = 2 ** cell_bits - 1
    return ((magnitudes >> (cell_bits * slice_index)) & mask).to(torch.float32).div_(top or mask)
