"""Performance model: pipeline throughput, latency along longest paths, fit, rewrites, replication."""
import dataclasses

import pytest
from hypothesis import given, settings, strategies as st
from torch import nn

from graphcost import UserError
from graphcost.crossbar.mapping import map_model
from graphcost.crossbar.perf import performance
from graphcost.crossbar.specs import ArraySpec, ChipSpec

A256 = ArraySpec(256, 256)
T = 100e-9  # default MVM latency
W = 256 * 3000e-9  # default time to rewrite one 256-row array


class Looped(nn.Module):
    def __init__(self, n=4, shared=True):
        super().__init__()
        self.n = n
        self.stem = nn.Conv2d(3, 32, 3, padding=1)  # 27 x 256 -> 1 tile
        self.blocks = nn.ModuleList([nn.Conv2d(32, 32, 3, padding=1) for _ in range(1 if shared else n)])  # 2 tiles
        self.head = nn.Conv2d(32, 5, 1)  # 32 x 40 -> 1 tile

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i in range(self.n):
            x = self.blocks[0 if len(self.blocks) == 1 else i](x).relu()
            outs.append(self.head(x))
        return outs


def chain():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2, padding=1))


@pytest.fixture(scope="module")
def chain_mapping():
    return map_model(chain(), (1, 3, 16, 16), A256)  # 256 MVMs then 64 MVMs, one tile each


@pytest.fixture(scope="module")
def looped_mapping():
    return map_model(Looped(4), (1, 3, 16, 16), A256)


def test_pipeline_throughput_and_latency_by_hand(chain_mapping):
    p = performance(chain_mapping, ChipSpec())
    assert p.fits and p.arrays_used == p.arrays_needed == 2 and p.arrays_available is None
    assert [layer.stage_time_s for layer in p.layers] == pytest.approx([256 * T, 64 * T])
    assert p.throughput_fps == pytest.approx(1 / (256 * T))
    assert p.latency_s == pytest.approx((256 + 64) * T)
    assert p.bottleneck == "0"
    slow = performance(chain_mapping, ChipSpec(mvm_latency_ns=1000))
    assert slow.throughput_fps == pytest.approx(p.throughput_fps / 10)


def test_loops_count_every_iteration_and_anytime_outputs_have_their_latency(looped_mapping):
    p = performance(looped_mapping, ChipSpec())
    assert p.arrays_needed == 4
    # the looped block and the shared head each run 4 x 256 MVMs per frame
    assert p.throughput_fps == pytest.approx(1 / (4 * 256 * T))
    assert [o.latency_s for o in p.outputs] == pytest.approx([(256 + 256 * i + 256) * T for i in (1, 2, 3, 4)])
    assert p.latency_s == p.outputs[-1].latency_s
    assert all(o.arrays_used == 4 for o in p.outputs)


def test_unrolled_outputs_need_only_their_layers():
    p = performance(map_model(Looped(3, shared=False), (1, 3, 16, 16), A256), ChipSpec())
    assert [o.arrays_used for o in p.outputs] == [1 + 2 + 1, 1 + 4 + 1, 1 + 6 + 1]


def test_too_few_arrays_rewrite_every_frame(looped_mapping):
    p = performance(looped_mapping, ChipSpec(arrays=3))
    assert not p.fits and p.arrays_needed == 4 and p.arrays_available == 3
    by_name = {layer.name: layer for layer in p.layers}
    # the looped block (4 calls, 2 tiles) stays; the pool of 1 array takes head (4 calls) and stem (1 call)
    assert by_name["blocks.0"].resident and not by_name["head"].resident and not by_name["stem"].resident
    assert p.rewritten_arrays == 4 * 1 + 1 * 1
    assert p.rewrite_s == pytest.approx(5 * W)
    pool = (4 * 256 + 256) * T + 5 * W
    assert p.throughput_fps == pytest.approx(1 / pool)
    assert p.bottleneck.startswith("swap pool")
    assert p.resident_fps == pytest.approx(1 / (4 * 256 * T))
    assert p.collapse > 30
    # last output: stem (compute + write), 4 block calls, head (compute + write)
    assert p.latency_s == pytest.approx(256 * T + W + 4 * 256 * T + 256 * T + W)


def test_a_layer_larger_than_the_pool_runs_in_passes(looped_mapping):
    p = performance(looped_mapping, ChipSpec(arrays=1))
    block = next(layer for layer in p.layers if layer.name == "blocks.0")
    assert not block.resident and block.passes == 2
    assert p.rewritten_arrays == 4 * 2 + 4 + 1


def test_shared_fits_where_unrolled_collapses():
    shared = map_model(Looped(4), (1, 3, 16, 16), A256)
    unrolled = map_model(Looped(4, shared=False), (1, 3, 16, 16), A256)
    chip = ChipSpec(arrays=shared.arrays_used)
    a, b = performance(shared, chip), performance(unrolled, chip)
    assert a.fits and not b.fits
    assert b.throughput_fps < a.throughput_fps / 10


def test_replicate_for_a_target_frame_rate(chain_mapping):
    p = performance(chain_mapping, ChipSpec(replicate=True), target_fps=100_000)  # 10 us per frame
    assert [layer.replicas for layer in p.layers] == [3, 1]  # 25.6 us / 3 <= 10 us
    assert p.arrays_for_target == 3 + 1 and p.arrays_used == 4 and p.target_reachable
    assert p.throughput_fps >= 100_000
    assert p.latency_s == pytest.approx((256 / 3 + 64) * T)


def test_replicate_balances_the_pipeline_within_the_chip(chain_mapping):
    p = performance(chain_mapping, ChipSpec(arrays=4, replicate=True))
    assert [layer.replicas for layer in p.layers] == [3, 1]
    assert p.arrays_used == 4
    assert p.throughput_fps == pytest.approx(1 / (256 * T / 3))
    # a target beyond the chip still reports the arrays it needs, and balances within the chip
    q = performance(chain_mapping, ChipSpec(arrays=4, replicate=True), target_fps=1e6)
    assert q.arrays_for_target == 26 + 7 and q.arrays_used <= 4


def test_unreachable_target_is_reported():
    m = map_model(nn.Linear(16, 16), (1, 16), A256)  # one MVM per frame cannot be split
    p = performance(m, ChipSpec(replicate=True), target_fps=1e8)
    assert p.target_reachable is False and p.layers[0].replicas == 1


def test_option_errors(chain_mapping):
    with pytest.raises(UserError, match="needs replication") as a:
        performance(chain_mapping, ChipSpec(), target_fps=10)
    with pytest.raises(UserError, match="replication .replicate. needs a chip size") as b:
        performance(chain_mapping, ChipSpec(replicate=True))
    with pytest.raises(UserError, match="must be a positive number") as c:
        performance(chain_mapping, ChipSpec(replicate=True), target_fps=-5)
    assert not any("--" in str(e.value) for e in (a, b, c))  # the library never names a command-line flag


def test_to_dict_has_the_contract_keys(looped_mapping):
    d = performance(looped_mapping, ChipSpec(arrays=10)).to_dict()
    assert {"arrays_used", "utilization", "fits", "throughput_fps", "latency_s", "layers", "outputs"} <= set(d)
    assert {"name", "rows", "cols", "tiles", "utilization", "mvms"} <= set(d["layers"][0])
    assert len(d["outputs"]) == 4 and {"index", "latency_s", "arrays_used"} <= set(d["outputs"][0])


@settings(max_examples=20, deadline=None)
@given(arrays=st.integers(1, 20))
def test_fit_and_collapse_properties(arrays):
    m = map_model(Looped(3, shared=False), (1, 3, 8, 8), A256)
    p = performance(m, ChipSpec(arrays=arrays))
    assert p.fits == (arrays >= m.arrays_used)
    assert p.throughput_fps <= p.resident_fps * (1 + 1e-9)
    if p.fits:
        assert p.throughput_fps == pytest.approx(p.resident_fps) and p.rewrite_s == 0
    else:
        assert p.rewrite_s > 0 and p.rewritten_arrays >= m.arrays_used - arrays
    assert all(0 < o.latency_s <= p.outputs[-1].latency_s for o in p.outputs)


# --------------------------------------------------------------------------- NeuroSim's organisation
def test_tile_buffers_add_their_transfer_time_to_every_mvm():
    from graphcost.crossbar.perf import buffer_s_per_mvm

    m = map_model(nn.Linear(128, 32, bias=False), (3, 128), ArraySpec(128, 128, differential=False))
    chip = ChipSpec(mvm_latency_ns=100, tile_side_arrays=4, tile_input_bits_per_cycle=64,
                    tile_output_bits_per_cycle=16, partial_sum_bits=16, cycle_ns=1.0)
    # written and read: 128 inputs x 8 bits over 64 bits per cycle, 32 partial sums x 16 bits over 16
    per_mvm = (2 * 128 * 8 / 64 + 2 * 32 * 16 / 16) * 1e-9
    assert buffer_s_per_mvm(m.layers[0], m.array, chip) == pytest.approx(per_mvm)
    p = performance(m, chip)
    assert p.latency_s == pytest.approx(3 * (100e-9 + per_mvm))
    wider = performance(m, dataclasses.replace(chip, tile_input_bits_per_cycle=128, tile_output_bits_per_cycle=32))
    assert wider.latency_s == pytest.approx(3 * (100e-9 + per_mvm / 2))
    assert performance(m, ChipSpec(mvm_latency_ns=100)).latency_s == pytest.approx(3 * 100e-9)


def test_layer_by_layer_runs_one_image_at_a_time():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    m = map_model(model, (1, 3, 8, 8), ArraySpec(128, 128))
    piped = performance(m, ChipSpec(mvm_latency_ns=100))
    serial = performance(m, ChipSpec(mvm_latency_ns=100, layer_by_layer=True))
    assert piped.frame_time_s == pytest.approx(max(layer.stage_time_s for layer in piped.layers))
    assert serial.frame_time_s == pytest.approx(sum(layer.stage_time_s for layer in serial.layers))
    assert serial.throughput_fps == pytest.approx(1 / serial.latency_s) and serial.bottleneck == "layer by layer"
    assert serial.latency_s == pytest.approx(piped.latency_s)
