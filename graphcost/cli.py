"""The ``graphcost`` command line: parse options into specs, call the API, render.

Every command takes the same model options (see :func:`model_options`). Errors a user can
cause print one line on stderr and exit with 2.

Start-up stays light: torch, the graph code and the plugin rooms are imported inside the command
that needs them, so ``graphcost --help``, ``graphcost models`` and ``--version`` import no torch.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Dict, Iterator, Optional, Tuple

import click

from .cli_options import FORMATS, Parsed, format_option, model_options, tracer_option  # noqa: F401 (re-exported)
from .errors import TORCH_CAPTURE_LOGGERS, UserError, shape_text
from .signals import signals_deferred

if TYPE_CHECKING:
    from .resolve import ModelSpec

#: exit status of ``analyze --strict`` when some computing op could not be counted
EXIT_INCOMPLETE = 3


#: ``graph --view`` and ``--out``: the keys of :data:`graphcost.export.VIEWS` and its ``FORMATS``
#: (spelled here so the option needs no networkx; tests/test_startup.py checks they agree)
GRAPH_VIEWS = ("loop", "dag")
GRAPH_FORMATS = (".graphml", ".dot")

#: plugin commands: name -> (module, attribute, short help). Each module is imported when its
#: command runs, not when ``--help`` lists it; tests/test_startup.py checks the help lines.
PLUGINS: Dict[str, Tuple[str, str, str]] = {
    "map": ("graphcost.crossbar.cli", "map_command",
            "Map MODEL onto crossbar arrays: arrays used, fit, throughput, latency, energy, power and area "
            "(per anytime output too)."),
    "train": ("graphcost.crossbar.train_cli", "train_command", "Train MODEL on --data (float or --hwa, Eq."),
    "report": ("graphcost.reports.cli", "report", "Figures from live numbers: the ItNet paper's Fig."),
    "sweep": ("graphcost.reports.cli", "sweep",
              "Grid search over MODEL's parameters, the widest width within a MAC budget per point (ItNet Figs."),
    "view": ("graphcost.viewer.cli", "view",
             "One self-contained HTML page of MODEL: loop-keeping graph and DAG, costs, anytime outputs, mapping "
             "(and, with --accuracy, accuracy per output against its costs, as the ItNet paper's Fig."),
}


class LazyGroup(click.Group):
    """A click group that imports a plugin command when it runs (click's lazy-loading pattern)."""

    def __init__(self, *args, lazy: Dict[str, Tuple[str, str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx) -> list:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name: str) -> Optional[click.Command]:
        if name in self.lazy and name not in self.commands:
            module_name, attribute, _ = self.lazy[name]
            try:
                with signals_deferred():  # it imports torch: a Ctrl-C inside a C extension's start aborts the process
                    module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:  # a plugin room that is not installed
                if not module_name.startswith(exc.name or "?"):
                    raise
                return None
            self.add_command(getattr(module, attribute), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter) -> None:
        """The command list, plugin lines from :data:`PLUGINS` (listing them imports nothing)."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self.commands[name].get_short_help_str(limit) if name in self.commands
                 else click.Command(name, help=self.lazy[name][2]).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


#: ``analyze --adaptive`` option types, parsed by the crossbar room's functions (imported at the first value)
ADAPTIVE_DATA = Parsed("graphcost.crossbar.data:check_data", "data", "synthetic|digits|camvid:PATH|cityscapes:PATH")
EXIT_POLICY = Parsed("graphcost.crossbar.adaptive:parse_exit", "exit policy", "confidence=T|output=N")
ADAPTIVE_WEIGHTS = Parsed("graphcost.crossbar.accuracy:check_weights", "weights", "float|hwa|FILE")
ADAPTIVE_CROSSBAR = Parsed("graphcost.crossbar.specs:parse_crossbar", "crossbar size", "RxC")


def graph_path(text: str) -> str:
    """A path for :func:`~graphcost.export.export_graph`: it must end in one of its formats."""
    if not text.lower().endswith(GRAPH_FORMATS):
        raise UserError(f"the file must end in {' or '.join(GRAPH_FORMATS)}, got {text!r}")
    return text


@click.group(cls=LazyGroup, lazy=PLUGINS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="graphcost")
def cli():
    """Computational-graph costs of PyTorch models, loop-aware, and their mapping onto crossbar arrays.

    MODEL is a zoo name (graphcost models), torchvision:NAME, timm:NAME, hf:MODEL_TYPE[:TASK] (a transformers
    model from its config: TASK base, causal-lm, masked-lm, seq-cls, image-cls,
    semantic-seg, seq2seq-lm or speech-seq2seq), or
    package.module:callable.
    """


@cli.command()
@model_options(default=None)
@click.option("--per-layer", is_flag=True, help="Also list every unique layer.")
@click.option("--all-layers", is_flag=True, help="Graph size counts non-conv layers too.")
@click.option("--bytes-per-element", type=click.IntRange(min=1), default=None,
              help="Bytes per parameter / activation element for graph size (default: the model's dtype).")
@click.option("--strict", is_flag=True, help="Exit with 3 when some computing op could not be counted.")
@click.option("--adaptive", is_flag=True,
              help="Cost per input on real --data: iterations used per ACT stage of a halting network, or the "
                   "output an early-exit network stops at (--exit); distribution, histogram, saving.")
@click.option("--data", "data", type=ADAPTIVE_DATA, default=None,
              help="With --adaptive: the inputs (default: digits for the digits preset, else synthetic).")
@click.option("--exit", "exit_policy", type=EXIT_POLICY, default=None,
              help="With --adaptive, for early-exit networks: stop at the first output whose max softmax (mean "
                   "over pixels) reaches T, or always at output N (default: confidence=0.9).")
@click.option("--weights", "weights", type=ADAPTIVE_WEIGHTS, default=None,
              help="With --adaptive: the shipped float / hwa checkpoint or a state dict file (default: the shipped "
                   "checkpoint of the model and data, built with the parameters it was trained with).")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="With --adaptive: images to run (default 360, the whole digits test split).")
@click.option("--crossbar", "crossbar", type=ADAPTIVE_CROSSBAR, default=None,
              help="With --adaptive: also map onto RxC arrays (programmed once) for energy and latency per input.")
@tracer_option
@format_option
def analyze(spec: ModelSpec, per_layer: bool, all_layers: bool, bytes_per_element: Optional[int], strict: bool,
            adaptive: bool, data: Optional[str], exit_policy, weights: Optional[str], samples: Optional[int],
            crossbar: Optional[Tuple[int, int]], tracer: str, fmt: str):
    """Parameters, MACs, graph size and latency of MODEL, per anytime output too (--adaptive: per input)."""
    from .analysis import analyze as analyze_model
    from .resolve import build_for_shapes

    given = [flag for flag, value in (("--data", data), ("--exit", exit_policy), ("--weights", weights),
                                      ("--samples", samples), ("--crossbar", crossbar)) if value is not None]
    if adaptive:
        from .crossbar import adaptive_cli  # a plugin room, imported when asked for

        run = adaptive_cli.run_request(spec, data=data, policy=exit_policy, weights=weights, samples=samples,
                                       crossbar=crossbar, tracer=tracer)
        if fmt == "table":
            _render_analysis(run.analysis, per_layer, fmt)
        adaptive_cli.render_run(run, fmt)
        return 0
    if given:
        raise UserError(f"{given[0]} is an option of --adaptive; add --adaptive")
    built = build_for_shapes(spec)
    with _input_hint(spec):
        result = analyze_model(built.module, built.call_inputs, name=built.label,
                               bytes_per_element=bytes_per_element, all_layers=all_layers, tracer=tracer)
    if tracer == "auto" and result.capture == "eager":
        click.echo("note: fx, meta and export capture failed on data-dependent operations; counted by one real "
                   "forward (--tracer eager): costs hold for these input values", err=True)
    _render_analysis(result, per_layer, fmt)
    return EXIT_INCOMPLETE if strict and not result.complete else 0


@contextlib.contextmanager
def _input_hint(spec: ModelSpec) -> Iterator[None]:
    """A model that cannot run on the inputs it was given: the error says how to give others."""
    try:
        yield
    except UserError as exc:
        raise UserError(f"{exc}; give the inputs {spec.name} needs with --input [NAME=]DIMS[:DTYPE] "
                        f"(repeatable)") from None


def _render_analysis(result, per_layer: bool, fmt: str) -> None:
    from . import render

    if fmt == "json":
        click.echo(render.dumps(result.to_dict()))
        return
    if fmt == "csv":
        frame = result.to_frame() if per_layer else result.outputs_frame()
        click.echo(render.frame_csv(frame), nl=False)
        return
    con = render.console()
    shape = shape_text(result.input_shape)
    summary = [
        ("params", render.human(result.params)),
        ("MACs (multiply-accumulates, not FLOPs)", render.human(result.macs)),
        ("other ops (pool, norm, act, add, resize)", render.human(result.other_ops)),
        ("graph size" + (" (all layers)" if result.all_layers else " (conv layers)"),
         render.megabytes(result.graph_size_bytes)),
        ("latency (conv layers on longest path)", str(result.latency_layers)),
        ("unique layers / calls", f"{result.loop_nodes} / {result.dag_nodes}"),
    ]
    if not result.complete:
        summary.append(("INCOMPLETE: computing ops not counted (MACs are a lower bound)", result.incomplete_note))
    con.print(render.table(f"{result.model} @ {shape}", ["metric", "value"], summary))
    if len(result.outputs) > 1:
        rows = [(o.index, o.name, render.human(o.macs), o.latency_layers, render.megabytes(o.graph_size_bytes))
                for o in result.outputs]
        con.print(render.table("anytime outputs", ["output", "name", "MACs", "latency", "graph size"], rows))
    if per_layer:
        rows = [(layer.name, layer.op, layer.calls, render.human(layer.params), render.human(layer.macs),
                 render.megabytes(layer.in_bytes), render.megabytes(layer.out_bytes),
                 render.megabytes(layer.graph_size_bytes)) for layer in result.layers]
        con.print(render.table("layers", ["layer", "op", "calls", "params", "MACs", "in", "out", "graph size"],
                               rows))
    if result.opaque_modules:
        click.echo(f"note: opaque modules (no graphcost formula; costed per aten op by torch's formulas): "
                   f"{', '.join(result.opaque_modules)}", err=True)
    if result.unknown_ops:
        click.echo(f"note: functions without a graphcost formula (costed per aten op): {', '.join(result.unknown_ops)}",
                   err=True)


@cli.command()
@model_options
@click.option("--out", "out_path", required=True, type=Parsed(graph_path, "graph file", "FILE.graphml|FILE.dot"),
              help="FILE.graphml or FILE.dot")
@click.option("--view", type=click.Choice(list(GRAPH_VIEWS)), default=next(iter(GRAPH_VIEWS)), show_default=True,
              help="Loop-keeping graph (one node per unique layer) or execution DAG (one node per call).")
@tracer_option
def graph(spec: ModelSpec, out_path: str, view: str, tracer: str):
    """Export MODEL's loop-keeping graph or execution DAG."""
    from .export import export_graph
    from .resolve import build_for_shapes
    from .tracing import trace

    built = build_for_shapes(spec)
    with _input_hint(spec):
        captured = trace(built.module, built.call_inputs, tracer=tracer)
    g = export_graph(captured, out_path, view)
    click.echo(f"wrote {out_path}: {g.number_of_nodes()} nodes, {g.number_of_edges()} edges ({view} view)")


@cli.command(name="models")
def list_models_command():
    """List the model zoo."""
    from . import render
    from .models.manifest import ZOO

    rows = [(name, item.default_dataset, item.description) for name, item in sorted(ZOO.items())]
    render.console().print(render.table("graphcost model zoo", ["model", "default dataset", "description"], rows))


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C (pools stopped, stores closed), then exit 143."""


#: Seconds after Ctrl-C / SIGTERM by which the ``graphcost`` process has exited, whatever still runs.
EXIT_WITHIN_S = 8.0
#: Seconds between re-sends of a signal whose exception some library swallowed (the run went on).
RESEND_S = 1.0
#: The console entry point enables the deadline; it is armed by the first signal.
_EXIT_DEADLINE = {"enabled": False, "armed": False, "main": False, "resent": False, "caught": False,
                  "signum": None}
_EXIT_LINES = {signal.SIGINT: ("graphcost: interrupted", 130), signal.SIGTERM: ("graphcost: terminated", 143)}


def _arm_exit_deadline(signum: int) -> None:
    """Exit with the signal's status after :data:`EXIT_WITHIN_S` even if clean-up hangs (once per process).

    Unwinding stops the pool and closes the store first; this bounds what no one can (a thread of a
    library that never returns). Only the console entry point arms it, never an in-process caller.
    """
    if not _EXIT_DEADLINE["enabled"] or _EXIT_DEADLINE["armed"]:
        return
    _EXIT_DEADLINE["armed"], _EXIT_DEADLINE["signum"] = True, signum
    line, code = _EXIT_LINES[signum]

    def exit_now() -> None:
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        finally:
            os._exit(code)

    timer = threading.Timer(EXIT_WITHIN_S, exit_now)
    timer.daemon = True
    timer.start()
    threading.Thread(target=_resend_until_caught, args=(signum,), name="graphcost-signal-resend", daemon=True).start()


def _resend_until_caught(signum: int) -> None:
    """Send the signal again every :data:`RESEND_S` until ``main`` has caught its exception: a library that
    swallows it (a broad ``except`` during ``import torch``'s imports) must not let the run go on."""
    while True:
        time.sleep(RESEND_S)
        if not _EXIT_DEADLINE["main"] or _EXIT_DEADLINE["caught"]:
            return
        _EXIT_DEADLINE["resent"] = True
        os.kill(os.getpid(), signum)


def _unwinding_already() -> bool:
    """Console only: a signal is being handled (the exit deadline runs), so a further one must not raise in the
    middle of the clean-up; a signal re-sent because the first was swallowed still raises."""
    if _EXIT_DEADLINE["resent"]:
        _EXIT_DEADLINE["resent"] = False
        return False
    return _EXIT_DEADLINE["armed"]


def _terminate(signum, frame):
    if _unwinding_already():
        return
    _arm_exit_deadline(signum)
    raise Terminated()


def _interrupt(signum, frame):
    if _unwinding_already():
        return
    _arm_exit_deadline(signum)
    raise KeyboardInterrupt()


def _redeliver_swallowed_signals(unraisable) -> None:
    """``sys.unraisablehook``: a Ctrl-C / SIGTERM that landed where Python cannot raise (an at-fork hook of
    ``logging`` while Ray starts, a ``__del__``) would be printed as "Exception ignored" and lost; send it
    again a moment later instead, so it unwinds the run from ordinary code."""
    if isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)):
        signum = signal.SIGINT if isinstance(unraisable.exc_value, KeyboardInterrupt) else signal.SIGTERM

        def again() -> None:
            if _EXIT_DEADLINE["main"]:  # once main has returned, the exit is under way: nothing to unwind
                _EXIT_DEADLINE["resent"] = True
                os.kill(os.getpid(), signum)

        timer = threading.Timer(0.01, again)
        timer.daemon = True
        timer.start()
        return
    sys.__unraisablehook__(unraisable)


def _quiet_torch() -> None:
    # torch logs a full traceback (~20 lines) whenever a fake-tensor shape check fails, before our
    # one-line UserError about the same failure reaches the user; tracing silences it while it
    # captures, the command line for every command (mapping and reports run models too).
    for name in TORCH_CAPTURE_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _exit_status(exc: BaseException) -> int:
    """The one stderr line and the exit status for what ended a command (re-raises a bug)."""
    signalled = isinstance(exc, (KeyboardInterrupt, Terminated)) or (
        isinstance(exc, click.exceptions.Abort) and isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt))
    if signalled or _EXIT_DEADLINE["armed"]:  # armed: a signal is being handled; whatever failed after it (a
        _EXIT_DEADLINE["caught"] = True        # library its exception left half-imported) is part of stopping
        signum = signal.SIGTERM if isinstance(exc, Terminated) else _EXIT_DEADLINE["signum"] or signal.SIGINT
        line, code = _EXIT_LINES[signum]
        click.echo(line, err=True)
        return code
    if isinstance(exc, UserError):
        click.echo(f"graphcost: error: {' '.join(str(exc).split())}", err=True)  # one line, even quoting torch
        return 2
    if isinstance(exc, click.exceptions.Abort):
        click.echo("graphcost: aborted", err=True)
        return 1
    if isinstance(exc, click.ClickException):
        click.echo(f"graphcost: error: {' '.join(exc.format_message().split())}", err=True)
        return 2
    raise exc


def main(argv=None) -> int:
    """Console entry point: user errors become one stderr line and exit code 2; Ctrl-C exits 130, SIGTERM 143."""
    _quiet_torch()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, handler) for sig, handler in
                ((signal.SIGTERM, _terminate), (signal.SIGINT, _interrupt))} if in_main_thread else {}
    previous_hook, sys.unraisablehook = sys.unraisablehook, _redeliver_swallowed_signals
    _EXIT_DEADLINE["main"] = True
    try:
        result = cli.main(args=argv, prog_name="graphcost", standalone_mode=False)
    except (KeyboardInterrupt, Terminated, Exception) as exc:
        return _exit_status(exc)
    finally:
        _EXIT_DEADLINE["main"] = False
        sys.unraisablehook = previous_hook
        for sig, handler in previous.items():  # the console is exiting: a late signal must not raise any more
            signal.signal(sig, signal.SIG_IGN if _EXIT_DEADLINE["enabled"] else handler)
    return result if isinstance(result, int) else 0


def console_main() -> None:
    _EXIT_DEADLINE["enabled"] = True
    code = main()
    if code in (130, 128 + signal.SIGTERM) or _EXIT_DEADLINE["armed"]:
        # Interrupted: everything was stopped and closed while unwinding, so skip the interpreter's finalization
        # (joins of threads a library left behind, late signals); the exit status is the signal's.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
