"""Shape rules (used instead of running an op on fake tensors) agree with PyTorch."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

import graphcost
from graphcost import ops


def rule_shape(info, module, args, kwargs):
    return info.shape(module, args, kwargs)


@settings(max_examples=40, deadline=None)
@given(cin=st.integers(1, 6), cout=st.integers(1, 6), k=st.integers(1, 4), stride=st.integers(1, 3),
       pad=st.integers(0, 2), dil=st.integers(1, 2), size=st.integers(8, 15), transposed=st.booleans(),
       out_pad=st.integers(0, 1))
def test_conv_shape_rule_matches_torch(cin, cout, k, stride, pad, dil, size, transposed, out_pad):
    if transposed:
        out_pad = min(out_pad, max(stride, dil) - 1)
        m = nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=pad, dilation=dil, output_padding=out_pad)
    else:
        m = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dil)
    x = torch.zeros(2, cin, size, size + 1)
    try:
        expected = tuple(m(x).shape)
    except RuntimeError:
        return  # an impossible geometry: torch refuses it, and so would the real op under graphcost
    assert rule_shape(ops.lookup_module(m), m, (x,), {}) == expected


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv_string_padding(padding):
    m = nn.Conv2d(3, 4, 3, padding=padding, dilation=2 if padding == "same" else 1)
    x = torch.zeros(1, 3, 9, 10)
    assert rule_shape(ops.lookup_module(m), m, (x,), {}) == tuple(m(x).shape)


@pytest.mark.parametrize("fn,args,kwargs", [
    (F.interpolate, (torch.zeros(1, 2, 7, 9),), {"scale_factor": 1.5, "mode": "bilinear"}),
    (F.interpolate, (torch.zeros(1, 2, 7, 9),), {"size": (5, 4), "mode": "nearest"}),
    (F.interpolate, (torch.zeros(1, 2, 7, 9), 11), {}),
    (F.interpolate, (torch.zeros(1, 2, 7, 9), None, (2, 0.5)), {}),
    (F.adaptive_avg_pool2d, (torch.zeros(1, 2, 7, 9), (3, None)), {}),
    (F.adaptive_avg_pool2d, (torch.zeros(2, 7, 9), 1), {}),
    (torch.cat, ([torch.zeros(1, 2, 3), torch.zeros(1, 5, 3)], 1), {}),
    (torch.cat, ([torch.zeros(1, 2, 3), torch.zeros(1, 2, 4)],), {"dim": -1}),
    (torch.add, (torch.zeros(3, 1, 4), torch.zeros(5, 1)), {}),
])
def test_function_shape_rules_match_torch(fn, args, kwargs):
    info = ops.lookup_function(fn)
    assert rule_shape(info, None, args, kwargs) == tuple(fn(*args, **kwargs).shape)


def test_upsample_module_rule():
    m = nn.Upsample(scale_factor=8, mode="bilinear")
    x = torch.zeros(1, 3, 5, 6)
    assert rule_shape(ops.lookup_module(m), m, (x,), {}) == tuple(m(x).shape)


@pytest.mark.parametrize("name,dataset,params", [
    ("itnet", "camvid", {"N": 3}), ("enet", "camvid", {}), ("cgnet", "cityscapes", {"M": 2, "N": 3}),
    ("espnetv2", "cityscapes", {"s": 0.5}), ("recunet", "camvid", {"iterations": 2}),
    ("recurrent-seg", "pascal", {"iterations": 2}),
])
def test_traced_output_shapes_equal_a_real_forward(name, dataset, params):
    from graphcost.models import get_model

    model = get_model(name, dataset=dataset, **params).eval()
    shape = (1, 3, 64, 96)
    with torch.no_grad():
        real = model(torch.rand(shape))
    real = real if isinstance(real, (list, tuple)) else [real]
    t = graphcost.trace(model, shape)
    assert [tuple(t.dag.nodes[o]["out_shapes"][0]) for o in t.outputs] == [tuple(r.shape) for r in real]
