"""Energy and area passes: hand-computed physics cases and NeuroSim V1.3's VGG-8 reference."""
import dataclasses

import pytest
import torch
from torch import nn

from graphcost.crossbar.energy import ENERGY_COMPONENTS, OPS_PER_MAC, area, energy
from graphcost.crossbar.mapping import map_model
from graphcost.crossbar.perf import performance
from graphcost.crossbar.specs import ArraySpec, ChipSpec
from graphcost.crossbar.tech import HARDWARE_PRESETS, TECH_PRESETS

RRAM = TECH_PRESETS["rram-22nm"]
A128 = ArraySpec(128, 128, differential=False, adc_bits=5)
DYNAMIC = ("adc", "dac", "array", "shift_add", "buffer", "interconnect")


def run(model, shape, array=A128, tech=RRAM, **chip):
    perf = performance(map_model(model, shape, array), ChipSpec(**chip))
    return perf, energy(perf, tech), area(perf, tech)


def test_one_linear_layer_by_hand():
    # 256 inputs x 64 outputs, 4 slices per weight: 2 row tiles x 256 columns (2 column blocks)
    perf, e, a = run(nn.Linear(256, 64, bias=False), (3, 256))
    layer = perf.mapping.layers[0]
    assert (layer.tiles, layer.mvms, layer.read_columns, layer.row_drives) == (4, 3, 2 * 256, 256 * 2)
    cycles = 8  # bit-serial 8-bit inputs
    conversions = 3 * 512 * cycles
    assert e.layers[0].conversions == conversions
    # 31 sense-amp levels at 1.7 uW, plus the column current: 128 rows, 1/8 of the input bits
    # set, cells between 1 / 7.5 kOhm and 1/150 of it, 0.0631 W per siemens; 1 ns per conversion
    column_s = 128 * 0.125 * (1 / 7500) * (1 + 1 / 150) / 2
    assert e.breakdown_j["adc"] == pytest.approx(conversions * (31 * 1.7e-6 + 0.0631 * column_s) * 1e-9)
    assert e.breakdown_j["dac"] == pytest.approx(3 * 512 * cycles * RRAM.row_drive_energy_j)
    assert e.breakdown_j["array"] == pytest.approx(3 * 256 * 256 * cycles * RRAM.cell_read_energy_j)
    assert e.breakdown_j["buffer"] == pytest.approx(3 * (256 * RRAM.buffer_read_energy_j_per_byte
                                                         + 64 * RRAM.buffer_write_energy_j_per_byte))
    assert e.macs == 3 * 256 * 64
    assert e.tops_per_w == pytest.approx(OPS_PER_MAC * e.macs / (e.per_frame_j * 1.22) / 1e12)
    assert e.power_w == pytest.approx(e.per_frame_j * perf.throughput_fps)
    # area: 4 arrays, 16 ADCs each
    assert a.arrays == 4 and a.adcs == 64
    assert a.breakdown_mm2["arrays"] == pytest.approx(4 * 128 * 128 * 48 * 22e-3 ** 2 * 1e-6)
    assert a.breakdown_mm2["adc"] == pytest.approx(64 * RRAM.adc_area_um2(5) * 1e-6)


def test_energy_is_linear_in_mvms():
    conv = nn.Conv2d(16, 32, 3, padding=1)
    _, small, _ = run(conv, (1, 16, 8, 8))
    _, large, _ = run(conv, (1, 16, 16, 16))  # 4x the output pixels
    for key in DYNAMIC:
        assert large.breakdown_j[key] == pytest.approx(4 * small.breakdown_j[key])


def test_adc_energy_grows_with_bits_conversions_do_not():
    conv = nn.Conv2d(16, 32, 3, padding=1)
    results = [run(conv, (1, 16, 8, 8), dataclasses.replace(A128, adc_bits=b))[1] for b in (3, 5, 8)]
    assert results[0].layers[0].conversions == results[2].layers[0].conversions
    assert results[0].breakdown_j["adc"] < results[1].breakdown_j["adc"] < results[2].breakdown_j["adc"]


def test_bit_serial_inputs_scale_row_and_adc_energy_with_input_bits():
    conv = nn.Conv2d(16, 32, 3, padding=1)
    e4 = run(conv, (1, 16, 8, 8), dataclasses.replace(A128, dac_bits=4))[1]
    e8 = run(conv, (1, 16, 8, 8), dataclasses.replace(A128, dac_bits=8))[1]
    for key in ("adc", "dac", "array", "shift_add"):
        assert e8.breakdown_j[key] == pytest.approx(2 * e4.breakdown_j[key])
    assert e8.breakdown_j["buffer"] == pytest.approx(e4.breakdown_j["buffer"])
    multibit = dataclasses.replace(RRAM, input_bits_per_cycle=8)  # one multi-bit DAC cycle
    m4 = run(conv, (1, 16, 8, 8), dataclasses.replace(A128, dac_bits=4), multibit)[1]
    m8 = run(conv, (1, 16, 8, 8), dataclasses.replace(A128, dac_bits=8), multibit)[1]
    assert m8.breakdown_j["adc"] == pytest.approx(m4.breakdown_j["adc"])
    assert m8.breakdown_j["adc"] == pytest.approx(e8.breakdown_j["adc"] / 8)


class Chain(nn.Module):
    """A stem, a block called ``n`` times, an output after each call (anytime outputs)."""

    def __init__(self, n=3):
        super().__init__()
        self.n = n
        self.stem = nn.Conv2d(3, 64, 3, padding=1)
        self.block = nn.Conv2d(64, 64, 3, padding=1)
        self.head = nn.Conv2d(64, 4, 1)

    def forward(self, x):
        x, outs = self.stem(x), []
        for _ in range(self.n):
            x = torch.relu(self.block(x))
            outs.append(self.head(x))
        return outs


def test_write_energy_is_zero_iff_the_graph_fits():
    fits, e_fit, _ = run(Chain(), (1, 3, 8, 8))
    assert fits.fits and e_fit.breakdown_j["write"] == 0
    needed = fits.arrays_needed
    tight, e_tight, _ = run(Chain(), (1, 3, 8, 8), arrays=needed - 1)
    assert not tight.fits and e_tight.breakdown_j["write"] > 0
    rewritten = sum(layer.calls * layer.used_cells for layer, lp in zip(tight.mapping.layers, tight.layers)
                    if not lp.resident)
    assert e_tight.breakdown_j["write"] == pytest.approx(rewritten * RRAM.write_energy_j_per_cell)
    for key in DYNAMIC:  # rewrites add energy, they never change the MVMs'
        if key != "interconnect":
            assert e_tight.breakdown_j[key] == pytest.approx(e_fit.breakdown_j[key])
    # the smaller chip's H-tree is shorter: interconnect energy scales with its side
    side = (area(tight, RRAM).tiles_mm2 / area(fits, RRAM).tiles_mm2) ** 0.5
    assert e_tight.breakdown_j["interconnect"] == pytest.approx(side * e_fit.breakdown_j["interconnect"])


def test_leakage_scales_with_frame_time():
    _, fast, _ = run(Chain(), (1, 3, 8, 8), mvm_latency_ns=100)
    _, slow, _ = run(Chain(), (1, 3, 8, 8), mvm_latency_ns=300)
    assert slow.breakdown_j["leakage"] == pytest.approx(3 * fast.breakdown_j["leakage"])
    assert slow.breakdown_j["adc"] == pytest.approx(fast.breakdown_j["adc"])


def test_area_counts_only_the_arrays_in_use():
    perf, _, exact = run(Chain(), (1, 3, 8, 8))
    _, _, big_chip = run(Chain(), (1, 3, 8, 8), arrays=10 * perf.arrays_needed)
    assert big_chip.total_mm2 == pytest.approx(exact.total_mm2) and exact.arrays == perf.arrays_needed
    _, _, small_chip = run(Chain(), (1, 3, 8, 8), arrays=2)
    assert small_chip.arrays == 2 and small_chip.breakdown_mm2["arrays"] < exact.breakdown_mm2["arrays"]


def test_energy_per_anytime_output_grows_to_the_frame():
    perf, e, _ = run(Chain(4), (1, 3, 8, 8))
    assert len(e.per_output_j) == 4
    assert all(a < b for a, b in zip(e.per_output_j, e.per_output_j[1:]))
    stem, block, head, relus = e.layers
    assert relus.name == "(model)" and relus.breakdown_j["digital"] == pytest.approx(
        4 * 64 * 8 * 8 * RRAM.digital_op_energy_j)  # four ReLUs on the digital unit
    dyn = lambda le: sum(le.breakdown_j[k] for k in DYNAMIC)
    # the last output waits for everything but the three earlier heads (side branches)
    assert e.per_output_j[-1] == pytest.approx(e.per_frame_j - 3 * dyn(head) / 4)
    # output 1 needs the stem, one block call, one ReLU and one head call
    leak = e.breakdown_j["leakage"] * perf.outputs[0].latency_s / perf.outputs[-1].latency_s
    relu = relus.breakdown_j["digital"] / 4
    assert e.per_output_j[0] == pytest.approx(dyn(stem) + dyn(block) / 4 + relu + dyn(head) / 4 + leak)
    assert sum(sum(le.breakdown_j[k] for k in ENERGY_COMPONENTS) for le in e.layers) == pytest.approx(e.per_frame_j)


# --------------------------------------------------------------------------- NeuroSim V1.3, VGG-8 on CIFAR-10
NEUROSIM = {  # the manual's Fig. 24 (DNN_NeuroSim_V1.3)
    "tops_per_w": 25.72, "energy_j": 37.75e-6 + 1.19e-6, "latency_s": 1.456e-3, "area_mm2": 45.55,
    "adc_share": 18.27 / (37.75 + 1.19), "array_area_mm2": 1.54, "adc_area_mm2": 14.6,
}


def neurosim_vgg8():
    from graphcost.models import get_model
    from graphcost.crossbar.tech import apply_preset

    array, chip, tech = apply_preset(HARDWARE_PRESETS["neurosim-v1.3"], ChipSpec())
    perf = performance(map_model(get_model("vgg8", dataset="cifar10"), (1, 3, 32, 32), array), chip)
    e, a = energy(perf, tech), area(perf, tech)
    return {"tops_per_w": e.tops_per_w, "energy_j": e.per_frame_j, "latency_s": perf.latency_s,
            "area_mm2": a.total_mm2, "adc_share": e.breakdown_j["adc"] / e.per_frame_j,
            "array_area_mm2": a.breakdown_mm2["arrays"], "adc_area_mm2": a.breakdown_mm2["adc"], "macs": e.macs}


#: The issue's tolerances: relative for TOPS/W and energy (25 %), area and latency (30 %); ADC
#: share in absolute points (10); the array and ADC areas, not in the issue, at 30 %.
TOLERANCE = {"tops_per_w": 0.25, "energy_j": 0.25, "latency_s": 0.30, "area_mm2": 0.30, "array_area_mm2": 0.30,
             "adc_area_mm2": 0.30}


@pytest.fixture(scope="module")
def vgg8_on_neurosim():
    return neurosim_vgg8()


@pytest.mark.parametrize("figure", sorted(TOLERANCE))
def test_vgg8_against_neurosim_v13(vgg8_on_neurosim, figure):
    """``graphcost map vgg8 --dataset cifar10 --preset neurosim-v1.3`` against the manual's Fig. 24."""
    assert vgg8_on_neurosim["macs"] == 615_917_568  # NeuroSim's 616 M MACs (same network, same count)
    assert vgg8_on_neurosim[figure] == pytest.approx(NEUROSIM[figure], rel=TOLERANCE[figure])


def test_vgg8_adc_share_against_neurosim_v13(vgg8_on_neurosim):
    assert abs(vgg8_on_neurosim["adc_share"] - NEUROSIM["adc_share"]) <= 0.10  # within 10 points


# --------------------------------------------------------------------------- NeuroSim's components, by hand
def test_adc_column_current_is_linear_in_rows_and_activity():
    base = RRAM.adc_energy_j(5)  # the levels alone: 31 x 1.7 uW x 1 ns
    assert base == pytest.approx(31 * 1.7e-6 * 1e-9)
    one = RRAM.adc_energy_j(5, RRAM.column_siemens(64)) - base
    assert RRAM.adc_energy_j(5, RRAM.column_siemens(128)) - base == pytest.approx(2 * one)
    busier = dataclasses.replace(RRAM, input_bit_activity=2 * RRAM.input_bit_activity)
    assert busier.adc_energy_j(5, busier.column_siemens(64)) - base == pytest.approx(2 * one)
    # a layer whose columns sum fewer rows draws less column current per conversion
    _, short, _ = run(nn.Linear(32, 64, bias=False), (1, 32))
    _, tall, _ = run(nn.Linear(128, 64, bias=False), (1, 128))
    per_conv = [x.breakdown_j["adc"] / x.layers[0].conversions for x in (short, tall)]
    assert per_conv[1] - base == pytest.approx(4 * (per_conv[0] - base))


def test_interconnect_energy_grows_with_the_distance_to_the_tiles():
    conv = nn.Conv2d(64, 64, 3, padding=1)
    perf, e, a = run(conv, (1, 64, 8, 8))
    far = dataclasses.replace(RRAM, wire_energy_j_per_bit_mm=2 * RRAM.wire_energy_j_per_bit_mm)
    assert energy(perf, far).breakdown_j["interconnect"] == pytest.approx(2 * e.breakdown_j["interconnect"])
    bits = perf.mapping.layers[0].mvms * (576 + 64) * 8  # every MVM moves its inputs and outputs
    assert e.breakdown_j["interconnect"] == pytest.approx(bits * RRAM.wire_energy_j_per_bit_mm * a.tiles_mm2 ** 0.5)
    flat = dataclasses.replace(RRAM, wire_energy_j_per_bit_mm=0.0)
    assert energy(perf, flat).breakdown_j["interconnect"] == pytest.approx(bits * RRAM.interconnect_energy_j_per_bit)


def test_buffer_energy_is_linear_in_bytes():
    conv = nn.Conv2d(16, 32, 3, padding=1)
    wide = dataclasses.replace(RRAM, activation_bits=16)
    perf, e8, _ = run(conv, (1, 16, 8, 8))
    assert energy(perf, wide).breakdown_j["buffer"] == pytest.approx(2 * e8.breakdown_j["buffer"])


def test_tiles_allocate_whole_tiles_and_their_periphery():
    # 27 rows x 64 columns: one array, but a 4x4-array tile is allocated whole
    _, e_flat, flat = run(nn.Conv2d(3, 16, 3, padding=1), (1, 3, 8, 8))
    _, e_tiled, a_tiled = run(nn.Conv2d(3, 16, 3, padding=1), (1, 3, 8, 8), pe_side_arrays=2, tile_side_arrays=4)
    assert flat.arrays == 1 and a_tiled.arrays == 16 and a_tiled.adcs == 16 * 16
    assert a_tiled.breakdown_mm2["arrays"] == pytest.approx(16 * flat.breakdown_mm2["arrays"])
    # 4 PEs: 8 x 128 input + 16 x 14 output bits each; 1 tile: 2 x 8 x (128 + 16) bits
    bits = 4 * (8 * 128 + 16 * 14) + 2 * 8 * (128 + 16)
    extra = a_tiled.breakdown_mm2["buffers"] - flat.breakdown_mm2["buffers"]
    assert extra == pytest.approx(bits / 8 / 1024 * RRAM.buffer_area_um2_per_kib * 1e-6)
    assert e_tiled.breakdown_j["leakage"] == pytest.approx(16 * e_flat.breakdown_j["leakage"])  # unused arrays leak


def test_level_shifters_sit_on_rows_and_columns():
    _, _, a = run(nn.Linear(128, 32, bias=False), (1, 128))
    per_array = 128 * RRAM.driver_area_um2_per_row + 128 * RRAM.driver_area_um2_per_column
    assert a.breakdown_mm2["drivers"] == pytest.approx(a.arrays * per_array * 1e-6)
    # a 2 V write needs three level shifters of ~10 um² per row / column pair at 22 nm (LevelShifter.cpp)
    assert 9 < RRAM.driver_area_um2_per_column < 11
