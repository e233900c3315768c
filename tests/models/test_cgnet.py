"""CGNet_M3N21 (Wu et al. 2018): structure, fx tracing, exact parameter and MAC counts."""
import pytest
import torch
from torch import fx, nn

from graphcost.errors import UserError
from graphcost.models import get_model, list_models
from oracles import called_modules, macs_and_shape, param_count


def _expected_params(classes, M, N):
    """CGNet's parameter count from the authors' layer plan, by hand."""
    bnprelu = lambda c: 3 * c                         # BN weight+bias, PReLU per channel
    fglo = lambda c, r: c * (c // r) + c // r + (c // r) * c + c
    stage1 = 3 * 32 * 9 + 2 * 32 * 32 * 9 + 3 * bnprelu(32)
    down2 = 35 * 64 * 9 + bnprelu(64) + 2 * 64 * 9 + bnprelu(128) + 128 * 64 + fglo(64, 8)
    block64 = 64 * 32 + bnprelu(32) + 2 * 32 * 9 + bnprelu(64) + fglo(64, 8)
    down3 = 131 * 128 * 9 + bnprelu(128) + 2 * 128 * 9 + bnprelu(256) + 256 * 128 + fglo(128, 16)
    block128 = 128 * 64 + bnprelu(64) + 2 * 64 * 9 + bnprelu(128) + fglo(128, 16)
    return (stage1 + bnprelu(35) + down2 + (M - 1) * block64 + bnprelu(131) + down3
            + (N - 1) * block128 + bnprelu(256) + 256 * classes)


def _expected_macs(H, W, classes, M, N):
    p1, p2, p3 = (H // 2) * (W // 2), (H // 4) * (W // 4), (H // 8) * (W // 8)
    stage1 = p1 * (3 * 32 * 9 + 2 * 32 * 32 * 9)
    stage2 = p2 * (35 * 64 * 9 + 2 * 64 * 9 + 128 * 64 + (M - 1) * (64 * 32 + 2 * 32 * 9))
    stage3 = p3 * (131 * 128 * 9 + 2 * 128 * 9 + 256 * 128 + (N - 1) * (128 * 64 + 2 * 64 * 9) + 256 * classes)
    fc = M * 2 * 64 * 8 + N * 2 * 128 * 8
    return stage1 + stage2 + stage3 + fc


def test_registered_with_cityscapes_default():
    assert list_models()["cgnet"].default_dataset == "cityscapes"


def test_traces_and_matches_eager_even_and_odd_sizes():
    torch.manual_seed(0)
    model = get_model("cgnet").eval()
    traced = fx.symbolic_trace(model)
    for size in [(64, 96), (65, 97)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            eager, graph = model(x), traced(x)
        assert eager.shape == (1, 19) + size
        assert torch.allclose(eager, graph, atol=1e-6)


def test_block_structure_in_trace():
    M, N = 3, 21
    traced = fx.symbolic_trace(get_model("cgnet", M=M, N=N))
    called = called_modules(traced)
    dw = [m for m in called if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert sorted(m.dilation[0] for m in dw) == [1] * (M + N) + [2] * M + [4] * N
    assert sum(isinstance(m, nn.AdaptiveAvgPool2d) for m in called) == M + N     # one f_glo per block
    assert sum(isinstance(m, nn.AvgPool2d) for m in called) == 2                 # input injection
    assert all(m.bias is None for m in called if isinstance(m, nn.Conv2d))
    interps = [n for n in traced.graph.nodes if n.op == "call_function" and "interpolate" in str(n.target)]
    assert len(interps) == 1


@pytest.mark.parametrize("dataset,classes,M,N", [("cityscapes", None, 3, 21), ("camvid", None, 3, 21),
                                                 ("cityscapes", 7, 2, 2), ("camvid", None, 6, 15)])
def test_params_exact(dataset, classes, M, N):
    model = get_model("cgnet", dataset=dataset, classes=classes, M=M, N=N)
    n = classes or {"camvid": 11, "cityscapes": 19}[dataset]
    assert param_count(model) == _expected_params(n, M, N)


def test_params_match_paper():
    params = param_count(get_model("cgnet"))
    assert params == 496_306
    assert abs(params - 0.5e6) / 0.5e6 < 0.10
    assert abs(params - 0.49e6) / 0.49e6 < 0.10


def test_macs_exact_and_vs_published_7g():
    # Cityscapes preset 1024x512. The ~7 G quoted for CGNet_M3N21 agrees with this MAC count
    # (at 2048x1024 the network needs 4x as much; see the builder's docstring).
    macs, out = macs_and_shape(get_model("cgnet").eval(), (1, 3, 512, 1024))
    assert out == (1, 19, 512, 1024)
    assert macs == _expected_macs(512, 1024, 19, 3, 21) == 6_762_312_704
    assert abs(macs - 7e9) / 7e9 < 0.10


def test_macs_exact_small_variant_camvid():
    macs, out = macs_and_shape(get_model("cgnet", dataset="camvid", M=2, N=4).eval(), (1, 3, 360, 480))
    assert out == (1, 11, 360, 480)
    assert macs == _expected_macs(360, 480, 11, 2, 4)


def test_pascal_odd_size_keeps_input_resolution():
    _, out = macs_and_shape(get_model("cgnet", dataset="pascal", M=2, N=2).eval(), (1, 3, 513, 513))
    assert out == (1, 21, 513, 513)


def test_invalid_values_fail_clearly():
    with pytest.raises(UserError, match="M"):
        get_model("cgnet", M=1)
    with pytest.raises(UserError, match="N"):
        get_model("cgnet", N=1)
    with pytest.raises(UserError, match="classes"):
        get_model("cgnet", classes=0)
