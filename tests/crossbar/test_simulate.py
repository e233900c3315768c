"""CrossbarModel: exactness at 16 bits, noise model, weight sharing, reproducibility, vectorisation."""
import math

import pytest
import torch
from torch import nn

import graphcost
from graphcost.crossbar.sim import CrossbarModel, DRIFT_T0_SECONDS
from graphcost.crossbar.specs import ArraySpec, NoiseSpec
from graphcost.models import get_model


def exact(rows=256, cols=256, **kw) -> ArraySpec:
    return ArraySpec(rows, cols, weight_bits=16, cell_bits=16, dac_bits=16, adc_bits=16, **kw)


def rel_err(a, b) -> float:
    if isinstance(a, (list, tuple)):
        return max(rel_err(x, y) for x, y in zip(a, b))
    return float((a - b).abs().max() / b.abs().max())


class Mixed(nn.Module):
    """Every simulated layer type: conv, depthwise, grouped, transposed conv, linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 30, 3, padding=1)
        self.dw = nn.Conv2d(30, 30, 3, padding=1, groups=30)
        self.grouped = nn.Conv2d(30, 12, 3, padding=1, groups=3, bias=False)
        self.up = nn.ConvTranspose2d(12, 5, 3, stride=2, padding=1, output_padding=1)
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        y = self.up(self.grouped(torch.relu(self.dw(torch.relu(self.stem(x))))))
        return self.head(y.mean((2, 3))), y


@pytest.fixture(scope="module")
def mixed():
    torch.manual_seed(0)
    return Mixed().eval()


@pytest.mark.parametrize("depthwise", ["dense", "packed", "time-multiplexed"])
@pytest.mark.parametrize("kw", [{}, {"differential": False}, {"analog_bias": True}, {"slice_adc": True},
                                {"differential": False, "analog_bias": True, "slice_adc": True}])
def test_16_bit_noise_free_equals_float(mixed, depthwise, kw):
    kw = dict(kw)
    slice_adc = kw.pop("slice_adc", False)
    x = torch.rand(2, 3, 12, 16)
    # small arrays: every layer spans several tiles (kernels cut across tiles, packed groups, ...)
    sim = CrossbarModel(mixed, exact(32, 64, **kw), NoiseSpec(), depthwise=depthwise, slice_adc=slice_adc)
    with torch.no_grad():
        sim.calibrate(x)
        assert rel_err(sim(x), mixed(x)) < 1e-3
    assert any(layer.T > 1 for layer in sim.analog_layers.values())


def test_16_bit_tiny_itnet_equals_float():
    torch.manual_seed(0)
    net = get_model("itnet", N=2, f=8).eval()
    x = torch.rand(2, 3, 32, 48)
    sim = CrossbarModel(net, exact(), NoiseSpec())
    with torch.no_grad():
        sim.calibrate(x)
        out, ref = sim(x), net(x)
    assert len(out) == 2
    assert rel_err(out, ref) < 1e-3


def test_quantisation_error_shrinks_with_bits(mixed):
    x = torch.rand(2, 3, 12, 16)
    with torch.no_grad():
        ref = mixed(x)[1]
        errs = []
        for bits in (4, 6, 8, 12):
            a = ArraySpec(64, 64, weight_bits=bits, cell_bits=2, dac_bits=bits, adc_bits=bits)
            sim = CrossbarModel(mixed, a, NoiseSpec())
            sim.calibrate(x)
            errs.append(rel_err(sim(x)[1], ref))
    assert errs == sorted(errs, reverse=True) and errs[-1] < 0.01 < errs[0]


def test_same_seed_same_result_other_seed_differs(mixed):
    x = torch.rand(2, 3, 12, 16)
    noise = NoiseSpec.rram()
    a = CrossbarModel(mixed, ArraySpec(32, 64), noise, seed=3)
    b = CrossbarModel(mixed, ArraySpec(32, 64), noise, seed=3)
    c = CrossbarModel(mixed, ArraySpec(32, 64), noise, seed=4)
    with torch.no_grad():
        ya, yb, yc = a(x)[1], b(x)[1], c(x)[1]
    assert torch.equal(ya, yb)
    assert not torch.allclose(ya, yc)


class Loop(nn.Module):
    """One conv called three times (a weight-shared loop) on the same input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=1)

    def forward(self, x):
        return [self.conv(x) for _ in range(3)]


def test_loop_keeps_one_programmed_array_read_noise_is_fresh():
    torch.manual_seed(1)
    net, x = Loop().eval(), torch.rand(1, 4, 8, 8)
    with torch.no_grad():
        prog = CrossbarModel(net, ArraySpec(256, 256), NoiseSpec(programming=0.05))
        outs = prog(x)
        assert len(prog.analog_layers) == 1
        assert torch.equal(outs[0], outs[1]) and torch.equal(outs[1], outs[2])  # the same physical array
        assert not torch.allclose(outs[0], net(x)[0], atol=1e-4)  # ...which is noisy
        read = CrossbarModel(net, ArraySpec(256, 256), NoiseSpec(read=0.05))
        outs = read(x)
        assert not torch.allclose(outs[0], outs[1])  # read noise is drawn for every MVM


def test_tied_weights_share_the_array():
    a = nn.Linear(8, 8, bias=False)
    b = nn.Linear(8, 8, bias=False)
    b.weight = a.weight
    net = nn.Sequential(a, nn.ReLU(), b)
    sim = CrossbarModel(net, ArraySpec(256, 256), NoiseSpec(programming=0.1))
    layers = list(sim.analog_layers.values())
    assert len(layers) == 2 and layers[0].weight is layers[1].weight


def test_read_noise_std_matches_the_formula():
    # one linear layer, one tile, 16-bit single-slice differential cells (max|W| -> g_max, i.e. one
    # unit of conductance is D * (2**15 - 1)): every output carries
    # N(0, (read * D * (2**15 - 1))**2 * 2 * sum_i x_i**2) on top of the exact result
    torch.manual_seed(0)
    lin = nn.Linear(100, 3, bias=False)
    read = 0.01
    sim = CrossbarModel(lin, exact(), NoiseSpec(read=read))
    x = torch.full((4000, 100), 0.5)
    with torch.no_grad():
        sim.calibrate(x[:1] * 2)  # ranges wide enough that nothing clips
        y = sim(x) - lin(x)
    delta = float(lin.weight.detach().abs().max()) / (2 ** 15 - 1)
    expected = read * delta * (2 ** 15 - 1) * math.sqrt(2 * 100 * 0.25)
    assert float(y.std()) == pytest.approx(expected, rel=0.05)
    assert abs(float(y.mean())) < 0.1 * expected


def test_stuck_off_leaves_only_the_digital_bias():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    sim = CrossbarModel(conv, ArraySpec(256, 256), NoiseSpec(stuck_at_off=1.0))
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        y = sim(x)
    assert torch.allclose(y, conv.bias.view(1, 4, 1, 1).expand_as(y))


def test_drift_is_compensated_globally():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.rand(2, 3, 10, 10)
    noise = NoiseSpec(drift_nu=0.05, t_seconds=3600.0)
    sim = CrossbarModel(net, exact(), noise)
    with torch.no_grad():
        sim.calibrate(x)
        assert rel_err(sim(x), net(x)) < 1e-3
    layer = next(iter(sim.analog_layers.values()))
    assert layer.compensation == pytest.approx((1 + 3600.0 / DRIFT_T0_SECONDS) ** 0.05, rel=1e-4)


def test_tiles_run_as_one_grouped_conv():
    """A layer over many tiles still costs one convolution (plus none for the noise-free ADC)."""
    calls = []

    class Count(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.nn.functional.conv2d:
                calls.append(args[1].shape)
            return func(*args, **(kwargs or {}))

    conv = nn.Conv2d(64, 32, 3, padding=1)
    sim = CrossbarModel(conv, ArraySpec(32, 64), NoiseSpec())
    x = torch.rand(1, 64, 8, 8)
    with torch.no_grad():
        sim.calibrate(x)
        layer = sim.analog_layers["Conv2d"]
        assert layer.T == 18
        with Count():
            sim(x)
    assert len(calls) == 1


def test_unknown_depthwise_strategy_is_a_user_error(mixed):
    with pytest.raises(graphcost.UserError, match="depthwise"):
        CrossbarModel(mixed, ArraySpec(256, 256), NoiseSpec(), depthwise="diagonal")


# --------------------------------------------------------------------------- one tiling concept
_TILED_LAYERS = {
    "conv": (nn.Conv2d(64, 40, 2), (1, 64, 6, 6)),            # 256 weight rows: the bias row is one more
    "conv3x3": (nn.Conv2d(30, 50, 3, padding=1), (1, 30, 6, 6)),
    "grouped": (nn.Conv2d(48, 24, 3, padding=1, groups=3), (1, 48, 6, 6)),
    "depthwise": (nn.Conv2d(64, 64, 3, padding=1, groups=64), (1, 64, 6, 6)),
    "depthwise_big": (nn.Conv2d(16, 32, 7, padding=3, groups=16), (1, 16, 8, 8)),  # 49-row blocks
    "transposed": (nn.ConvTranspose2d(24, 12, 3, stride=2, groups=2), (1, 24, 5, 5)),
    "linear": (nn.Linear(256, 10), (4, 256)),
}


@pytest.mark.parametrize("name", sorted(_TILED_LAYERS))
@pytest.mark.parametrize("depthwise", ["dense", "packed", "time-multiplexed"])
@pytest.mark.parametrize("size", [(32, 64), (64, 48), (100, 96), (256, 256)])
@pytest.mark.parametrize("kw", [{}, {"analog_bias": True}, {"differential": False, "analog_bias": True}])
@pytest.mark.parametrize("noise", [NoiseSpec(), NoiseSpec(programming=0.01)])  # sparse and full plans
def test_simulator_programs_the_tiles_the_mapping_counts(name, depthwise, size, kw, noise):
    from graphcost.crossbar.mapping import map_model

    module, shape = _TILED_LAYERS[name]
    array = ArraySpec(*size, **kw)
    tiles = map_model(module, shape, array, depthwise).layers[0].tiles
    layer = next(iter(CrossbarModel(module, array, noise, depthwise=depthwise).analog_layers.values()))
    assert layer.arrays == tiles
    # the ADC layout uses arrays of that grid only (all of it unless dense leaves zero-only arrays out)
    used = int(layer.array_ids(array.slices).max()) + 1
    valid = int((layer.out_index < layer.cout).sum()) * array.slices
    arrays_with_weights = used - (layer.out_index.numel() * array.slices - valid)
    if layer.groups > 1 and depthwise == "dense":
        assert arrays_with_weights <= tiles
    else:
        assert arrays_with_weights == tiles
    # no tile holds more than R rows (weights plus its bias row); dense may put column biases in a
    # full tile, see the module docstring
    if not (layer.groups > 1 and depthwise == "dense" and layer.analog_bias):
        plan = layer.plan
        physical = plan.physical or list(range(len(plan.pieces)))
        rows = torch.zeros(max(physical) + 1)
        has_bias = torch.zeros(max(physical) + 1)
        for t, tile in enumerate(plan.pieces):
            rows[physical[t]] += tile.hi - tile.lo
            has_bias[physical[t]] = max(has_bias[physical[t]], float(layer.bias_rows[t].any()))
        assert float((rows + has_bias).max()) <= array.rows


# --------------------------------------------------------------------------- converter units, layout
def _physical_forward(layer, x):
    """The layer's forward as the package docstring states it, in physical units: DAC-quantised inputs,
    the effective cells, ADC per array, offset, tile combination, digital bias."""
    from graphcost.crossbar.sim.quantization import quantize

    xq = layer._arrange(quantize(x, 1.0 / layer.dac_scale, layer.dac_scale, *layer.dac_levels).contiguous())
    psum = layer._conv(xq, layer.weight, layer.bias_psum, layer.T, None)
    y = quantize(psum, layer.adc_inv_view, layer.adc_out_view, *layer.adc_levels)
    if not layer.array.differential:
        sx = layer._conv(xq, layer.row_ones, None, layer.T, None).unsqueeze(2)
        if layer.analog_bias:
            sx = sx + layer.bias_rows.view(1, layer.T, -1, *[1] * (y.dim() - 2))
        y = (y.view(y.shape[0], layer.T, -1, *y.shape[2:]) - sx * layer.offset).view(y.shape)
    out = layer._combine(y)
    if layer.digital_bias is not None:
        out = out + layer.digital_bias.view(1, -1, *[1] * (out.dim() - 2))
    return out.reshape(*x.shape[:-1], layer.cout) if layer.kind == "linear" else out


@pytest.mark.parametrize("name", ["conv3x3", "depthwise", "grouped", "transposed", "linear"])
@pytest.mark.parametrize("kw", [{}, {"analog_bias": True}, {"differential": False}])
@pytest.mark.parametrize("channels_last", [True, False])
def test_converter_unit_forward_equals_the_physical_formula(name, kw, channels_last):
    """The forward folds the DAC step and 1 / ADC step into the weights and runs channels-last: the
    same numbers as the physical formula up to float rounding, i.e. at most one ADC step, rarely."""
    torch.manual_seed(0)
    module, shape = _TILED_LAYERS[name]
    array = ArraySpec(64, 48, **kw)  # 8-bit everything: an ADC step is 1/127 of the range
    sim = CrossbarModel(module, array, NoiseSpec.pcm(), seed=2, channels_last=channels_last)
    x = torch.rand(2, *shape[1:])
    layer = next(iter(sim.analog_layers.values()))
    with torch.no_grad():
        sim.calibrate(x)
        new, ref = sim(x), _physical_forward(layer, x)
    step = float(layer.adc_out_view.max())
    per_output = layer.T if layer.plan.combine != "concat" else 1  # ADC steps that can add up in one output
    diff = (new - ref).abs()
    assert float(diff.max()) <= step * per_output * 1.001
    assert float((diff > 1e-4 * step).float().mean()) < 0.01
    assert layer.weight.shape[0] > 1


def test_channels_last_is_only_a_layout():
    torch.manual_seed(0)
    net = get_model("itnet", N=2, f=8).eval()
    x = torch.rand(2, 3, 32, 48)
    cl = CrossbarModel(net, exact(), NoiseSpec.pcm(), seed=1)
    nchw = CrossbarModel(net, exact(), NoiseSpec.pcm(), seed=1, channels_last=False)
    with torch.no_grad():
        cl.calibrate(x), nchw.calibrate(x)
        a, b = cl(x), nchw(x)
    assert a[0].is_contiguous(memory_format=torch.channels_last) and b[0].is_contiguous()
    assert rel_err(a, b) < 1e-3


class Views(nn.Module):
    """Flattens a conv's activation with ``.view`` (needs NCHW memory)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 2)

    def forward(self, x):
        y = self.conv(x)
        return self.fc(y.view(y.shape[0], -1))


def test_models_that_need_nchw_activations_fall_back_to_them():
    torch.manual_seed(0)
    net, x = Views().eval(), torch.rand(2, 3, 6, 6)
    with pytest.raises(RuntimeError):
        net(x.contiguous(memory_format=torch.channels_last))  # channels-last activations break it
    sim = CrossbarModel(net, exact(), NoiseSpec())
    with torch.no_grad():
        assert rel_err(sim(x), net(x)) < 1e-3
    assert sim.layout == torch.contiguous_format


@pytest.mark.parametrize("groups,bias", [(1, True), (1, False), (3, True), (3, False)])
def test_grouped_linear_is_the_grouped_conv1d_of_length_1(groups, bias):
    """The linear layers' tiles run as one (batched) matrix product: the conv's values and gradients."""
    import torch.nn.functional as F

    from graphcost.crossbar.sim.layer import grouped_linear

    torch.manual_seed(0)
    x = torch.randn(7, groups * 5, 1, requires_grad=True)
    w = torch.randn(groups * 4, 5, 1, requires_grad=True)
    b = torch.randn(groups * 4) if bias else None
    got = grouped_linear(x, w, b, groups)
    want = F.conv1d(x, w, b, groups=groups)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)
    gx, gw = torch.autograd.grad(got.square().sum(), (x, w))
    hx, hw = torch.autograd.grad(want.square().sum(), (x, w))
    assert torch.allclose(gx, hx, atol=1e-4) and torch.allclose(gw, hw, atol=1e-4)
