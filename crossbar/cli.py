"""``graphcost map``: map a model onto crossbar arrays; arrays, fit, throughput, latency (and accuracy).

The command parses its options into specs (:mod:`.specs`), calls the API (``map_trace``,
``performance``, and for ``--accuracy`` the simulator's ``evaluate_accuracy``) and renders.
"""
from __future__ import annotations

import os
from typing import Optional

import click

from graphcost.cli_options import format_option, model_options
from graphcost.errors import UserError
from graphcost.resolve import ModelSpec

from .specs import (DEFAULT_MVM_LATENCY_NS, DEFAULT_WRITE_NS_PER_ROW, DEPTHWISE_STRATEGIES, ArraySpec, ChipSpec,
                    parse_crossbar, parse_noise)

def check_data(text: str, samples: int) -> str:
    """Open the ``--data`` set once up front, so a bad path fails before any tracing; returns ``text``."""
    from .data import open_dataset

    if text != "synthetic":
        open_dataset(text, samples)
    return text


@click.command(name="map")
@model_options
@click.option("--crossbar", "crossbar_text", default="256x256", show_default=True, metavar="RxC",
              help="Array size: rows (inputs) x columns (outputs).")
@click.option("--arrays", type=int, default=None, metavar="M",
              help="Arrays on the chip (default: as many as the graph needs).")
@click.option("--weight-bits", type=int, default=8, show_default=True, help="Bits per weight.")
@click.option("--cell-bits", type=int, default=2, show_default=True, help="Bits stored per cell (weights are sliced).")
@click.option("--differential/--no-differential", default=True, show_default=True,
              help="Signed weights as a pair of cells (two columns).")
@click.option("--dac-bits", type=int, default=8, show_default=True, help="Input DAC resolution (simulation).")
@click.option("--adc-bits", type=int, default=8, show_default=True, help="Output ADC resolution (simulation).")
@click.option("--analog-bias", is_flag=True, help="Biases as an extra array row (default: added digitally).")
@click.option("--depthwise", type=click.Choice(DEPTHWISE_STRATEGIES), default="dense", show_default=True,
              help="Grouped / depthwise convs: block-diagonal with zeros, packed groups, or time-multiplexed.")
@click.option("--mvm-latency-ns", type=float, default=DEFAULT_MVM_LATENCY_NS, show_default=True,
              help="Time of one matrix-vector multiplication of one array.")
@click.option("--write-ns-per-row", type=float, default=DEFAULT_WRITE_NS_PER_ROW, show_default=True,
              help="Time to program one array row (program-and-verify), for weight rewrites.")
@click.option("--replicate", is_flag=True,
              help="Copy slow layers onto spare arrays (balance within --arrays, or reach --target-fps).")
@click.option("--target-fps", type=float, default=None, help="With --replicate: frame rate to provision arrays for.")
@click.option("--noise", "noise_text", default="none", show_default=True, metavar="none|pcm|rram|KEY=VAL,..",
              help="Device noise (relative to g_max): programming, read, stuck_at_on, stuck_at_off, drift_nu, "
                   "t_seconds.")
@click.option("--accuracy", is_flag=True, help="Also simulate the mapped network and report mIoU.")
@click.option("--data", "data_text", default="synthetic", show_default=True,
              metavar="synthetic|camvid:PATH|cityscapes:PATH", help="Evaluation data for --accuracy.")
@click.option("--samples", type=click.IntRange(min=1), default=8, show_default=True, help="Images for --accuracy.")
@click.option("--trials", type=click.IntRange(min=1), default=3, show_default=True,
              help="Noise draws (Monte-Carlo trials) for --accuracy.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random draw.")
@click.option("--weights", "weights_path", default=None, metavar="FILE",
              help="Trained weights (state dict) to load into the model.")
@click.option("--executor", "executor_kind", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Where --accuracy trials run.")
@click.option("--address", default=None, help="Ray cluster address (with --executor ray).")
@click.option("--per-layer", is_flag=True, help="Also list every mapped layer.")
@format_option
def map(spec: ModelSpec, crossbar_text: str, arrays: Optional[int], weight_bits: int, cell_bits: int,
        differential: bool, dac_bits: int, adc_bits: int, analog_bias: bool, depthwise: str, mvm_latency_ns: float,
        write_ns_per_row: float, replicate: bool, target_fps: Optional[float], noise_text: str, accuracy: bool,
        data_text: str, samples: int, trials: int, seed: int, weights_path: Optional[str], executor_kind: str,
        address: Optional[str], per_layer: bool, fmt: str):
    """Map MODEL onto crossbar arrays: arrays used, fit, throughput and latency (per anytime output too)."""
    from graphcost.resolve import build
    from graphcost.tracing import trace

    from .mapping import map_trace
    from .perf import performance

    # ---- parse everything first: a bad option fails before any tracing
    rows, cols = parse_crossbar(crossbar_text)
    array = ArraySpec(rows, cols, weight_bits=weight_bits, cell_bits=cell_bits, differential=differential,
                      dac_bits=dac_bits, adc_bits=adc_bits, analog_bias=analog_bias)
    chip = ChipSpec(arrays=arrays, mvm_latency_ns=mvm_latency_ns, write_ns_per_row=write_ns_per_row,
                    replicate=replicate)
    noise = parse_noise(noise_text)
    if target_fps is not None and not replicate:
        raise UserError("--target-fps needs --replicate")
    if replicate and arrays is None and target_fps is None:
        raise UserError("--replicate needs --arrays (balance the chip) or --target-fps (arrays for a frame rate)")
    if address is not None and executor_kind != "ray":
        raise UserError("--address is for --executor ray; drop it or add --executor ray")
    if accuracy:
        check_data(data_text, samples)
    if weights_path is not None and not os.path.isfile(weights_path):
        raise UserError(f"--weights: no such file {weights_path!r}")

    built = build(spec)
    if weights_path is None and accuracy:
        weights_path = _shipped_weights(spec)
        if weights_path is None:
            click.echo("note: no --weights given and no shipped checkpoint fits this model: its weights are "
                       "untrained, so mIoU is that of a random network (fidelity still measures the hardware)",
                       err=True)
    if weights_path is not None:
        from .accuracy import load_weights

        load_weights(built.module, weights_path)
    mapping = map_trace(trace(built.module, built.input_shape), array, depthwise, name=built.label)
    perf = performance(mapping, chip, target_fps=target_fps)
    result = perf.to_dict()

    if accuracy:
        result["accuracy"] = _accuracy(built.module, mapping, array, noise, data_text, samples, trials, seed,
                                       depthwise, executor_kind, address, show_progress=(fmt == "table"))
    _render(perf, result, per_layer, fmt)


def _shipped_weights(spec: ModelSpec) -> Optional[str]:
    """The checkpoint shipped with graphcost for this exact model (the default ItNet), if any."""
    from .accuracy import shipped_checkpoint_for

    params = dict(spec.params)
    if spec.shared is not None:
        params["shared"] = spec.shared
    path = shipped_checkpoint_for(spec.name, params, spec.dataset)
    return None if path is None else str(path)


def _accuracy(module, mapping, array, noise, data, samples, trials, seed, depthwise, executor_kind, address,
              show_progress: bool) -> dict:
    from .accuracy import AccuracyConfig, evaluate_accuracy

    config = AccuracyConfig(array=array, noise=noise, data=data, samples=samples, trials=trials, seed=seed,
                            classes=mapping.classes, depthwise=depthwise)
    from graphcost.executor import ProgressBar, make_executor

    with make_executor(executor_kind, address) as executor, \
            ProgressBar("simulating trials", trials, enabled=None if show_progress else False) as bar:
        result = evaluate_accuracy(module, config, executor=executor, progress=bar)
    return result.to_dict()


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


def _render(perf, result: dict, per_layer: bool, fmt: str) -> None:
    from graphcost import render

    if fmt == "json":
        click.echo(render.dumps(result))
        return
    if fmt == "csv":
        frame = perf.to_frame() if per_layer else perf.outputs_frame()
        click.echo(render.frame_csv(frame), nl=False)
        return
    m = perf.mapping
    a = m.array
    con = render.console()
    shape = "x".join(str(d) for d in m.input_shape)
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
    acc = result.get("accuracy")
    if acc:
        summary.append(("mIoU (last output, mean over trials)", f"{acc['miou']:.4f} +- {acc['std']:.4f}"))
        summary.append(("fidelity mIoU (vs. the float model)", f"{acc['fidelity_miou']:.4f}"))
        if isinstance(acc.get("float_miou"), (int, float)):
            summary.append(("mIoU of the float model", f"{acc['float_miou']:.4f}"))
    con.print(render.table(f"{m.model} @ {shape} on {a.label} crossbars", ["metric", "value"], summary))
    if len(perf.outputs) > 1:
        outs = acc.get("outputs") if acc else None
        rows = []
        for i, o in enumerate(perf.outputs):
            row = [o.index, _seconds(o.latency_s), f"{o.arrays_used:,}"]
            if outs:
                row.append(_output_accuracy(outs[i]) if i < len(outs) else "")
            rows.append(row)
        columns = ["output", "latency", "arrays"] + (["mIoU"] if outs else [])
        con.print(render.table("anytime outputs", columns, rows))
    if per_layer:
        perf_of = {p.name: p for p in perf.layers}
        extra = any(layer.extra_cycles for layer in m.layers)
        rows = []
        for layer in m.layers:
            p = perf_of[layer.name]
            rows.append([layer.name, layer.op, layer.calls, layer.rows, layer.cols, layer.tiles, p.replicas,
                         f"{layer.utilization:.1%}", f"{layer.mvms:,}"]
                        + ([f"{layer.extra_cycles:,}"] if extra else [])
                        + [_seconds(p.stage_time_s), "yes" if p.resident else "swapped"])
        columns = (["layer", "op", "calls", "rows", "cols", "tiles", "copies", "util", "MVMs"]
                   + (["extra cycles"] if extra else []) + ["stage time", "resident"])
        con.print(render.table("layers (MVMs and stage time per frame)", columns, rows))
    for note in m.notes:
        click.echo(f"note: {note}", err=True)


def _output_accuracy(value) -> str:
    if isinstance(value, dict):
        miou = value.get("miou")
        return f"{miou:.4f}" if isinstance(miou, (int, float)) else str(value)
    if isinstance(value, (int, float)):
        return f"{value:.4f}"
    return str(value)
