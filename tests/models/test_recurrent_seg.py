"""recurrent-seg (McIntosh et al. 2018): build, trace, per-iteration outputs, sharing, canvas, costs."""
import pytest
import torch
from torch import nn

from graphcost.errors import UserError
from graphcost.models import DATASETS, get_model
from oracles import flop_counter_macs, hook_macs, module_calls, param_count


def _macs(model, shape):
    """MACs of the conv layers (forward hooks, on the meta device: nothing is allocated)."""
    macs = hook_macs(model, shape)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())  # conv-only: no Linear was counted
    return macs


def _meta_model(**kwargs):
    with torch.device("meta"):  # 48.6M parameters: skip the initialisation where values do not matter
        return get_model("recurrent-seg", **kwargs)


def _resnet101_trunk_params():
    """ResNet-101 conv1..layer4 (no fc), derived by hand: convs + BN (2 per channel)."""
    total = 3 * 64 * 49 + 2 * 64
    in_ch = 64
    for width, blocks in zip((64, 128, 256, 512), (3, 4, 23, 3)):
        for b in range(blocks):
            out = 4 * width
            total += in_ch * width + 9 * width * width + width * out + 2 * (width + width + out)
            if b == 0:
                total += in_ch * out + 2 * out
            in_ch = out
    return total


def _lstm_params(features=2048, hidden=(512, 256), classes=21, k=1):
    sizes = list(hidden) + [classes]
    inputs = [features + classes] + sizes[:-1]
    return sum((i + h) * 4 * h * k * k + 4 * h for i, h in zip(inputs, sizes))


def test_default_is_pascal_with_six_iterations():
    model = _meta_model()
    assert model.classes == DATASETS["pascal"].classes == 21
    assert model.iterations == 6
    assert [c.hidden for c in model.cells] == [512, 256, 21]
    assert _meta_model(dataset="camvid").classes == 11


def test_traces_and_returns_one_upsampled_prediction_per_iteration():
    model = get_model("recurrent-seg", iterations=3).eval()
    gm = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 49, 67)  # odd size: the canvas is upsampled to exactly the input size
    with torch.no_grad():
        eager, traced = model(x), gm(x)
    assert isinstance(eager, list) and len(eager) == 3
    for a, b in zip(eager, traced):
        assert a.shape == (1, 21, 49, 67)
        assert torch.allclose(a, b, atol=1e-5)
    # Additive canvas: each iteration adds the last ConvLSTM's hidden output (|h| < 1), so the
    # (bilinearly upsampled) canvas moves by less than 1 per iteration and starts inside (-1, 1).
    assert eager[0].abs().max() < 1
    for before, after in zip(eager, eager[1:]):
        delta = (after - before).abs().max()
        assert 0 < delta < 1


def test_convlstm_modules_are_shared_across_iterations():
    gm = torch.fx.symbolic_trace(_meta_model(iterations=4))
    calls = module_calls(gm)
    assert {k: v for k, v in calls.items() if k.startswith("cells.")} == {
        "cells.0.gates": 4, "cells.1.gates": 4, "cells.2.gates": 4}
    assert calls["backbone.layer4.2.conv2"] == 1  # the feature extractor runs once
    assert param_count(_meta_model(iterations=1)) == param_count(_meta_model(iterations=9))


def test_output_stride_controls_feature_resolution():
    for stride, side in ((16, 33), (8, 65), (32, 17)):
        trunk = _meta_model(output_stride=stride).backbone
        with torch.no_grad():
            assert trunk(torch.empty(1, 3, 513, 513, device="meta")).shape == (1, 2048, side, side)


def test_params_exact():
    model = _meta_model()
    assert param_count(model.backbone) == _resnet101_trunk_params() == 42_500_160
    assert param_count(model.cells) == _lstm_params() == 6_098_744
    assert param_count(model) == 48_598_904
    other = _meta_model(dataset="cityscapes", lstm_channels=(128,), kernel_size=3)
    assert param_count(other.cells) == _lstm_params(hidden=(128,), classes=19, k=3)


def test_mac_helper_agrees_with_flop_counter():
    model = get_model("recurrent-seg", iterations=2, lstm_channels=(32, 16)).eval()
    reference = flop_counter_macs(model, (1, 3, 97, 65))
    assert _macs(model, (1, 3, 97, 65)) == reference


def test_costs_match_table_3():
    # Paper at 513x513, output stride 16: trunk 42.5M params and 54.4 GFLOPs; Table 3: 61.1 and
    # 94.3 GFLOPs after 1 and 6 iterations (its FLOPs are multiply-accumulates).
    assert abs(param_count(_meta_model().backbone) / 42.5e6 - 1) < 0.01
    trunk = _macs(_meta_model().backbone, (1, 3, 513, 513))
    one = _macs(_meta_model(iterations=1), (1, 3, 513, 513))
    six = _macs(_meta_model(iterations=6), (1, 3, 513, 513))
    assert abs(trunk / 54.4e9 - 1) < 0.02
    assert abs(one / 61.1e9 - 1) < 0.02
    assert abs(six / 94.3e9 - 1) < 0.02
    assert abs((six - one) / 5 / ((94.3e9 - 61.1e9) / 5) - 1) < 0.02  # per-iteration cost


@pytest.mark.parametrize("kwargs", [
    {"iterations": 0}, {"classes": 0}, {"lstm_channels": (512, 0)}, {"lstm_channels": "512"},
    {"kernel_size": 2}, {"output_stride": 4}, {"iterations": True},
])
def test_invalid_knobs(kwargs):
    with pytest.raises(UserError):
        get_model("recurrent-seg", **kwargs)
