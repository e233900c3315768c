
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import graphcost
from nets import AnytimeNet, LoopNet


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_graph_size_of_hand_example_is_independent_of_iterations(n):
    """Issue example: 475,156 bytes for every n (stem 3->16 k3 s2 on 64x64, block x n, head 16->5 k1+bias)."""
    a = graphcost.analyze(LoopNet(n), (1, 3, 64, 64))
    assert a.graph_size_bytes == 475_156
    assert a.params == 432 + 2304 + 256 + 85
    assert a.latency_layers == 2 + 2 * n
    per_iteration = 32 * 32 * 16 * (16 * 9 + 16)
    assert a.macs == 32 * 32 * 16 * 27 + n * per_iteration + 32 * 32 * 5 * 16


def test_graph_size_grows_when_weights_are_unrolled():
    shared = graphcost.analyze(LoopNet(4, shared=True), (1, 3, 64, 64))
    unrolled = graphcost.analyze(LoopNet(4, shared=False), (1, 3, 64, 64))
    assert unrolled.macs == shared.macs
    assert unrolled.latency_layers == shared.latency_layers
    block_bytes = (2304 + 256) * 4 + 4 * 16 * 32 * 32 * 4
    assert unrolled.graph_size_bytes - shared.graph_size_bytes == 3 * block_bytes


def test_bytes_per_element_override_and_all_layers():
    a1 = graphcost.analyze(LoopNet(2), (1, 3, 64, 64), bytes_per_element=1)
    assert a1.graph_size_bytes == 475_156 // 4
    everything = graphcost.analyze(LoopNet(2), (1, 3, 64, 64), all_layers=True)
    assert everything.graph_size_bytes > 475_156


@pytest.mark.parametrize("conv,shape,expected", [
    (nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), (1, 32, 10, 12), 10 * 12 * 32 * 9),       # depthwise
    (nn.Conv2d(32, 64, 3, padding=1, groups=4, bias=False), (1, 32, 10, 12), 10 * 12 * 64 * 8 * 9),    # grouped
    (nn.Conv2d(8, 8, 3, padding=2, dilation=2), (2, 8, 9, 9), 2 * 9 * 9 * 8 * 8 * 9),                  # dilated
    (nn.Conv2d(8, 4, 3, stride=2, padding=1), (1, 8, 16, 16), 8 * 8 * 4 * 8 * 9),                      # strided
    (nn.ConvTranspose2d(8, 4, 2, stride=2), (1, 8, 5, 7), 5 * 7 * 8 * 4 * 4),                          # transposed
    (nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1, groups=2), (1, 8, 4, 4),
     4 * 4 * 8 * 4 * 9),
    (nn.Conv1d(4, 6, 5), (3, 4, 20), 3 * 16 * 6 * 4 * 5),
    (nn.Linear(10, 7), (5, 10), 5 * 10 * 7),
])
def test_hand_computed_macs(conv, shape, expected):
    assert graphcost.analyze(conv, shape).macs == expected


def test_matmul_einsum_and_attention_macs():
    class M(nn.Module):
        def forward(self, x):
            a = torch.matmul(x, x.transpose(-1, -2))          # 2 x 5x5 with inner 3
            b = torch.einsum("bij,bjk->bik", x, x.transpose(1, 2))
            return a + b + torch.bmm(x, x.transpose(1, 2))

    assert graphcost.analyze(M(), (2, 5, 3)).macs == 3 * (2 * 5 * 5 * 3)


def test_recurrent_cells():
    lstm = nn.LSTM(input_size=8, hidden_size=16, num_layers=2, batch_first=True)
    a = graphcost.analyze(lstm, (2, 5, 8))
    steps = 2 * 5
    assert a.macs == steps * 4 * 16 * (8 + 16) + steps * 4 * 16 * (16 + 16)
    assert a.params == sum(p.numel() for p in lstm.parameters())


def test_other_ops_never_inside_macs():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2), nn.Upsample(scale_factor=2))
    a = graphcost.analyze(model, (1, 3, 8, 8))
    assert a.macs == 0
    assert a.other_ops == 3 * 64 + 3 * 64 + 3 * 16 * 4 + 3 * 64
    assert a.latency_layers == 0 and a.graph_size_bytes == 0


def test_anytime_outputs_count_only_their_ancestors():
    a = graphcost.analyze(AnytimeNet(3), (1, 3, 16, 16))
    px = 16 * 16
    stem, block, head = px * 8 * 27, px * 8 * 72, px * 2 * 8
    assert [o.macs for o in a.outputs] == [stem + n * block + head for n in (1, 2, 3)]
    assert [o.latency_layers for o in a.outputs] == [3, 4, 5]
    assert a.macs == stem + 3 * block + 3 * head
    sizes = [o.graph_size_bytes for o in a.outputs]
    head_bytes = (16 + 2 + px * 8 + px * 2) * 4
    # output n needs the stem, the (shared) block and its own head only
    assert sizes[0] == sizes[1] == sizes[2]
    assert a.graph_size_bytes == sizes[0] + 2 * head_bytes


def test_analysis_serialises():
    a = graphcost.analyze(AnytimeNet(2), (1, 3, 8, 8))
    d = a.to_dict()
    for key in ("model", "input_shape", "params", "macs", "graph_size_bytes", "latency_layers", "outputs", "layers"):
        assert key in d
    assert set(d["outputs"][0]) >= {"index", "macs", "latency_layers", "graph_size_bytes"}
    assert set(d["layers"][0]) >= {"name", "op", "calls", "params", "macs", "in_bytes", "out_bytes"}
    frame = a.to_frame()
    assert len(frame) == len(a.layers) and frame["macs"].sum() == a.macs


conv_layer = st.tuples(
    st.integers(1, 12),            # out channels (before group rounding)
    st.sampled_from([1, 3, 5]),    # kernel
    st.integers(1, 2),             # stride
    st.integers(1, 2),             # dilation
    st.booleans(),                 # depthwise
    st.booleans(),                 # bias
)


@settings(max_examples=25, deadline=None)
@given(layers=st.lists(conv_layer, min_size=1, max_size=5), size=st.integers(12, 24), repeat=st.integers(1, 3))
def test_random_conv_stacks_against_direct_formula(layers, size, repeat):
    """MACs and graph size of random conv stacks (the last conv re-used ``repeat`` times)."""
    modules, c, h = [], 3, size
    expected_macs = expected_bytes = 0
    for out, k, s, d, depthwise, bias in layers:
        groups = c if depthwise else 1
        cout = c if depthwise else out
        pad = d * (k - 1) // 2
        conv = nn.Conv2d(c, cout, k, stride=s, padding=pad, dilation=d, groups=groups, bias=bias)
        h_out = (h + 2 * pad - d * (k - 1) - 1) // s + 1
        macs = h_out * h_out * cout * (c // groups) * k * k
        expected_macs += macs
        expected_bytes += 4 * (conv.weight.numel() + (cout if bias else 0) + c * h * h + cout * h_out * h_out)
        modules.append(conv)
        c, h = cout, h_out
    last = nn.Conv2d(c, c, 3, padding=1)
    expected_macs += repeat * h * h * c * c * 9
    expected_bytes += 4 * (last.weight.numel() + c + 2 * c * h * h)
    model = nn.Sequential(*modules, *([last] * repeat))
    a = graphcost.analyze(model, (1, 3, size, size))
    assert a.macs == expected_macs
    assert a.graph_size_bytes == expected_bytes
    assert a.params == sum(p.numel() for p in model.parameters())
    assert a.latency_layers == len(layers) + repeat


def test_per_output_params_count_only_the_layers_each_output_needs():
    a = graphcost.analyze(AnytimeNet(3), (1, 3, 16, 16))
    stem, block, head = 8 * 27 + 8, 8 * 72 + 8, 2 * 8 + 2
    assert [o.params for o in a.outputs] == [stem + block + head] * 3
    assert a.params == stem + block + 3 * head
