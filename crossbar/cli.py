"""``graphcost map``: map a model onto crossbar arrays; arrays, fit, throughput, latency (and accuracy).

The command parses its options into specs at the option (:data:`CROSSBAR_SIZE`, :data:`NOISE`),
builds a :class:`~.run.MapRequest`, calls :func:`~.run.run_map` and renders.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Tuple

import click

from graphcost import render
from graphcost.errors import shape_text
from graphcost.cli_options import Parsed, format_option, model_options, tracer_option
from graphcost.resolve import ModelSpec
from graphcost.runtime.executor import EXECUTORS, ProgressBar

from .data import DATA_KINDS, check_data
from .run import (DEFAULT_CROSSBAR, DEFAULT_SAMPLES, DEFAULT_SEED, DEFAULT_TRIALS, SYNTHETIC_DATA, AccuracyRequest,
                  MapRequest, run_map)
from .accuracy import WEIGHT_KINDS, check_weights
from .specs import (DEFAULT_MVM_LATENCY_NS, DEFAULT_WRITE_NS_PER_ROW, DEPTHWISE_STRATEGIES, DRIFT_COMPENSATIONS,
                    NOISE_PRESETS, TIME_UNITS_SECONDS, ArraySpec, ChipSpec, NoiseSpec, parse_crossbar, parse_noise,
                    parse_times)
from .tech import (DEFAULT_TECH, HARDWARE_PRESETS, TECH_PRESETS, HardwarePreset, TechSpec, apply_preset,
                   hardware_preset, resolve_tech)

#: ``--crossbar RxC`` -> ``(rows, cols)``; ``--noise PRESET|KEY=VAL,..`` -> :class:`NoiseSpec`.
CROSSBAR_SIZE = Parsed(parse_crossbar, "crossbar size", "RxC")
NOISE = Parsed(parse_noise, "noise", "|".join(NOISE_PRESETS) + "|KEY=VAL,..")
#: ``--tech PRESET|FILE.toml`` -> :class:`TechSpec`; ``--preset NAME`` -> :class:`HardwarePreset`.
TECH = Parsed(resolve_tech, "tech", "|".join(TECH_PRESETS) + "|FILE.toml")
PRESET = Parsed(hardware_preset, "preset", "|".join(HARDWARE_PRESETS))
#: ``--times 60s,1h,..`` -> seconds; ``--weights float|hwa|FILE`` -> the kind or an existing file.
TIMES = Parsed(parse_times, "times", "T[s|m|h|d|y],..")
WEIGHTS = Parsed(check_weights, "weights", "|".join(WEIGHT_KINDS) + "|FILE")
DATA = Parsed(check_data, "data", "|".join(DATA_KINDS))
_ARRAY = ArraySpec(*DEFAULT_CROSSBAR)


def crossbar_option(default: Optional[Tuple[int, int]] = DEFAULT_CROSSBAR, **kwargs):
    """``--crossbar RxC`` parsed into ``crossbar: (rows, cols)``."""
    text = "x".join(map(str, default)) if default else None  # shown in --help as typed, then parsed
    return click.option("--crossbar", "crossbar", type=CROSSBAR_SIZE, default=text, show_default=text is not None,
                        **kwargs)


@click.command(name="map")
@model_options
@crossbar_option(help="Array size: rows (inputs) x columns (outputs).")
@click.option("--arrays", type=click.IntRange(min=1), default=None, metavar="M",
              help="Arrays on the chip (default: as many as the graph needs).")
@click.option("--weight-bits", type=click.IntRange(min=1), default=_ARRAY.weight_bits, show_default=True,
              help="Bits per weight.")
@click.option("--cell-bits", type=click.IntRange(min=1), default=_ARRAY.cell_bits, show_default=True,
              help="Bits stored per cell (weights are sliced).")
@click.option("--differential/--no-differential", default=_ARRAY.differential, show_default=True,
              help="Signed weights as a pair of cells (two columns).")
@click.option("--dac-bits", type=click.IntRange(min=1), default=_ARRAY.dac_bits, show_default=True,
              help="Input DAC resolution (simulation).")
@click.option("--adc-bits", type=click.IntRange(min=1), default=_ARRAY.adc_bits, show_default=True,
              help="Output ADC resolution (simulation).")
@click.option("--analog-bias", is_flag=True, help="Biases as an extra array row (default: added digitally).")
@click.option("--depthwise", type=click.Choice(DEPTHWISE_STRATEGIES), default=DEPTHWISE_STRATEGIES[0],
              show_default=True,
              help="Grouped / depthwise convs: block-diagonal with zeros, packed groups, or time-multiplexed.")
@click.option("--mvm-latency-ns", type=float, default=DEFAULT_MVM_LATENCY_NS, show_default=True,
              help="Time of one matrix-vector multiplication of one array.")
@click.option("--write-ns-per-row", type=float, default=DEFAULT_WRITE_NS_PER_ROW, show_default=True,
              help="Time to program one array row (program-and-verify), for weight rewrites.")
@click.option("--replicate", is_flag=True,
              help="Copy slow layers onto spare arrays (balance within --arrays, or reach --target-fps).")
@click.option("--target-fps", type=float, default=None, help="With --replicate: frame rate to provision arrays for.")
@click.option("--noise", type=NOISE, default=next(iter(NOISE_PRESETS)), show_default=True,
              help="Device noise (relative to g_max): programming, read, stuck_at_on, stuck_at_off, drift_nu, "
                   "t_seconds.")
@click.option("--drift-compensation", type=click.Choice(DRIFT_COMPENSATIONS), default=None,
              help="Rescale each layer's outputs by a reference read at each time (global, the default of the "
                   "noise presets) or not (none).")
@click.option("--accuracy", is_flag=True, help="Also simulate the mapped network and report mIoU (top-1 for "
                                                "classifiers).")
@click.option("--times", type=TIMES, default=None,
              help="With --accuracy: evaluate at these times after programming (units s, m, h, d, y), e.g. "
                   "60s,1h,1d,1y (default: the noise's t_seconds).")
@click.option("--data", type=DATA, default=SYNTHETIC_DATA, show_default=True,
              help="Evaluation data for --accuracy.")
@click.option("--samples", type=click.IntRange(min=1), default=DEFAULT_SAMPLES, show_default=True,
              help="Images for --accuracy.")
@click.option("--trials", type=click.IntRange(min=1), default=DEFAULT_TRIALS, show_default=True,
              help="Noise draws (Monte-Carlo trials) for --accuracy.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Seed of every random draw.")
@click.option("--weights", "weights_path", type=WEIGHTS, default=None,
              help="Weights to load: the shipped float or hardware-aware (hwa) checkpoint of a zoo model, or a "
                   "state dict file (default with --accuracy: the shipped float checkpoint, where one fits).")
@click.option("--executor", "executor_kind", type=click.Choice(EXECUTORS), default=EXECUTORS[0], show_default=True,
              help="Where --accuracy trials run.")
@click.option("--address", default=None, help="Ray cluster address (with --executor ray).")
@click.option("--tech", type=TECH, default=DEFAULT_TECH, show_default=True,
              help="Technology of the energy and area model: a preset or a TOML file (base = PRESET, FIELD = VALUE).")
@click.option("--preset", type=PRESET, default=None,
              help="Array, bits, tech and MVM / write times of a published setup (overrides those options).")
@click.option("--per-layer", is_flag=True, help="Also list every mapped layer.")
@tracer_option
@format_option
def map_command(spec: ModelSpec, executor_kind: str, address: Optional[str], per_layer: bool, fmt: str,
                **hardware):
    """Map MODEL onto crossbar arrays: arrays used, fit, throughput, latency, energy, power and area
    (per anytime output too)."""
    request = map_request(spec, executor=executor_kind, address=address, **hardware)
    trials = request.accuracy.trials if request.accuracy else 0
    show_bar = None if fmt == "table" else False  # a bar only on a terminal, and never over JSON / CSV
    with ProgressBar("simulating trials", trials, enabled=show_bar) as bar:
        result = run_map(request, progress=bar)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    _render(result.performance, result.to_dict(), per_layer, fmt, result.energy)


def map_request(spec: ModelSpec, crossbar: Tuple[int, int], arrays: Optional[int], weight_bits: int, cell_bits: int,
                differential: bool, dac_bits: int, adc_bits: int, analog_bias: bool, depthwise: str,
                mvm_latency_ns: float, write_ns_per_row: float, replicate: bool, target_fps: Optional[float],
                noise: NoiseSpec, drift_compensation: Optional[str], accuracy: bool,
                times: Optional[Tuple[float, ...]], data: str, samples: int, trials: int, seed: int,
                weights_path: Optional[str], tech: TechSpec, preset: Optional[HardwarePreset], tracer: str = "auto",
                executor: str = EXECUTORS[0], address: Optional[str] = None) -> MapRequest:
    """The :class:`MapRequest` of ``graphcost map``'s parsed options (``graphcost view`` shares them)."""
    array = ArraySpec(*crossbar, weight_bits=weight_bits, cell_bits=cell_bits, differential=differential,
                      dac_bits=dac_bits, adc_bits=adc_bits, analog_bias=analog_bias)
    chip = ChipSpec(arrays=arrays, mvm_latency_ns=mvm_latency_ns, write_ns_per_row=write_ns_per_row,
                    replicate=replicate)
    if preset is not None:
        array, chip, tech = apply_preset(preset, chip)
    if drift_compensation is not None:
        noise = replace(noise, drift_compensation=drift_compensation)
    return MapRequest(
        model=spec, array=array, chip=chip, depthwise=depthwise, target_fps=target_fps, weights=weights_path,
        accuracy=AccuracyRequest(noise, data, samples, trials, seed, times or ()) if accuracy else None,
        executor=executor, address=address, tech=tech, tracer=tracer)


# --------------------------------------------------------------------------- rendering
def _seconds(value: float, *, exact: bool = False) -> str:
    """``0.00292`` -> ``'2.92 ms'``; ``exact`` also gives plain seconds: ``'0.00292 s (2.92 ms)'``."""
    if value == 0 or value >= 1:
        return f"{value:.4g} s"
    for unit, scale in (("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if value >= scale or unit == "ns":
            short = f"{value / scale:.3g} {unit}"
            return f"{value:.4g} s ({short})" if exact else short
    raise AssertionError  # pragma: no cover


def _energy_rows(result: dict) -> list:
    e, a = result["energy"], result["area"]
    parts = ", ".join(f"{k} {v / e['per_frame_j']:.0%}" for k, v in e["breakdown_j"].items()
                      if e["per_frame_j"] and v / e["per_frame_j"] >= 0.005)
    return [
        (f"energy per frame ({e['tech']})", f"{e['per_frame_j'] * 1e6:,.4g} uJ ({parts})"),
        ("power (at the frame rate)", f"{e['power_w']:,.4g} W"),
        ("TOPS/W (2 ops per MAC)", f"{e['tops_per_w']:,.4g}"),
        ("area (arrays in use + periphery)", f"{a['total_mm2']:,.4g} mm2 ({a['adcs']:,} ADCs)"),
    ]


_METRIC_LABELS = {"top1": "top-1", "miou": "mIoU"}


def _render(perf, result: dict, per_layer: bool, fmt: str, energy=None) -> None:
    if fmt == "json":
        click.echo(render.dumps(result))
        return
    if fmt == "csv":
        frame = perf.to_frame() if per_layer else perf.outputs_frame()
        click.echo(render.frame_csv(frame), nl=False)
        return
    m = perf.mapping
    con = render.console()
    acc = result.get("accuracy")
    metric = "top1" if acc and "top1" in acc else "miou"
    shape = shape_text(m.input_shape)
    con.print(render.table(f"{m.model} @ {shape} on {m.array.label} crossbars", ["metric", "value"],
                           _summary_rows(perf, result, energy, acc, metric)))
    if acc and len(acc.get("times", [])) > 1:
        _print_times(con, acc, metric)
    if len(perf.outputs) > 1:
        _print_outputs(con, perf, energy, acc, metric)
    if per_layer:
        _print_layers(con, perf, energy)
    for note in m.notes:
        click.echo(f"note: {note}", err=True)


def _summary_rows(perf, result: dict, energy, acc, metric: str) -> list:
    m = perf.mapping
    a = m.array
    label = _METRIC_LABELS[metric]
    chip = f"{perf.arrays_available} arrays" if perf.arrays_available is not None else "unlimited arrays"
    summary = [
        ("crossbar", f"{a.label}, {a.weight_bits}-bit weights in {a.slices} x {a.cell_bits}-bit cells"
                     f"{', differential' if a.differential else ''}, {'analog' if a.analog_bias else 'digital'} bias"),
        ("chip", f"{chip}, {perf.chip.mvm_latency_ns:g} ns per MVM"),
        ("arrays used", f"{perf.arrays_used:,}" + (f" of {perf.arrays_available:,}"
                                                    if perf.arrays_available is not None else "")),
        ("min arrays to keep every layer resident", f"{perf.arrays_needed:,}"),
        ("fits", "yes" if perf.fits else "no: weights are rewritten every frame"),
        ("throughput", f"{perf.throughput_fps:,.4g} frames/s"),
        ("latency (last output)", _seconds(perf.latency_s, exact=True)),
        ("utilization (cells holding weights)", f"{m.utilization:.1%}"),
        ("bottleneck", perf.bottleneck),
        ("unique weight layers / calls", f"{len(m.layers)} / {len(m.calls)}"),
    ]
    if not perf.fits:
        summary += [
            ("weight rewrites per frame", f"{perf.rewritten_arrays:,} arrays, {_seconds(perf.rewrite_s, exact=True)}"),
            ("throughput if it fitted", f"{perf.resident_fps:,.4g} frames/s ({perf.collapse:,.1f}x collapse)"),
        ]
    if perf.target_fps is not None:
        summary.append((f"arrays for {perf.target_fps:g} frames/s",
                        f"{perf.arrays_for_target:,}" + ("" if perf.target_reachable else
                                                         " (not reachable: a layer cannot be split further)")))
    if m.depthwise != "dense" or any(layer.groups > 1 for layer in m.layers):
        extra = sum(layer.extra_cycles for layer in m.layers)
        summary.append(("grouped convs", f"{m.depthwise}, {extra:,} extra MVM cycles per frame"))
    if energy is not None:
        summary += _energy_rows(result)
    if acc:
        summary.append((f"{label} (last output, mean over trials)", f"{acc[metric]:.4f} +- {acc['std']:.4f}"))
        summary.append((f"fidelity {label} (vs. the float model)", f"{acc['fidelity_' + metric]:.4f}"))
        if isinstance(acc.get(f"float_{metric}"), (int, float)):
            summary.append((f"{label} of the float model", f"{acc['float_' + metric]:.4f}"))
    return summary


def _print_times(con, acc, metric: str) -> None:
    label = _METRIC_LABELS[metric]
    rows = [[_duration(t["t_seconds"]), f"{t[metric]:.4f} +- {t['std']:.4f}", f"{t['fidelity_' + metric]:.4f}",
             f"{t['float_' + metric]:.4f}"] for t in acc["times"]]
    con.print(render.table("accuracy over time after programming (last output)",
                           ["time", label, f"fidelity {label}", f"float {label}"], rows))


def _print_outputs(con, perf, energy, acc, metric: str) -> None:
    label = _METRIC_LABELS[metric]
    outs = acc.get("outputs") if acc else None
    rows = []
    for i, o in enumerate(perf.outputs):
        row = [o.index, _seconds(o.latency_s), f"{o.arrays_used:,}"]
        if energy is not None:
            row.append(f"{energy.per_output_j[i] * 1e6:,.4g} uJ")
        if outs:
            row.append(_output_accuracy(outs[i], metric) if i < len(outs) else "")
        rows.append(row)
    columns = ["output", "latency", "arrays"] + (["energy"] if energy is not None else []) + ([label] if outs else [])
    con.print(render.table("anytime outputs", columns, rows))


def _print_layers(con, perf, energy) -> None:
    m = perf.mapping
    perf_of = {p.name: p for p in perf.layers}
    energy_of = {le.name: le.energy_j for le in energy.layers} if energy is not None else {}
    extra = any(layer.extra_cycles for layer in m.layers)
    rows = []
    for layer in m.layers:
        p = perf_of[layer.name]
        rows.append([layer.name, layer.op, layer.calls, layer.rows, layer.cols, layer.tiles, p.replicas,
                     f"{layer.utilization:.1%}", f"{layer.mvms:,}"]
                    + ([f"{layer.extra_cycles:,}"] if extra else [])
                    + [_seconds(p.stage_time_s), "yes" if p.resident else "swapped"]
                    + ([f"{energy_of[layer.name] * 1e6:,.4g} uJ"] if energy_of else []))
    columns = (["layer", "op", "calls", "rows", "cols", "tiles", "copies", "util", "MVMs"]
               + (["extra cycles"] if extra else []) + ["stage time", "resident"] + (["energy"] if energy_of else []))
    con.print(render.table("layers (MVMs and stage time per frame)", columns, rows))


def _output_accuracy(value, metric: str = "miou") -> str:
    if isinstance(value, dict):
        score = value.get(metric)
        return f"{score:.4f}" if isinstance(score, (int, float)) else str(value)
    if isinstance(value, (int, float)):
        return f"{value:.4f}"
    return str(value)


def _duration(seconds: float) -> str:
    """``86400.0`` -> ``'1 d'``: the largest ``--times`` unit that divides it, else seconds."""
    for unit, size in reversed(list(TIME_UNITS_SECONDS.items())):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"
