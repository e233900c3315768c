"""Recurrent U-Net (DRU bottleneck): build, fx-trace, weight sharing, shapes, exact params/MACs."""
import pytest
import torch
import torch.fx

from graphcost.models import get_model, list_models
from graphcost.models.recunet import recunet
from oracles import flop_counter_macs, module_calls, param_count


def _double_conv(cin, cout, norm=True):
    return 9 * cout * (cin + cout) + 2 * cout + (4 * cout if norm else 0)


def _expected_params(classes, b=8, hidden=None):
    hidden = hidden or 16 * b
    f = [b, 2 * b, 4 * b, 8 * b]
    enc = sum(_double_conv(ci, co) for ci, co in zip([3 + classes] + f[:-1], f))
    dru = _double_conv(f[3], f[3]) + 2 * _double_conv(f[3], hidden)
    ups = [(hidden, f[3]), (f[3], f[2]), (f[2], f[1]), (f[1], f[0])]
    dec = sum(ci * co * 4 + co + _double_conv(2 * co, co, norm=False) for ci, co in ups)
    return enc + dru + dec + f[0] * classes + classes


def _expected_macs_per_iteration(classes, h, w, b=8, hidden=None):
    hidden = hidden or 16 * b
    f = [b, 2 * b, 4 * b, 8 * b]
    # pixels at 1, 1/2, 1/4, 1/8, 1/16: each 2x2 max-pool floors an odd side (CamVid's 45 rows -> 22); the
    # 2x2 transposed conv costs 4 x cin x cout per *input* pixel, whatever output_size it is asked for
    px = [(h // 2**i) * (w // 2**i) for i in range(5)]
    macs = sum(9 * px[i] * co * (ci + co) for i, (ci, co) in enumerate(zip([3 + classes] + f[:-1], f)))
    macs += 9 * px[4] * (f[3] * 2 * f[3] + 2 * hidden * (f[3] + hidden))  # DRU gates
    ups = [(hidden, f[3]), (f[3], f[2]), (f[2], f[1]), (f[1], f[0])]
    for lvl, (ci, co) in zip((3, 2, 1, 0), ups):
        macs += 4 * px[lvl + 1] * ci * co + 9 * px[lvl] * co * 3 * co  # 2x2 deconv + double conv
    return macs + px[0] * f[0] * classes


def test_registered():
    entry = list_models()["recunet"]
    assert entry.default_dataset == "camvid"


def test_fx_trace_weight_sharing_and_outputs():
    torch.manual_seed(0)
    m = get_model("recunet", iterations=3).eval()
    gm = torch.fx.symbolic_trace(m)
    calls = module_calls(gm)
    convs = [t for t in calls if isinstance(gm.get_submodule(t), (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(calls[t] == 3 for t in convs)  # every conv (same object) runs once per iteration
    assert len(convs) == len([x for x in m.modules() if isinstance(x, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    x = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        ys, yts = m(x), gm(x)
    assert isinstance(ys, list) and len(ys) == 3
    for y, yt in zip(ys, yts):
        assert y.shape == (2, 11, 64, 128)
        assert torch.allclose(y, yt, atol=1e-5)
    assert not torch.allclose(ys[0], ys[1])  # the prediction / hidden state is fed back


def test_odd_resolution_and_cityscapes_preset():
    # 72 rows -> 36, 18, 9, 4 after the pools: the deconvs must hit the skip sizes.
    m = get_model("recunet", dataset="cityscapes", iterations=2).eval()
    gm = torch.fx.symbolic_trace(m)
    with torch.no_grad():
        ys = gm(torch.randn(1, 3, 72, 88))
    assert len(ys) == 2 and all(y.shape == (1, 19, 72, 88) for y in ys)


@pytest.mark.parametrize("kwargs", [dict(iterations=0), dict(base_width=0), dict(classes=1), dict(hidden=2.5),
                                    dict(iterations="x")])
def test_invalid_knobs(kwargs):
    with pytest.raises(ValueError):
        recunet(dataset="camvid", **kwargs)


def test_params_exact():
    assert param_count(get_model("recunet")) == _expected_params(11) == 783_755
    assert param_count(get_model("recunet", dataset="cityscapes")) == _expected_params(19) == 784_403
    assert param_count(recunet(dataset="camvid", base_width=4, hidden=48, iterations=5)) == _expected_params(11, 4, 48)
    # iterations do not add parameters (weights are shared)
    assert param_count(recunet(dataset="camvid", iterations=7)) == 783_755


def test_macs_exact_and_linear_in_iterations():
    per_it = _expected_macs_per_iteration(11, 64, 128)
    assert flop_counter_macs(recunet(dataset="camvid", iterations=1).eval(), (1, 3, 64, 128)) == per_it
    assert flop_counter_macs(recunet(dataset="camvid", iterations=3).eval(), (1, 3, 64, 128)) == 3 * per_it
    # The presets, 3 iterations, as documented (README's zoo table, the builder's docstring): CamVid at
    # 360x480 (an odd 45-row level at 1/8) and Cityscapes at 512x1024, by hand and by FlopCounterMode.
    camvid = flop_counter_macs(get_model("recunet").eval(), (1, 3, 360, 480))
    assert camvid == 3 * _expected_macs_per_iteration(11, 360, 480) == 7_079_454_720
    cityscapes = flop_counter_macs(get_model("recunet", dataset="cityscapes").eval(), (1, 3, 512, 1024))
    assert cityscapes == 3 * _expected_macs_per_iteration(19, 512, 1024) == 22_561_161_216
