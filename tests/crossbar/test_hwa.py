"""Hardware-aware training: STE gradients, zero noise = float training step for step, noise and clipping."""
from dataclasses import replace

import pytest
import torch
from torch import nn

import graphcost
from clirun import run
from graphcost.crossbar.sim import CrossbarModel
from graphcost.crossbar.sim.hwa import HWASpec, hwa_model, ste_quantize
from graphcost.crossbar.specs import ArraySpec, NoiseSpec
from graphcost.crossbar.training import train
from graphcost.models import get_model

EXACT = ArraySpec(256, 256, 16, 16, dac_bits=16, adc_bits=16)
SILENT = HWASpec(array=EXACT, weight_noise_relative=0.0, output_noise_relative=0.0, clip_sigma=None)


def test_ste_passes_gradients_through_the_quantisers():
    x = torch.linspace(-2, 2, 41, requires_grad=True)
    y = ste_quantize(x, 1.5, 1 / 1.5, -2, 2)  # rounds and clips in the forward
    assert y.detach().abs().max() <= 2 / 1.5 + 1e-6 and not torch.equal(y.detach(), x.detach())
    (g,) = torch.autograd.grad((y * torch.arange(41.0)).sum(), x)
    assert torch.equal(g, torch.arange(41.0))  # as if the quantiser were the identity
    # and through a whole analog layer: DAC, weight quantiser and ADC
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 4))
    h = hwa_model(net, HWASpec())
    h(torch.rand(2, 2, 4, 4)).sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in net.parameters())


def test_parameters_are_shared_with_the_model():
    net = get_model("digits-cnn")
    h = hwa_model(net, HWASpec())
    assert [id(p) for p in h.parameters()] == [id(p) for p in net.parameters()]
    assert set(map(id, net.buffers())) <= set(map(id, h.buffers()))


def test_zero_noise_hwa_equals_float_training_step_for_step():
    torch.manual_seed(0)
    a = get_model("digits-cnn")
    b = get_model("digits-cnn")
    b.load_state_dict(a.state_dict())
    la, lb = [], []
    train(a, "digits", epochs=2, batch_size=64, train_samples=256, seed=5, on_epoch=lambda e, n, l: la.append(l))
    train(b, "digits", hwa=SILENT, epochs=2, batch_size=64, train_samples=256, seed=5,
          on_epoch=lambda e, n, l: lb.append(l))
    assert la == pytest.approx(lb, rel=1e-3)
    # 16-bit weights / DAC / ADC differ from float by ~1e-5 per forward; Adam turns the sign of
    # near-zero gradients into whole steps, so single entries may drift apart by a few steps, but the
    # weight matrices agree to 1 % on average
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        if p.is_floating_point() and p.dim() >= 2:
            assert float((p - q).abs().mean()) < 0.01 * float(p.abs().mean()), name


def test_weight_noise_is_drawn_every_batch_and_seeded():
    net = get_model("digits-cnn").train()
    x = torch.rand(4, 1, 8, 8)
    h1, h2 = hwa_model(net, HWASpec(), seed=1), hwa_model(net, HWASpec(), seed=1)
    net.eval()
    y1, y1b, y2 = h1(x), h1(x), h2(x)
    assert torch.equal(y1, y2) and not torch.equal(y1, y1b)


def test_clipping_bounds_the_weights_at_clip_sigma():
    net = nn.Linear(100, 50)
    with torch.no_grad():
        net.weight[0, 0] = 10.0
    h = hwa_model(net, HWASpec(clip_sigma=2.5))
    std = float(net.weight.detach().std())
    h.after_step()
    assert float(net.weight.abs().max()) == pytest.approx(2.5 * std, rel=1e-5)


def test_for_noise_weight_noise_is_the_simulators_programmed_error():
    """The training noise per weight integer against a layer the simulator programs (pcm, one day):
    the RMS error of its effective weights per band of levels agrees within 15 %."""
    noise = replace(NoiseSpec.pcm(), t_seconds=86400.0)
    spec = HWASpec.for_noise(noise)
    assert spec.output_noise_relative == 0.0 and spec.clip_sigma is None  # pcm has no per-MVM read noise
    net = nn.Linear(256, 256, bias=False)
    levels = torch.arange(256 * 256) % 128
    with torch.no_grad():
        net.weight.copy_((levels * (1 - 2 * (torch.arange(256 * 256) % 2))).view(256, 256) / 127.0)
    layer = next(iter(CrossbarModel(net, ArraySpec(256, 256), noise, seed=3).analog_layers.values()))
    error = (layer.weight * layer.compensation - layer.nominal).reshape(-1)
    level = (layer.nominal.reshape(-1).abs() * 127).round().long()
    table = torch.tensor(spec.weight_noise_levels)
    for lo, hi in ((0, 1), (1, 16), (16, 64), (64, 128)):
        band = (level >= lo) & (level < hi)
        measured = float(error[band].pow(2).mean().sqrt())
        predicted = float(table[lo:hi].pow(2).mean().sqrt())
        assert predicted == pytest.approx(measured, rel=0.15), (lo, hi)
    assert spec.weight_noise_relative == spec.weight_noise_levels[-1] > 5 * spec.weight_noise_levels[0]
    assert set(HWASpec.for_noise(NoiseSpec()).weight_noise_levels) == {0.0}


def test_level_noise_reaches_the_structural_zeros_and_is_shared_by_a_loop():
    """Depthwise (dense) tiles: noise on the structural-zero cells too; a layer called twice in one
    batch sees the same draw (the loop's iterations run on the same devices), the next batch a new one."""
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    net = nn.Sequential(conv, conv)
    spec = HWASpec.for_noise(NoiseSpec.pcm(), array=EXACT)
    h = hwa_model(net, spec, seed=0)
    layer = next(iter(h.sim.analog_layers.values()))
    tiles = []
    original = layer._conv
    layer._conv = lambda x, w, *rest: tiles.append(w.detach().clone()) or original(x, w, *rest)
    x = torch.rand(1, 8, 5, 5)
    h(x)
    h(x)
    assert len(tiles) == 4 and torch.equal(tiles[0], tiles[1]) and not torch.equal(tiles[1], tiles[2])
    structural = layer.hwa_index[3].reshape(tiles[0].shape).bool()
    assert structural.any() and bool((tiles[0][structural] != 0).all())


def test_hwa_on_a_model_without_analog_layers_is_one_line_exit_2(capsys, tmp_path):
    with pytest.raises(graphcost.UserError, match="analog layers"):
        hwa_model(nn.Sequential(nn.AdaptiveAvgPool2d((1, 10)), nn.Flatten()), HWASpec())
    out = tmp_path / "x.pt"
    rc, _, err = run(capsys, "train", "torch.nn:Flatten", "--data", "digits", "--hwa", "--out", str(out))
    assert rc == 2 and "analog layers" in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_split_depthwise_forward_equals_the_tiles_conv():
    """A depthwise conv whose tiles hold structural zeros runs its real weights as its own conv and
    only the zero cells' noise over the tiles: the same forward as the whole tiles' conv."""
    net = nn.Sequential(nn.Conv2d(40, 40, 3, padding=1, groups=40), nn.ReLU(), nn.Conv2d(40, 4, 1))
    cut = HWASpec.for_noise(NoiseSpec.pcm(), array=ArraySpec(64, 64, 16, 16, dac_bits=16, adc_bits=16))
    assert hwa_model(net, cut).sim.analog_layers["0"].hwa_split is None  # 60-row tiles cut 3x3 kernels
    spec = HWASpec.for_noise(NoiseSpec.pcm(), array=ArraySpec(72, 64, 16, 16, dac_bits=16, adc_bits=16))
    split, whole = hwa_model(net, spec, seed=2), hwa_model(net, spec, seed=2)
    layer = whole.sim.analog_layers["0"]
    assert split.sim.analog_layers["0"].hwa_split is not None and layer.hwa_structural is not None
    layer.hwa_split = None
    x = torch.rand(2, 40, 6, 6)
    assert torch.allclose(split(x), whole(x), rtol=1e-4, atol=1e-5)
