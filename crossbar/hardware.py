"""Hardware as sweep axes: ``hw.``-prefixed keys of ``graphcost sweep --grid`` to specs, and the
hardware columns of one swept point (mapping, fit, throughput, energy, area).

A key names a field of :class:`~.specs.ArraySpec` (``hw.adc_bits``, ``hw.cell_bits``, ...), the
array size (``hw.crossbar=128x128``), the chip (``hw.arrays``, ``hw.mvm_latency_ns``,
``hw.write_ns_per_row``), the technology preset (``hw.tech=rram-22nm``) or any numeric field of
:class:`~.tech.TechSpec` (``hw.columns_per_adc``, ``hw.adc_power_w_per_step``, ...).

>>> array, chip, tech = hardware({"hw.crossbar": "128x128", "hw.adc_bits": 6, "hw.columns_per_adc": 4})
>>> array.label, array.adc_bits, chip.arrays, tech.columns_per_adc
('128x128', 6, None, 4)
>>> try:
...     check_hardware_axes([("N", (1, 2)), ("hw.adc_bit", (4,))])
... except UserError as exc:
...     print(str(exc)[:60])
unknown hardware key 'hw.adc_bit'; known: hw.activation_bits
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from graphcost.errors import UserError

from .energy import area, energy
from .mapping import TraceMapper
from .perf import performance
from .specs import DEPTHWISE_STRATEGIES, ArraySpec, ChipSpec, parse_crossbar
from .tech import DEFAULT_TECH, TechSpec, tech_preset

HW_PREFIX = "hw."
_ARRAY_KEYS = tuple(f.name for f in fields(ArraySpec) if f.name not in ("rows", "cols"))
_CHIP_KEYS = ("arrays", "mvm_latency_ns", "write_ns_per_row")
_TECH_KEYS = tuple(f.name for f in fields(TechSpec) if f.name not in ("name", "adc_kind") + _CHIP_KEYS)
#: Every ``hw.`` key a sweep grid accepts (without the prefix).
HW_KEYS = ("crossbar", "tech") + _ARRAY_KEYS + _CHIP_KEYS + _TECH_KEYS
#: The array size of a point that sweeps hardware but names no ``hw.crossbar`` / ``--crossbar``.
DEFAULT_CROSSBAR = (256, 256)


def is_hardware_key(key: str) -> bool:
    return key.startswith(HW_PREFIX)


def _crossbar(value: Any) -> Tuple[int, int]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    return parse_crossbar(str(value))


def hardware(values: Mapping[str, Any], crossbar: Optional[Sequence[int]] = None, arrays: Optional[int] = None,
             tech: str = DEFAULT_TECH) -> Tuple[ArraySpec, ChipSpec, TechSpec]:
    """The array, chip and tech of one point: ``values`` (``hw.KEY: value``) over the defaults
    ``crossbar`` (rows, cols), ``arrays`` and ``tech``. An unknown key or a bad value is a
    :class:`UserError` naming it."""
    plain = {key[len(HW_PREFIX):]: value for key, value in values.items()}
    unknown = [k for k in plain if k not in HW_KEYS]
    if unknown:
        raise UserError(f"unknown hardware key '{HW_PREFIX}{unknown[0]}'; known: "
                        + ", ".join(HW_PREFIX + k for k in sorted(HW_KEYS)))
    rows, cols = _crossbar(plain.get("crossbar", crossbar or DEFAULT_CROSSBAR))
    array = ArraySpec(rows, cols, **{k: plain[k] for k in _ARRAY_KEYS if k in plain})
    chip = ChipSpec(**{"arrays": arrays, **{k: plain[k] for k in _CHIP_KEYS if k in plain}})
    spec = tech_preset(str(plain.get("tech", tech)))
    tech_values = {k: plain[k] for k in _TECH_KEYS if k in plain}
    return array, chip, (replace(spec, **tech_values) if tech_values else spec)


def check_hardware_axes(grid: Sequence[Tuple[str, Sequence[Any]]], crossbar: Optional[Sequence[int]] = None
                        ) -> None:
    """Refuse, before any work, an unknown ``hw.`` key or a value no spec accepts."""
    for key, values in grid:
        if not is_hardware_key(key):
            continue
        for value in values:
            try:
                hardware({key: value}, crossbar)
            except UserError as exc:
                message = str(exc)
                if not message.startswith("unknown hardware key"):
                    message = f"{key}={value!r}: {message}"
                raise UserError(message) from None



def fixed_axes(values: Mapping[str, Any], tech: Optional[TechSpec] = None) -> Tuple[Tuple[str, Tuple[Any, ...]], ...]:
    """One-value ``hw.`` grid axes that give every point of a sweep the array / chip fields ``values``
    (``{"adc_bits": 6, "mvm_latency_ns": 50.0}``) and the technology ``tech``: a preset is its ``hw.tech``, a
    preset with changed fields (a TOML tech, ``base+custom``) its base's ``hw.tech`` and one axis per
    changed field. A field no ``hw.`` key sets is a :class:`UserError` naming it.

    >>> from graphcost.crossbar.tech import tech_from_mapping
    >>> fixed_axes({"adc_bits": 6}, tech_from_mapping({"base": "pcm-14nm", "columns_per_adc": 4}))
    (('hw.adc_bits', (6,)), ('hw.tech', ('pcm-14nm',)), ('hw.columns_per_adc', (4,)))
    """
    unknown = [k for k in values if k not in _ARRAY_KEYS + _CHIP_KEYS]
    if unknown:
        raise UserError(f"{unknown[0]!r} is no hardware field of a sweep point; known: " + ", ".join(HW_KEYS))
    axes = [(HW_PREFIX + k, (v,)) for k, v in values.items()]
    if tech is None:
        return tuple(axes)
    base = tech_preset(tech.name.split("+")[0])
    changed = [f.name for f in fields(TechSpec) if f.name != "name" and getattr(tech, f.name) != getattr(base, f.name)]
    fixed = [k for k in changed if k not in _TECH_KEYS]
    if fixed:
        raise UserError(f"the technology's {fixed[0]!r} cannot be set per sweep point (hw. keys set: "
                        + ", ".join(_TECH_KEYS) + ")")
    return tuple(axes + [(HW_PREFIX + "tech", (base.name,))] + [(HW_PREFIX + k, (getattr(tech, k),)) for k in changed])


class HardwareColumns:
    """:func:`hardware_columns` of one trace at many hardware points, each piece of work done once: the mapping
    per array geometry (:class:`~.mapping.TraceMapper`), the performance per array, chip and technology
    (the digital unit's time depends on it)."""

    def __init__(self, trace, depthwise: str = DEPTHWISE_STRATEGIES[0]) -> None:
        self.mapper = TraceMapper(trace)
        self.depthwise = depthwise
        self._perf: Dict[Tuple[ArraySpec, ChipSpec, TechSpec], Any] = {}

    def __call__(self, array: ArraySpec, chip: ChipSpec, tech: TechSpec) -> Dict[str, Any]:
        key = (array, chip, tech)
        perf = self._perf.get(key)
        if perf is None:  # as graphcost map: the digital unit timed too, so the technology is part of the key
            perf = self._perf[key] = performance(self.mapper(array, self.depthwise), chip, tech=tech)
        mapping = perf.mapping
        e, a = energy(perf, tech), area(perf, tech)
        return {"crossbar": array.label, "arrays_used": mapping.arrays_used,
                "utilization": round(float(mapping.utilization), 6), "arrays_needed": perf.arrays_needed,
                "fits": perf.fits, "throughput_fps": float(perf.throughput_fps), "latency_s": float(perf.latency_s),
                "energy_j": float(e.per_frame_j), "power_w": float(e.power_w), "tops_per_w": float(e.tops_per_w),
                "area_mm2": float(a.total_mm2), "tech": tech.name}


def hardware_columns(trace, array: ArraySpec, chip: ChipSpec, tech: TechSpec,
                     depthwise: str = DEPTHWISE_STRATEGIES[0]) -> Dict[str, Any]:
    """A swept point's hardware columns: arrays, utilisation, fit, throughput, latency, energy per
    frame, power, TOPS/W and area (:class:`HardwareColumns` shares the work between many points)."""
    return HardwareColumns(trace, depthwise)(array, chip, tech)
