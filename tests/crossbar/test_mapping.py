"""Mapping: hand-computed tile counts, grouped-conv strategies, loops, and properties."""
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

from graphcost import UserError, trace
from graphcost.crossbar.mapping import map_model, map_trace, tile_grouped
from graphcost.crossbar.specs import ArraySpec

A256 = ArraySpec(256, 256)  # 8-bit weights, 2-bit cells, differential: 8 columns per output channel


def one_layer(module, shape, array=A256, depthwise="dense"):
    m = map_model(module, shape, array, depthwise)
    assert len(m.layers) == 1
    return m.layers[0]


def test_conv_3_to_16_k3_hand_count():
    layer = one_layer(nn.Conv2d(3, 16, 3, padding=1), (1, 3, 32, 32))
    assert (layer.rows, layer.cols) == (3 * 3 * 3, 16 * 4 * 2)
    assert layer.tiles == 1
    assert layer.utilization == pytest.approx(27 * 128 / 65536)
    assert layer.mvms == 32 * 32 and layer.calls == 1 and layer.extra_cycles == 0


def test_conv_64_to_128_k3_spans_row_and_column_tiles():
    layer = one_layer(nn.Conv2d(64, 128, 3, stride=2, padding=1), (2, 64, 16, 16))
    assert (layer.rows, layer.cols) == (576, 1024)
    assert layer.tiles == 3 * 4
    assert layer.utilization == pytest.approx(576 * 1024 / (12 * 65536))
    assert layer.mvms == 2 * 8 * 8  # batch x output pixels


def test_linear_rows_are_in_features_and_mvms_are_output_rows():
    array = ArraySpec(128, 128, weight_bits=4, cell_bits=4, differential=False)
    layer = one_layer(nn.Linear(300, 10), (2, 7, 300), array)
    assert (layer.rows, layer.cols, layer.tiles, layer.mvms) == (300, 10, 3, 14)


def test_analog_bias_adds_one_row():
    conv = nn.Conv2d(16, 8, 4)  # 16 * 4 * 4 = 256 rows: exactly one array tall
    assert one_layer(conv, (1, 16, 8, 8)).tiles == 1
    biased = one_layer(conv, (1, 16, 8, 8), ArraySpec(256, 256, analog_bias=True))
    assert (biased.rows, biased.tiles) == (257, 2)
    no_bias = one_layer(nn.Conv2d(16, 8, 4, bias=False), (1, 16, 8, 8), ArraySpec(256, 256, analog_bias=True))
    assert (no_bias.rows, no_bias.tiles) == (256, 1)


def test_depthwise_strategies_hand_counts():
    dw = nn.Conv2d(64, 64, 3, padding=1, groups=64)
    shape = (1, 64, 16, 16)
    dense = one_layer(dw, shape, depthwise="dense")
    packed = one_layer(dw, shape, depthwise="packed")
    tm = one_layer(dw, shape, depthwise="time-multiplexed")
    for layer in (dense, packed, tm):
        assert (layer.rows, layer.cols, layer.groups, layer.mvms) == (9, 512, 64, 256)
        assert layer.used_cells == 9 * 512
    # dense: block-diagonal 576 x 512 -> 3 x 2 tiles
    assert (dense.tiles, dense.extra_cycles) == (6, 0)
    # packed: min(256 // 9, 256 // 8) = 28 channels per array -> ceil(64 / 28) = 3
    assert (packed.tiles, packed.extra_cycles) == (3, 0)
    # time-multiplexed: 9 rows x 512 columns -> 2 arrays of 32 kernels, driven one after another
    assert (tm.tiles, tm.cycles_per_mvm, tm.extra_cycles) == (2, 32, 256 * 31)
    assert dense.utilization == pytest.approx(9 * 512 / (6 * 65536))
    assert packed.utilization == pytest.approx(9 * 512 / (3 * 65536))


def test_grouped_conv_strategies():
    # groups=4, 16 channels per group: rows_g = 144, cols_g = 16 * 8 = 128
    assert tile_grouped(144, 128, 4, A256, "dense").tiles == 3 * 2
    assert tile_grouped(144, 128, 4, A256, "packed").tiles == 4  # one block per array (2 * 144 > 256)
    tm = tile_grouped(144, 128, 4, A256, "time-multiplexed")
    assert (tm.tiles, tm.cycles_per_mvm) == (2, 2)
    # a block larger than the array is tiled on its own
    assert tile_grouped(300, 300, 2, A256, "packed").tiles == 2 * 2 * 2
    # analog bias: one shared bias row per matrix / array
    assert tile_grouped(9, 8, 64, ArraySpec(256, 256, analog_bias=True), "packed", bias_row=1).tiles == 3
    with pytest.raises(UserError, match="depthwise"):
        tile_grouped(9, 8, 64, A256, "zigzag")


def test_transposed_conv_is_the_equivalent_direct_conv():
    layer = one_layer(nn.ConvTranspose2d(8, 4, 2, stride=2), (1, 8, 8, 8))
    assert (layer.rows, layer.cols, layer.tiles, layer.mvms) == (8 * 2 * 2, 4 * 8, 1, 16 * 16)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(10, 20, num_layers=2, batch_first=True)
        self.fc = nn.Linear(20, 5)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y)


def test_lstm_maps_one_gate_matrix_per_layer():
    m = map_model(Recurrent(), (2, 7, 10), ArraySpec(64, 64))
    lstm = m.layer("lstm")
    assert lstm.matrices == 2 and (lstm.rows, lstm.cols) == (10 + 20, 4 * 20 * 8)
    assert lstm.tiles == 1 * 10 + 1 * 10  # (30 | 40 rows) x 640 columns on 64x64
    assert lstm.mvms == 2 * 7 * 2 and lstm.max_replicas == 2  # batch x steps x layers; batch is independent
    assert m.layer("fc").mvms == 14


class Looped(nn.Module):
    """Stem, a conv block called ``n`` times (shared or one per iteration), an output per iteration."""

    def __init__(self, n=4, shared=True, functional_head=False):
        super().__init__()
        self.n = n
        self.stem = nn.Conv2d(3, 32, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Conv2d(32, 32, 3, padding=1) for _ in range(1 if shared else n)])
        self.head = nn.Conv2d(32, 5, 1)
        self.w = nn.Parameter(torch.randn(5, 5, 1, 1)) if functional_head else None

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i in range(self.n):
            x = torch.relu(self.blocks[0 if len(self.blocks) == 1 else i](x))
            y = self.head(x)
            outs.append(F.conv2d(y, self.w) if self.w is not None else y)
        return outs


def test_a_looped_layer_is_mapped_once_and_counts_every_call():
    m = map_model(Looped(4), (1, 3, 16, 16), A256)
    block = m.layer("blocks.0")
    assert block.calls == 4 and block.mvms == 4 * 256 and block.tiles == 2 * 1  # 288 rows, 256 cols
    unrolled = map_model(Looped(4, shared=False), (1, 3, 16, 16), A256)
    assert unrolled.arrays_used - m.arrays_used == 3 * block.tiles
    assert [o.index for o in m.outputs] == [1, 2, 3, 4]
    assert len(m.calls) == 1 + 4 + 4


def test_functional_conv_with_a_parameter_is_mapped_for_every_call():
    m = map_model(Looped(3, functional_head=True), (1, 3, 8, 8), A256)
    conv = next(layer for layer in m.layers if layer.op == "conv2d" and layer.name not in ("stem", "head")
                and not layer.name.startswith("blocks"))
    assert conv.calls == 3 and conv.rows == 5 and conv.mvms == 3 * 64
    assert sum(1 for c in m.calls if m.layers[c.layer] is conv) == 3


class FunctionalTransposed(nn.Module):
    """``F.conv_transpose2d`` with every argument positional: ``groups`` is the 7th, ``dilation`` the 8th."""

    def __init__(self, groups=2):
        super().__init__()
        self.groups = groups
        self.w = nn.Parameter(torch.randn(8, 4 // groups, 3, 3))

    def forward(self, x):
        return F.conv_transpose2d(x, self.w, None, 2, 1, 1, self.groups, 1)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_functional_transposed_conv_reads_groups_at_its_torch_position(groups):
    functional = one_layer(FunctionalTransposed(groups), (1, 8, 8, 8), ArraySpec(16, 16), "dense")
    module = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1, groups=groups)
    reference = one_layer(module, (1, 8, 8, 8), ArraySpec(16, 16), "dense")
    # Cin/groups * 9 rows per group, 4 output channels x 8 columns; 16 x 16 output pixels
    assert (functional.rows, functional.cols, functional.groups) == (8 // groups * 9, 4 * 8, groups)
    assert (functional.tiles, functional.mvms, functional.weights) == (reference.tiles, 16 * 16, reference.weights)
    assert functional.weights == 8 * 4 // groups * 9


def test_resnet18_on_256x256_is_201_tiles():
    """aihwkit's analog_summary case: one cell per weight, digital bias."""
    import torchvision

    array = ArraySpec(256, 256, weight_bits=8, cell_bits=8, differential=False)
    m = map_model(torchvision.models.resnet18(weights=None), (1, 3, 224, 224), array)
    assert m.arrays_used == 201
    assert len(m.layers) == 21 and m.layer("fc").tiles == 2 * 4
    assert 0 < m.utilization <= 1


def test_mapping_is_plain_data():
    m = map_model(Looped(2), (1, 3, 8, 8), A256, "packed")
    again = pickle.loads(pickle.dumps(m))
    assert again == m and again.arrays_used == m.arrays_used
    d = m.to_dict()
    assert d["arrays_used"] == m.arrays_used and {"name", "rows", "cols", "tiles", "utilization", "mvms"} <= set(
        d["layers"][0])


def test_no_weight_layer_is_a_user_error():
    with pytest.raises(UserError, match="no weight layer"):
        map_model(nn.ReLU(), (1, 3, 8, 8), A256)


def test_unknown_strategy_is_a_user_error():
    t = trace(nn.Conv2d(3, 3, 1), (1, 3, 4, 4))
    with pytest.raises(UserError, match="--depthwise"):
        map_trace(t, A256, "zigzag")


def test_itnet_shared_uses_far_fewer_arrays_than_independent():
    from graphcost.models import get_model

    shape = (1, 3, 64, 96)
    shared = map_model(get_model("itnet", shared=True, N=4, f=16), shape, A256)
    independent = map_model(get_model("itnet", shared=False, N=4, f=16), shape, A256)
    assert len(shared.outputs) == len(independent.outputs) == 4
    assert sum(layer.mvms for layer in shared.layers) == sum(layer.mvms for layer in independent.layers)
    assert independent.arrays_used > 2 * shared.arrays_used
    assert max(layer.calls for layer in shared.layers) == 4


# --------------------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(
    cin_g=st.integers(1, 40), cout_g=st.integers(1, 40), groups=st.integers(1, 6), k=st.integers(1, 5),
    stride=st.integers(1, 2), rows=st.integers(8, 300), cols=st.integers(8, 300),
    weight_bits=st.integers(1, 8), cell_bits=st.integers(1, 8), differential=st.booleans(),
    analog_bias=st.booleans(), strategy=st.sampled_from(["dense", "packed", "time-multiplexed"]),
)
def test_tiling_properties(cin_g, cout_g, groups, k, stride, rows, cols, weight_bits, cell_bits, differential,
                           analog_bias, strategy):
    cell_bits = min(cell_bits, weight_bits)
    array = ArraySpec(rows, cols, weight_bits=weight_bits, cell_bits=cell_bits, differential=differential,
                      analog_bias=analog_bias)
    conv = nn.Conv2d(cin_g * groups, cout_g * groups, k, stride=stride, padding=k // 2, groups=groups)
    layer = one_layer(conv, (1, cin_g * groups, 12, 12), array, strategy)
    assert layer.rows == cin_g * k * k + int(analog_bias)
    assert layer.cols == cout_g * groups * math.ceil(weight_bits / cell_bits) * (2 if differential else 1)
    assert layer.tiles >= math.ceil(layer.rows / rows) * math.ceil(layer.cols / cols)
    assert 0 < layer.utilization <= 1
    assert layer.used_cells == layer.rows * layer.cols
    out = (12 + 2 * (k // 2) - k) // stride + 1
    assert layer.mvms == out * out
    assert 1 <= layer.cycles_per_mvm <= groups
    assert layer.extra_cycles == layer.mvms * (layer.cycles_per_mvm - 1)
    if groups == 1:
        assert layer.tiles == math.ceil(layer.rows / rows) * math.ceil(layer.cols / cols)
    if strategy != "time-multiplexed":
        assert layer.extra_cycles == 0


@settings(max_examples=15, deadline=None)
@given(rows=st.integers(8, 512), cols=st.integers(8, 512))
def test_bigger_arrays_never_need_more_tiles_for_a_dense_layer(rows, cols):
    conv = nn.Conv2d(24, 40, 3, padding=1)
    small = one_layer(conv, (1, 24, 8, 8), ArraySpec(rows, cols))
    big = one_layer(conv, (1, 24, 8, 8), ArraySpec(rows * 2, cols))
    assert big.tiles <= small.tiles
