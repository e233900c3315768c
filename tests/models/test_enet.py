"""ENet (Paszke et al. 2016): structure, fx tracing, exact parameter count, paper numbers."""
import pytest
import torch
from torch import fx, nn

from graphcost.errors import UserError
from graphcost.models import get_model, list_models
from oracles import called_modules, macs_and_shape, param_count


def _expected_params(classes):
    """ENet's parameter count from the layer plan (Table 1 + authors' Torch code), by hand."""
    def bn(c):
        return 2 * c

    def enc(cin, cout, main, down=False):
        i = cout // 4
        k2 = 4 if down else 1
        return (cin * i * k2 + bn(i) + i) + (main(i) + bn(i) + i) + (i * cout + bn(cout)) + cout

    regular = lambda i: 9 * i * i + i          # 3x3 with bias (dilated: same)
    asym = lambda i: 5 * i * i + 5 * i * i + i  # 5x1 no bias, 1x5 with bias

    def dec(cin, cout, up):
        i = cout // 4
        p = cin * i + bn(i) + (9 * i * i + i) + bn(i) + i * cout + bn(cout)
        return p + (cin * cout + bn(cout) if up else 0)

    total = 3 * 13 * 9 + 13 + bn(16) + 16                                  # initial block
    total += enc(16, 64, regular, down=True) + 4 * enc(64, 64, regular)     # stage 1
    total += enc(64, 128, regular, down=True)                               # bottleneck2.0
    total += 2 * (6 * enc(128, 128, regular) + 2 * enc(128, 128, asym))     # stages 2 and 3
    total += dec(128, 64, True) + 2 * dec(64, 64, False)                    # stage 4
    total += dec(64, 16, True) + dec(16, 16, False)                         # stage 5
    total += 16 * classes * 4 + classes                                     # fullconv 2x2
    return total


def test_registered_with_camvid_default():
    assert list_models()["enet"].default_dataset == "camvid"


def test_traces_and_matches_eager_at_small_size():
    torch.manual_seed(0)
    model = get_model("enet").eval()
    traced = fx.symbolic_trace(model)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        eager, graph = model(x), traced(x)
    assert eager.shape == (1, 11, 64, 96)
    assert torch.allclose(eager, graph)


def test_trace_has_pool_indices_unpool_and_transposed_convs():
    traced = fx.symbolic_trace(get_model("enet"))
    called = called_modules(traced)
    pools = [m for m in called if isinstance(m, nn.MaxPool2d)]
    assert sum(m.return_indices for m in pools) == 2          # bottleneck1.0 and 2.0
    assert len(pools) == 3                                    # + the initial block's pool
    assert sum(isinstance(m, nn.MaxUnpool2d) for m in called) == 2
    tconvs = [m for m in called if isinstance(m, nn.ConvTranspose2d)]
    assert [m.kernel_size for m in tconvs] == [(3, 3), (3, 3), (2, 2)]
    convs = [m for m in called if type(m) is nn.Conv2d]
    assert sorted(m.dilation[0] for m in convs if m.dilation[0] > 1) == [2, 2, 4, 4, 8, 8, 16, 16]
    assert sum(m.kernel_size == (5, 1) for m in convs) == 4
    assert sum(m.kernel_size == (1, 5) for m in convs) == 4


@pytest.mark.parametrize("dataset,classes", [("camvid", None), ("cityscapes", None), ("camvid", 5)])
def test_params_exact(dataset, classes):
    model = get_model("enet", dataset=dataset, classes=classes)
    n = classes or {"camvid": 11, "cityscapes": 19}[dataset]
    assert param_count(model) == _expected_params(n)


def test_params_match_paper():
    params = param_count(get_model("enet"))
    assert params == 363_791
    assert abs(params - 0.37e6) / 0.37e6 < 0.10


@pytest.mark.parametrize("dataset,shape", [("camvid", (1, 11, 360, 480)), ("cityscapes", (1, 19, 512, 1024))])
def test_preset_shapes(dataset, shape):
    model = get_model("enet", dataset=dataset).eval()
    _, out = macs_and_shape(model, (1, 3) + shape[2:])
    assert out == shape


def test_flops_reconcile_with_paper_table3():
    # Table 3: 3.83 GFLOPs at 3x640x360. Our MACs count the asymmetric convs as 5x1 + 1x5;
    # the paper's number is 2 x MACs with each of the 4 asymmetric convs (32 ch at 45x80)
    # costed as a full 5x5.
    macs, out = macs_and_shape(get_model("enet").eval(), (1, 3, 360, 640))
    assert out == (1, 11, 360, 640)
    # No literal MAC count here (it would be the tool's own output): the paper's 3.83 GFLOPs, rounded to
    # 2 decimals, pins the 5x5-costed count to +-5 M FLOPs, i.e. our MACs to +-2.5 M.
    as_5x5 = macs + 4 * 32 * 32 * (25 - 10) * 45 * 80
    assert round(2 * as_5x5 / 1e9, 2) == 3.83
    assert abs(2 * macs - 3.83e9) / 3.83e9 < 0.12


def test_invalid_values_fail_clearly():
    with pytest.raises(UserError, match="classes"):
        get_model("enet", classes=0)
    with pytest.raises(UserError, match="divisible by 8"):
        get_model("enet", dataset="pascal")
    with pytest.raises(UserError, match="no parameter"):
        get_model("enet", width=2)
