"""MACs and params against independent counters: fvcore (conv + linear + matmul) and PyTorch."""
import pytest
import torch
import torchvision
from fvcore.nn import FlopCountAnalysis

import graphcost

FVCORE_MAC_OPS = {"conv", "linear", "matmul", "addmm", "bmm", "einsum", "mm"}


def fvcore_macs(model, shape):
    counter = FlopCountAnalysis(model, torch.randn(shape))
    counter.unsupported_ops_warnings(False)
    counter.uncalled_modules_warnings(False)
    return sum(v for op, v in counter.by_operator().items() if op in FVCORE_MAC_OPS)


@pytest.mark.parametrize("name,kwargs,shape", [
    ("resnet18", {}, (1, 3, 224, 224)),
    ("mobilenet_v2", {}, (1, 3, 224, 224)),
    ("lraspp_mobilenet_v3_large", {"weights_backbone": None}, (1, 3, 128, 160)),
])
def test_macs_equal_fvcore_and_params_exact(name, kwargs, shape):
    model = torchvision.models.get_model(name, weights=None, **kwargs).eval()
    a = graphcost.analyze(model, shape)
    reference = fvcore_macs(model, shape)
    assert a.macs == reference  # exact: fvcore counts the same conv / linear / matmul MACs
    assert a.params == sum(p.numel() for p in model.parameters())
    assert not a.unknown_ops and not a.opaque_modules


class SelfAttention(torch.nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.out = torch.nn.Linear(dim, dim)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(-1, -2) / 8.0, dim=-1)
        return self.out(torch.einsum("bij,bjd->bid", weights, v))


def test_macs_equal_torch_flop_counter_on_attention():
    """Linear, matmul and einsum against torch.utils.flop_counter (2 FLOPs per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    model, shape = SelfAttention().eval(), (2, 10, 32)
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(shape))
    a = graphcost.analyze(model, shape)
    assert a.macs == counter.get_total_flops() // 2
    assert a.latency_layers == 2  # qkv and out projections; activation matmuls hold no weights
