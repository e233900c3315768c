"""``graphcost report fig5|anytime|crossbar`` and ``graphcost sweep``: parse options, call the API, render.

Every command that writes files checks ``--out`` before computing anything and writes all its
files at once (all or nothing). Work runs on ``--executor local`` (a process pool sized to the
cores) or ``--executor ray [--address ADDR]``; results are kept in the local store
(``--store PATH``, default ``~/.cache/graphcost/results.sqlite``; ``--no-store`` disables it).
"""
from __future__ import annotations

import functools
import math
import sys
from contextlib import ExitStack
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click

from graphcost.cli_options import format_option, model_options
from graphcost.errors import UserError
from graphcost.resolve import ModelSpec


# --------------------------------------------------------------------------- shared options
def run_options(func):
    """``--executor --address --workers --store/--no-store --progress/--no-progress`` as ``run: RunOptions``."""

    @click.option("--executor", "executor_kind", type=click.Choice(["local", "ray"]), default="local",
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
        return func(run=RunOptions(executor_kind, address, workers, store_path, no_store, progress), **kwargs)

    return wrapper


class RunOptions:
    def __init__(self, executor_kind: str, address: Optional[str], workers: Optional[int], store_path: Optional[str],
                 no_store: bool, progress: Optional[bool]) -> None:
        self.executor_kind = executor_kind
        self.address = address
        self.workers = workers
        self.store_path = store_path
        self.no_store = no_store
        self.progress = progress
        if no_store and store_path:
            raise UserError("--store and --no-store contradict each other; keep one")

    def open(self, stack: ExitStack):
        """Enter the executor and the store; both close when ``stack`` does."""
        from graphcost.executor import make_executor
        from graphcost.store import open_store

        store = stack.enter_context(open_store(self.store_path, enabled=not self.no_store))
        store.get_many([])  # open (and create) it now: a bad --store fails before any work
        executor = stack.enter_context(make_executor(self.executor_kind, self.address, self.workers))
        return executor, store

    def bar(self, description: str, total: int):
        from graphcost.executor import ProgressBar

        return ProgressBar(description, total, enabled=self.progress)


def out_option(default: Optional[str] = "."):
    return click.option("--out", "out_dir", default=default, metavar="DIR", show_default=default is not None,
                        help="Folder for the PNG, SVG and CSV files (created if missing).")


def _echo_written(paths: Sequence[str]) -> None:
    for path in paths:
        click.echo(f"wrote {path}", err=True)


# --------------------------------------------------------------------------- graphcost report
@click.group(name="report")
def report():
    """Figures from live numbers: the ItNet paper's Fig. 5, anytime cost curves, crossbar fit."""


@report.command(name="fig5")
@out_option()
@click.option("--accuracy-table", "accuracy_table", default=None, metavar="CSV",
              help="mIoU per model/variant/dataset[/output] replacing the shipped literature values "
                   "(columns: model, variant, dataset, miou; optional output, split, source, params).")
@click.option("--dataset", "datasets", type=click.Choice(["camvid", "cityscapes"]), multiple=True,
              help="Only these rows of the figure (default: both).")
@run_options
def fig5_command(out_dir: str, accuracy_table: Optional[str], datasets: Tuple[str, ...], run: RunOptions):
    """The ItNet paper's Fig. 5: mIoU over graph size, latency, MACs and parameters on CamVid and Cityscapes.

    x-values are computed live at each dataset's resolution; mIoU comes from the shipped
    reports/literature.csv (with citations) or --accuracy-table. Writes fig5.png, fig5.svg and
    fig5.csv (every plotted point).
    """
    from . import fig5
    from .common import check_out_dir

    out = check_out_dir(out_dir)
    datasets = datasets or fig5.DATASETS
    prepared = fig5.prepare(accuracy_table, datasets)  # fail on a bad table before any work
    with ExitStack() as stack:
        executor, store = run.open(stack)
        bar = stack.enter_context(run.bar("fig5: analysing networks", len(prepared[1])))
        written, points = fig5.run(out, accuracy_table, executor, store, bar, datasets, prepared=prepared)
    _echo_written(written)
    drawn = points[points["plotted_as"] != "cost-only"]
    click.echo(f"fig5: {len(points)} points from {points.groupby(['dataset', 'label', 'variant']).ngroups} "
               f"networks, {len(drawn)} with mIoU", err=True)


@report.command(name="anytime")
@model_options
@out_option()
@click.option("--accuracy-table", "accuracy_table", default=None, metavar="CSV",
              help="mIoU per output (columns output, miou; optional model, variant, dataset to filter).")
@click.option("--variant", default=None, help="Row of the accuracy table to use (its variant column).")
@format_option
@run_options
def anytime_command(spec: ModelSpec, out_dir: str, accuracy_table: Optional[str], variant: Optional[str], fmt: str,
                    run: RunOptions):
    """Cost of every output of an anytime MODEL: MACs, latency and graph size (with mIoU where given).

    Prints the per-output table and writes anytime-MODEL.png/.svg/.csv to --out.
    """
    from graphcost import render
    from graphcost.resolve import build

    from . import anytime
    from .common import check_out_dir, read_table, shape_text

    out = check_out_dir(out_dir)
    accuracy = read_table(accuracy_table) if accuracy_table else None
    built = build(spec)  # validates the model and params now, with a one-line error
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
        rows = []
        for r in frame.to_dict("records"):
            row = [r["output"], render.human(r["macs"]), r["latency_layers"], render.megabytes(r["graph_size_bytes"])]
            if "miou" in frame.columns:
                row.append("" if _nan(r["miou"]) else f"{r['miou']:.1f}")
            rows.append(row)
        columns = ["output", "MACs", "latency (layers)", "graph size"] + (["mIoU (%)"] if "miou" in frame.columns
                                                                         else [])
        render.console().print(render.table(f"{label} @ {shape_text(summary['input_shape'])}: cost per output",
                                            columns, rows))
    _echo_written(written)


def _nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _records(frame) -> List[Dict[str, Any]]:
    out = []
    for r in frame.to_dict("records"):
        out.append({k: (None if _nan(v) else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()})
    return out


def _parse_model_token(token: str) -> Tuple[str, Dict[str, Any]]:
    """``espnetv2@s=1.5,classes=19`` -> ("espnetv2", {"s": 1.5, "classes": 19})."""
    from graphcost.resolve import parse_params

    name, sep, rest = token.partition("@")
    if not name:
        raise UserError(f"MODEL expects NAME or NAME@KEY=VALUE,..., got {token!r}")
    items = [p for p in rest.split(",") if p.strip()] if sep else []
    if sep and not items:
        raise UserError(f"MODEL {token!r} has '@' but no KEY=VALUE after it")
    return name, parse_params(items)


DEFAULT_CROSSBAR_MODELS = ("itnet@shared=True", "itnet@shared=False", "enet", "espnetv2@s=2.0", "cgnet", "recunet")


@report.command(name="crossbar")
@click.argument("models", nargs=-1, metavar="[MODEL[@KEY=VALUE,...]]...")
@click.option("--dataset", type=click.Choice(["camvid", "cityscapes", "pascal"]), default="camvid", show_default=True,
              help="Dataset preset: input resolution and classes.")
@click.option("--input", "input_text", default=None, metavar="HxW", help="Input resolution, e.g. 360x480.")
@click.option("--crossbar", "crossbar_text", default="256x256", show_default=True, metavar="RxC",
              help="Crossbar array size: rows x columns.")
@click.option("--depthwise", type=click.Choice(["dense", "packed", "time-multiplexed"]), default="dense",
              show_default=True, help="How grouped / depthwise convs are tiled.")
@click.option("--mvm-latency-ns", type=float, default=None, help="Time of one MVM of one array (ns).")
@click.option("--write-ns-per-row", type=float, default=None, help="Time to program one array row (ns).")
@out_option()
@format_option
@run_options
def crossbar_command(models: Tuple[str, ...], dataset: str, input_text: Optional[str], crossbar_text: str,
                     depthwise: str, mvm_latency_ns: Optional[float], write_ns_per_row: Optional[float], out_dir: str,
                     fmt: str, run: RunOptions):
    """Arrays needed and throughput against chip size M for several MODELs in one plot.

    MODEL is a zoo name with optional parameters after '@' (e.g. itnet@shared=False,f=29 or
    espnetv2@s=1.5); default: ItNet shared and independent, ENet, ESPNetv2 s=2, CGNet, RecUNet.
    Writes crossbar.png/.svg/.csv to --out.
    """
    from graphcost import render
    from graphcost.crossbar.specs import ArraySpec, ChipSpec, parse_crossbar
    from graphcost.resolve import parse_input_shape

    from . import crossbar_report
    from .common import check_out_dir, shape_text

    out = check_out_dir(out_dir)
    rows_cols = parse_crossbar(crossbar_text)
    ArraySpec(*rows_cols)
    ChipSpec(**{k: v for k, v in (("mvm_latency_ns", mvm_latency_ns), ("write_ns_per_row", write_ns_per_row))
                if v is not None})
    shape = parse_input_shape(input_text) if input_text else None
    items, labels = [], []
    for token in models or DEFAULT_CROSSBAR_MODELS:
        name, params = _parse_model_token(token)
        item, label = crossbar_report.model_item(name, params, dataset, shape, rows_cols, depthwise, mvm_latency_ns,
                                                 write_ns_per_row, token=token)
        items.append(item)
        labels.append(label)
    res_shape = shape_text(items[0]["input_shape"][-2:])
    title = f"{dataset} {res_shape}, {rows_cols[0]}x{rows_cols[1]} crossbar arrays"
    with ExitStack() as stack:
        executor, store = run.open(stack)
        bar = stack.enter_context(run.bar("crossbar: mapping networks", len(items)))
        results, points, written = crossbar_report.run(items, labels, out, title, executor, store, bar)
    summary = [{"model": label, "arrays_needed": r["arrays_needed"], "utilization": r["utilization"],
                "throughput_fps": r["resident_fps"], "latency_s": r["latency_s"]}
               for label, r in zip(labels, results)]
    if fmt == "json":
        click.echo(render.dumps({"crossbar": crossbar_text, "dataset": dataset, "models": summary,
                                 "points": _records(points)}))
    elif fmt == "csv":
        click.echo(render.frame_csv(points), nl=False)
    else:
        rows = [(s["model"], f"{s['arrays_needed']:,}", f"{s['utilization']:.1%}", f"{s['throughput_fps']:,.0f}",
                 f"{s['latency_s'] * 1e3:.3f}") for s in summary]
        render.console().print(render.table(f"crossbar fit: {title}",
                                            ["model", "arrays needed", "utilization", "fps when it fits",
                                             "latency (ms)"], rows))
    _echo_written(written)


# --------------------------------------------------------------------------- graphcost sweep
@click.command(name="sweep")
@model_options
@click.option("--grid", "grid_items", multiple=True, metavar="KEY=V1,V2,...",
              help="A swept parameter and its values (repeatable), e.g. --grid N=1,2,4,8,16 --grid L=1..4.")
@click.option("--macs-budget", type=float, default=None,
              help="Per grid point, search the widest --width-param whose last output needs at most this many MACs.")
@click.option("--width-param", default=None, help="The width searched for the budget (default: f).")
@click.option("--width-max", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Largest width the search tries.")
@click.option("--crossbar", "crossbar_text", default=None, metavar="RxC",
              help="Also map every point onto RxC crossbar arrays (arrays_used, utilization, ...).")
@click.option("--arrays", "chip_arrays", type=click.IntRange(min=1), default=None, metavar="M",
              help="With --crossbar: a chip of M arrays (fits, throughput_fps, latency_s).")
@click.option("--metric", default=None, metavar="NAME[:min|max]",
              help="Rank the points by a column (e.g. graph_size_bytes) or by auc, the paper's AUC of mIoU "
                   "over MACs (needs --accuracy-table).")
@click.option("--accuracy-table", "accuracy_table", default=None, metavar="CSV",
              help="Per-output mIoU of the grid points (columns: the grid parameters, output, miou).")
@click.option("--chance-miou", type=float, default=0.00828, show_default=True,
              help="y0 of the AUC: mIoU at chance level (the paper's CamVid value).")
@click.option("--skip-failed", is_flag=True, help="Drop grid points that fail (e.g. budget not met) instead of "
                                                 "stopping with an error.")
@click.option("--out", "out_dir", default=None, metavar="DIR",
              help="Also write sweep-MODEL.csv/.json and the heat-maps sweep-MODEL.png/.svg here.")
@format_option
@run_options
def sweep(spec: ModelSpec, grid_items: Tuple[str, ...], macs_budget: Optional[float], width_param: Optional[str],
          width_max: int, crossbar_text: Optional[str], chip_arrays: Optional[int], metric: Optional[str],
          accuracy_table: Optional[str], chance_miou: float, skip_failed: bool, out_dir: Optional[str], fmt: str,
          run: RunOptions):
    """Grid search over MODEL's parameters, the widest width within a MAC budget per point (ItNet Figs. A2/A3).

    \b
    Example (the paper's search, Sec. III-A):
      graphcost sweep itnet --grid N=1,2,4,8,16 --grid L=1,2,3,4 --grid K=1,2,3 \\
          --macs-budget 2.2e9 --dataset camvid --shared
    """
    from graphcost import render
    from graphcost.sweep import (SweepSpec, attach_accuracy, describe_failures, flat_frame, parse_grid, parse_metric,
                                 rank_rows, resolve_spec, run_sweep)

    from .common import check_out_dir, read_table

    grid = parse_grid(grid_items)
    crossbar = None
    if crossbar_text:
        from graphcost.crossbar.specs import ArraySpec, parse_crossbar

        crossbar = parse_crossbar(crossbar_text)
        ArraySpec(*crossbar)
    elif chip_arrays is not None:
        raise UserError("--arrays needs --crossbar RxC (the array size)")
    if metric:
        parse_metric(metric)
    if accuracy_table and not metric:
        metric = "auc"
    out = check_out_dir(out_dir) if out_dir is not None else None
    accuracy = read_table(accuracy_table) if accuracy_table else None
    sweep_spec = SweepSpec(model=spec.name, grid=grid, fixed=tuple(spec.params.items()), dataset=spec.dataset,
                           input_shape=spec.input_shape, shared=spec.shared, macs_budget=macs_budget,
                           width_param=width_param, width_max=width_max, crossbar=crossbar,
                           chip_arrays=chip_arrays)
    sweep_spec = resolve_spec(sweep_spec)  # bad names fail before the executor starts
    with ExitStack() as stack:
        executor, store = run.open(stack)
        bar = stack.enter_context(run.bar(f"sweep {spec.name}", len(sweep_spec.points())))
        result = run_sweep(sweep_spec, executor, store, progress=bar)
        where = executor.describe()
    if result.failed and not skip_failed:
        raise UserError(describe_failures(result))
    rows = [r for r in result.rows if r.get("status") == "ok"]
    if accuracy is not None:
        attach_accuracy(rows, accuracy, sweep_spec.grid_keys, chance=chance_miou)
    if metric:
        rows = rank_rows(rows, metric)
    metric_name = parse_metric(metric)[0] if metric else None
    width = sweep_spec.width_param
    written: List[str] = []
    if out is not None:
        from .heatmap import write_sweep

        written = write_sweep(out, result, rows, width, metric_name)
    payload = {"model": spec.name, "dataset": sweep_spec.dataset, "input_shape": list(sweep_spec.input_shape),
               "shared": sweep_spec.shared, "macs_budget": macs_budget, "width_param": width,
               "grid": {k: list(v) for k, v in grid}, "metric": metric, "rows": rows,
               "computed": result.computed, "cached": result.cached, "analyses": result.analyses,
               "seconds": round(result.seconds, 3)}
    if fmt == "json":
        click.echo(render.dumps(payload))
    elif fmt == "csv":
        click.echo(render.frame_csv(flat_frame(rows)), nl=False)
    else:
        _print_sweep_table(spec.name, sweep_spec, rows, width, metric_name)
    if result.failed:
        click.echo(f"note: skipped {len(result.failed)} failed grid points: {describe_failures(result)}", err=True)
    click.echo(f"sweep: {len(result.rows)} points ({result.cached} from the store, {result.computed} computed, "
               f"{result.analyses} analyses) in {result.seconds:.1f} s on the {where}", err=True)
    _echo_written(written)


def _print_sweep_table(model: str, spec, rows, width: Optional[str], metric: Optional[str]) -> None:
    from graphcost import render

    from .common import shape_text

    keys = list(spec.grid_keys)
    columns = keys + ([width] if width else []) + ["MACs (last out)", "params", "graph size", "latency"]
    extra = [c for c in ("arrays_used", "fits", "throughput_fps") if any(c in r for r in rows)]
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
            row.append(f"{v:,.0f}" if c == "throughput_fps" and v is not None else v)
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


def _main() -> None:  # pragma: no cover - convenience: python -m graphcost.reports.cli
    from graphcost.cli import main

    sys.exit(main())
