"""``complete`` means "every multiply-accumulate was counted".

Ops that do no MAC (sorting, top-k, histograms, integer index arithmetic, comparisons, copies) are
``other_ops`` or free, never ``uncounted``; only an op that may carry MACs without a formula (an
FFT, an unknown custom kernel) makes an analysis incomplete. Mixture-of-experts transformers (tiny
mixtral and qwen2_moe configs) are complete, their MACs equal to FlopCounterMode on a real forward
with the experts as explicit per-expert linears.
"""
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import graphcost
from graphcost.inputs import InputSpec
from graphcost.resolve import ModelSpec, build, build_for_shapes


@torch.library.custom_op("graphcost_test::mystery_mm", mutates_args=())
def mystery_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A kernel nobody has a formula for (it multiplies matrices, but no counter can know)."""
    return a @ b


@mystery_mm.register_fake
def _(a, b):
    return a.new_empty(a.shape[0], b.shape[1])


class Router(nn.Module):
    """Routing arithmetic without a multiply-accumulate beside one linear layer."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(16, 8)

    def forward(self, x):
        scores = self.proj(x)                                      # the only MACs: 4 x 16 x 8
        top = torch.topk(scores, 2, dim=-1)
        order = torch.sort(top.indices.flatten()).values
        counts = torch.histc(order.float(), bins=8, min=0, max=7)
        slot = torch.floor_divide(order, 2) + order % 2            # integer index arithmetic
        hit = (counts > 0) & (slot.max() >= 0)                    # comparisons
        return scores.clone() * hit.any() + top.values.sum()      # a copy, pointwise ops


class Mystery(nn.Module):
    def __init__(self, op: str):
        super().__init__()
        self.op = op
        self.weight = nn.Parameter(torch.randn(16, 8))

    def forward(self, x):
        if self.op == "fft":
            return torch.fft.rfft(x, dim=-1).abs()
        return mystery_mm(x, self.weight)


def flop_counter_macs(model, *args, **kwargs) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("tracer", ["auto", "dispatch", "export"])
def test_ops_without_a_multiply_accumulate_keep_an_analysis_complete(tracer):
    a = graphcost.analyze(Router(), (4, 16), tracer=tracer)
    assert a.complete and a.uncounted == {}, a.uncounted
    assert a.macs == 4 * 16 * 8 == flop_counter_macs(Router(), torch.randn(4, 16))
    assert a.other_ops > 0  # sorting, top-k and the histogram are counted as other ops, not dropped


@pytest.mark.parametrize("op, name", [("custom", "graphcost_test.mystery_mm"), ("fft", "aten._fft_r2c")])
@pytest.mark.parametrize("tracer", ["fx", "dispatch"])
def test_an_op_that_may_multiply_accumulate_without_a_formula_makes_it_incomplete(op, name, tracer):
    a = graphcost.analyze(Mystery(op), (4, 16), tracer=tracer)
    assert not a.complete
    assert list(a.uncounted) == [name] and a.uncounted[name].calls == 1
    assert a.to_dict()["complete"] is False


TINY = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
        "vocab_size": 1000, "num_key_value_heads": 2}
MOE = {
    "mixtral": ("hf:mixtral", {**TINY, "num_local_experts": 4, "num_experts_per_tok": 2}),
    "qwen2_moe": ("hf:qwen2_moe", {**TINY, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                                   "shared_expert_intermediate_size": 64}),
}


@pytest.mark.parametrize("case", list(MOE))
def test_mixture_of_experts_is_complete_and_equals_flop_counter(case):
    pytest.importorskip("transformers")
    source, params = MOE[case]
    model = build_for_shapes(ModelSpec(name=source, params=params)).module
    a = graphcost.analyze(model, {"input_ids": InputSpec((1, 32), torch.int64)})
    assert a.complete, a.uncounted
    # the reference: a real forward, attention and experts as explicit matmuls / per-expert linears
    reference = build(ModelSpec(name=source, params={**params, "attn_implementation": "eager",
                                                     "experts_implementation": "eager"})).module.eval()
    ids = torch.randint(0, 1000, (1, 32), generator=torch.Generator().manual_seed(0))
    assert a.macs == flop_counter_macs(reference, input_ids=ids)
    assert a.params == sum(p.numel() for p in model.parameters())
