"""``graphcost map``: map a model onto crossbar arrays; arrays, fit, throughput, latency (and accuracy).

The command parses its options into specs at the option (the groups of :mod:`.cli_specs`: ``array``,
``chip``, ``noise``, ``tech``, ``generate``), builds a :class:`~.run.MapRequest`, calls
:func:`~.run.run_map` and renders.
"""
from __future__ import annotations

from typing import Optional, Tuple

import click

from graphcost import render
from graphcost.errors import shape_text
from graphcost.cli_options import Parsed, format_option, model_options, tracer_option
from graphcost.errors import shape_text
from graphcost.resolve import ModelSpec
from graphcost.runtime.executor import EXECUTORS, ProgressBar

from .data import DATA_KINDS, check_data
from .accuracy import WEIGHT_KINDS, check_weights
from .cli_specs import (ARRAY, CHIP, CROSSBAR_SIZE, LANGUAGE, NOISE, NOISE_SPEC, PRESET, TECH, TECH_SPEC,  # noqa: F401
                        crossbar_option)
from .generation import GenerateSpec
from .run import (DEFAULT_SAMPLES, DEFAULT_SEED, DEFAULT_TRIALS, SYNTHETIC_DATA, AccuracyRequest, MapRequest,
                  run_map)
from .specs import DEPTHWISE_STRATEGIES, TIME_UNITS_SECONDS, ArraySpec, ChipSpec, NoiseSpec, parse_times
from .tech import HardwarePreset, TechSpec, apply_preset

#: ``--times 60s,1h,..`` -> seconds; ``--weights float|hwa|FILE`` -> the kind or an existing file.
TIMES = Parsed(parse_times, "times", "T[s|m|h|d|y],..")
WEIGHTS = Parsed(check_weights, "weights", "|".join(WEIGHT_KINDS) + "|FILE")
DATA = Parsed(check_data, "data", "|".join(DATA_KINDS))


@click.command(name="map")
@model_options
@ARRAY.options()
@CHIP.options()
@click.option("--depthwise", type=click.Choice(DEPTHWISE_STRATEGIES), default=DEPTHWISE_STRATEGIES[0],
              show_default=True,
              help="Grouped / depthwise convs: block-diagonal with zeros, packed groups, or time-multiplexed.")
@click.option("--target-fps", type=float, default=None, help="With --replicate: frame rate to provision arrays for.")
@NOISE_SPEC.options()
@click.option("--accuracy", is_flag=True, help="Also simulate the mapped network and score it by the data's task (mIoU, "
                                                "top-1, perplexity) and its fidelity to the float model.")
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
@TECH_SPEC.options()
@LANGUAGE.options()
@click.option("--per-layer", is_flag=True, help="Also list every mapped layer.")
@tracer_option
@format_option
def map_command(spec: ModelSpec, executor_kind: str, address: Optional[str], per_layer: bool, fmt: str,
                **options):
    """Map MODEL onto crossbar arrays: arrays used, fit, throughput, latency, energy, power and area
    (per anytime output too).

    With --generate P+G, a language model's time to first token, tokens/s and energy per token."""
    request = map_request(spec, executor=executor_kind, address=address, **options)
    batches = None if request.accuracy else 0  # trials x times x batches, known once the data is loaded
    show_bar = None if fmt == "table" else False  # a bar only on a terminal, and never over JSON / CSV
    with ProgressBar("simulating batches", batches, enabled=show_bar, unit="batches") as bar:
        result = run_map(request, progress=bar)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    _render(result.performance, result.to_dict(), per_layer, fmt, result.energy)


def map_request(spec: ModelSpec, array: ArraySpec, chip: ChipSpec, tech: TechSpec, noise: NoiseSpec, *,
                preset: Optional[HardwarePreset] = None, depthwise: str = DEPTHWISE_STRATEGIES[0],
                target_fps: Optional[float] = None, accuracy: bool = False,
                times: Optional[Tuple[float, ...]] = None, data: str = SYNTHETIC_DATA, samples: int = DEFAULT_SAMPLES,
                trials: int = DEFAULT_TRIALS, seed: int = DEFAULT_SEED, weights_path: Optional[str] = None,
                tracer: str = "auto", executor: str = EXECUTORS[0], address: Optional[str] = None,
                generate: Optional[GenerateSpec] = None, attention: str = "digital") -> MapRequest:
    """The :class:`MapRequest` of ``graphcost map``'s specs and options (``graphcost view`` shares them):
    a ``preset`` overrides the array, the chip's timing and the tech."""
    if preset is not None:
        array, chip, tech = apply_preset(preset, chip)
    return MapRequest(
        model=spec, array=array, chip=chip, depthwise=depthwise, target_fps=target_fps, weights=weights_path,
        accuracy=AccuracyRequest(noise, data, samples, trials, seed, times or ()) if accuracy else None,
        executor=executor, address=address, tech=tech, tracer=tracer, generate=generate, attention=attention)


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


_METRIC_LABELS = {"top1": "top-1", "miou": "mIoU", "perplexity": "perplexity", "fidelity_top1": "fidelity top-1",
                  "snr_db": "SNR (dB)", "fidelity_miou": "fidelity mIoU", "relative_error": "relative error"}


def _fidelity_of(metric: str, values: dict) -> str:
    """The fidelity key shown beside ``metric`` (none where the headline is a fidelity itself)."""
    from .accuracy import fidelity_key  # lazy: the accuracy module imports torch

    key = fidelity_key(metric, values)
    return "" if key == metric else key


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
    metric = acc.get("metric", "miou") if acc else "miou"
    shape = shape_text(m.input_shape)
    con.print(render.table(f"{m.model} @ {shape} on {m.array.label} crossbars", ["metric", "value"],
                           _summary_rows(perf, result, energy, acc, metric)))
    if acc and len(acc.get("times", [])) > 1:
        _print_times(con, acc, metric)
    if "generation" in result:
        con.print(render.table("generation", ["metric", "value"], _generation_rows(result)))
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
        ("MACs per frame: analog / digital" + (" / gain-cell" if m.coverage.gain_cell_macs else ""),
         _coverage_text(m.coverage)),
        ("digital unit per frame", _seconds(perf.digital_s)),
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
        fidelity = _fidelity_of(metric, acc)
        if fidelity:
            summary.append((f"{_METRIC_LABELS[fidelity]} (vs. the float model)", f"{acc[fidelity]:.4f}"))
        if isinstance(acc.get(f"float_{metric}"), (int, float)):
            summary.append((f"{label} of the float model", f"{acc['float_' + metric]:.4f}"))
        if metric != "snr_db" and "snr_db" in acc:
            summary.append(("output SNR vs. the float model", f"{acc['snr_db']:.1f} dB"))
    return summary


def _bytes(value: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:,.3g} {unit}"
    return f"{value:,.0f} B"


def _generation_rows(result: dict) -> list:
    g, chips = result["generation"], result["chips"]
    rows = [
        ("prompt + generated tokens (batch)", f"{g['prompt_tokens']} + {g['generated_tokens']} ({g['batch']})"),
        ("time to first token", _seconds(g["ttft_s"])),
        ("decode per token: first / last step", f"{_seconds(g['decode_s_per_token_first'])} / "
                                                f"{_seconds(g['decode_s_per_token_last'])}"),
        ("tokens/s (last step)", f"{g['tokens_per_s']:,.4g}"),
        ("energy per generated token", f"{g['energy_j_per_token'] * 1e6:,.4g} uJ (attention "
                                       f"{g['attention_energy_j_per_token'] * 1e6:,.4g} uJ, {g['attention']})"),
        ("KV cache at the end", f"{_bytes(g['kv_cache_bytes'])} in {g['kv_cache_location']}"),
    ]
    if g.get("encoder_tokens"):
        rows.insert(1, ("encoder outputs (cross-attention cache)", f"{g['encoder_tokens']:,} tokens"))
    if chips["count"] > 1:
        rows.append(("chips", f"{chips['count']} of {chips['arrays_per_chip']:,} arrays, links "
                              f"{chips['link_energy_j_per_token'] * 1e6:,.4g} uJ per token"))
    return rows


def _coverage_text(c) -> str:
    """``'10.9 G (67.4%) / 5.24 G (32.6%) of 16.1 G'``: where the MACs run."""
    def giga(v: int) -> str:
        return f"{v / 1e9:,.3g} G" if v >= 1e6 else f"{v:,}"
    parts = [c.analog_macs, c.digital_macs] + ([c.gain_cell_macs] if c.gain_cell_macs else [])
    total = c.total_macs or 1
    return " / ".join(f"{giga(v)} ({v / total:.1%})" for v in parts) + f" of {giga(c.total_macs)}"


def _print_times(con, acc, metric: str) -> None:
    label = _METRIC_LABELS[metric]
    fidelity = _fidelity_of(metric, acc)
    floats = f"float_{metric}" in acc
    rows = [[_duration(t["t_seconds"]), f"{t[metric]:.4f} +- {t['std']:.4f}"]
            + ([f"{t[fidelity]:.4f}"] if fidelity else []) + ([f"{t['float_' + metric]:.4f}"] if floats else [])
            for t in acc["times"]]
    columns = ["time", label] + ([_METRIC_LABELS[fidelity]] if fidelity else []) + ([f"float {label}"] if floats else [])
    con.print(render.table("accuracy over time after programming (last output)", columns, rows))


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
