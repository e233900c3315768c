"""The PCM noise model, statistic by statistic against aihwkit's PCMLikeNoiseModel formulas.

Every check looks at the effective weights one layer is programmed to (``layer.weight`` minus the
noise-free ``layer.nominal``, in units of ``max|W|`` = ``g_max``), or at its outputs.
"""
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from graphcost.crossbar.sim import CrossbarModel, DRIFT_T0_SECONDS
from graphcost.crossbar.sim.noise import drift_exponents, generators, read_1f_time_factor
from graphcost.crossbar.sim.programming import slice_tops
from graphcost.crossbar.specs import ArraySpec, NoiseSpec

ONE_CELL = ArraySpec(256, 256, weight_bits=8, cell_bits=8, dac_bits=16, adc_bits=16)
EXACT = ArraySpec(256, 256, weight_bits=16, cell_bits=16, dac_bits=16, adc_bits=16)
POLY = (0.26348, 1.9650, -1.1731)


def ones_layer(n_out=1000):
    lin = nn.Linear(256, n_out, bias=False)
    nn.init.ones_(lin.weight)
    return lin


def weight_error(noise, array=ONE_CELL, seed=0, net=None):
    """Effective minus nominal weights of a Linear(256, 1000) of ones, relative to max|W| (= g_max)."""
    sim = CrossbarModel(net or ones_layer(), array, noise, seed=seed)
    layer = next(iter(sim.analog_layers.values()))
    return ((layer.weight - layer.nominal) / 1.0).flatten(), layer


def test_max_weight_is_programmed_to_g_max_on_each_side():
    assert slice_tops(8, 8, True) == [127] and slice_tops(8, 2, True) == [3, 3, 3, 1]
    assert slice_tops(16, 16, True) == [2 ** 15 - 1] and slice_tops(3, 2, True) == [3, 1]
    # constant programming noise of 3.8 % of g_max on every cell of a weight at max|W|: the error of
    # the weight is that of its positive cell (3.8 %) minus the clamped zero cell's (max(0, N(0, 3.8 %)))
    err, _ = weight_error(NoiseSpec(programming=0.038))
    zero_var = 0.038 ** 2 * (0.5 - 1 / (2 * math.pi))
    assert float(err.std()) == pytest.approx(math.sqrt(0.038 ** 2 + zero_var), rel=0.03)
    assert float(err.mean()) == pytest.approx(-0.038 / math.sqrt(2 * math.pi), abs=0.002)


def test_programming_noise_follows_aihwkit_polynomial():
    # sigma(g) = (0.26348 + 1.9650 g - 1.1731 g^2) uS at 25 uS: 4.22 % of g_max at g = 1, 1.05 % at 0
    full, zero = sum(POLY) / 25.0, POLY[0] / 25.0
    err, _ = weight_error(NoiseSpec(programming_poly_uS=POLY))
    zero_var = zero ** 2 * (0.5 - 1 / (2 * math.pi))
    assert float(err.std()) == pytest.approx(math.sqrt(full ** 2 + zero_var), rel=0.03)
    assert float(err.mean()) == pytest.approx(-zero / math.sqrt(2 * math.pi), abs=0.001)
    half = nn.Linear(256, 1000, bias=False)
    nn.init.constant_(half.weight, 0.5)
    half.weight.data[0, 0] = 1.0  # max|W| = 1: every other weight sits at g = 0.5
    err, _ = weight_error(NoiseSpec(programming_poly_uS=POLY), net=half)
    sigma_half = (POLY[0] + POLY[1] * 0.5 + POLY[2] * 0.25) / 25.0  # 3.8 %
    assert float(err.std()) == pytest.approx(math.sqrt(sigma_half ** 2 + zero_var), rel=0.03)


def test_read_1f_noise_grows_with_log_time_and_is_drawn_once_per_time():
    assert read_1f_time_factor(NoiseSpec(t_seconds=0)) == pytest.approx(math.sqrt(math.log((20 + 250e-9) / 5e-7)))
    for t in (0.0, 86400.0):
        noise = NoiseSpec(read_1f=0.0088, t_seconds=t)
        err, layer = weight_error(noise)
        # full-scale cells: Q_s = 0.0088, times |g| = 1, times the time factor; zero cells stay 0
        assert float(err.std()) == pytest.approx(0.0088 * read_1f_time_factor(noise), rel=0.03)
    x = torch.ones(3, 256)
    sim = CrossbarModel(ones_layer(8), EXACT, NoiseSpec(read_1f=0.0088))
    with torch.no_grad():
        sim.calibrate(x * 2)
        assert torch.equal(sim(x)[0], sim(x)[1])  # frozen into the cells: the same for every MVM


def test_drift_exponents_follow_the_conductance_fit():
    noise = NoiseSpec(drift_nu=0.049, drift_nu_std=0.008, drift_vs_conductance=True)
    gen = generators(0)["drift"]
    nu_full = drift_exponents(torch.ones(200_000), noise, gen)
    assert float(nu_full.mean()) == pytest.approx(0.049, rel=0.02) and float(nu_full.std()) == pytest.approx(0.008, rel=0.03)
    nu_low = drift_exponents(torch.full((200_000,), 0.01), noise, gen)
    mean = 0.0244 - 0.0155 * math.log(0.01)   # 0.0958
    assert float(nu_low.mean()) == pytest.approx(mean, rel=0.03)
    assert float(nu_low.std()) == pytest.approx(0.045, rel=0.1)  # capped spread, folded at 0 a little
    assert drift_exponents(torch.ones(3), NoiseSpec(drift_nu=0.05), gen) == 0.05  # no spread: one number


def _outputs(noise, seed=0):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.rand(2, 3, 10, 10)
    sim = CrossbarModel(net, EXACT, noise, seed=seed)
    with torch.no_grad():
        sim.calibrate(x)
        return sim(x), net(x), sim


def test_drift_with_nu_zero_changes_nothing():
    base = NoiseSpec(programming_poly_uS=POLY, stuck_at_off=0.01)
    y0, _, _ = _outputs(base)
    for t in (60.0, 86400.0, 3.15e7):
        y, _, _ = _outputs(replace(base, drift_nu=0.0, t_seconds=t))
        assert torch.equal(y, y0)


def test_global_compensation_exactly_undoes_a_uniform_drift_and_none_keeps_it():
    year = 365 * 86400.0
    y, ref, sim = _outputs(NoiseSpec(drift_nu=0.06, t_seconds=year))
    assert float((y - ref).abs().max() / ref.abs().max()) < 1e-3
    layer = next(iter(sim.analog_layers.values()))
    assert layer.compensation == pytest.approx((1 + year / DRIFT_T0_SECONDS) ** 0.06, rel=1e-6)
    # without compensation a bias-free layer's outputs shrink by exactly the drift factor
    torch.manual_seed(1)
    lin = nn.Linear(40, 6, bias=False)
    x = torch.rand(5, 40)
    sim = CrossbarModel(lin, EXACT, NoiseSpec(drift_nu=0.06, t_seconds=year, drift_compensation="none"))
    with torch.no_grad():
        sim.calibrate(x)
        decay = (1 + year / DRIFT_T0_SECONDS) ** -0.06
        assert torch.allclose(sim(x), decay * lin(x), rtol=1e-3, atol=1e-4 * float(lin(x).abs().max()))


def test_per_cell_drift_spread_is_not_undone_by_compensation():
    year = 365 * 86400.0
    uniform, ref, _ = _outputs(NoiseSpec(drift_nu=0.049, t_seconds=year))
    spread, _, _ = _outputs(NoiseSpec(drift_nu=0.049, drift_nu_std=0.008, drift_vs_conductance=True, t_seconds=year))
    err = lambda y: float((y - ref).norm() / ref.norm())
    assert err(uniform) < 1e-3 < 0.02 < err(spread) < 0.5


def test_same_seed_same_cells_across_times():
    """Programming noise and drift exponents are drawn once per seed: only time changes between times."""
    base = replace(NoiseSpec.pcm(), read_1f=0.0)
    a = weight_error(replace(base, t_seconds=3600.0), seed=4)[0]
    b = weight_error(replace(base, t_seconds=3600.0), seed=4)[0]
    c = weight_error(replace(base, t_seconds=3600.0), seed=5)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
