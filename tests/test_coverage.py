"""Coverage: every call that computes is counted (or the analysis says it is incomplete).

References: torch's FlopCounterMode on an eager forward with attention as explicit matmuls.
"""
import json
import os

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import graphcost
from clirun import run
from nets import make_spectral
from oracles import eager_macs

HERE = os.path.dirname(__file__)


class Encoder(nn.Module):
    """nn.TransformerEncoder: an nn leaf without a formula, with a fused eval fast path."""

    def __init__(self, d=64, layers=2):
        super().__init__()
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 2 * d, batch_first=True), layers)

    def forward(self, x):
        return self.encoder(x)


def test_opaque_transformer_encoder_counts_its_attention_and_is_listed():
    model, shape = Encoder().eval(), (1, 256, 64)
    a = graphcost.analyze(model, shape)
    assert a.macs == eager_macs(model, shape)
    # by hand: per layer q, k, v, out projections + QK^T + AV + two feed-forward linears
    seq, d = 256, 64
    assert a.macs == 2 * (4 * seq * d * d + 2 * seq * seq * d + 2 * seq * d * 2 * d)
    assert a.opaque_modules == ("encoder",) and a.complete


def test_fast_path_setting_is_restored():
    graphcost.analyze(Encoder().eval(), (1, 16, 64))
    assert torch.backends.mha.get_fastpath_enabled()


@fx.wrap
def window_attention(x, weight):
    q = F.linear(x, weight)
    return torch.softmax(q @ x.transpose(-1, -2), -1) @ x


class WrapsAFunction(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 16))

    def forward(self, x):
        return window_attention(x, self.weight)


def test_fx_wrapped_function_is_costed_per_aten_op():
    model, shape = WrapsAFunction(), (2, 10, 16)
    a = graphcost.analyze(model, shape)
    assert a.macs == eager_macs(model, shape) == 2 * (10 * 16 * 16 + 2 * 10 * 10 * 16)
    assert a.unknown_ops == ("window_attention",) and a.complete
    assert a.latency_layers == 1  # it holds a weight


class OptionalArguments(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(16, 48)

    def forward(self, x, mask=None, is_causal: bool = False, scale=None):
        q, k, v = self.qkv(x).chunk(3, -1)
        if mask is not None:
            q = q + mask
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale)


def test_optional_forward_arguments_keep_their_defaults():
    model, shape = OptionalArguments(), (1, 8, 16)
    a = graphcost.analyze(model, shape)
    assert a.macs == eager_macs(model, shape)
    assert not a.unknown_ops and a.complete
    assert [layer.op for layer in a.layers] == ["linear", "attention"]  # no guard nodes left over


def test_an_op_nobody_can_count_makes_the_analysis_incomplete():
    a = graphcost.analyze(make_spectral(), (2, 8))
    assert not a.complete
    assert a.macs == 2 * 8 * 8  # the linear layer still counts
    (op, uncounted), = a.uncounted.items()
    assert op == "aten._fft_r2c" and uncounted.calls == 1 and uncounted.shapes == ((2, 8),)
    d = a.to_dict()
    assert d["complete"] is False and d["uncounted"] == {"aten._fft_r2c": {"calls": 1, "shapes": [[2, 8]]}}
    assert graphcost.analyze(nn.Linear(8, 8), (2, 8)).to_dict()["complete"] is True


def test_cli_shows_incomplete_in_the_table_and_strict_exits_3(capsys, monkeypatch):
    monkeypatch.syspath_prepend(HERE)
    rc, out, err = run(capsys, "analyze", "nets:make_spectral", "--input", "2x8x8")
    assert rc == 0
    assert "INCOMPLETE" in out and "aten._fft_r2c" in out
    rc, out, _ = run(capsys, "analyze", "nets:make_spectral", "--input", "2x8x8", "--strict", "--format", "json")
    assert rc == 3 and json.loads(out)["complete"] is False
    rc, out, _ = run(capsys, "analyze", "nets:make_loopnet", "--input", "16x16", "--strict")
    assert rc == 0 and "INCOMPLETE" not in out
