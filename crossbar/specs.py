"""Hardware specs: the crossbar array, the chip and the device noise, as frozen dataclasses.

They are built once at the CLI edge (``parse_crossbar``, ``parse_noise``) and then travel
unchanged through mapping, performance and simulation. Invalid values raise
:class:`graphcost.UserError` in ``__post_init__``, so a spec that exists is a valid spec.

Units are in the field names where a field has one (``mvm_latency_ns``, ``write_ns_per_row``,
``t_seconds``); bit widths are counts of bits; noise magnitudes are relative to ``g_max``, the
largest conductance a cell is programmed to (a weight of ``max|W|`` maps to ``g_max``).

>>> parse_crossbar("256x128")
(256, 128)
>>> ArraySpec(256, 256).columns_per_weight   # ceil(8 / 2) slices x 2 (differential pair)
8
>>> parse_noise("programming=0.02,read=0.01").programming
0.02
>>> parse_noise("none") == NoiseSpec.none()
True
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Dict, Optional, Tuple

from graphcost.errors import UserError

#: ``--depthwise`` strategies for grouped / depthwise convolutions (see ``mapping.py``).
DEPTHWISE_STRATEGIES = ("dense", "packed", "time-multiplexed")


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise UserError(f"{name} must be >= {minimum}, got {value}")


def _check_number(name: str, value, *, minimum: float = 0.0, maximum: Optional[float] = None,
                  strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise UserError(f"{name} must be a number, got {value!r}")
    if math.isinf(value):
        raise UserError(f"{name} must be finite, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise UserError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise UserError(f"{name} must be <= {maximum:g}, got {value:g}")


# --------------------------------------------------------------------------- the array
@dataclass(frozen=True)
class ArraySpec:
    """One crossbar array of ``rows`` x ``cols`` cells and its periphery.

    * ``rows`` — word lines: one input element each (driven by a DAC of ``dac_bits``).
    * ``cols`` — bit lines: one partial dot product each (read by an ADC of ``adc_bits``).
    * ``weight_bits`` — precision of a weight; ``cell_bits`` — bits one cell stores. A weight
      is bit-sliced over ``ceil(weight_bits / cell_bits)`` cells in adjacent columns whose
      results are shifted and added digitally.
    * ``differential`` — a signed weight is the difference of a positive and a negative cell
      (two columns), as in aihwkit's conductance pairs; without it one cell holds a weight
      with a fixed digital offset.
    * ``analog_bias`` — the bias is one extra row driven with a constant 1; otherwise biases
      are added digitally after the ADC (aihwkit's default ``digital_bias=True``).

    ``dac_bits`` / ``adc_bits`` do not change the mapping; the simulator uses them to quantise
    inputs and outputs.
    """

    rows: int
    cols: int
    weight_bits: int = 8
    cell_bits: int = 2
    differential: bool = True
    dac_bits: int = 8
    adc_bits: int = 8
    analog_bias: bool = False

    def __post_init__(self):
        _check_int("crossbar rows", self.rows, 1)
        _check_int("crossbar columns", self.cols, 1)
        for name in ("weight_bits", "cell_bits", "dac_bits", "adc_bits"):
            _check_int(name.replace("_", " "), getattr(self, name), 1)
        if self.cell_bits > self.weight_bits:
            raise UserError(f"cell bits ({self.cell_bits}) cannot exceed weight bits ({self.weight_bits}); "
                            f"lower --cell-bits or raise --weight-bits")
        for name in ("weight_bits", "cell_bits", "dac_bits", "adc_bits"):
            if getattr(self, name) > 32:
                raise UserError(f"{name.replace('_', ' ')} must be <= 32, got {getattr(self, name)}")

    @property
    def slices(self) -> int:
        """Cells (adjacent columns) one weight is bit-sliced over: ``ceil(weight_bits / cell_bits)``."""
        return -(-self.weight_bits // self.cell_bits)

    @property
    def columns_per_weight(self) -> int:
        """Columns one output channel occupies: ``slices x (2 if differential else 1)``."""
        return self.slices * (2 if self.differential else 1)

    @property
    def cells(self) -> int:
        return self.rows * self.cols

    @property
    def label(self) -> str:
        return f"{self.rows}x{self.cols}"

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------- the chip
#: Default per-row programming time: program-and-verify writes a row's cells in parallel and
#: needs ~10 write/verify iterations of a ~50 ns pulse plus a 250 ns verify read (aihwkit's
#: PCM ``t_read = 250 ns``), i.e. ~3 us per row. An order-of-magnitude assumption: set
#: ``--write-ns-per-row`` for your device.
DEFAULT_WRITE_NS_PER_ROW = 3000.0

#: Default time of one matrix-vector multiplication of one array (DAC, analog MVM, ADC): of
#: the order of the 133 ns per 256x256 MVM reported for IBM's 64-core PCM chip (Le Gallo et
#: al., Nature Electronics 6, 2023) and the issue's 100 ns.
DEFAULT_MVM_LATENCY_NS = 100.0


#: Chip-to-chip link of chips on one package: UCIe 1.0 (2022) standard-package targets, 0.5 pJ per
#: bit and 32 GT/s per lane; a x16 module moves 16 x 32 Gb/s = 64 GB/s each way.
DEFAULT_LINK_ENERGY_J_PER_BIT = 0.5e-12
DEFAULT_LINK_BYTES_PER_S = 64e9


@dataclass(frozen=True)
class ChipSpec:
    """A chip of ``arrays`` identical arrays (``None``: as many as the graph needs).

    * ``mvm_latency_ns`` — time of one MVM on one array; all arrays work in parallel.
    * ``write_ns_per_row`` — time to (re)program one row of an array (all its columns in
      parallel); a whole array takes ``rows x write_ns_per_row``.
    * ``replicate`` — copy the slowest layers onto spare arrays to balance the pipeline
      (or to reach a target frame rate, see ``perf.performance``).

    Organisation (NeuroSim V1.3's chip -> tile -> processing element (PE) -> array hierarchy,
    ``Chip.cpp`` / ``Tile.cpp`` / ``ProcessingUnit.cpp``); the defaults are a flat chip whose
    arrays are allocated one by one and whose buffers never limit the time:

    * ``layer_by_layer`` — one image at a time, layer after layer (NeuroSim's ``pipeline =
      false``): the frame time is the latency, not the slowest pipeline stage.
    * ``pe_side_arrays`` / ``tile_side_arrays`` — a PE is ``p x p`` arrays, a tile ``t x t``
      arrays; a layer is allocated whole tiles (their unused arrays still cost area and leakage).
    * ``tile_input_bits_per_cycle`` / ``tile_output_bits_per_cycle`` — bandwidth of a tile's
      input and output buffers; every MVM writes and reads its input vector (``dac_bits`` per
      row) and its partial sums (``partial_sum_bits`` per output) through them, one
      ``cycle_ns`` per transfer (``None``: buffers never limit).
    * ``arrays_per_chip`` — arrays of one chip (``None``: one chip holds everything): a model
      needing more is spread over ``ceil(arrays / arrays_per_chip)`` chips, cut at layer boundaries;
      activations crossing chips cost ``link_energy_j_per_bit`` and ``link_bytes_per_s``.
    """

    arrays: Optional[int] = None
    mvm_latency_ns: float = DEFAULT_MVM_LATENCY_NS
    write_ns_per_row: float = DEFAULT_WRITE_NS_PER_ROW
    replicate: bool = False
    layer_by_layer: bool = False
    pe_side_arrays: int = 1
    tile_side_arrays: int = 1
    tile_input_bits_per_cycle: Optional[int] = None
    tile_output_bits_per_cycle: Optional[int] = None
    partial_sum_bits: int = 16
    cycle_ns: float = 1.0
    arrays_per_chip: Optional[int] = None
    link_energy_j_per_bit: float = DEFAULT_LINK_ENERGY_J_PER_BIT
    link_bytes_per_s: float = DEFAULT_LINK_BYTES_PER_S

    def __post_init__(self):
        if self.arrays is not None:
            _check_int("chip arrays", self.arrays, 1)
        if self.arrays_per_chip is not None:
            _check_int("arrays per chip", self.arrays_per_chip, 1)
        _check_number("link energy per bit (J)", self.link_energy_j_per_bit)
        _check_number("link bandwidth (bytes/s)", self.link_bytes_per_s, strict=True)
        _check_number("mvm latency (ns)", self.mvm_latency_ns, strict=True)
        _check_number("write time per row (ns)", self.write_ns_per_row)
        for name in ("pe_side_arrays", "tile_side_arrays", "partial_sum_bits"):
            _check_int(name.replace("_", " "), getattr(self, name), 1)
        for name in ("tile_input_bits_per_cycle", "tile_output_bits_per_cycle"):
            if getattr(self, name) is not None:
                _check_int(name.replace("_", " "), getattr(self, name), 1)
        if self.tile_side_arrays % self.pe_side_arrays:
            raise UserError(f"tile side arrays ({self.tile_side_arrays}) must be a multiple of the PE side "
                            f"({self.pe_side_arrays})")
        _check_number("cycle (ns)", self.cycle_ns, strict=True)

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------- device noise
#: aihwkit's ``PCMLikeNoiseModel`` programming-noise polynomial, std in uS of ``sum_i c_i (g/g_max)^i``
#: at ``g_max = 25 uS`` (fitted on 1M IBM PCM devices: Nandakumar et al., ICECS 2019).
PCM_PROGRAMMING_POLY_US = (0.26348, 1.9650, -1.1731)
#: Its 1/f read-noise coefficient ``Q_s`` at full scale and the read time of the 1/f fit.
PCM_READ_1F = 0.0088
PCM_T_READ_SECONDS = 250e-9
#: Floors of its conductance-dependent drift-exponent mean and spread (``clamp(min=0.049)`` / ``0.008``).
PCM_DRIFT_NU, PCM_DRIFT_NU_STD = 0.049, 0.008
#: ``--drift-compensation`` choices.
DRIFT_COMPENSATIONS = ("global", "none")


@dataclass(frozen=True)
class NoiseSpec:
    """Non-idealities of the analog cells; conductances ``g`` are relative to ``g_max``, the largest
    conductance a cell is programmed to (a weight of ``max|W|`` maps to ``g_max`` on its side of a
    differential pair). The simulator's docstring (``crossbar/sim/``) gives the exact math.

    * ``programming`` — std of a conductance-independent Gaussian programming error; and
      ``programming_poly_uS`` — a conductance-dependent one (aihwkit's PCM polynomial): std
      ``sum_i c_i (g/g_max)^i`` in uS at ``g_max_uS``. Both drawn once per trial; programmed
      conductances are clamped at 0, as aihwkit does.
    * ``read`` — std of a Gaussian read noise drawn afresh for every MVM (thermal / shot noise);
      ``read_1f`` — aihwkit's accumulated 1/f read noise: ``Q_s = min(0.2, read_1f / max((g/g_max)^0.65,
      1e-3))`` times ``|g(t)|`` times ``sqrt(ln((t + t0 + t_read) / (2 t_read)))`` (``t_read_seconds``),
      drawn once per evaluation time (it grows with log time), not per MVM.
    * ``stuck_at_on`` / ``stuck_at_off`` — probability that a cell is stuck at ``g_max`` / at 0.
    * ``drift_nu`` / ``drift_nu_std`` — mean and spread of the per-cell drift exponent ``nu =
      |N(mean, std)|``, drawn once per trial: ``g(t) = g (1 + t / t0) ** -nu`` with ``t0 = 20 s``
      (aihwkit's convention: ``t_seconds`` counts from the end of programming). With
      ``drift_vs_conductance`` mean and spread follow aihwkit's PCM fit, ``mean = clamp(0.0244 -
      0.0155 ln(g/g_max), drift_nu, 0.1)`` and ``std = clamp(-0.0059 - 0.0125 ln(g/g_max),
      drift_nu_std, 0.045)``, drawn from the target conductance.
    * ``t_seconds`` — time since programming at which inference runs.
    * ``drift_compensation`` — ``"global"``: a reference read of each layer at time ``t`` rescales
      its outputs by ``sum|w(programmed)| / sum|w(t)|`` (Joshi et al., Nat. Commun. 11, 2473, 2020;
      aihwkit's ``GlobalDriftCompensation``); ``"none"``.

    Presets: ``NoiseSpec.none()`` is an ideal device; ``NoiseSpec.pcm()`` is aihwkit's
    ``PCMLikeNoiseModel`` statistic by statistic (aihwkit 1.1.0, ``inference/noise/pcm.py``; fitted
    on 1M IBM PCM devices, Nandakumar et al., ICECS 2019): programming std 0.26348 + 1.9650 r -
    1.1731 r^2 uS at 25 uS (1.05 % of g_max at g = 0, 3.8 % at half scale, 4.2 % at full scale),
    conductance-dependent drift exponents (mean >= 0.049, spread >= 0.008), 1/f read noise
    ``Q_s = 0.0088`` (3.7 % of g at full scale 20 s after programming, 4.2 % after a day), one hour
    after programming, global drift compensation. ``NoiseSpec.rram()`` adds the stuck-at rates of
    a 4 Mb HfO2 RRAM chip (C.-Y. Chen et al., IEEE Trans. Computers 64(1), 2015: 1.75 % stuck-at-0,
    9.04 % stuck-at-1) to the PCM programming and read noise, without drift.
    """

    programming: float = 0.0
    read: float = 0.0
    stuck_at_on: float = 0.0
    stuck_at_off: float = 0.0
    drift_nu: float = 0.0
    t_seconds: float = 0.0
    programming_poly_uS: Tuple[float, ...] = ()
    g_max_uS: float = 25.0
    read_1f: float = 0.0
    t_read_seconds: float = PCM_T_READ_SECONDS
    drift_nu_std: float = 0.0
    drift_vs_conductance: bool = False
    drift_compensation: str = "global"

    def __post_init__(self):
        for name in _NUMBER_FIELDS:
            maximum = 1.0 if name.startswith("stuck_at") else None
            _check_number(f"noise {name}", getattr(self, name), maximum=maximum)
        _check_number("noise g_max_uS", self.g_max_uS, strict=True)
        _check_number("noise t_read_seconds", self.t_read_seconds, strict=True)
        if self.stuck_at_on + self.stuck_at_off > 1.0:
            raise UserError("noise stuck_at_on + stuck_at_off must be <= 1 (they are probabilities)")
        poly = self.programming_poly_uS
        if not isinstance(poly, tuple) or not all(isinstance(c, (int, float)) and math.isfinite(c) for c in poly):
            raise UserError(f"noise programming_poly_uS must be a tuple of finite numbers, got {poly!r}")
        if not isinstance(self.drift_vs_conductance, bool):
            raise UserError(f"noise drift_vs_conductance must be true or false, got {self.drift_vs_conductance!r}")
        if self.drift_compensation not in DRIFT_COMPENSATIONS:
            raise UserError(f"noise drift compensation must be one of {', '.join(DRIFT_COMPENSATIONS)}, "
                            f"got {self.drift_compensation!r}")

    @classmethod
    def none(cls) -> "NoiseSpec":
        """An ideal device: no noise at all (only quantisation remains)."""
        return cls()

    @classmethod
    def pcm(cls) -> "NoiseSpec":
        """aihwkit's ``PCMLikeNoiseModel`` statistics, one hour after programming (see the class docstring)."""
        return cls(programming_poly_uS=PCM_PROGRAMMING_POLY_US, read_1f=PCM_READ_1F, drift_nu=PCM_DRIFT_NU,
                   drift_nu_std=PCM_DRIFT_NU_STD, drift_vs_conductance=True, t_seconds=3600.0)

    @classmethod
    def rram(cls) -> "NoiseSpec":
        """PCM-like programming and read noise plus RRAM stuck-at faults (C.-Y. Chen et al., 2015), no drift."""
        return cls(programming_poly_uS=PCM_PROGRAMMING_POLY_US, read_1f=PCM_READ_1F, stuck_at_on=0.0904,
                   stuck_at_off=0.0175)

    @property
    def is_ideal(self) -> bool:
        return replace(self, drift_compensation="global", t_seconds=0.0, g_max_uS=25.0,
                       t_read_seconds=PCM_T_READ_SECONDS) == NoiseSpec()

    def to_dict(self) -> Dict[str, object]:
        out = asdict(self)
        out["programming_poly_uS"] = list(self.programming_poly_uS)
        return out


_NUMBER_FIELDS = ("programming", "read", "stuck_at_on", "stuck_at_off", "drift_nu", "t_seconds", "read_1f",
                  "drift_nu_std")
NOISE_PRESETS = {"none": NoiseSpec.none, "ideal": NoiseSpec.none, "pcm": NoiseSpec.pcm, "rram": NoiseSpec.rram}


# --------------------------------------------------------------------------- parsing at the CLI edge
_CROSSBAR = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_crossbar(text: str) -> Tuple[int, int]:
    """``"256x128"`` -> ``(256, 128)`` (rows x columns)."""
    match = _CROSSBAR.match(text or "")
    if not match:
        raise UserError(f"a crossbar size is ROWSxCOLS with positive integers (e.g. 256x256), got {text!r}")
    rows, cols = int(match.group(1)), int(match.group(2))
    if rows <= 0 or cols <= 0:
        raise UserError(f"crossbar rows and columns must be positive, got {text!r}")
    return rows, cols


#: Units of ``--times`` (a year is 365 days).
TIME_UNITS_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "y": 365 * 86400.0}
_TIME = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([smhdy])\s*$")


def parse_times(text: str) -> Tuple[float, ...]:
    """``"60s,1h,1d,1y"`` -> seconds after programming (units s, m, h, d, y; never negative).

    >>> parse_times("60s,1h,1d,1y")
    (60.0, 3600.0, 86400.0, 31536000.0)
    """
    items = [item for item in (text or "").split(",")]
    times = []
    for item in items:
        match = _TIME.match(item)
        if item.strip().startswith("-"):
            raise UserError(f"times count from the end of programming and cannot be negative, got {item.strip()!r}")
        if not match:
            raise UserError(f"times are NUMBER+UNIT separated by commas, units s, m, h, d, y (e.g. 60s,1h,1d,1y), "
                            f"got {item.strip()!r}")
        times.append(float(match.group(1)) * TIME_UNITS_SECONDS[match.group(2)])
    return tuple(times)


def parse_noise(text: str) -> NoiseSpec:
    """``"none"``, a preset (``pcm``, ``rram``), ``KEY=VAL,..`` or ``PRESET,KEY=VAL,..``.

    Keys are the :class:`NoiseSpec` fields; unnamed fields keep their defaults (or the preset's
    value); ``programming_poly_uS`` takes ``c0:c1:c2``, ``drift_vs_conductance`` true / false.

    >>> parse_noise("pcm,drift_nu=0").drift_nu, parse_noise("pcm,drift_nu=0").programming_poly_uS
    (0.0, (0.26348, 1.965, -1.1731))
    """
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if not items:
        raise UserError("noise is none, pcm, rram or KEY=VALUE,... (e.g. programming=0.02,read=0.01)")
    base = NoiseSpec.none()
    if "=" not in items[0]:
        preset = items.pop(0).lower()
        if preset not in NOISE_PRESETS:
            raise UserError(f"unknown noise preset {preset!r}; use one of {', '.join(NOISE_PRESETS)} "
                            f"or KEY=VALUE pairs")
        base = NOISE_PRESETS[preset]()
    known = [f.name for f in fields(NoiseSpec)]
    values: Dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise UserError(f"noise item {item!r} is not KEY=VALUE (a preset can only come first)")
        if key not in known:
            raise UserError(f"unknown noise key {key!r}; known keys: {', '.join(known)}")
        values[key] = _noise_value(key, raw.strip())
    return replace(base, **values)


def _noise_value(key: str, raw: str):
    """One noise value: a number, a ``:``-separated polynomial, true/false, or a word."""
    if key == "drift_compensation":
        return raw
    if key == "drift_vs_conductance":
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise UserError(f"noise {key} expects true or false, got {raw!r}")
        return raw.lower() in ("true", "1", "yes")
    try:
        if key == "programming_poly_uS":
            return tuple(float(c) for c in raw.split(":")) if raw else ()
        return float(raw)
    except ValueError:
        what = "numbers separated by ':'" if key == "programming_poly_uS" else "a number"
        raise UserError(f"noise {key} expects {what}, got {raw!r}") from None
