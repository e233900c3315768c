"""``graphcost report fig5|anytime|crossbar`` and ``graphcost sweep``: parse options, call the API, render.

Every command that writes files checks ``--out`` before computing anything and writes all its
files at once (all or nothing). Work runs on ``--executor local`` (a process pool sized to the
cores) or ``--executor ray [--address ADDR]``; results are kept in the local store
(``--store PATH``, default ``~/.cache/graphcost/results.sqlite``; ``--no-store`` disables it).
"""
from __future__ import annotations

import functools
import math
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click
from click.core import ParameterSource

from graphcost import render
from graphcost.cli_options import INPUT_SHAPE, Parsed, format_option, model_options
from graphcost.crossbar.cli import NOISE, TECH, TIMES, crossbar_option
from graphcost.crossbar.cli_specs import ARRAY, CHIP, GENERATE, TECH_SPEC
from graphcost.crossbar.hardware import fixed_axes
from graphcost.crossbar.specs import (DEFAULT_MVM_LATENCY_NS, DEFAULT_WRITE_NS_PER_ROW, DEPTHWISE_STRATEGIES,
                                      ChipSpec, NoiseSpec)
from graphcost.crossbar.tech import DEFAULT_TECH, TechSpec
from graphcost.errors import UserError
from graphcost.explore import (CHANCE_MIOU, DEFAULT_WIDTH_MAX, MAX_GRID_POINTS, GridTooLarge, SweepSpec,
                               check_accuracy_table, check_grid, check_metric, check_table, describe_failures,
                               flat_frame, pareto_front, parse_axis, parse_metric, parse_pareto, ranked_rows,
                               resolve_spec, row_columns, run_sweep)
from graphcost.models.registry import DATASETS
from graphcost.resolve import ModelSpec, build_for_shapes, parse_params
from graphcost.runtime.executor import EXECUTORS, ProgressBar, make_executor
from graphcost.runtime.store import open_store

from . import anytime, crossbar_report, energy as energy_report, fig5, llm as llm_report
from .common import check_out_dir, figure_writers, read_table, shape_text, variant_name, write_files
from .heatmap import write_sweep
from .index_page import write_index
from .pareto import write_pareto
from .sweep_explorer import read_sweep_json, write_explorer


# --------------------------------------------------------------------------- shared options
@dataclass(frozen=True)
class RunOptions:
    """Where work runs and where results are kept (``--executor --address --workers --store --progress``)."""

    executor_kind: str = EXECUTORS[0]
    address: Optional[str] = None
    workers: Optional[int] = None
    store_path: Optional[str] = None
    no_store: bool = False
    progress: Optional[bool] = None

    def open(self, stack: ExitStack):
        """Enter the executor and the store; both close when ``stack`` does."""
        store = stack.enter_context(open_store(self.store_path, enabled=not self.no_store))
        store.get_many([])  # open (and create) it now: a bad, foreign or locked --store fails before any work
        if store.read_only_note():
            click.echo(f"note: {store.read_only_note()}", err=True)
        stack.callback(lambda: [click.echo(f"note: {note}", err=True) for note in store.notes()])
        executor = stack.enter_context(make_executor(self.executor_kind, self.address, self.workers))
        return executor, store

    def bar(self, description: str, total: int, unit: str = "items") -> ProgressBar:
        return ProgressBar(description, total, enabled=self.progress, unit=unit)


def run_options(func):
    """``--executor --address --workers --store/--no-store --progress/--no-progress`` as ``run: RunOptions``."""

    @click.option("--executor", "executor_kind", type=click.Choice(EXECUTORS), default=EXECUTORS[0],
                  show_default=True, help="Where the work runs: a local process pool, or Ray.")
    @click.option("--address", default=None, metavar="ADDR",
                  help="Ray cluster to use (e.g. auto or ray://host:10001); default: start a local Ray for the run.")
    @click.option("--workers", type=click.IntRange(min=1), default=None,
                  help="Processes (local) or CPUs of a local Ray; default: all cores. 1 runs inline.")
    @click.option("--store", "store_path", default=None, metavar="PATH",
                  help="Result store (SQLite); default ~/.cache/graphcost/results.sqlite or $GRAPHCOST_STORE.")
    @click.option("--no-store", is_flag=True, help="Neither read nor write the result store.")
    @click.option("--progress/--no-progress", "progress", default=None,
                  help="Progress bar with ETA on stderr (default: when stderr is a terminal).")
    @functools.wraps(func)
    def wrapper(executor_kind, address, workers, store_path, no_store, progress, **kwargs):
        if no_store and store_path:
            raise click.UsageError("--store and --no-store contradict each other; keep one")
        return func(run=RunOptions(executor_kind, address, workers, store_path, no_store, progress), **kwargs)

    return wrapper


def out_option(default: Optional[str] = "."):
    return click.option("--out", "out_dir", default=default, metavar="DIR", show_default=default is not None,
                        help="Folder for the PNG, SVG and CSV files (created if missing).")


def accuracy_option(help_text: str):
    return click.option("--accuracy-table", "accuracy_table", default=None, metavar="CSV", help=help_text)


def _echo_written(paths: Sequence[str]) -> None:
    for path in paths:
        click.echo(f"wrote {path}", err=True)


# --------------------------------------------------------------------------- graphcost report
@click.group(name="report")
def report():
    """Figures from live numbers: the ItNet paper's Fig. 5, anytime cost curves, crossbar fit."""


@report.command(name="fig5")
@out_option()
@accuracy_option("mIoU per model/variant/dataset/split[/output] replacing the shipped literature values "
                 "(columns: model, variant, dataset, split, miou; optional output, source, params).")
@click.option("--dataset", "datasets", type=click.Choice(fig5.DATASETS), multiple=True,
              help="Only these rows of the figure (default: both).")
@run_options
def fig5_command(out_dir: str, accuracy_table: Optional[str], datasets: Tuple[str, ...], run: RunOptions):
    """The ItNet paper's Fig. 5: mIoU over graph size, latency, MACs and parameters on CamVid and Cityscapes.

    x-values are computed live at each dataset's resolution; mIoU comes from the shipped
    reports/literature.csv (with citations) or --accuracy-table. Writes fig5.png, fig5.svg and
    fig5.csv (every plotted point).
    """
    out = check_out_dir(out_dir)
    datasets = datasets or fig5.DATASETS
    prepared = fig5.prepare(accuracy_table, datasets)  # fail on a bad table before any work
    with ExitStack() as stack:
        executor, store = run.open(stack)
        bar = stack.enter_context(run.bar("fig5: analysing networks", len(prepared[1])))
        written, points = fig5.run(out, accuracy_table, executor, store, bar, datasets, prepared=prepared)
    written.append(write_index(out, "graphcost report fig5", written))
    _echo_written(written)
    drawn = points[points["plotted_as"] != "cost-only"]
    click.echo(f"fig5: {len(points)} points from {points.groupby(['dataset', 'label', 'variant']).ngroups} "
               f"networks, {len(drawn)} with mIoU", err=True)


@report.command(name="anytime")
@model_options
@out_option()
@accuracy_option("mIoU per output (columns output, miou; optional model, variant, dataset to filter).")
@click.option("--variant", default=None, help="Row of the accuracy table to use (its variant column).")
@format_option
@run_options
def anytime_command(spec: ModelSpec, out_dir: str, accuracy_table: Optional[str], variant: Optional[str], fmt: str,
                    run: RunOptions):
    """Cost of every output of an anytime MODEL: MACs, latency and graph size (with mIoU where given).

    Prints the per-output table and writes anytime-MODEL.png/.svg/.csv to --out.
    """
    out = check_out_dir(out_dir)
    accuracy = read_table(accuracy_table) if accuracy_table else None
    if accuracy is not None:
        check_table(accuracy, accuracy_table, ["output", "miou"], numbers=["miou"], integers=["output"])
    built = build_for_shapes(spec)  # validates the model and params now, with a one-line error
    with ExitStack() as stack:
        executor, store = run.open(stack) if ":" not in spec.name else (None, None)  # only zoo models are stored
        summary = anytime.analyse(spec, built, executor, store)
    label, frame, written = anytime.report(spec, built, summary, out, accuracy, variant)
    if fmt == "json":
        click.echo(render.dumps({"model": spec.name, "input_shape": summary["input_shape"],
                                 "params": summary["params"], "outputs": _records(frame)}))
    elif fmt == "csv":
        click.echo(render.frame_csv(frame), nl=False)
    else:
        _print_anytime_table(label, summary, frame)
    _echo_written(written)


def _print_anytime_table(label: str, summary: Dict[str, Any], frame) -> None:
    rows = []
    for r in frame.to_dict("records"):
        row = [r["output"], render.human(r["macs"]), r["latency_layers"], render.megabytes(r["graph_size_bytes"])]
        if "miou" in frame.columns:
            row.append("" if _nan(r["miou"]) else f"{r['miou']:.1f}")
        rows.append(row)
    columns = ["output", "MACs", "latency (layers)", "graph size"] + (["mIoU (%)"] if "miou" in frame.columns else [])
    render.console().print(render.table(f"{label} @ {shape_text(summary['input_shape'])}: cost per output",
                                        columns, rows))


def _nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _records(frame) -> List[Dict[str, Any]]:
    out = []
    for r in frame.to_dict("records"):
        out.append({k: (None if _nan(v) else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()})
    return out


def parse_model_token(token: str) -> Tuple[str, Dict[str, Any]]:
    """``espnetv2@s=1.5,classes=19`` -> ("espnetv2", {"s": 1.5, "classes": 19}).

    >>> parse_model_token("espnetv2@s=1.5,classes=19")
    ('espnetv2', {'s': 1.5, 'classes': 19})
    """
    name, sep, rest = token.partition("@")
    if not name:
        raise UserError(f"a model is NAME or NAME@KEY=VALUE,..., got {token!r}")
    items = [p for p in rest.split(",") if p.strip()] if sep else []
    if sep and not items:
        raise UserError(f"model {token!r} has '@' but no KEY=VALUE after it")
    return name, parse_params(items)


MODEL_TOKEN = Parsed(parse_model_token, "model", "MODEL[@KEY=VALUE,...]")
DEFAULT_CROSSBAR_MODELS = ("itnet@shared=True", "itnet@shared=False", "enet", "espnetv2@s=2.0", "cgnet", "recunet")
#: ``report crossbar --dataset`` default: the ItNet paper's CamVid setting.
DEFAULT_REPORT_DATASET = "camvid"


def _curve_items(models, dataset: str, input_shape, crossbar: Tuple[int, int], depthwise: str, chip: ChipSpec,
                 tech: Optional[TechSpec] = None):
    """The work items and labels of ``report crossbar`` / ``report energy`` (default models if none), and a title."""
    tokens = [(m, None) for m in models] or [(parse_model_token(t), t) for t in DEFAULT_CROSSBAR_MODELS]
    items, labels = [], []
    for (name, params), token in tokens:
        item, label = crossbar_report.model_item(name, params, dataset, input_shape, crossbar, depthwise, chip,
                                                 token=token, tech=tech)
        items.append(item)
        labels.append(label)
    title = f"{dataset} {shape_text(items[0].model.input_shape[-2:])}, {crossbar[0]}x{crossbar[1]} crossbar arrays"
    return items, labels, title


_CHIP_CURVE_OPTIONS = (
    click.option("--dataset", type=click.Choice(list(DATASETS)), default=DEFAULT_REPORT_DATASET, show_default=True,
                 help="Dataset preset: input resolution and classes."),
    click.option("--input", "input_shape", type=INPUT_SHAPE, default=None, help="Input resolution, e.g. 360x480."),
    crossbar_option(help="Crossbar array size: rows x columns."),
    click.option("--depthwise", type=click.Choice(DEPTHWISE_STRATEGIES), default=DEPTHWISE_STRATEGIES[0],
                 show_default=True, help="How grouped / depthwise convs are tiled."),
    click.option("--mvm-latency-ns", type=float, default=DEFAULT_MVM_LATENCY_NS, show_default=True,
                 help="Time of one MVM of one array (ns)."),
    click.option("--write-ns-per-row", type=float, default=DEFAULT_WRITE_NS_PER_ROW, show_default=True,
                 help="Time to program one array row (ns)."),
)


def _chip_curve_options(command):
    """The options every chip-size curve report (``crossbar``, ``energy``) shares, declared once."""
    for option in reversed(_CHIP_CURVE_OPTIONS):
        command = option(command)
    return command


@report.command(name="crossbar")
@click.argument("models", nargs=-1, type=MODEL_TOKEN, metavar="[MODEL[@KEY=VALUE,...]]...")
@_chip_curve_options
@out_option()
@format_option
@run_options
def crossbar_command(models: Tuple[Tuple[str, Dict[str, Any]], ...], dataset: str,
                     input_shape: Optional[Tuple[int, ...]], crossbar: Tuple[int, int], depthwise: str,
                     mvm_latency_ns: float, write_ns_per_row: float, out_dir: str, fmt: str, run: RunOptions):
    """Arrays needed and throughput against chip size M for several MODELs in one plot.

    MODEL is a zoo name with optional parameters after '@' (e.g. itnet@shared=False,f=29 or
    espnetv2@s=1.5); default: ItNet shared and independent, ENet, ESPNetv2 s=2, CGNet, RecUNet.
    Writes crossbar.png/.svg/.csv to --out.
    """
    out = check_out_dir(out_dir)
    chip = ChipSpec(mvm_latency_ns=mvm_latency_ns, write_ns_per_row=write_ns_per_row)
    items, labels, title = _curve_items(models, dataset, input_shape, crossbar, depthwise, chip)
    with ExitStack() as stack:
        executor, store = run.open(stack)
        bar = stack.enter_context(run.bar("crossbar: mapping networks", len(items)))
        results, points, written = crossbar_report.run(items, labels, out, title, executor, store, bar)
    summary = [{"model": label, "arrays_needed": r["arrays_needed"], "utilization": r["utilization"],
                "throughput_fps": r["resident_fps"], "latency_s": r["latency_s"], "energy_j": r["energy_j"],
                "power_w": r["power_w"]}
               for label, r in zip(labels, results)]
    written.append(write_index(out, f"graphcost report crossbar: {title}", written, summary))
    if fmt == "json":
        click.echo(render.dumps({"crossbar": f"{crossbar[0]}x{crossbar[1]}", "dataset": dataset, "models": summary,
                                 "points": _records(points)}))
    elif fmt == "csv":
        click.echo(render.frame_csv(points), nl=False)
    else:
        rows = [(s["model"], f"{s['arrays_needed']:,}", f"{s['utilization']:.1%}", f"{s['throughput_fps']:,.0f}",
                 f"{s['latency_s'] * 1e3:.3f}", f"{s['energy_j'] * 1e6:,.4g}", f"{s['power_w']:.4g}") for s in summary]
        render.console().print(render.table(f"crossbar fit: {title}",
                                            ["model", "arrays needed", "utilization", "fps when it fits",
                                             "latency (ms)", "energy (uJ/frame)", "power (W)"], rows))
    _echo_written(written)


@report.command(name="energy")
@click.argument("models", nargs=-1, type=MODEL_TOKEN, metavar="[MODEL[@KEY=VALUE,...]]...")
@_chip_curve_options
@click.option("--tech", type=TECH, default=DEFAULT_TECH, show_default=True,
              help="Technology of the energy model: a preset or a TOML file.")
@out_option()
@format_option
@run_options
def energy_command(models: Tuple[Tuple[str, Dict[str, Any]], ...], dataset: str,
                   input_shape: Optional[Tuple[int, ...]], crossbar: Tuple[int, int], depthwise: str, tech: TechSpec,
                   mvm_latency_ns: float, write_ns_per_row: float, out_dir: str, fmt: str, run: RunOptions):
    """Energy per frame by component and against chip size M for several MODELs.

    MODEL as for ``report crossbar`` (default: ItNet shared and independent, ENet, ESPNetv2 s=2,
    CGNet, RecUNet). Writes energy.png/.svg/.csv, energy_breakdown.csv and their index.html to --out.
    """
    out = check_out_dir(out_dir)
    chip = ChipSpec(mvm_latency_ns=mvm_latency_ns, write_ns_per_row=write_ns_per_row)
    items, labels, title = _curve_items(models, dataset, input_shape, crossbar, depthwise, chip, tech)
    title = f"{title}, {tech.name}"
    with ExitStack() as stack:
        executor, store = run.open(stack)
        bar = stack.enter_context(run.bar("energy: mapping networks", len(items)))
        results, points, written = energy_report.run(items, labels, out, title, executor, store, bar)
    summary = energy_report.summary_rows(labels, results)
    written.append(write_index(out, f"graphcost report energy: {title}", written, summary))
    if fmt == "json":
        click.echo(render.dumps({"crossbar": f"{crossbar[0]}x{crossbar[1]}", "dataset": dataset, "tech": tech.name,
                                 "models": summary, "points": _records(points)}))
    elif fmt == "csv":
        click.echo(render.frame_csv(energy_report.breakdown_frame(labels, results)), nl=False)
    else:
        rows = [(s["model"], f"{s['arrays_needed']:,}", f"{s['energy_j'] * 1e6:,.4g}",
                 f"{s['largest']} {s['largest_share']:.0%}", f"{s['power_w']:.4g}", f"{s['tops_per_w']:.3g}")
                for s in summary]
        render.console().print(render.table(f"energy per frame: {title}",
                                            ["model", "arrays needed", "energy (uJ/frame)", "largest part",
                                             "power (W)", "TOPS/W"], rows))
    _echo_written(written)


#: ``report llm`` defaults: GPT-2 over its whole context, 1024 learned positions (gain-cell attention's window)
DEFAULT_LLM_MODELS = ("hf:gpt2:causal-lm",)
DEFAULT_LLM_GENERATE = "128+896"
LLM_SUMMARY_KEYS = ("ttft_s", "tokens_per_s", "energy_j_per_token", "kv_cache_bytes", "kv_cache_location")


@report.command(name="llm")
@click.argument("models", nargs=-1, type=MODEL_TOKEN, metavar="[MODEL[@KEY=VALUE,...]]...")
@ARRAY.options()
@CHIP.options()
@click.option("--tech", type=TECH, default=DEFAULT_TECH, show_default=True,
              help="Technology of the energy model: a preset or a TOML file.")
@click.option("--generate", type=GENERATE, default=DEFAULT_LLM_GENERATE, show_default=True,
              help="Prompt and generated tokens: the contexts run from P to P+G-2 (the step making the last token).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Sequences at once.")
@out_option()
@format_option
def llm_command(models: Tuple[Tuple[str, Dict[str, Any]], ...], array, chip: ChipSpec, tech: TechSpec,
                generate: Tuple[int, int], batch: int, out_dir: str, fmt: str):
    """Energy per generated token and tokens/s against the context, for digital and gain-cell attention.

    MODEL is an hf: decoder with optional config parameters after '@' (e.g. hf:llama@num_hidden_layers=2);
    default: hf:gpt2:causal-lm. Writes llm.png/.svg/.csv and index.html to --out.
    """
    from graphcost.crossbar.generation import GenerateSpec

    out = check_out_dir(out_dir)
    spec = GenerateSpec(*generate, batch=batch)
    tokens = list(models) or [(name, {}) for name in DEFAULT_LLM_MODELS]
    labels = [name + ("@" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")
              for name, params in tokens]
    specs = [ModelSpec(name=name, params=params) for name, params in tokens]
    for note in llm_report.check(specs, spec):  # refused here, before any model is mapped
        click.echo(f"note: {note}", err=True)
    results = [llm_report.run_model(model, array, chip, tech, spec) for model in specs]
    points = llm_report.frame(labels, results)
    title = f"{array.label} arrays, {tech.name}, prompt {spec.prompt_tokens}, batch {spec.batch}"
    written = llm_report.write(out, points, title)
    summary = [{"model": label, "attention": attention, **{k: gen[k] for k in LLM_SUMMARY_KEYS}}
               for label, result in zip(labels, results) for attention, gen in result.items()]
    written.append(write_index(out, f"graphcost report llm: {title}", written, summary))
    if fmt == "json":
        click.echo(render.dumps({"models": summary, "points": _records(points)}))
    elif fmt == "csv":
        click.echo(render.frame_csv(points), nl=False)
    else:
        rows = [(s["model"], s["attention"], f"{s['ttft_s'] * 1e3:.4g}", f"{s['tokens_per_s']:,.4g}",
                 f"{s['energy_j_per_token'] * 1e6:,.4g}", s["kv_cache_location"]) for s in summary]
        render.console().print(render.table(f"generation: {title}", ["model", "attention", "TTFT (ms)", "tokens/s",
                                                                     "energy (uJ/token)", "KV cache"], rows))
    _echo_written(written)


@report.command(name="drift")
@click.argument("models", nargs=-1, type=MODEL_TOKEN, metavar="[MODEL[@KEY=VALUE,...]]...")
@click.option("--noise", type=NOISE, default="pcm", show_default=True, help="Device noise (a preset or KEY=VAL,..).")
@click.option("--times", type=TIMES, default="60s,1h,1d,1y", show_default=True,
              help="Times after programming (units s, m, h, d, y).")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Evaluation samples per model (default: 8 synthetic images, the 360 held-out digits, 64 pydoc "
                   "windows).")
@click.option("--trials", type=click.IntRange(min=1), default=3, show_default=True, help="Noise draws per point.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random draw.")
@out_option()
@format_option
def drift_command(models: Tuple[Tuple[str, Dict[str, Any]], ...], noise, times: Tuple[float, ...],
                  samples: Optional[int], trials: int, seed: int, out_dir: str, fmt: str):
    """Accuracy vs time after programming for MODELs graphcost ships weights for: float, post-training
    (the float weights as programmed) and hardware-aware (HWA) weights, per output for anytime models.

    MODEL: itnet (synthetic data), digits-cnn (digits) or tiny-gpt (pydoc); default the first two. Writes
    drift.png/.svg/.csv and index.html to --out.
    """
    from graphcost.crossbar.checkpoints import shipped_model
    from graphcost.crossbar.specs import ArraySpec

    from . import drift

    out = check_out_dir(out_dir)
    tokens = models or (("digits-cnn", {}), ("itnet", {}))
    specs = [ModelSpec(name=name, params=dict(params)) for name, params in tokens]
    shipped = [shipped_model(spec.name) for spec in specs]  # the data each checkpoint was trained on
    data = [s.data if s is not None else "synthetic" for s in shipped]
    counts = [samples or (s.samples if s is not None else 8) for s in shipped]
    with ProgressBar("drift: simulating", 2 * len(specs), enabled=None if fmt == "table" else False) as bar:
        frame = drift.drift_frame(specs, data, counts, times, noise, ArraySpec(256, 256), trials, seed, bar)
    fig = drift.drift_figure(frame, f"accuracy after programming, {noise_label(noise)}, {trials} trials")
    written = write_files(out, figure_writers(fig, "drift", frame))
    written.append(write_index(out, "graphcost report drift: accuracy after programming", written))
    last = frame[frame["output"] == frame.groupby("model")["output"].transform("max")]
    if fmt == "json":
        click.echo(render.dumps({"rows": _records(frame)}))
    elif fmt == "csv":
        click.echo(render.frame_csv(frame), nl=False)
    else:
        rows = [(r["model"], r["weights"], f"{r['t_seconds']:g}", f"{r['score']:.4f} +- {r['std']:.4f}",
                 f"{r['fidelity']:.4f}", f"{r['float_score']:.4f}") for r in _records(last)]
        render.console().print(render.table("accuracy after programming (last output)",
                                            ["model", "weights", "t (s)", "score", "fidelity", "float"], rows))
    _echo_written(written)


@report.command(name="sweep")
@click.argument("results", metavar="RESULTS")
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Folder for index.html (created if missing).")
@click.option("--pareto", type=Parsed(parse_pareto, "pareto", "METRIC,METRIC"), default=None,
              help="The scatter's two axes and their Pareto front (default: the sweep's own --pareto, if any).")
def sweep_report_command(results: str, out_dir: str, pareto):
    """The sweep explorer of a sweep's RESULTS (its --format json output, or the sweep-MODEL.json of --out): a
    self-contained index.html with a scatter and its Pareto front, parallel coordinates with brushing, the
    selected rows and the command that reproduces each."""
    out = check_out_dir(out_dir)
    spec, rows, own = read_sweep_json(results)
    _echo_written([write_explorer(out, spec, rows, pareto or own)])


def noise_label(noise) -> str:
    return "pcm" if noise == replace(NoiseSpec.pcm(), t_seconds=noise.t_seconds) else "custom noise"


# --------------------------------------------------------------------------- graphcost sweep
def _grid(ctx, param, axes):
    """``--grid`` values (already parsed one by one) as one grid: a parameter named twice is refused."""
    try:
        return check_grid(axes)
    except UserError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _metric_text(text: str) -> str:
    parse_metric(text)
    return text


#: map's hardware options that set every sweep point as a one-value ``hw.`` axis (the name of its ``hw.`` key).
_POINT_OPTIONS = ("weight_bits", "cell_bits", "differential", "dac_bits", "adc_bits", "analog_bias", "mvm_latency_ns",
                  "write_ns_per_row")
#: map's hardware options no sweep point has: refused before any work, naming the flag.
_NOT_SWEPT = {"preset": "--preset", "replicate": "--replicate", "arrays_per_chip": "--chip-arrays",
              "link_pj_per_bit": "--link-pj-per-bit", "link_gb_per_s": "--link-gb-per-s"}


def _with_fixed_hardware(grid, tech: TechSpec):
    """``grid`` plus a one-value ``hw.`` axis per hardware option given on the command line (the shared option
    groups of ``map``); an option no sweep point has, or one that is also swept by ``--grid``, is refused."""
    ctx = click.get_current_context()

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)

    for name, flag in _NOT_SWEPT.items():
        if given(name):
            raise click.UsageError(f"{flag} is not part of a sweep point's hardware; sweep hw. keys (see "
                                   f"--help), or map one point with graphcost map")
    try:
        axes = fixed_axes({name: ctx.params[name] for name in _POINT_OPTIONS if given(name)},
                          tech if given("tech") else None)
    except UserError as exc:
        raise click.BadParameter(str(exc), param_hint="--tech") from None
    swept = {key for key, _ in grid}
    for key, _ in axes:
        if key in swept:
            raise click.UsageError(f"{key} is set by its option and swept by --grid {key}=...; keep one")
    return tuple(grid) + axes


@click.command(name="sweep")
@model_options
@click.option("--grid", "grid", type=Parsed(parse_axis, "grid axis", "KEY=V1,V2,..."), multiple=True, callback=_grid,
              help="A swept parameter and its values (repeatable), e.g. --grid N=1,2,4,8,16 --grid L=1..4.")
@click.option("--macs-budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Per grid point, search the widest --width-param whose last output needs at most this many MACs.")
@click.option("--width-param", default=None, help="The width searched for the budget (default: f).")
@click.option("--width-max", type=click.IntRange(min=1), default=DEFAULT_WIDTH_MAX, show_default=True,
              help="Largest width the search tries.")
@ARRAY.options(crossbar_default=None, crossbar_help="Also map every point onto RxC crossbar arrays (arrays_used, "
                                                   "utilization, ...); the bits options below set every point's "
                                                   "array (as one-value hw. keys).")
@CHIP.options()
@TECH_SPEC.options()
@click.option("--metric", type=Parsed(_metric_text, "metric", "NAME[:min|max]"), default=None,
              help="Rank the points by a column (e.g. graph_size_bytes) or by auc, the paper's AUC of mIoU "
                   "over MACs (needs --accuracy-table).")
@accuracy_option("Per-output mIoU of the grid points (columns: the grid parameters, output, miou).")
@click.option("--chance-miou", type=float, default=CHANCE_MIOU, show_default=True,
              help="y0 of the AUC: mIoU at chance level (the paper's CamVid value).")
@click.option("--skip-failed", is_flag=True, help="Drop grid points that fail (e.g. budget not met) instead of "
                                                 "stopping with an error.")
@click.option("--pareto", type=Parsed(parse_pareto, "pareto", "METRIC,METRIC"), default=None,
              help="Mark the Pareto front of two columns (e.g. energy_j,throughput_fps; :min/:max to override the "
                   "direction); with --out also draw it (sweep-MODEL-pareto.png/.svg).")
@click.option("--out", "out_dir", default=None, metavar="DIR",
              help="Also write sweep-MODEL.csv/.json, the heat-maps sweep-MODEL.png/.svg and the explorer index.html here.")
@click.option("--yes", is_flag=True, help=f"Run a grid of more than {MAX_GRID_POINTS:,} points.")
@format_option
@run_options
def sweep(spec: ModelSpec, grid, macs_budget: Optional[float], width_param: Optional[str], width_max: int,
          array, chip: ChipSpec, tech: TechSpec, preset, metric: Optional[str], accuracy_table: Optional[str],
          chance_miou: float, skip_failed: bool, pareto, out_dir: Optional[str], yes: bool, fmt: str,
          run: RunOptions):
    """Grid search over MODEL's parameters, the widest width within a MAC budget per point (ItNet Figs. A2/A3).

    \b
    Example (the paper's search, Sec. III-A):
      graphcost sweep itnet --grid N=1,2,4,8,16 --grid L=1,2,3,4 --grid K=1,2,3 \\
          --macs-budget 2.2e9 --dataset camvid --shared

    Hardware keys (hw.crossbar, hw.adc_bits, hw.arrays, hw.tech, any TechSpec field) sweep the chip:
      graphcost sweep itnet --grid N=2,4 --grid hw.crossbar=128x128,256x256 --grid hw.adc_bits=4,6,8 \\
          --pareto energy_j,throughput_fps
    """
    grid = _with_fixed_hardware(grid, tech)
    out = check_out_dir(out_dir) if out_dir is not None else None
    accuracy = read_table(accuracy_table) if accuracy_table else None
    max_points = None if yes else MAX_GRID_POINTS
    try:
        sweep_spec = resolve_spec(SweepSpec(  # bad names and a huge grid fail before the executor starts
            model=spec.name, grid=grid, fixed=tuple(spec.params.items()), dataset=spec.dataset,
            input_shape=spec.input_shape, shared=spec.shared, macs_budget=macs_budget, width_param=width_param,
            width_max=width_max, crossbar=None if array is None else (array.rows, array.cols),
            chip_arrays=chip.arrays), max_points)
    except GridTooLarge as exc:
        raise UserError(f"{exc} with --yes") from None
    if accuracy is not None:
        model_keys = [k for k in sweep_spec.grid_keys if not k.startswith("hw.")]  # mIoU is the model's
        check_accuracy_table(accuracy, model_keys, accuracy_table)  # every row, before any analysis
    if metric:
        check_metric(metric, row_columns(sweep_spec, accuracy is not None))
    with ExitStack() as stack:
        executor, store = run.open(stack)
        bar = stack.enter_context(run.bar(f"sweep {spec.name}", sweep_spec.size, unit="points"))
        result = run_sweep(sweep_spec, executor, store, progress=bar, max_points=max_points)
        where = executor.describe()
    if result.failed and not skip_failed:
        raise UserError(describe_failures(result) + _failure_hint(sweep_spec))
    rows, metric = ranked_rows(result, accuracy, metric, chance_miou)
    metric_name = parse_metric(metric)[0] if metric else None
    front = _mark_pareto(rows, pareto) if pareto else None
    written = write_sweep(out, result, rows, sweep_spec.width_param, metric_name, pareto) if out is not None else []
    if front is not None and out is not None:
        variant = variant_name(sweep_spec.shared)
        stem = f"sweep-{spec.name}" + ("" if variant is None else f"-{variant}")
        written += write_pareto(out, stem, rows, front, pareto, sweep_spec.grid_keys,
                                f"{spec.name}: Pareto front of {pareto[0][0]} and {pareto[1][0]}")
    if out is not None:
        written.append(write_explorer(out, sweep_spec, rows, pareto))
    _render_sweep(spec.name, sweep_spec, result, rows, metric, fmt, where, pareto)
    _echo_written(written)


def _render_sweep(name: str, sweep_spec, result, rows: List[Dict[str, Any]], metric: Optional[str], fmt: str,
                  where: str, pareto=None) -> None:
    """The ranked rows as JSON, CSV or a table on stdout; notes, skipped points and timing on stderr."""
    if fmt == "json":
        click.echo(render.dumps(_sweep_payload(sweep_spec, result, rows, metric, pareto)))
    elif fmt == "csv":
        click.echo(render.frame_csv(flat_frame(rows)), nl=False)
    else:
        _print_sweep_table(name, sweep_spec, rows, sweep_spec.width_param, parse_metric(metric)[0] if metric else None)
    for row in rows:
        if row.get("note"):
            click.echo(f"note: {' '.join(f'{k}={row.get(k)}' for k in sweep_spec.grid_keys)}: {row['note']}", err=True)
    if result.failed:
        click.echo(f"note: skipped {len(result.failed)} failed grid points: {describe_failures(result)}"
                   f"{_failure_hint(sweep_spec)}", err=True)
    click.echo(f"sweep: {len(result.rows)} points ({result.cached} from the store, {result.computed} computed, "
               f"{result.analyses} analyses) in {result.seconds:.1f} s on the {where}", err=True)


def _mark_pareto(rows: List[Dict[str, Any]], pareto) -> List[bool]:
    """Set ``pareto`` on every row; a metric that is no column is one clear error."""
    for name, _ in pareto:
        if rows and not any(name in r for r in rows):
            known = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and
                            not isinstance(v, bool)})
            raise UserError(f"--pareto: {name!r} is not a column of the sweep; choose from: {', '.join(known)}")
    front = pareto_front(rows, pareto)
    for row, on in zip(rows, front):
        row["pareto"] = on
    return front


def _failure_hint(spec: SweepSpec) -> str:
    if spec.macs_budget is not None:
        return "; raise --macs-budget, shrink the grid, or pass --skip-failed to drop them"
    return "; fix the grid or pass --skip-failed to drop them"


def _sweep_payload(spec: SweepSpec, result, rows, metric: Optional[str], pareto=None) -> Dict[str, Any]:
    """The JSON contract of ``graphcost sweep --format json``."""
    return {"model": spec.model, "dataset": spec.dataset, "input_shape": list(spec.input_shape),
            "shared": spec.shared, "macs_budget": spec.macs_budget, "width_param": spec.width_param,
            "grid": {k: list(v) for k, v in spec.grid}, "fixed": dict(spec.fixed), "width_max": spec.width_max,
            "crossbar": list(spec.crossbar) if spec.crossbar else None, "chip_arrays": spec.chip_arrays,
            "pareto": [list(m) for m in pareto] if pareto else None, "metric": metric, "rows": rows,
            "computed": result.computed, "cached": result.cached, "analyses": result.analyses,
            "seconds": round(result.seconds, 3)}


def _print_sweep_table(model: str, spec, rows, width: Optional[str], metric: Optional[str]) -> None:
    keys = list(spec.grid_keys)
    columns = keys + ([width] if width else []) + ["MACs (last out)", "params", "graph size", "latency"]
    extra = [c for c in ("arrays_used", "fits", "throughput_fps", "energy_j", "area_mm2", "pareto")
             if any(c in r for r in rows)]
    columns += extra
    if metric:
        columns += ([metric] if metric not in extra else []) + ["rank"]
    table_rows = []
    for r in rows:
        row = [r.get(k) for k in keys] + ([r.get(width)] if width else [])
        row += [render.human(r["macs"]), render.human(r["params"]), render.megabytes(r["graph_size_bytes"]),
                r["latency_layers"]]
        for c in extra:
            v = r.get(c)
            if isinstance(v, float):
                v = f"{v:,.0f}" if c == "throughput_fps" else f"{v:.4g}"
            row.append(v)
        if metric:
            if metric not in extra:
                v = r.get(metric)
                row.append(f"{v:.4g}" if isinstance(v, float) else v)
            row.append(r.get("rank"))
        table_rows.append(["" if v is None else v for v in row])
    budget = f", budget {spec.macs_budget:.4g} MACs" if spec.macs_budget else ""
    variant = "" if spec.shared is None else (", shared" if spec.shared else ", independent")
    shape = shape_text(spec.input_shape)
    render.console().print(render.table(f"sweep {model} @ {shape}{variant}{budget}", columns, table_rows))


def _adaptive_variants(request, run, spec: ModelSpec, writers) -> Optional[Dict[str, Any]]:
    """With a crossbar, for a model with shared and independent variants: both on the chip, the energy
    figure and its per-input CSV added to ``writers``; their summary (``None`` otherwise)."""
    from graphcost.crossbar.adaptive_run import INDEPENDENT_COPIES, run_variants

    from . import adaptive

    if request.array is None or spec.name not in INDEPENDENT_COPIES:
        return None
    runs = run_variants(request, run)
    for note in (n for other in runs.values() if other is not run for n in other.notes):
        click.echo(f"note: {note}", err=True)
    writers.update(figure_writers(adaptive.variants_figure(runs, spec.name), f"adaptive-{spec.name}-energy",
                                  adaptive.variants_frame(runs)))
    return adaptive.variants_summary(runs)


@report.command(name="adaptive")
@model_options
@click.option("--data", type=Parsed("graphcost.crossbar.data:check_data", "data"), default=None,
              help="The inputs (default: digits for the digits preset, else synthetic).")
@click.option("--exit", "exit_policy", type=Parsed("graphcost.crossbar.adaptive:parse_exit", "exit policy",
                                                   "confidence=T|output=N"), default=None,
              help="Early-exit networks: the policy marked on the sweep (default confidence=0.9).")
@click.option("--weights", type=Parsed("graphcost.crossbar.accuracy:check_weights", "weights"), default=None,
              help="float, hwa or a state dict file (default: the shipped checkpoint of the model and data).")
@click.option("--samples", type=click.IntRange(min=1), default=None, help="Inputs to run (default 360).")
@click.option("--crossbar", type=Parsed("graphcost.crossbar.specs:parse_crossbar", "crossbar size", "RxC"),
              default=None, help="Also map onto RxC arrays: energy per input in the CSV and, for ItNet and "
                                 "iterative-resnet, energy per frame of the shared vs the independent variant.")
@out_option()
@format_option
def adaptive_command(spec: ModelSpec, data: Optional[str], exit_policy, weights: Optional[str],
                     samples: Optional[int], crossbar, out_dir: str, fmt: str):
    """Cost per input of a halting or early-exit MODEL on real data: MACs histogram, accuracy vs mean cost
    as the threshold sweeps, easiest and hardest inputs. Writes adaptive-MODEL.png/.svg/.csv (the sweep),
    adaptive-MODEL-inputs.csv (one row per input), with --crossbar for ItNet / iterative-resnet
    adaptive-MODEL-energy.png/.svg/.csv (energy per frame, shared vs independent) and index.html to --out."""
    from graphcost.crossbar.adaptive_run import DEFAULT_SAMPLES, AdaptiveRequest, run_adaptive
    from graphcost.crossbar.specs import ArraySpec

    from . import adaptive

    out = check_out_dir(out_dir)
    request = AdaptiveRequest(spec, data=data, policy=exit_policy, weights=weights,
                              samples=samples or DEFAULT_SAMPLES, array=ArraySpec(*crossbar) if crossbar else None)
    run = run_adaptive(request)
    for note in run.notes:
        click.echo(f"note: {note}", err=True)
    sweep = adaptive.sweep_frame(run)
    fig = adaptive.adaptive_figure(run, sweep, spec.name)
    writers = figure_writers(fig, f"adaptive-{spec.name}", sweep)
    per_input = adaptive.samples_frame(run)
    writers[f"adaptive-{spec.name}-inputs.csv"] = lambda p: per_input.to_csv(p, index=False)
    variants = _adaptive_variants(request, run, spec, writers)
    written = write_files(out, writers)
    written.append(write_index(out, f"graphcost report adaptive {spec.name}", written))
    if fmt == "json":
        click.echo(render.dumps({"adaptive": run.to_dict()["adaptive"], "sweep": _records(sweep),
                                 **({"variants": variants} if variants else {})}))
    elif fmt == "csv":
        click.echo(render.frame_csv(sweep), nl=False)
    else:
        rows = [(f"{r['threshold']:g}", render.human(r["mean_macs"]), f"{r['score']:.4f}") for r in _records(sweep)]
        render.console().print(render.table(f"{spec.name}: {run.result.metric} vs mean cost over the threshold sweep",
                                            ["threshold", "mean MACs", run.result.metric], rows))
        click.echo(run.result.line())
        for variant, v in (variants or {}).items():
            if variant != "same_exits":
                click.echo(f"{variant}: {v['chip']['arrays']:,} arrays, {v['chip']['area_mm2']:.1f} mm², energy per "
                           f"frame mean {v['energy_j']['mean'] * 1e6:.4g} µJ, p95 {v['energy_j']['p95'] * 1e6:.4g} µJ")
    _echo_written(written)
