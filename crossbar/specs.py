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


@dataclass(frozen=True)
class ChipSpec:
    """A chip of ``arrays`` identical arrays (``None``: as many as the graph needs).

    * ``mvm_latency_ns`` — time of one MVM on one array; all arrays work in parallel.
    * ``write_ns_per_row`` — time to (re)program one row of an array (all its columns in
      parallel); a whole array takes ``rows x write_ns_per_row``.
    * ``replicate`` — copy the slowest layers onto spare arrays to balance the pipeline
      (or to reach a target frame rate, see ``perf.performance``).
    """

    arrays: Optional[int] = None
    mvm_latency_ns: float = DEFAULT_MVM_LATENCY_NS
    write_ns_per_row: float = DEFAULT_WRITE_NS_PER_ROW
    replicate: bool = False

    def __post_init__(self):
        if self.arrays is not None:
            _check_int("chip arrays", self.arrays, 1)
        _check_number("mvm latency (ns)", self.mvm_latency_ns, strict=True)
        _check_number("write time per row (ns)", self.write_ns_per_row)

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------- device noise
@dataclass(frozen=True)
class NoiseSpec:
    """Non-idealities of the analog cells, all relative to ``g_max`` (the simulator's docstring,
    ``crossbar/sim/``, gives the exact math it applies):

    * ``programming`` — std of the Gaussian error of a programmed conductance, drawn once per
      trial when the weights are written.
    * ``read`` — std of the Gaussian read noise of a conductance, drawn afresh for every MVM.
    * ``stuck_at_on`` / ``stuck_at_off`` — probability that a cell is stuck at ``g_max`` /
      at 0 (a device failure), drawn once per trial.
    * ``drift_nu`` — drift exponent: ``g(t) = g(t0) * (t / t0) ** -drift_nu`` with
      ``t0 = 20 s`` (aihwkit's PCM ``t_0``); ``t_seconds`` — time since programming at which
      inference runs.

    ``NoiseSpec.none()`` is an ideal device; ``NoiseSpec.pcm()`` has the magnitudes of
    aihwkit's ``PCMLikeNoiseModel`` (fitted on 1M IBM PCM devices, Nandakumar et al., ICECS
    2019): programming std ``(0.26348 + 1.9650 g - 1.1731 g^2) uS`` at ``g_max = 25 uS`` is
    3.8 % of ``g_max`` at half scale and 4.2 % at full scale; 1/f read noise ``Q_s = 0.0088``
    of ``g`` at full scale (~1 % of ``g_max``); drift exponent mean ``max(0.049, 0.0244 -
    0.0155 ln g)`` i.e. ~0.05; and aihwkit's usual evaluation time of one hour.
    ``NoiseSpec.rram()`` adds the stuck-at fault rates measured on a 4 Mb HfO2 RRAM chip by
    C.-Y. Chen et al. (IEEE Trans. Computers 64(1), 2015: 1.75 % stuck-at-0 i.e. off, 9.04 %
    stuck-at-1 i.e. on) to PCM-like analog noise.
    """

    programming: float = 0.0
    read: float = 0.0
    stuck_at_on: float = 0.0
    stuck_at_off: float = 0.0
    drift_nu: float = 0.0
    t_seconds: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            maximum = 1.0 if f.name.startswith("stuck_at") else None
            _check_number(f"noise {f.name}", value, maximum=maximum)
        if self.stuck_at_on + self.stuck_at_off > 1.0:
            raise UserError("noise stuck_at_on + stuck_at_off must be <= 1 (they are probabilities)")

    @classmethod
    def none(cls) -> "NoiseSpec":
        """An ideal device: no noise at all (only quantisation remains)."""
        return cls()

    @classmethod
    def pcm(cls) -> "NoiseSpec":
        """aihwkit-PCM-like magnitudes (see the class docstring for the derivation)."""
        return cls(programming=0.038, read=0.01, drift_nu=0.05, t_seconds=3600.0)

    @classmethod
    def rram(cls) -> "NoiseSpec":
        """PCM-like analog noise plus RRAM stuck-at faults (C.-Y. Chen et al., 2015), no drift."""
        return cls(programming=0.038, read=0.01, stuck_at_on=0.0904, stuck_at_off=0.0175)

    @property
    def is_ideal(self) -> bool:
        return self == NoiseSpec()

    def to_dict(self) -> Dict[str, float]:
        return asdict(self)


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


def parse_noise(text: str) -> NoiseSpec:
    """``"none"``, a preset (``pcm``, ``rram``), ``KEY=VAL,..`` or ``PRESET,KEY=VAL,..``.

    Keys are the :class:`NoiseSpec` fields; unnamed fields are 0 (or the preset's value).

    >>> parse_noise("pcm,drift_nu=0").drift_nu, parse_noise("pcm,drift_nu=0").programming
    (0.0, 0.038)
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
    values: Dict[str, float] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise UserError(f"noise item {item!r} is not KEY=VALUE (a preset can only come first)")
        if key not in known:
            raise UserError(f"unknown noise key {key!r}; known keys: {', '.join(known)}")
        try:
            values[key] = float(raw)
        except ValueError:
            raise UserError(f"noise {key} expects a number, got {raw.strip()!r}") from None
    return replace(base, **values)
