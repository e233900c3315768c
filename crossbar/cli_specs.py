"""Hardware options parsed into specs at the option: ``graphcost map``, ``view`` and ``sweep`` share them.

Each group declares the options of one spec and hands the command body that spec, built and
validated, instead of the loose values: :data:`ARRAY` -> ``array: ArraySpec`` (``None`` when the
command's ``--crossbar`` has no default and none is given), :data:`CHIP` -> ``chip: ChipSpec``,
:data:`NOISE_SPEC` -> ``noise: NoiseSpec``, :data:`TECH_SPEC` -> ``tech: TechSpec`` and ``preset``,
:data:`LANGUAGE` -> ``generate: GenerateSpec | None`` and ``attention``. A value a spec refuses
becomes a ``BadParameter`` naming the group's flags; the library never speaks in flags.

    @click.command()
    @ARRAY.options()
    @CHIP.options()
    def cmd(array, chip): ...

A group is a decorator factory: ``ARRAY.options(crossbar_default=None)`` for a command that maps
only when asked (``view``, ``sweep``).
"""
from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import click

from graphcost.cli_options import Parsed
from graphcost.errors import UserError

from .generation import GenerateSpec, parse_generate
from .mapping import ATTENTION_KINDS
from .run import DEFAULT_CROSSBAR
from .specs import (DEFAULT_LINK_BYTES_PER_S, DEFAULT_LINK_ENERGY_J_PER_BIT, DEFAULT_MVM_LATENCY_NS,
                    DEFAULT_WRITE_NS_PER_ROW, DRIFT_COMPENSATIONS, NOISE_PRESETS, ArraySpec, ChipSpec, NoiseSpec,
                    parse_crossbar, parse_noise)
from .tech import DEFAULT_TECH, HARDWARE_PRESETS, TECH_PRESETS, hardware_preset, resolve_tech

#: ``--crossbar RxC`` -> ``(rows, cols)``; ``--noise PRESET|KEY=VAL,..`` -> :class:`NoiseSpec`.
CROSSBAR_SIZE = Parsed(parse_crossbar, "crossbar size", "RxC")
NOISE = Parsed(parse_noise, "noise", "|".join(NOISE_PRESETS) + "|KEY=VAL,..")
#: ``--tech PRESET|FILE.toml`` -> :class:`TechSpec`; ``--preset NAME`` -> :class:`HardwarePreset`.
TECH = Parsed(resolve_tech, "tech", "|".join(TECH_PRESETS) + "|FILE.toml")
PRESET = Parsed(hardware_preset, "preset", "|".join(HARDWARE_PRESETS))
#: ``--generate P+G`` -> ``(P, G)``.
GENERATE = Parsed(parse_generate, "generate", "P+G")
_ARRAY = ArraySpec(*DEFAULT_CROSSBAR)


def crossbar_option(default: Optional[Tuple[int, int]] = DEFAULT_CROSSBAR, **kwargs):
    """``--crossbar RxC`` parsed into ``crossbar: (rows, cols)``."""
    text = "x".join(map(str, default)) if default else None  # shown in --help as typed, then parsed
    return click.option("--crossbar", "crossbar", type=CROSSBAR_SIZE, default=text, show_default=text is not None,
                        **kwargs)


class SpecGroup:
    """Options that together make one (or a few) specs: ``build(**values)`` returns the keyword
    arguments the command body gets in place of the options' values."""

    def __init__(self, flags: str, make_options: Callable[..., Sequence[Callable]], build: Callable[..., Dict]):
        self.flags, self._make_options, self._build = flags, make_options, build

    def options(self, **settings) -> Callable:
        options = self._make_options(**settings)

        def decorator(f: Callable) -> Callable:
            for option in reversed(options):
                f = option(f)
            names = [p.name for p in f.__click_params__[-len(options):]]

            @functools.wraps(f)
            def wrapper(*args, **kwargs):
                values = {name: kwargs.pop(name) for name in names}
                try:
                    kwargs.update(self._build(**values))
                except UserError as exc:
                    raise click.BadParameter(str(exc), param_hint=self.flags) from None
                return f(*args, **kwargs)
            return wrapper
        return decorator


# --------------------------------------------------------------------------- the array
def _array_options(crossbar_default: Optional[Tuple[int, int]] = DEFAULT_CROSSBAR,
                   crossbar_help: str = "Array size: rows (inputs) x columns (outputs).") -> list:
    return [
        crossbar_option(default=crossbar_default, help=crossbar_help),
        click.option("--weight-bits", type=click.IntRange(min=1), default=_ARRAY.weight_bits, show_default=True,
                     help="Bits per weight."),
        click.option("--cell-bits", type=click.IntRange(min=1), default=_ARRAY.cell_bits, show_default=True,
                     help="Bits stored per cell (weights are sliced)."),
        click.option("--differential/--no-differential", default=_ARRAY.differential, show_default=True,
                     help="Signed weights as a pair of cells (two columns)."),
        click.option("--dac-bits", type=click.IntRange(min=1), default=_ARRAY.dac_bits, show_default=True,
                     help="Input DAC resolution (simulation)."),
        click.option("--adc-bits", type=click.IntRange(min=1), default=_ARRAY.adc_bits, show_default=True,
                     help="Output ADC resolution (simulation)."),
        click.option("--analog-bias", is_flag=True, help="Biases as an extra array row (default: added digitally)."),
    ]


def _build_array(crossbar, **cells) -> Dict[str, Any]:
    return {"array": None if crossbar is None else ArraySpec(*crossbar, **cells)}


#: ``--crossbar``, ``--weight-bits``, ``--cell-bits``, ``--differential``, ``--dac-bits``, ``--adc-bits``,
#: ``--analog-bias`` -> ``array: ArraySpec``
ARRAY = SpecGroup("--crossbar / bits options", _array_options, _build_array)


# --------------------------------------------------------------------------- the chip
def _chip_options() -> list:
    return [
        click.option("--arrays", type=click.IntRange(min=1), default=None, metavar="M",
                     help="Arrays on the chip (default: as many as the graph needs)."),
        click.option("--mvm-latency-ns", type=float, default=DEFAULT_MVM_LATENCY_NS, show_default=True,
                     help="Time of one matrix-vector multiplication of one array."),
        click.option("--write-ns-per-row", type=float, default=DEFAULT_WRITE_NS_PER_ROW, show_default=True,
                     help="Time to program one array row (program-and-verify), for weight rewrites."),
        click.option("--replicate", is_flag=True,
                     help="Copy slow layers onto spare arrays (balance within --arrays, or reach --target-fps)."),
        click.option("--chip-arrays", "arrays_per_chip", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Arrays of one chip: a larger model is spread over several chips, cut at layer "
                          "boundaries (default: one chip holds everything)."),
        click.option("--link-pj-per-bit", type=float, default=DEFAULT_LINK_ENERGY_J_PER_BIT * 1e12,
                     show_default=True, help="Chip-to-chip link energy per bit (UCIe standard package)."),
        click.option("--link-gb-per-s", type=float, default=DEFAULT_LINK_BYTES_PER_S / 1e9, show_default=True,
                     help="Chip-to-chip link bandwidth, GB/s (a x16 UCIe module)."),
    ]


def _build_chip(arrays, mvm_latency_ns, write_ns_per_row, replicate, arrays_per_chip, link_pj_per_bit,
                link_gb_per_s) -> Dict[str, Any]:
    return {"chip": ChipSpec(arrays=arrays, mvm_latency_ns=mvm_latency_ns, write_ns_per_row=write_ns_per_row,
                             replicate=replicate, arrays_per_chip=arrays_per_chip,
                             link_energy_j_per_bit=link_pj_per_bit * 1e-12, link_bytes_per_s=link_gb_per_s * 1e9)}


#: ``--arrays``, ``--mvm-latency-ns``, ``--write-ns-per-row``, ``--replicate``, ``--chip-arrays``, link -> ``chip``
CHIP = SpecGroup("--arrays / chip options", _chip_options, _build_chip)


# --------------------------------------------------------------------------- noise and technology
def _noise_options(noise_default: str = next(iter(NOISE_PRESETS))) -> list:
    return [
        click.option("--noise", type=NOISE, default=noise_default, show_default=True,
                     help="Device noise (relative to g_max): programming, read, stuck_at_on, stuck_at_off, drift_nu, "
                          "t_seconds."),
        click.option("--drift-compensation", type=click.Choice(DRIFT_COMPENSATIONS), default=None,
                     help="Rescale each layer's outputs by a reference read at each time (global, the default of "
                          "the noise presets) or not (none)."),
    ]


def _build_noise(noise: NoiseSpec, drift_compensation: Optional[str]) -> Dict[str, Any]:
    if drift_compensation is not None:
        noise = replace(noise, drift_compensation=drift_compensation)
    return {"noise": noise}


#: ``--noise``, ``--drift-compensation`` -> ``noise: NoiseSpec``
NOISE_SPEC = SpecGroup("--noise / --drift-compensation", _noise_options, _build_noise)


def _tech_options() -> list:
    return [
        click.option("--tech", type=TECH, default=DEFAULT_TECH, show_default=True,
                     help="Technology of the energy and area model: a preset or a TOML file (base = PRESET, "
                          "FIELD = VALUE)."),
        click.option("--preset", type=PRESET, default=None,
                     help="Array, bits, tech and MVM / write times of a published setup (overrides those options)."),
    ]


#: ``--tech``, ``--preset`` -> ``tech: TechSpec``, ``preset: HardwarePreset | None`` (applied over array and chip)
TECH_SPEC = SpecGroup("--tech / --preset", _tech_options, lambda tech, preset: {"tech": tech, "preset": preset})


# --------------------------------------------------------------------------- language models
def _language_options() -> list:
    return [
        click.option("--generate", type=GENERATE, default=None,
                     help="A language model generating tokens: prefill P prompt tokens, then G decode steps "
                          "against a KV cache (time to first token, tokens/s, energy per token)."),
        click.option("--batch", type=click.IntRange(min=1), default=None, metavar="B",
                     help="With --generate: sequences generated at once (default 1)."),
        click.option("--attention", type=click.Choice(ATTENTION_KINDS), default=ATTENTION_KINDS[0], show_default=True,
                     help="Where attention's QK^T and AV run: the digital unit, or analog gain-cell arrays "
                          "(Leroux et al., 2025)."),
    ]


def _build_language(generate: Optional[Tuple[int, int]], batch: Optional[int], attention: str) -> Dict[str, Any]:
    if batch is not None and generate is None:
        raise UserError("--batch is the sequences of --generate; give --generate P+G too")
    spec = None if generate is None else GenerateSpec(*generate, batch=batch or 1)
    return {"generate": spec, "attention": attention}


#: ``--generate``, ``--batch``, ``--attention`` -> ``generate: GenerateSpec | None``, ``attention``
LANGUAGE = SpecGroup("--generate / --batch / --attention", _language_options, _build_language)
