"""Device noise of programmed cells: programming noise, stuck-at faults, drift, read noise.

A PCM-like model after aihwkit's ``PCMLikeNoiseModel`` (Nandakumar et al., ICECS 2019; Joshi
et al., Nat. Commun. 11, 2473, 2020); the package docstring gives the math. Conductances are
relative to ``g_max = 1``. Every draw comes from one of the generators of :func:`generators`.

>>> from graphcost.crossbar.specs import NoiseSpec
>>> drift_decay(NoiseSpec(drift_nu=0.05, t_seconds=2 * DRIFT_T0_SECONDS)) == 2 ** -0.05
True
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch

from ..specs import NoiseSpec

#: Reference time of the drift model (aihwkit's PCM ``t_0``).
DRIFT_T0_SECONDS = 20.0

#: The random streams of one seed, in the order their generators are derived.
STREAMS = ("programming", "faults", "read")


def _stream_seed(seed: int, stream: int) -> int:
    """Independent generator seeds for the programming / fault / read streams of one ``seed``."""
    return (int(seed) * 0x9E3779B1 + stream * 0x85EBCA77 + 0x2545F491) % (2 ** 63 - 1)


def generators(seed: int) -> Dict[str, torch.Generator]:
    """One seeded ``torch.Generator`` per stream of :data:`STREAMS`."""
    return {name: torch.Generator().manual_seed(_stream_seed(seed, i)) for i, name in enumerate(STREAMS)}


def drifts(noise: NoiseSpec) -> bool:
    return noise.drift_nu > 0 and noise.t_seconds > DRIFT_T0_SECONDS


def drift_decay(noise: NoiseSpec) -> float:
    """``(t / t0) ** -drift_nu`` after ``t0``, else 1."""
    return (noise.t_seconds / DRIFT_T0_SECONDS) ** (-noise.drift_nu) if drifts(noise) else 1.0


def has_faults(noise: NoiseSpec) -> bool:
    return noise.stuck_at_on > 0 or noise.stuck_at_off > 0


def perturbs_cells(noise: NoiseSpec) -> bool:
    """Whether programmed conductances differ from their nominal values (read noise aside)."""
    return noise.programming > 0 or has_faults(noise) or drifts(noise)


def programmed_conductance(g0: torch.Tensor, present: torch.Tensor, noise: NoiseSpec,
                           gens: Dict[str, torch.Generator]) -> Tuple[torch.Tensor, float, float]:
    """Nominal conductances ``g0`` after programming noise, stuck-at faults and drift.

    ``present`` marks the cells that exist. Returns ``(g(t), sum g(t0), sum g(t))`` (the sums are 0
    without drift; their ratio is the global drift compensation)."""
    g = g0
    if noise.programming > 0:
        draw = torch.randn(g0.shape, generator=gens["programming"])
        g = draw.mul_(present.to(torch.float32)).mul_(noise.programming).add_(g0).clamp_(min=0)
    stuck: Optional[torch.Tensor] = None
    if has_faults(noise):
        u = torch.rand(g0.shape, generator=gens["faults"])
        on = (u < noise.stuck_at_on) & present
        stuck = (u < noise.stuck_at_on + noise.stuck_at_off) & present
        g = torch.where(stuck, on.to(g.dtype), g)
    if not drifts(noise):
        return g, 0.0, 0.0
    decay = drift_decay(noise)
    total_0 = float(g.sum())
    g = torch.where(stuck, g, g * decay) if stuck is not None else g * decay  # stuck cells do not drift
    return g, total_0, float(g.sum())


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
