"""Device noise of programmed cells: programming noise, stuck-at faults, per-cell drift, read noise.

aihwkit's ``PCMLikeNoiseModel`` statistic by statistic (Nandakumar et al., ICECS 2019; Joshi et
al., Nat. Commun. 11, 2473, 2020): conductance-dependent programming noise drawn once, per-cell
drift exponents drawn once from conductance-dependent distributions, and accumulated 1/f read
noise that grows with log time, drawn once per evaluation time; the :class:`~graphcost.crossbar.
specs.NoiseSpec` docstring gives the formulas. Conductances are relative to ``g_max = 1``. Every
draw comes from one of the generators of :func:`generators`.

>>> from graphcost.crossbar.specs import NoiseSpec
>>> drift_decay(NoiseSpec(drift_nu=0.05, t_seconds=DRIFT_T0_SECONDS)) == 2 ** -0.05
True
>>> round(read_1f_time_factor(NoiseSpec(t_seconds=0.0)), 2), round(read_1f_time_factor(NoiseSpec(t_seconds=3600.0)), 2)
(4.18, 4.76)
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple, Union

import torch

from ..specs import NoiseSpec

#: Reference time of the drift model (aihwkit's PCM ``t_0``).
DRIFT_T0_SECONDS = 20.0

#: The random streams of one seed, in the order their generators are derived (new streams are
#: appended, so the draws of the older ones do not change).
STREAMS = ("programming", "faults", "read", "drift", "read_1f")

#: aihwkit's PCM fits: drift-exponent mean / spread vs ``ln(g / g_max)`` and their caps; the 1/f
#: noise's conductance exponent, floor and cap; the smallest relative conductance in the fits.
_NU_MEAN, _NU_STD = (0.0244, -0.0155), (-0.0059, -0.0125)
_NU_MEAN_MAX, _NU_STD_MAX = 0.1, 0.045
_Q_EXPONENT, _Q_FLOOR, _Q_MAX = 0.65, 1e-3, 0.2
_G_MIN = 1e-7


def _stream_seed(seed: int, stream: int) -> int:
    """Independent generator seeds for the streams of one ``seed``."""
    return (int(seed) * 0x9E3779B1 + stream * 0x85EBCA77 + 0x2545F491) % (2 ** 63 - 1)


def generators(seed: int) -> Dict[str, torch.Generator]:
    """One seeded ``torch.Generator`` per stream of :data:`STREAMS`."""
    return {name: torch.Generator().manual_seed(_stream_seed(seed, i)) for i, name in enumerate(STREAMS)}


def drifts(noise: NoiseSpec) -> bool:
    """Whether conductances drift at ``noise.t_seconds`` (any exponent, any time after programming)."""
    spread = noise.drift_nu > 0 or noise.drift_nu_std > 0 or noise.drift_vs_conductance
    return spread and noise.t_seconds > 0


def drift_decay(noise: NoiseSpec) -> float:
    """``(1 + t / t0) ** -drift_nu``: the drift of a cell with the mean exponent (1 without drift)."""
    return (1.0 + noise.t_seconds / DRIFT_T0_SECONDS) ** (-noise.drift_nu) if drifts(noise) else 1.0


def read_1f_time_factor(noise: NoiseSpec) -> float:
    """aihwkit's ``sqrt(ln((t + t0 + t_read) / (2 t_read)))`` of the accumulated 1/f read noise."""
    t = noise.t_seconds + DRIFT_T0_SECONDS
    return math.sqrt(math.log((t + noise.t_read_seconds) / (2 * noise.t_read_seconds)))


def has_faults(noise: NoiseSpec) -> bool:
    return noise.stuck_at_on > 0 or noise.stuck_at_off > 0


def programs_zero_cells(noise: NoiseSpec) -> bool:
    """Whether a cell programmed to 0 may end up non-zero (programming noise or faults)."""
    return noise.programming > 0 or bool(noise.programming_poly_uS) or has_faults(noise)


def perturbs_cells(noise: NoiseSpec) -> bool:
    """Whether programmed conductances differ from their nominal values (per-MVM read noise aside)."""
    return programs_zero_cells(noise) or drifts(noise) or noise.read_1f > 0


def programming_std(g0: torch.Tensor, noise: NoiseSpec) -> Union[torch.Tensor, float]:
    """Std of the programming error of target conductances ``g0``: ``programming`` plus the
    polynomial ``sum_i c_i g0^i`` (uS) over ``g_max_uS``."""
    if not noise.programming_poly_uS:
        return noise.programming
    poly = torch.zeros_like(g0)
    for c in reversed(noise.programming_poly_uS):  # Horner
        poly = poly.mul_(g0).add_(c)
    return poly.div_(noise.g_max_uS).add_(noise.programming)


def program_cells(g0: torch.Tensor, present: torch.Tensor, noise: NoiseSpec, gens: Dict[str, torch.Generator]
                  ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Targets ``g0`` after programming noise (clamped at 0, as aihwkit) and stuck-at faults.

    ``present`` marks the cells that exist. Returns ``(g, stuck)`` (``stuck`` is ``None`` without faults)."""
    g = g0
    if noise.programming > 0 or noise.programming_poly_uS:
        draw = torch.randn(g0.shape, generator=gens["programming"])
        g = draw.mul_(present.to(torch.float32)).mul_(programming_std(g0, noise)).add_(g0).clamp_(min=0)
    stuck: Optional[torch.Tensor] = None
    if has_faults(noise):
        u = torch.rand(g0.shape, generator=gens["faults"])
        on = (u < noise.stuck_at_on) & present
        stuck = (u < noise.stuck_at_on + noise.stuck_at_off) & present
        g = torch.where(stuck, on.to(g.dtype), g)
    return g, stuck


def drift_exponents(g0: torch.Tensor, noise: NoiseSpec, gen: torch.Generator) -> Union[torch.Tensor, float]:
    """Per-cell drift exponents ``|N(mean, std)|`` of targets ``g0`` (a number when all are equal)."""
    if noise.drift_vs_conductance:
        ln_g = g0.clamp(min=_G_MIN).log()
        mean = (_NU_MEAN[0] + _NU_MEAN[1] * ln_g).clamp_(noise.drift_nu, max(_NU_MEAN_MAX, noise.drift_nu))
        std = (_NU_STD[0] + _NU_STD[1] * ln_g).clamp_(noise.drift_nu_std, max(_NU_STD_MAX, noise.drift_nu_std))
    elif noise.drift_nu_std > 0:
        mean, std = torch.full_like(g0, noise.drift_nu), noise.drift_nu_std
    else:
        return noise.drift_nu
    return torch.randn(g0.shape, generator=gen).mul_(std).add_(mean).abs_()


def cells_at_time(g: torch.Tensor, g0: torch.Tensor, stuck: Optional[torch.Tensor], noise: NoiseSpec,
                  gens: Dict[str, torch.Generator]) -> torch.Tensor:
    """Programmed cells ``g`` (targets ``g0``) at ``noise.t_seconds``: drifted (stuck cells do not
    drift) and with the accumulated 1/f read noise of that time (clamped at 0, as aihwkit)."""
    out = g
    if drifts(noise):
        nu = drift_exponents(g0, noise, gens["drift"])
        factor = (1.0 + noise.t_seconds / DRIFT_T0_SECONDS) ** (-nu) if isinstance(nu, float) else \
            torch.pow(1.0 + noise.t_seconds / DRIFT_T0_SECONDS, -nu)
        out = g * factor
        if stuck is not None:
            out = torch.where(stuck, g, out)
    if noise.read_1f > 0:
        q = (noise.read_1f / g.abs().pow(_Q_EXPONENT).clamp_(min=_Q_FLOOR)).clamp_(max=_Q_MAX)
        draw = torch.randn(g.shape, generator=gens["read_1f"])
        out = out + out.abs() * q.mul_(read_1f_time_factor(noise)) * draw
        out = out.clamp_(min=0)
    return out


def read_noise_scale(noise: NoiseSpec, polarities: int, unit: float = 1.0, slice_bases=(1,)) -> float:
    """Std of a column's read noise per unit ``sqrt(sum x**2)`` when the cells of ``polarities`` cells
    per weight and slices of relative weight ``slice_bases`` are recombined with weight ``unit``:
    ``read * unit * sqrt(polarities * sum b**2)``."""
    return noise.read * unit * math.sqrt(polarities * sum(float(b * b) for b in slice_bases))


_QUANTILES: Optional[torch.Tensor] = None


def gaussian(shape, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
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
