"""Energy, power and area of a mapped model on a chip of one :class:`~graphcost.crossbar.tech.TechSpec`.

Two passes over a :class:`~graphcost.crossbar.perf.Performance` (the mapping on a chip); they
never re-count MVMs: the mapping's per-layer MVMs, and the tiling's word lines driven and
columns digitised per MVM, are all they multiply. Per layer and frame, with
``c = ceil(dac_bits / input_bits_per_cycle)`` input cycles per MVM (bit-serial: ``c = dac_bits``):

* ``dac``   = MVMs x word lines driven x c x ``row_drive_energy_j``;
* ``array`` = MVMs x weight cells x c x ``cell_read_energy_j``;
* ``adc``   = MVMs x columns digitised x c x ``adc_energy_j(adc_bits, G)`` (conversions); a
  current-mode sense amp also draws its column's read current, ``G`` = rows a column sums x
  ``input_bit_activity`` x mean cell conductance (NeuroSim ``MultilevelSenseAmp.cpp``);
* ``shift_add`` = conversions x ``shift_add_energy_j_per_op`` (slices, input bits, row tiles);
* ``buffer`` = MVMs x (inputs read x ``buffer_read`` + outputs written x ``buffer_write``) x
  activation bytes (every MVM reads its input vector: no line-buffer reuse is assumed);
* ``interconnect`` = MVMs x (inputs + outputs) x activation bits x energy per bit: over the
  H-tree, ``wire_energy_j_per_bit_mm x sqrt(tiled area)`` (NeuroSim ``HTree.cpp``), or the flat
  ``interconnect_energy_j_per_bit``;
* ``leakage`` = (arrays x ``leakage_w_per_array`` + ADCs x ``leakage_w_per_adc``) x frame time
  (``1 / throughput``), shared over layers by their arrays;
* ``write`` = for every layer not resident (the graph does not fit ``--arrays``): its calls x
  weight cells x ``write_energy_j_per_cell`` (rewritten each time it is called).
* ``digital`` = the work off the arrays on the digital unit (one entry per module in ``layers``):
  MACs x ``digital_mac_energy_j`` + element ops x ``digital_op_energy_j`` + embedding elements
  read x activation bytes x ``sram_read_energy_j_per_byte``;
* ``gain_cell`` = gain-cell attention: MACs x ``gain_cell_energy_j_per_mac`` + inputs driven x
  ``gain_cell_dac_energy_j_per_input`` + outputs read out x ``gain_cell_readout_energy_j_per_output``;
* ``link`` = activation bytes crossing chips x 8 x ``chip.link_energy_j_per_bit``.

Energy to reach anytime output ``n`` counts the calls it waits for (and their rewrites) plus
leakage over its share of the frame time (``latency_n / latency_last``), and the work off the
arrays above it. ``tops_per_w`` counts every MAC of the model (``coverage.total_macs``), 2 operations per MAC: ``2 * MACs / (E_frame * post_layout_energy_factor) / 1e12``;
``power_w = E_frame * throughput`` (dynamic power at the streaming frame rate plus leakage).

Area (as used by the mapping): arrays (``cells x cell_area``; with tiles, whole tiles per
layer), ADCs (``ceil(cols / columns_per_adc)`` per array), drivers (per row and per column: switches
and level shifters), shift-add (one per ADC, plus the PE and tile adder trees), and buffers: the
activation buffer (the largest output feature map of one call, double-buffered) plus, with PEs
and tiles, their input and output registers (:func:`_hierarchy_bits`).

>>> import torch
>>> from graphcost.crossbar.mapping import map_model
>>> from graphcost.crossbar.perf import performance
>>> from graphcost.crossbar.specs import ArraySpec, ChipSpec
>>> from graphcost.crossbar.tech import TECH_PRESETS
>>> perf = performance(map_model(torch.nn.Linear(128, 64), (1, 128), ArraySpec(128, 128, adc_bits=5)), ChipSpec())
>>> e = energy(perf, TECH_PRESETS["rram-22nm"])
>>> conversions = 1 * 512 * 8                  # one MVM, 64 outputs x 8 columns, 8 bit-serial cycles
>>> e.layers[0].conversions == conversions     # 52.7 fJ of sense-amp levels + 67.8 fJ of column current
True
>>> round(e.breakdown_j["adc"] / conversions * 1e15, 1)
120.5
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from .mapping import LayerMapping, Work
from .perf import Performance
from .specs import ArraySpec
from .tech import TechSpec

#: Keys of ``energy.breakdown_j`` (JSON contract).
ENERGY_COMPONENTS = ("adc", "dac", "array", "shift_add", "buffer", "interconnect", "leakage", "write", "digital",
                     "gain_cell", "link")
#: Keys of ``area.breakdown_mm2``.
AREA_COMPONENTS = ("arrays", "adc", "drivers", "shift_add", "buffers")

#: Operations per MAC in TOPS and TOPS/W (a multiply and an add).
OPS_PER_MAC = 2


@dataclass(frozen=True)
class LayerEnergy:
    """One layer's energy per frame, by component, and its ADC conversions and MACs."""

    name: str
    breakdown_j: Dict[str, float]
    conversions: int
    macs: int

    @property
    def energy_j(self) -> float:
        return sum(self.breakdown_j.values())


@dataclass(frozen=True)
class EnergyReport:
    """Energy per frame (total, per component, per layer, per anytime output), TOPS/W, power."""

    tech: str
    per_frame_j: float
    per_output_j: Tuple[float, ...]
    breakdown_j: Dict[str, float]
    macs: int
    tops_per_w: float
    power_w: float
    layers: Tuple[LayerEnergy, ...]

    def to_dict(self) -> Dict[str, object]:
        return {"per_frame_j": self.per_frame_j, "per_output_j": list(self.per_output_j),
                "breakdown_j": dict(self.breakdown_j), "tops_per_w": self.tops_per_w, "power_w": self.power_w,
                "tech": self.tech, "macs": self.macs, "ops_per_mac": OPS_PER_MAC}


@dataclass(frozen=True)
class AreaReport:
    """Chip area as used by the mapping, by component."""

    total_mm2: float
    breakdown_mm2: Dict[str, float]
    arrays: int
    adcs: int
    tiles_mm2: float = 0.0  # all but the chip's activation buffer: what the H-tree spans

    def to_dict(self) -> Dict[str, object]:
        return {"total_mm2": self.total_mm2, "breakdown_mm2": dict(self.breakdown_mm2), "arrays": self.arrays,
                "adcs": self.adcs}


def layer_macs(layer: LayerMapping) -> int:
    """MACs per frame: MVMs x weights of the matrix one MVM uses."""
    return layer.macs


def work_energy_j(work: Work, tech: TechSpec) -> Dict[str, float]:
    """Energy of work off the arrays: ``digital`` (MACs, element ops, embedding rows read from SRAM)
    and ``gain_cell`` (MACs, inputs driven, outputs read out in gain-cell attention arrays)."""
    act_bytes = tech.activation_bits / 8
    return {
        "digital": work.macs * tech.digital_mac_energy_j + work.ops * tech.digital_op_energy_j
        + work.lookup_elements * act_bytes * tech.sram_read_energy_j_per_byte,
        "gain_cell": work.gain_cell_macs * tech.gain_cell_energy_j_per_mac
        + work.gain_cell_inputs * tech.gain_cell_dac_energy_j_per_input
        + work.gain_cell_outputs * tech.gain_cell_readout_energy_j_per_output,
    }


def rows_per_array(layer: LayerMapping, array: ArraySpec) -> float:
    """Word lines a column of ``layer`` sums over: its rows spread evenly over its row tiles."""
    rows = max(1, layer.rows)
    return rows / -(-rows // array.rows)


def _dynamic(layer: LayerMapping, perf: Performance, tech: TechSpec, bit_j: float) -> Tuple[Dict[str, float], int]:
    array = perf.mapping.array
    cycles = tech.input_cycles(array.dac_bits)
    conversions = layer.mvms * layer.read_columns * cycles
    act_bytes = tech.activation_bits / 8
    moved = layer.mvms * (layer.inputs_per_mvm + layer.outputs_per_mvm)
    column_s = tech.column_siemens(rows_per_array(layer, array))
    return {
        "adc": conversions * tech.adc_energy_j(array.adc_bits, column_s),
        "dac": layer.mvms * layer.row_drives * cycles * tech.row_drive_energy_j,
        "array": layer.mvms * (layer.used_cells // max(1, layer.matrices)) * cycles * tech.cell_read_energy_j,
        "shift_add": conversions * tech.shift_add_energy_j_per_op,
        "buffer": layer.mvms * act_bytes * (layer.inputs_per_mvm * tech.buffer_read_energy_j_per_byte
                                            + layer.outputs_per_mvm * tech.buffer_write_energy_j_per_byte),
        "interconnect": moved * tech.activation_bits * bit_j,
    }, conversions


def interconnect_j_per_bit(perf: Performance, tech: TechSpec) -> float:
    """Energy of one bit moved between the chip's buffer and a tile: over the H-tree from its
    root to a leaf (about the side of the tiled area, ``sqrt(tiles_mm2)``: half a side, a quarter,
    ..., NeuroSim ``HTree.cpp``) when the tech gives ``wire_energy_j_per_bit_mm``, else the flat
    ``interconnect_energy_j_per_bit``."""
    if tech.wire_energy_j_per_bit_mm <= 0:
        return tech.interconnect_energy_j_per_bit
    return tech.wire_energy_j_per_bit_mm * math.sqrt(area(perf, tech).tiles_mm2)


def chip_arrays(perf: Performance) -> int:
    """Arrays the mapping occupies on the chip (replicas included; the whole chip when it does not
    fit). With tiles (``chip.tile_side_arrays = t > 1``) a layer gets whole tiles of ``t x t``
    arrays, ``ceil(rows / tR) x ceil(cols / tC)`` per matrix (NeuroSim ``Chip.cpp``): their unused
    arrays count too."""
    chip, array = perf.chip, perf.mapping.array
    used = perf.arrays_used
    if chip.tile_side_arrays > 1:
        t = chip.tile_side_arrays
        used = sum(lp.replicas * max(layer.tiles, max(1, layer.matrices) * t * t
                                     * -(-layer.rows // (t * array.rows)) * -(-layer.cols // (t * array.cols)))
                   for layer, lp in zip(perf.mapping.layers, perf.layers))
    return used if chip.arrays is None else min(used, chip.arrays)


def leakage_w(perf: Performance, tech: TechSpec) -> float:
    """Leakage power of the arrays in use and their ADCs."""
    arrays = chip_arrays(perf)
    return arrays * (tech.leakage_w_per_array + tech.adcs_per_array(perf.mapping.array) * tech.leakage_w_per_adc)


def _layers(perf: Performance, tech: TechSpec) -> Tuple[LayerEnergy, ...]:
    leak_j = leakage_w(perf, tech) * perf.frame_time_s
    tiles = sum(p.arrays for p in perf.layers) or 1
    bit_j = interconnect_j_per_bit(perf, tech)
    layers = []
    for layer, lp in zip(perf.mapping.layers, perf.layers):
        parts, conversions = _dynamic(layer, perf, tech, bit_j)
        parts["leakage"] = leak_j * lp.arrays / tiles
        rewritten = 0 if lp.resident else layer.calls * layer.used_cells
        parts["write"] = rewritten * tech.write_energy_j_per_cell
        parts["digital"] = parts["gain_cell"] = 0.0
        parts["link"] = 0.0
        layers.append(LayerEnergy(layer.name, {k: parts[k] for k in ENERGY_COMPONENTS}, conversions,
                                  layer_macs(layer)))
    zero = dict.fromkeys(ENERGY_COMPONENTS, 0.0)
    for group in perf.mapping.digital:
        work = group.work
        layers.append(LayerEnergy(group.name, {**zero, **work_energy_j(work, tech)}, 0,
                                  work.macs + work.gain_cell_macs))
    if perf.link_bytes:
        layers.append(LayerEnergy("chip-to-chip links", {**zero, "link": link_energy_j(perf)}, 0, 0))
    return tuple(layers)


def link_energy_j(perf: Performance) -> float:
    """Energy of the activations crossing chips per frame."""
    return perf.link_bytes * 8 * perf.chip.link_energy_j_per_bit


def _needed_calls(perf: Performance) -> List[int]:
    """Per output, the bitset of calls it waits for (the calls above its predecessors)."""
    above: List[int] = []
    for call in perf.mapping.calls:
        bits = 1 << len(above)
        for p in call.preds:
            bits |= above[p]
        above.append(bits)
    needed = []
    for output in perf.mapping.outputs:
        bits = 0
        for p in output.preds:
            bits |= above[p]
        needed.append(bits)
    return needed


def _per_call(perf: Performance, layers: Sequence[LayerEnergy]) -> List[float]:
    """Per call of ``perf.mapping.calls``: its share of its layer's dynamic energy, and its own rewrite."""
    mapping = perf.mapping
    per_call = []
    for call in mapping.calls:
        layer, le = mapping.layers[call.layer], layers[call.layer]
        share = call.mvms / layer.mvms if layer.mvms else 0.0
        dynamic = le.energy_j - le.breakdown_j["leakage"] - le.breakdown_j["write"]
        per_call.append(dynamic * share + le.breakdown_j["write"] / max(1, layer.calls))
    return per_call


def call_energies_j(perf: Performance, tech: TechSpec) -> Tuple[Dict[str, float], float]:
    """Energy of each weight-layer call (by DAG node; leakage excluded) and the leakage per frame,
    which an output (or an adaptive run) pays in proportion to its latency."""
    layers = _layers(perf, tech)
    per_call = [e + (sum(work_energy_j(call.owned, tech).values()) if call.owned else 0.0)  # its digital work
                for call, e in zip(perf.mapping.calls, _per_call(perf, layers))]
    return ({call.node: e for call, e in zip(perf.mapping.calls, per_call)},
            sum(le.breakdown_j["leakage"] for le in layers))


def _per_output(perf: Performance, layers: Sequence[LayerEnergy], tech: TechSpec) -> Tuple[float, ...]:
    per_call = _per_call(perf, layers)
    leak_j = sum(le.breakdown_j["leakage"] for le in layers)
    last = perf.outputs[-1].latency_s if perf.outputs else 0.0
    result = []
    for bits, out, stage in zip(_needed_calls(perf), perf.outputs, perf.mapping.outputs):
        calls = sum(e for i, e in enumerate(per_call) if bits >> i & 1)
        tail = sum(work_energy_j(stage.work, tech).values()) if stage.work else 0.0  # the work off the arrays above
        result.append(calls + tail + leak_j * (out.latency_s / last if last > 0 else 1.0))
    return tuple(result)


def energy(perf: Performance, tech: TechSpec) -> EnergyReport:
    """Energy per frame of ``perf``'s mapping on its chip in technology ``tech`` (module docstring).

    Parameters
    ----------
    perf : Performance
        The mapping on a chip (:func:`~graphcost.crossbar.perf.performance`): MVMs, residency,
        frame time and output latencies.
    tech : TechSpec
        Per-component constants (:data:`~graphcost.crossbar.tech.TECH_PRESETS` or a TOML file).

    Returns
    -------
    EnergyReport
        ``per_frame_j``, ``per_output_j``, ``breakdown_j`` (keys :data:`ENERGY_COMPONENTS`),
        ``tops_per_w`` (2 ops per MAC), ``power_w`` and one :class:`LayerEnergy` per layer.
    """
    layers = _layers(perf, tech)
    breakdown = {k: sum(le.breakdown_j[k] for le in layers) for k in ENERGY_COMPONENTS}
    total = sum(breakdown.values())
    macs = perf.mapping.coverage.total_macs or sum(le.macs for le in layers)
    tops_per_w = OPS_PER_MAC * macs / (total * tech.post_layout_energy_factor) / 1e12 if total > 0 else 0.0
    power = total * perf.throughput_fps if math.isfinite(perf.throughput_fps) else 0.0
    return EnergyReport(tech.name, total, _per_output(perf, layers, tech), breakdown, macs, tops_per_w, power,
                        layers)


def _hierarchy_bits(perf: Performance, tech: TechSpec, arrays: int) -> Tuple[float, float]:
    """Register bits and adder-tree adder bits of the PEs and tiles of ``arrays`` arrays (none on a
    flat chip). Per PE of ``p x p`` arrays (``ProcessingUnit.cpp``): an input buffer of ``dac_bits x
    rows`` and an output buffer of ``cols / columns_per_adc`` partial sums of ``adc + dac + 1`` bits;
    an adder tree of ``p - 1`` adders per output. Per tile of ``(t/p)^2`` PEs (``Tile.cpp``): an
    input buffer of ``t/p x dac_bits x rows``, an output buffer of ``dac_bits x t/p x cols /
    columns_per_adc`` bits and a ``t/p - 1``-adder tree per output."""
    chip, array = perf.chip, perf.mapping.array
    p, t = chip.pe_side_arrays, chip.tile_side_arrays
    if t == 1:
        return 0.0, 0.0
    outs = array.cols // tech.columns_per_adc
    psum = array.adc_bits + array.dac_bits + 1
    pes, tiles, q = arrays / (p * p), arrays / (t * t), t // p
    buffer_bits = pes * (array.dac_bits * array.rows + outs * psum) + tiles * q * array.dac_bits * (array.rows + outs)
    adder_bits = pes * (p - 1) * p * outs * psum + tiles * (q - 1) * q * outs * (psum + (p - 1).bit_length())
    return buffer_bits, adder_bits


def area(perf: Performance, tech: TechSpec) -> AreaReport:
    """Area of the arrays the mapping uses and their periphery (see the module docstring)."""
    array = perf.mapping.array
    arrays = chip_arrays(perf)
    adcs = arrays * tech.adcs_per_array(array)
    largest_out = max((max(layer.mvms_per_call, default=0) * layer.outputs_per_mvm
                       for layer in perf.mapping.layers), default=0)
    local_bits, adder_bits = _hierarchy_bits(perf, tech, arrays)
    global_um2 = 2 * largest_out * tech.activation_bits / 8 / 1024 * tech.buffer_area_um2_per_kib
    um2 = {
        "arrays": arrays * array.cells * tech.cell_area_um2(),
        "adc": adcs * tech.adc_area_um2(array.adc_bits),
        "drivers": arrays * (array.rows * tech.driver_area_um2_per_row + array.cols * tech.driver_area_um2_per_column),
        "shift_add": adcs * tech.shift_add_area_um2_per_adc + adder_bits * tech.adder_area_um2_per_bit,
        "buffers": global_um2 + local_bits / 8 / 1024 * tech.buffer_area_um2_per_kib,
    }
    mm2 = {k: v * 1e-6 for k, v in um2.items()}
    total = sum(mm2.values())
    return AreaReport(total, mm2, arrays, adcs, total - global_um2 * 1e-6)
