"""Technology: per-component energy, area and time constants of a chip (:class:`TechSpec`).

One frozen dataclass, units in the field names, the source of every preset's value beside it.
:data:`TECH_PRESETS` holds ``rram-22nm`` (NeuroSim V1.3's defaults), ``pcm-14nm``, ``sram-22nm``
and ``isaac-32nm``; :func:`load_tech` reads a custom spec from a TOML file (a preset to start
from and the fields to change), validated: an unknown key, a missing unit or a negative / NaN
value is a :class:`graphcost.UserError`. :data:`HARDWARE_PRESETS` bundle a tech with the array
it was published with (``neurosim-v1.3``: NeuroSim V1.3's VGG-8 example).

Sources (facts and constants only, no code taken):

* NeuroSim V1.3 (github.com/neurosim/DNN_NeuroSim_V1.3): ``Param.cpp`` defaults (22 nm, RRAM
  1T1R 4x12 F², Ron 6 kOhm, 0.5 V / 10 ns read, 2 V write, 128x128, 2 bits/cell, 8 columns per
  ADC, 5-bit ADC, 1 GHz, post-layout energy factor 1.22); ``MultilevelSenseAmp.cpp`` (22 nm LSTP
  current-mode sense amplifier: 1.7 uW per reference level, 1 ns per conversion); ``SarADC.cpp``
  (22 nm LSTP SAR: (0.538 b + 4.3753) uW over b + 1 ns; 14 nm: (0.3132 b + 2.5681) uW; area
  ``A_n (269 + 109 (b-1)) + A_p (209 + 73 (b-1))`` in minimum transistors); ``SubArray.cpp``
  (bit-line and word-line capacitance 0.2 fF/um). Also, for the components NeuroSim counts
  beyond the array (:data:`HARDWARE_PRESETS` ``neurosim-v1.3``): the sense amp's column-current
  power ``0.0631 / R_column`` W and its area per level (``MultilevelSenseAmp.cpp``,
  ``CurrentSenseAmp.cpp``), the minimum gate (``formula.cpp``, ``constant.h``), level shifters
  (``LevelShifter.cpp``), shift-adds, adders and DFFs (``ShiftAdd.cpp``, ``Adder.cpp``,
  ``DFF.cpp``), the H-tree (``HTree.cpp``), PEs, tiles and their buffers (``ProcessingUnit.cpp``,
  ``Tile.cpp``, ``Chip.cpp``), the synchronous clock (``Param.cpp`` ``beta = 1.4``).
* ISAAC (Shafiee et al., ISCA 2016, Table 6): 8-bit ADC 2 mW at 1.28 GS/s, 1200 um²; 128x128
  crossbar 0.3 mW, 25 um²; 1-bit DAC 3.9 uW per array (128 of them); 100 ns read cycle.
* Digital: 16-bit shift-add 0.021 pJ (32 nm, ISAAC); 64 KB SRAM 1.6 pJ/B read, 2.1 pJ/B write
  (45 nm, Horowitz ISSCC 2014), scaled to the node linearly in feature size (CV² with C ~ F).
* Programming: RRAM ~0.6 pJ per 2 V / 10 ns pulse, write-verify ~8.5 us per row (NeuRRAM, Wan
  et al., Nature 2022); PCM reset 300 uA / 40 ns, set 150 uA / 150 ns (Burr et al., JETCAP 2016).

Where no publication gives a component, the value is marked *assumed* with its reasoning.

>>> rram = TECH_PRESETS["rram-22nm"]
>>> round(rram.adc_energy_j(5) * 1e15, 1)        # NeuroSim's 22 nm sense amp: 31 levels x 1.7 uW x 1 ns
52.7
>>> rram.adc_energy_j(6) > rram.adc_energy_j(5)
True
"""
from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Dict, Mapping, Tuple

from graphcost.errors import UserError

from .specs import ArraySpec, ChipSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

#: ADC architectures: ``sar`` (one comparator, ``b`` steps, ``b + 1`` cycles) and ``flash``
#: (``2**b - 1`` comparators / sense-amp references, one cycle; NeuroSim's multilevel sense amp).
ADC_KINDS = ("sar", "flash")

_F2_UM2 = 1e-6  # nm² -> um²
_INT_FIELDS = ("input_bits_per_cycle", "columns_per_adc", "activation_bits", "digital_macs_per_cycle",
               "digital_ops_per_cycle", "sram_capacity_bytes", "gain_cell_rows", "gain_cell_window_tokens")


@dataclass(frozen=True)
class TechSpec:
    """Per-component constants of one technology (units in the names; SI unless named).

    Energies are per event: ``cell_read_energy_j`` per weight cell of a driven row and read
    column per input cycle; ``row_drive_energy_j`` per word line driven per input cycle (DAC /
    driver and the line's capacitance); ADC per conversion from ``adc_power_w_static +
    adc_power_w_per_step * steps`` over its conversion time (:meth:`adc_energy_j`);
    ``shift_add_energy_j_per_op`` per digitised column (shift-add of slices and input bits,
    accumulation of row tiles); buffers per byte; interconnect per bit moved; leakage as
    power; programming per cell written (with verify).
    """

    name: str
    node_nm: float
    cell_area_f2: float
    cell_read_energy_j: float
    row_drive_energy_j: float
    input_bits_per_cycle: int
    adc_kind: str
    adc_power_w_static: float
    adc_power_w_per_step: float
    adc_cycle_ns: float
    adc_area_um2_static: float
    adc_area_um2_per_step: float
    columns_per_adc: int
    shift_add_energy_j_per_op: float
    shift_add_area_um2_per_adc: float
    driver_area_um2_per_row: float
    buffer_read_energy_j_per_byte: float
    buffer_write_energy_j_per_byte: float
    buffer_area_um2_per_kib: float
    interconnect_energy_j_per_bit: float
    leakage_w_per_array: float
    leakage_w_per_adc: float
    clock_hz: float
    read_pulse_ns: float
    write_energy_j_per_cell: float
    write_ns_per_row: float
    activation_bits: int = 8
    post_layout_energy_factor: float = 1.0
    # A current-mode sense amp also burns the column's read current while it converts:
    # ``adc_column_power_w_per_siemens x G_column`` (NeuroSim ``MultilevelSenseAmp.cpp``,
    # ``GetColumnPower``: ``P = P_levels + c / R_column``). ``G_column`` = active rows x
    # ``input_bit_activity`` x the mean cell conductance ``(on + off) / 2`` (cell levels
    # spread evenly between the two).
    adc_column_power_w_per_siemens: float = 0.0
    cell_on_conductance_s: float = 0.0
    cell_off_conductance_s: float = 0.0
    input_bit_activity: float = 0.5
    # Synchronous timing (NeuroSim ``synchronous = true``): > 0 replaces the read-pulse model of
    # :meth:`mvm_latency_ns` by cycles of this length (``SubArray.cpp`` / ``ShiftAdd.cpp``).
    sense_cycle_ns: float = 0.0
    # Periphery area beyond ADC, row drivers and shift-add: per-column drivers, and one adder bit
    # (of the PE / tile adder trees that add row tiles when the chip has PEs and tiles).
    driver_area_um2_per_column: float = 0.0
    adder_area_um2_per_bit: float = 0.0
    # Interconnect by distance: > 0 makes a moved bit cost this much per mm of H-tree from the
    # chip's root to a tile (``sqrt(area)``, NeuroSim ``HTree.cpp``) instead of the flat
    # ``interconnect_energy_j_per_bit``.
    wire_energy_j_per_bit_mm: float = 0.0
    # The digital unit beside the arrays (attention matmuls, softmax, norms, element ops, embedding
    # lookups, the KV cache): energies 0 in a hand-built spec, every preset at its node (:func:`digital_unit`).
    digital_mac_energy_j: float = 0.0
    digital_op_energy_j: float = 0.0
    digital_macs_per_cycle: int = 1024
    digital_ops_per_cycle: int = 256
    sram_read_energy_j_per_byte: float = 0.0
    sram_write_energy_j_per_byte: float = 0.0
    sram_capacity_bytes: int = 32 * 2 ** 20
    dram_energy_j_per_bit: float = 20e-12
    dram_bytes_per_s: float = 256e9
    # Gain-cell attention arrays (Leroux, Manea et al., Nat. Comput. Sci. 5, 2025: :func:`gain_cell_unit`).
    gain_cell_energy_j_per_mac: float = 0.0
    gain_cell_dac_energy_j_per_input: float = 0.0
    gain_cell_readout_energy_j_per_output: float = 0.0
    gain_cell_write_energy_j_per_byte: float = 0.0
    gain_cell_step_ns: float = 0.0
    gain_cell_rows: int = 64
    gain_cell_window_tokens: int = 1024

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "adc_kind"):
                if not isinstance(value, str) or not value:
                    raise UserError(f"tech {f.name} must be a non-empty string, got {value!r}")
            elif f.name in _INT_FIELDS:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise UserError(f"tech {f.name} must be a positive integer, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
                    or math.isinf(value) or value < 0:
                raise UserError(f"tech {f.name} must be a finite number >= 0, got {value!r}")
        if self.adc_kind not in ADC_KINDS:
            raise UserError(f"tech adc_kind must be one of {', '.join(ADC_KINDS)}, got {self.adc_kind!r}")
        for name in ("node_nm", "clock_hz", "adc_cycle_ns", "post_layout_energy_factor"):
            if getattr(self, name) <= 0:
                raise UserError(f"tech {name} must be > 0, got {getattr(self, name)!r}")
        if self.input_bit_activity > 1:
            raise UserError(f"tech input_bit_activity is a fraction of bits (<= 1), got {self.input_bit_activity!r}")

    # ------------------------------------------------------------------ derived
    def adc_steps(self, bits: int) -> int:
        """Comparator steps of one conversion: ``bits`` (SAR) or ``2**bits - 1`` (flash)."""
        return bits if self.adc_kind == "sar" else 2 ** bits - 1

    def adc_time_ns(self, bits: int) -> float:
        """One conversion: ``(bits + 1)`` cycles (SAR) or one cycle (flash)."""
        return self.adc_cycle_ns * ((bits + 1) if self.adc_kind == "sar" else 1)

    def adc_energy_j(self, bits: int, column_siemens: float = 0.0) -> float:
        """Energy of one conversion: ``(P_static + P_step * steps + P_column) * conversion time``,
        ``P_column = adc_column_power_w_per_siemens * column_siemens`` (the read current)."""
        power = self.adc_power_w_static + self.adc_power_w_per_step * self.adc_steps(bits)
        power += self.adc_column_power_w_per_siemens * column_siemens
        return power * self.adc_time_ns(bits) * 1e-9

    def column_siemens(self, active_rows: float) -> float:
        """Mean conductance of a read column: ``active_rows x input_bit_activity x (on + off) / 2``."""
        mean_cell = (self.cell_on_conductance_s + self.cell_off_conductance_s) / 2
        return active_rows * self.input_bit_activity * mean_cell

    def adc_area_um2(self, bits: int) -> float:
        return self.adc_area_um2_static + self.adc_area_um2_per_step * self.adc_steps(bits)

    def input_cycles(self, input_bits: int) -> int:
        """Array cycles to feed an ``input_bits`` activation: ``ceil(bits / input_bits_per_cycle)``."""
        return -(-input_bits // self.input_bits_per_cycle)

    def cell_area_um2(self) -> float:
        return self.cell_area_f2 * self.node_nm ** 2 * _F2_UM2

    def mvm_latency_ns(self, array: ArraySpec) -> float:
        """One MVM of one array: per input cycle a read pulse, then the ``columns_per_adc`` columns
        sharing an ADC converted one after another. Synchronous (``sense_cycle_ns > 0``, NeuroSim
        ``SubArray.cpp`` / ``ShiftAdd.cpp``): per input cycle ``columns_per_adc`` sensing cycles,
        as many shift-add cycles over the weight's slices, and ``ceil(columns_per_adc / slices)``
        shift-add cycles over the input bits; the shift-adds follow the sensing (they are counted,
        not hidden)."""
        muxed = min(self.columns_per_adc, array.cols)
        cycles = self.input_cycles(array.dac_bits)
        if self.sense_cycle_ns > 0:
            per_cycle = muxed + (muxed if array.slices > 1 else 0) + (-(-muxed // array.slices) if cycles > 1 else 0)
            return cycles * per_cycle * self.sense_cycle_ns
        return cycles * (self.read_pulse_ns + muxed * self.adc_time_ns(array.adc_bits))

    def digital_time_s(self, macs: float, ops: float) -> float:
        """Time of the digital unit for ``macs`` MACs and ``ops`` element ops (one after the other)."""
        return (macs / self.digital_macs_per_cycle + ops / self.digital_ops_per_cycle) / self.clock_hz

    def adcs_per_array(self, array: ArraySpec) -> int:
        return -(-array.cols // self.columns_per_adc)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _scale(value_at: float, from_nm: float, to_nm: float) -> float:
    """Dynamic energy scaled linearly with feature size (C ~ F at constant voltage)."""
    return value_at * to_nm / from_nm


#: Horowitz, "Computing's energy problem", ISSCC 2014, per-operation energies at 45 nm, 0.9 V:
#: int8 multiply 0.2 pJ, int32 add 0.1 pJ, fp16 add 0.4 pJ / multiply 1.1 pJ; a 64 KB SRAM 1.6 pJ
#: per byte read, 2.1 pJ written (the buffers above); DRAM 640 pJ per 32-bit read (20 pJ/bit,
#: off-chip: not scaled with the node).
HOROWITZ_45NM = {"int8_mult": 0.2e-12, "int32_add": 0.1e-12, "fp16_add": 0.4e-12, "fp16_mult": 1.1e-12,
                 "sram_read_per_byte": 1.6e-12, "sram_write_per_byte": 2.1e-12, "dram_per_bit": 640e-12 / 32}


def digital_unit(node_nm: float) -> Dict[str, Any]:
    """The digital unit's constants at ``node_nm`` (Horowitz's 45 nm energies scaled linearly in
    feature size, CV² with C ~ F at constant voltage, as the buffers above):

    * an 8-bit MAC: an int8 multiply and an int32 accumulate, 0.3 pJ at 45 nm;
    * an element op (softmax, norms, activations, adds): the mean of an fp16 add and multiply, 0.75 pJ;
    * SRAM read / write per byte: the 64 KB SRAM's 1.6 / 2.1 pJ (a larger SRAM is banked in such
      arrays; the wires between banks are the interconnect's);
    * DRAM 20 pJ per bit (Horowitz's 640 pJ per 32-bit read), HBM2 bandwidth of one stack, 256 GB/s
      (JEDEC JESD235A: 1024 pins x 2 Gb/s);
    * *assumed*: 1024 MACs per cycle (a 32x32 systolic array), 256 element ops per cycle (a
      256-lane vector unit), 32 MiB of on-chip SRAM (TPU v4 holds 32 MiB of vector memory and
      128 MiB of common memory, Jouppi et al., ISCA 2023), at the tech's clock.

    >>> round(digital_unit(22)["digital_mac_energy_j"] * 1e15, 1)     # 0.3 pJ x 22 / 45
    146.7
    """
    h = HOROWITZ_45NM
    return {
        "digital_mac_energy_j": _scale(h["int8_mult"] + h["int32_add"], 45, node_nm),
        "digital_op_energy_j": _scale((h["fp16_add"] + h["fp16_mult"]) / 2, 45, node_nm),
        "sram_read_energy_j_per_byte": _scale(h["sram_read_per_byte"], 45, node_nm),
        "sram_write_energy_j_per_byte": _scale(h["sram_write_per_byte"], 45, node_nm),
        "dram_energy_j_per_bit": h["dram_per_bit"],
    }


#: Leroux, Manea et al., "Analog in-memory computing attention mechanism for fast and energy-efficient
#: large language models", Nat. Comput. Sci. 5, 813-824 (2025); the authors' code
#: (github.com/NathanLeroux-git/GainCellAttention, ``utils/plot_energy.py``): per head and token of
#: GPT-2 (head dim 64, sliding window 1024) QK^T 1.12 nJ, AV 0.70 nJ, digital and routing 4.0 nJ,
#: DAC 0.33 nJ; 65 ns per token and layer; 64-row sub-arrays; 15 ns maximum input pulse.
LEROUX_2025 = {"qk_j": 1.12e-9, "av_j": 0.70e-9, "digital_routing_j": 4.0e-9, "dac_j": 0.33e-9,
               "layer_ns": 65.0, "head_dim": 64, "window": 1024, "rows": 64, "pulse_ns": 15.0}


def gain_cell_unit() -> Dict[str, Any]:
    """Gain-cell attention constants, per event, from Leroux et al.'s per-head breakdown at their
    operating point (head dim ``d`` = 64, window ``W`` = 1024): per MAC ``(QK + AV) / (2 W d)``
    (QK^T and AV each multiply ``W x d``); per input driven ``DAC / (d + W)`` (a query of ``d``
    values, then ``W`` attention weights); per output read out ``digital and routing / (W + d)``
    (``W`` scores through the charge-to-pulse / HardSigmoid stage, ``d`` outputs); a step (one query
    through QK^T or AV, all heads and sub-arrays in parallel) half of the 65 ns per layer. A written
    K / V byte costs an SRAM write (*assumed*: a gain cell is written through its write transistor
    like an SRAM cell).

    >>> u = gain_cell_unit()
    >>> round(u["gain_cell_energy_j_per_mac"] * 2 * 1024 * 64 * 1e9, 2)    # QK + AV per head and token
    1.82
    """
    r = LEROUX_2025
    d, w = r["head_dim"], r["window"]
    return {
        "gain_cell_energy_j_per_mac": (r["qk_j"] + r["av_j"]) / (2 * w * d),
        "gain_cell_dac_energy_j_per_input": r["dac_j"] / (d + w),
        "gain_cell_readout_energy_j_per_output": r["digital_routing_j"] / (w + d),
        "gain_cell_step_ns": r["layer_ns"] / 2,
        "gain_cell_rows": r["rows"],
        "gain_cell_window_tokens": w,
    }


def _sram_buffer_area_um2_per_kib(node_nm: float) -> float:
    """8192 SRAM bits of 160 F² (NeuroSim Param.cpp's suggested cell above 22 nm), x1.5 for the
    array periphery (*assumed*)."""
    return 8192 * 160 * node_nm ** 2 * _F2_UM2 * 1.5


#: NeuroSim's minimum logic gate (``formula.cpp`` ``CalculateGateArea`` of a minimum inverter with
#: ``constant.h``'s ``MAX_TRANSISTOR_HEIGHT = 28``, ``POLY_WIDTH = 1``, ``MIN_GAP_BET_GATE_POLY = 2.8``):
#: 28 F tall x 2 (1 + 2.8) F wide.
MIN_GATE_F2 = 28 * 2 * (1 + 2.8)


def _gates_um2(gates: float, node_nm: float) -> float:
    return gates * MIN_GATE_F2 * node_nm ** 2 * _F2_UM2


def _min_transistor_um2(node_nm: float) -> float:
    """A minimum-size transistor with spacing: ~100 F² (*assumed*: NeuroSim's gate-area model
    gives 3-4 F wide x 28 F tall cells)."""
    return 100 * node_nm ** 2 * _F2_UM2


#: NeuroSim's level shifter (``LevelShifter.cpp``, ``validated``: 2.5x tall cells, IO transistors
#: 2.5x wide, x 1.44 wiring ``alpha``), one per word line, bit line and source line when the write
#: voltage exceeds 1.5 V: 70 F tall x ~205 F wide (its three folded inverters) x 1.44, in min gates.
LEVEL_SHIFTER_GATES = 70 * 205.2 * 1.44 / MIN_GATE_F2


def _shift_add_gates(adc_bits: int, slices: int, input_bits: int) -> float:
    """NeuroSim's shift-adds of one ADC (``ShiftAdd.cpp``): over the weight's slices (an
    ``adc_bits`` adder) then over the input bits (an ``adc_bits + slices`` adder), each with
    ``bits + reads`` DFFs and ``3 (DFFs - 1)`` NAND2s; an adder is 9 NAND2 per bit (``Adder.cpp``),
    a DFF 12 minimum gates (``DFF.cpp``), a NAND2 1.5."""
    total = 0.0
    for bits, reads in ((adc_bits, slices), (adc_bits + slices, input_bits)):
        dffs = bits + reads
        total += 9 * 1.5 * bits + 12 * dffs + 3 * (dffs - 1) * 1.5 + 1
    return total


def _rram_22nm() -> TechSpec:
    n = 22.0
    t = _min_transistor_um2(n)
    on_s = 1 / (6e3 * 1.25)                          # Ron 6 kOhm + access transistor (IR_DROP_TOLERANCE 0.25)
    wire_cap_f_per_um = 0.2e-15                      # SubArray.cpp
    bitline_um = 128 * 4 * n * 1e-3                  # 128 cells of 4 F height (1T1R)
    wordline_um = 128 * 12 * n * 1e-3                # 128 cells of 12 F width
    vdd = 0.8                                        # 22 nm LSTP supply (*assumed*, ITRS)
    return TechSpec(
        name="rram-22nm", node_nm=n, cell_area_f2=4 * 12,
        # bit-line charge of a read column shared over its 128 cells at the 0.5 V read voltage
        cell_read_energy_j=wire_cap_f_per_um * bitline_um * 0.5 ** 2 / 128,
        # word-line charge at Vdd plus a 1-bit driver (~2 fJ, *assumed*)
        row_drive_energy_j=wire_cap_f_per_um * wordline_um * vdd ** 2 + 2e-15,
        input_bits_per_cycle=1,                      # NeuroSim feeds activations bit-serially
        adc_kind="flash", adc_power_w_static=0.0, adc_power_w_per_step=1.7e-6, adc_cycle_ns=1.0,
        # per reference level one current sense amp (48 + 40 min gates, CurrentSenseAmp.cpp) and
        # 9 + 9 more (MultilevelSenseAmp.cpp, current mode)
        adc_area_um2_static=0.0, adc_area_um2_per_step=_gates_um2(48 + 40 + 18, n),
        columns_per_adc=8,
        shift_add_energy_j_per_op=_scale(0.021e-12, 32, n),
        # NeuroSim's example: 5-bit ADC, 4 slices, 8 input bits (611 min gates)
        shift_add_area_um2_per_adc=_gates_um2(_shift_add_gates(5, 4, 8), n),
        # word-line switch (*assumed* 20 transistors) + word- and bit-line level shifters (2 V write)
        driver_area_um2_per_row=20 * t + _gates_um2(2 * LEVEL_SHIFTER_GATES, n),
        driver_area_um2_per_column=_gates_um2(LEVEL_SHIFTER_GATES, n),  # source-line level shifter
        adder_area_um2_per_bit=_gates_um2(9 * 1.5, n),  # 9 NAND2 per bit (Adder.cpp)
        buffer_read_energy_j_per_byte=_scale(1.6e-12, 45, n),
        buffer_write_energy_j_per_byte=_scale(2.1e-12, 45, n),
        # register-file buffers (Param.cpp: globalBufferType = tileBufferType = peBufferType = false):
        # a DFF of 12 min gates per bit (DFF.cpp)
        buffer_area_um2_per_kib=_gates_um2(12 * 8192, n),
        interconnect_energy_j_per_bit=0.05e-12,      # flat fallback (*assumed*); wire_energy_j_per_bit_mm rules
        leakage_w_per_array=0.1e-6, leakage_w_per_adc=10e-9,  # LSTP periphery (*assumed*)
        clock_hz=1e9, read_pulse_ns=10.0,
        write_energy_j_per_cell=10 * 0.6e-12,        # ~10 write-verify pulses of ~0.6 pJ
        write_ns_per_row=8500.0,                     # NeuRRAM's effective write-verify time
        activation_bits=8, post_layout_energy_factor=1.22,
        # MultilevelSenseAmp.cpp GetColumnPower, 22 nm LSTP current mode: 0.0631 / R_column W
        adc_column_power_w_per_siemens=0.0631, cell_on_conductance_s=on_s, cell_off_conductance_s=on_s / 150,
        # *assumed*: ReLU zeroes about half the activations and a non-zero 8-bit activation sets ~2
        # of its 8 bits (codes cluster low); NeuroSim measures this on its traces
        input_bit_activity=0.5 * 2 / 8,
        # HTree.cpp: (wire 0.2 fF/um + repeaters) x Vdd^2 x switching activity 0.25 per bit and
        # length; the repeaters' capacitance taken as much as the wire's (*assumed*)
        wire_energy_j_per_bit_mm=2 * wire_cap_f_per_um * 1e3 * vdd ** 2 * 0.25)


def _sram_22nm() -> TechSpec:
    n = 22.0
    t = _min_transistor_um2(n)
    rram = _rram_22nm()
    return replace(
        rram, name="sram-22nm", cell_area_f2=10 * 28,  # Param.cpp SRAM cell 10 x 28 F²
        # 8T SRAM read bit line swings at Vdd: charge of a 128-cell bit line of 10 F cells
        cell_read_energy_j=0.2e-15 * 128 * 10 * n * 1e-3 * 0.8 ** 2 / 128,
        row_drive_energy_j=0.2e-15 * 128 * 28 * n * 1e-3 * 0.8 ** 2 + 2e-15,
        adc_area_um2_static=50 * t, adc_area_um2_per_step=18 * t,
        leakage_w_per_array=128 * 128 * 0.1e-9 * 0.8,  # ~0.1 nA per LSTP 6T/8T cell (*assumed*)
        # no column-current term (an SRAM bit line is read by charge) and no level shifters (no 2 V write)
        adc_column_power_w_per_siemens=0.0, driver_area_um2_per_row=20 * t, driver_area_um2_per_column=0.0,
        write_energy_j_per_cell=1e-15, write_ns_per_row=1.0,  # one clocked SRAM row write (*assumed*)
        post_layout_energy_factor=1.22)


def _isaac_32nm() -> TechSpec:
    n = 32.0
    return TechSpec(
        name="isaac-32nm", node_nm=n,
        cell_area_f2=25.0 / (128 * 128 * n ** 2 * _F2_UM2),  # 25 um² per 128x128 crossbar
        cell_read_energy_j=0.3e-3 * 100e-9 / (128 * 128),    # 0.3 mW per crossbar over its 100 ns cycle
        row_drive_energy_j=3.9e-6 * 100e-9 / 128,            # 3.9 uW for 128 1-bit DACs, 100 ns
        input_bits_per_cycle=1,
        # 2 mW at 1.28 GS/s (1.56 pJ); split static 0.4 mW + 0.2 mW per bit (*assumed*, SAR-like)
        adc_kind="sar", adc_power_w_static=0.4e-3, adc_power_w_per_step=0.2e-3, adc_cycle_ns=1 / 1.28 / 9,
        adc_area_um2_static=1200.0 / 2, adc_area_um2_per_step=1200.0 / 2 / 8,
        columns_per_adc=128,                                 # one ADC per crossbar
        shift_add_energy_j_per_op=0.021e-12, shift_add_area_um2_per_adc=60.0,  # ISAAC S+A 0.2 mW, 60 um²
        driver_area_um2_per_row=170.0 / (8 * 128),          # ISAAC: 0.00017 mm² of DACs per 8 crossbars
        buffer_read_energy_j_per_byte=_scale(1.6e-12, 45, n),
        buffer_write_energy_j_per_byte=_scale(2.1e-12, 45, n),
        buffer_area_um2_per_kib=_sram_buffer_area_um2_per_kib(n),
        interconnect_energy_j_per_bit=0.1e-12,
        leakage_w_per_array=1e-6, leakage_w_per_adc=1e-6,   # *assumed*
        clock_hz=1.28e9, read_pulse_ns=100.0,
        write_energy_j_per_cell=10 * 0.6e-12, write_ns_per_row=8500.0,
        activation_bits=16)


def _pcm_14nm() -> TechSpec:
    n = 14.0
    t = _min_transistor_um2(n)
    return TechSpec(
        name="pcm-14nm", node_nm=n, cell_area_f2=4 * 12,   # 1T1R-like PCM cell (*assumed*, as NeuroSim's)
        cell_read_energy_j=0.2e-15 * 256 * 4 * n * 1e-3 * 0.3 ** 2 / 256,  # 0.3 V read (*assumed*)
        row_drive_energy_j=0.2e-15 * 256 * 12 * n * 1e-3 * 0.7 ** 2 + 1e-15,
        # HERMES feeds 8-bit inputs as pulse durations in one read (multi-bit "DAC")
        input_bits_per_cycle=8,
        adc_kind="sar", adc_power_w_static=2.5681e-6, adc_power_w_per_step=0.3132e-6, adc_cycle_ns=1.0,
        adc_area_um2_static=(269 - 109) * t + (209 - 73) * t, adc_area_um2_per_step=109 * t + 73 * t,
        columns_per_adc=1,                                 # HERMES: one ADC per column
        shift_add_energy_j_per_op=_scale(0.021e-12, 32, n), shift_add_area_um2_per_adc=500 * t,
        driver_area_um2_per_row=20 * t,
        buffer_read_energy_j_per_byte=_scale(1.6e-12, 45, n),
        buffer_write_energy_j_per_byte=_scale(2.1e-12, 45, n),
        buffer_area_um2_per_kib=_sram_buffer_area_um2_per_kib(n),
        interconnect_energy_j_per_bit=0.03e-12,
        leakage_w_per_array=0.1e-6, leakage_w_per_adc=10e-9,
        clock_hz=1e9, read_pulse_ns=128.0,                 # 8-bit pulse-width input (HERMES ~130 ns MVM)
        # reset 1.5 V x 300 uA x 40 ns + set 1.5 V x 150 uA x 150 ns, ~5 verify iterations (*assumed*)
        write_energy_j_per_cell=5 * (1.5 * 300e-6 * 40e-9 + 1.5 * 150e-6 * 150e-9),
        write_ns_per_row=5 * (40 + 150 + 250),
        activation_bits=8)


def _with_units(tech: TechSpec) -> TechSpec:
    """A preset with its digital unit at its node and the gain-cell attention constants."""
    sram_write = _scale(HOROWITZ_45NM["sram_write_per_byte"], 45, tech.node_nm)
    return replace(tech, **digital_unit(tech.node_nm), **gain_cell_unit(), gain_cell_write_energy_j_per_byte=sram_write)


#: The technology presets (``--tech NAME``).
TECH_PRESETS: Dict[str, TechSpec] = {t.name: _with_units(t) for t in (_rram_22nm(), _pcm_14nm(), _sram_22nm(),
                                                                      _isaac_32nm())}


@dataclass(frozen=True)
class HardwarePreset:
    """A tech with the array and chip organisation it was published with (``--preset NAME``);
    ``chip`` holds :class:`ChipSpec` fields to set."""

    tech: TechSpec
    array: ArraySpec
    chip: Tuple[Tuple[str, Any], ...] = ()


#: The technology of ``graphcost map`` when neither ``--tech`` nor ``--preset`` is given.
DEFAULT_TECH = "rram-22nm"


def apply_preset(preset: HardwarePreset, chip: ChipSpec) -> Tuple[ArraySpec, ChipSpec, TechSpec]:
    """The array, the chip (its MVM time and row write time from the tech) and the tech of ``preset``."""
    tech, array = preset.tech, preset.array
    chip = replace(chip, mvm_latency_ns=tech.mvm_latency_ns(array), write_ns_per_row=tech.write_ns_per_row,
                   **dict(preset.chip))
    return array, chip, tech


def _neurosim_chip(tech: TechSpec, array: ArraySpec) -> Tuple[Tuple[str, Any], ...]:
    """NeuroSim V1.3's organisation for its example. Its floorplanner picks the PE and tile sizes
    that maximise memory utilisation, down to PEs of 2x2 and tiles of 4x4 arrays (``Chip.cpp``);
    the smallest are taken here. Tile buffers (``Tile.cpp``, ``Param.cpp``: 32x32-bit register-file
    cores with 32-bit ports): the input buffer has ``ceil(2 PEs x 8 bits x 128 rows / 1024)`` = 2
    cores working in parallel (64 bits per cycle); the output buffer holds ``8 x 2 x 128 / 8`` =
    256 bits behind one ``8 x 2``-bit port; a partial sum is 1 + (5 ADC + 8 input + 1 + 1 PE-tree)
    = 16 bits. One image at a time (``pipeline = false``), synchronous cycles of ``sense_cycle_ns``."""
    pe_side, tile_side = 2, 4
    cores = -(-(tile_side // pe_side) * array.dac_bits * array.rows // 1024)
    psum = 1 + (array.adc_bits + array.dac_bits + 1 + (pe_side - 1).bit_length())
    return (("layer_by_layer", True), ("pe_side_arrays", pe_side), ("tile_side_arrays", tile_side),
            ("tile_input_bits_per_cycle", cores * 32),
            ("tile_output_bits_per_cycle", array.dac_bits * (tile_side // pe_side)),
            ("partial_sum_bits", psum), ("cycle_ns", tech.sense_cycle_ns or 1e9 / tech.clock_hz))


def _neurosim_v13() -> HardwarePreset:
    """NeuroSim V1.3's VGG-8 example (Param.cpp: 128x128, 2 bits/cell, 8-bit weights and
    bit-serial 8-bit activations, 5-bit ADC; signed weights with a digital offset), with its
    synchronous clock: the sensing cycle (1 ns for a 22 nm sense amp, ``MultilevelSenseAmp.cpp``)
    x the post-layout latency factor ``beta = 1.4`` (Param.cpp, ``validated``)."""
    tech = replace(TECH_PRESETS["rram-22nm"], sense_cycle_ns=1.0 * 1.4)
    array = ArraySpec(128, 128, weight_bits=8, cell_bits=2, differential=False, dac_bits=8, adc_bits=5)
    return HardwarePreset(tech, array, _neurosim_chip(tech, array))


#: ``--preset`` bundles.
HARDWARE_PRESETS: Dict[str, HardwarePreset] = {"neurosim-v1.3": _neurosim_v13()}


def _lookup(table: Mapping[str, Any], name: str, what: str, also: str = ""):
    if name in table:
        return table[name]
    raise UserError(f"unknown {what} {name!r}; use one of {', '.join(table)}{also}")


def tech_preset(name: str) -> TechSpec:
    """The preset ``name`` (a :class:`UserError` naming the known ones otherwise)."""
    return _lookup(TECH_PRESETS, name, "tech", " or a .toml file")


def hardware_preset(name: str) -> HardwarePreset:
    """The ``--preset`` bundle ``name``."""
    return _lookup(HARDWARE_PRESETS, name, "preset")


def tech_from_mapping(data: Mapping[str, Any], source: str = "tech") -> TechSpec:
    """A :class:`TechSpec` from ``{"base": PRESET, FIELD: VALUE, ...}`` (``base`` defaults to
    ``rram-22nm``); every key must be a field (units are part of the names).

    >>> tech_from_mapping({"base": "rram-22nm", "columns_per_adc": 4}).columns_per_adc
    4
    """
    values = dict(data)
    base = tech_preset(str(values.pop("base", "rram-22nm")))
    known = {f.name for f in fields(TechSpec)}
    for key in values:
        if key not in known:
            hint = [k for k in known if k.split("_")[0] == key.split("_")[0]]
            raise UserError(f"{source}: unknown key {key!r} (keys carry their unit, e.g. "
                            f"{', '.join(sorted(hint)[:3]) or 'adc_cycle_ns'}); see graphcost.crossbar.tech.TechSpec")
    values.setdefault("name", f"{base.name}+custom")
    return replace(base, **values)


def load_tech(path: str) -> TechSpec:
    """Read a TOML tech file: top-level ``base = "PRESET"`` and ``FIELD = VALUE`` lines (or a
    ``[tech]`` table holding them)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise UserError(f"tech file {path!r} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"tech file {path!r} is not valid TOML: {exc}") from None
    if set(data) == {"tech"} and isinstance(data["tech"], dict):
        data = data["tech"]
    return tech_from_mapping(data, source=f"tech file {path!r}")


def resolve_tech(text: str) -> TechSpec:
    """``--tech`` value: a preset name or a path ending in ``.toml``."""
    if text.endswith(".toml"):
        return load_tech(text)
    return tech_preset(text)


__all__: Tuple[str, ...] = ("TechSpec", "DEFAULT_TECH", "apply_preset", "TECH_PRESETS", "HARDWARE_PRESETS", "HardwarePreset", "ADC_KINDS",
                            "tech_preset", "hardware_preset", "tech_from_mapping", "load_tech", "resolve_tech")
