"""Programming one layer: quantise its weights, place them into the tiles, encode them as cell
conductances (differential pair or offset cell, bit slices) and apply the device noise.

:func:`program` returns a :class:`ProgrammedCells`, the typed record an :class:`AnalogLayer`
reads; a weight-shared module called N times is programmed once and shares it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from .noise import cells_at_time, perturbs_cells, program_cells, read_noise_scale
from .quantization import quantize_weights, slice_conductance, weight_qmax, weight_step


@dataclass(frozen=True)
class ProgrammedCells:
    """One layer's cells as conv weights over its tiles (``T`` tiles, ``cols`` columns each).

    ``weight`` / ``nominal``: the effective (noisy, drifted) and noise-free conv weights, in units
    of the recombined weight (fast mode) or of one slice's conductance (slice mode); ``bias_psum``
    / ``bias_nominal`` the analog bias cells the same way (``None`` without analog bias);
    ``read_scale`` the read-noise std per unit ``sqrt(sum x**2)``; ``offset`` the digital offset
    ``D * Qmax`` of offset-cell encoding; ``compensation`` the global drift compensation
    ``sum g(t0) / sum g(t)``; ``slice_coef`` the shift-add weight of each slice (slice mode);
    ``bias_rows`` ``(T, cols)`` 1 where a column's bias row is, ``bias_rows_psum`` the same per
    partial-sum channel; ``psum_channels`` the partial sums one MVM produces.
    """

    weight: torch.Tensor
    nominal: torch.Tensor
    bias_psum: Optional[torch.Tensor]
    bias_nominal: Optional[torch.Tensor]
    read_scale: float
    offset: float
    compensation: float
    slice_coef: torch.Tensor
    bias_rows: torch.Tensor
    bias_rows_psum: torch.Tensor
    psum_channels: int


def _place_weights(qflat: torch.Tensor, layer) -> Tuple[torch.Tensor, torch.Tensor]:
    """Integers ``qflat`` ``(Cout, Cin/g, K)`` placed into the tiles: ``(T, cols, span, K)`` values
    and the mask of cells that exist (structural zeros of a grouped tile included)."""
    T, cols, span, K = layer.T, layer.plan.cols, layer.plan.span, layer.K
    cg, co_g = layer.cin // layer.groups, layer.cout // layer.groups
    qt = torch.zeros(T, cols, span, K, dtype=torch.long)
    present = torch.zeros(T, cols, span, K, dtype=torch.bool)
    for t in range(T):
        o, c = layer.out_index[t], layer.in_index[t]
        ov, cv = o < layer.cout, c < layer.cin
        oc, cc = o.clamp(max=layer.cout - 1), c.clamp(max=layer.cin - 1)
        same_group = (oc.view(-1, 1) // co_g) == (cc.view(1, -1) // cg)
        cell = layer.rowmask[t].unsqueeze(0) & cv.view(1, -1, 1) & ov.view(-1, 1, 1)
        present[t] = cell
        qt[t] = torch.where(cell & same_group.unsqueeze(-1), qflat[oc][:, cc % cg], 0)
    return qt, present


def _place_bias(qbias: torch.Tensor, layer) -> Tuple[torch.Tensor, torch.Tensor]:
    """Bias integers in each column's last tile: ``(T, cols)`` values and ``(T, cols)`` 0/1 rows."""
    T, cols = layer.T, layer.plan.cols
    last = torch.full((layer.cout,), -1, dtype=torch.long)
    for t in range(T):
        o = layer.out_index[t]
        last[o[o < layer.cout]] = t
    qbt = torch.zeros(T, cols, dtype=torch.long)
    bias_rows = torch.zeros(T, cols)
    for t in range(T):
        o = layer.out_index[t]
        mine = (o < layer.cout) & (last[o.clamp(max=layer.cout - 1)] == t)
        bias_rows[t] = mine.float()
        qbt[t] = torch.where(mine, qbias[o.clamp(max=layer.cout - 1)], 0)
    return qbt, bias_rows


def slice_tops(weight_bits: int, cell_bits: int, differential: bool) -> List[int]:
    """Largest digit each bit slice ever holds: the stored magnitude (``Qmax`` for a differential
    pair, ``2 Qmax`` for an offset cell) cut into base-``2**cell_bits`` digits, at least 1. A slice's
    digit ``d`` is programmed to ``g = d / top``, so ``max|W|`` reaches ``g_max`` on every slice.

    >>> slice_tops(8, 2, True), slice_tops(8, 8, True), slice_tops(8, 2, False)
    ([3, 3, 3, 1], [127], [3, 3, 3, 3])
    """
    largest = weight_qmax(weight_bits) * (1 if differential else 2)
    slices = -(-weight_bits // cell_bits)
    return [max(1, min(2 ** cell_bits - 1, largest >> (cell_bits * j))) for j in range(slices)]


def _encode(qt: torch.Tensor, present: torch.Tensor, qmax: int, delta: float, layer,
            gens: Dict[str, torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """Differential pair of magnitudes or one offset cell, then base-``2**cb`` digits, one
    (polarity, slice) plane at a time so memory stays at a few copies of the layer's cells.
    Returns the effective and nominal recombined cells and the global drift compensation
    ``sum|w(programmed)| / sum|w(t)|`` over the layer's recombined weights (1 with ``"none"``)."""
    a, noise = layer.array, layer.noise
    cb, tops = a.cell_bits, slice_tops(a.weight_bits, a.cell_bits, a.differential)
    if a.differential:
        planes = [(qt.clamp(min=0), 1.0), ((-qt).clamp(min=0), -1.0)]
    else:
        planes = [(torch.where(present, qt + qmax, 0), 1.0)]
    noisy, per_slice = perturbs_cells(noise), layer.slice_adc
    size = (len(tops),) + qt.shape if per_slice else qt.shape
    eff, nom = torch.zeros(size), torch.zeros(size)
    compensate = noisy and noise.drift_compensation == "global"
    w_prog = torch.zeros(qt.shape) if compensate else None
    w_t = torch.zeros(qt.shape) if compensate else None
    for mags, sign in planes:
        for j, top in enumerate(tops):
            g0 = slice_conductance(mags, j, cb, top)
            weight = sign * delta * top * float((2 ** cb) ** j)  # of one unit of conductance
            coef = sign if per_slice else weight
            (nom[j] if per_slice else nom).add_(g0, alpha=coef)
            if noisy:
                g, stuck = program_cells(g0, present, noise, gens)
                g_t = cells_at_time(g, g0, stuck, noise, gens)
                (eff[j] if per_slice else eff).add_(g_t, alpha=coef)
                if compensate:
                    w_prog.add_(g, alpha=weight)
                    w_t.add_(g_t, alpha=weight)
    compensation = 1.0
    if compensate:
        total_t = float(w_t.abs().sum())
        compensation = float(w_prog.abs().sum()) / total_t if total_t > 0 else 1.0
    return (eff if noisy else nom), nom, compensation


def _pack(cells: torch.Tensor, layer, has_bias: bool, dtype) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Cells ``(T, cols, rows)`` (slice mode: ``(S, T, cols, rows)``) as the grouped conv weight of the
    tiles and the bias cells."""
    T, span = layer.T, layer.plan.span
    if layer.slice_adc:  # (S, T, cols, rows) -> (T, S*cols, rows): analog pair difference per slice
        cells = cells.permute(1, 0, 2, 3).reshape(T, -1, cells.shape[-1])
    bias = cells[..., -1].reshape(-1).to(dtype) if has_bias else None
    if has_bias:
        cells = cells[..., :-1]
    ch = cells.shape[1]
    wk = cells.reshape(T, ch, span, *layer.kernel)
    if layer.kind == "convT":
        wk = wk.transpose(1, 2).reshape(T * span, ch, *layer.kernel)
    else:
        wk = wk.reshape(T * ch, span, *layer.kernel)
    return wk.to(dtype).contiguous(), bias


def program(w: torch.Tensor, bias: Optional[torch.Tensor], layer, gens: Dict[str, torch.Generator]
            ) -> ProgrammedCells:
    """Quantise, slice, place and program ``w`` (conv-like ``(groups, Cout/g, Cin/g, K)``) and the
    analog ``bias`` (or ``None``) onto ``layer``'s tiles."""
    a, T, cols = layer.array, layer.T, layer.plan.cols
    dtype = w.dtype if w.is_floating_point() else torch.float32
    qmax = weight_qmax(a.weight_bits)
    delta = weight_step(w, bias, qmax)
    qt, present = _place_weights(quantize_weights(w, delta, qmax).reshape(layer.cout, layer.cin // layer.groups,
                                                                         layer.K), layer)
    bias_rows = torch.zeros(T, cols)
    if bias is not None:
        qbt, bias_rows = _place_bias(quantize_weights(bias, delta, qmax), layer)
        qt = torch.cat([qt.reshape(T, cols, -1), qbt.unsqueeze(-1)], -1)
        present = torch.cat([present.reshape(T, cols, -1), bias_rows.bool().unsqueeze(-1)], -1)
    else:
        qt, present = qt.reshape(T, cols, -1), present.reshape(T, cols, -1)
    eff, nom, compensation = _encode(qt.to(torch.int64), present, qmax, delta, layer, gens)
    weight, bias_psum = _pack(eff, layer, bias is not None, dtype)
    nominal, bias_nominal = _pack(nom, layer, bias is not None, dtype)
    npol = 2 if a.differential else 1
    S = a.slices
    coefs = [top * float((2 ** a.cell_bits) ** j) for j, top in enumerate(slice_tops(a.weight_bits, a.cell_bits,
                                                                                     a.differential))]
    if layer.slice_adc:
        read_scale = read_noise_scale(layer.noise, npol)
        slice_coef = torch.tensor([delta * c for c in coefs], dtype=dtype)
    else:
        read_scale = read_noise_scale(layer.noise, npol, delta, coefs)
        slice_coef = torch.ones(1, dtype=dtype)
    bias_rows = bias_rows.to(dtype)
    return ProgrammedCells(weight, nominal, bias_psum, bias_nominal, float(read_scale), float(delta * qmax),
                           compensation, slice_coef, bias_rows, bias_rows.repeat(1, S) if layer.slice_adc else bias_rows,
                           T * cols * (S if layer.slice_adc else 1))
