"""``graphcost analyze --adaptive``: build the :class:`~.adaptive_run.AdaptiveRequest`, run it, render.

The core command parses the options (at the option: data, exit policy, weights, array size) and
hands over here; this module only calls :func:`~.adaptive_run.run_adaptive` and renders the table
(the fixed-cost analysis, then the per-input distribution, the histogram and the saving line),
the JSON (the analysis with an ``adaptive`` key) or a CSV of one row per input.
"""
from __future__ import annotations

from typing import Optional, Tuple

import click

from graphcost import render
from graphcost.resolve import ModelSpec

from .adaptive import ExitPolicy
from .adaptive_run import DEFAULT_SAMPLES, AdaptiveRequest, AdaptiveRun, run_adaptive
from .specs import ArraySpec


def run_request(spec: ModelSpec, *, data: Optional[str], policy: Optional[ExitPolicy], weights: Optional[str],
                samples: Optional[int], crossbar: Optional[Tuple[int, int]], tracer: str) -> AdaptiveRun:
    """The :class:`AdaptiveRun` of ``analyze --adaptive``'s parsed options; notes go to stderr."""
    request = AdaptiveRequest(spec, data=data, policy=policy, weights=weights, samples=samples or DEFAULT_SAMPLES,
                              array=ArraySpec(*crossbar) if crossbar else None, tracer=tracer)
    run = run_adaptive(request)
    for note in run.notes:
        click.echo(f"note: {note}", err=True)
    return run


def render_run(run: AdaptiveRun, fmt: str) -> None:
    """JSON (the analysis with an ``adaptive`` key), CSV (one row per input) or the adaptive tables (the
    command renders the fixed-cost analysis table before them)."""
    if fmt == "json":
        click.echo(render.dumps(run.to_dict()))
    elif fmt == "csv":
        click.echo(render.frame_csv(run.per_input_frame()), nl=False)
    else:
        _render_adaptive(run)


def _render_adaptive(run: AdaptiveRun) -> None:
    result = run.result
    d = result.to_dict()
    con = render.console()
    rows = [("MACs", d["macs"], render.human), ("latency (conv layers)", d["latency_layers"], lambda v: f"{v:.1f}")]
    if "energy_j" in d:
        rows += [("energy (J)", d["energy_j"], lambda v: f"{v:.3g}"), ("latency (s)", d["latency_s"], lambda v: f"{v:.3g}")]
    table = [(name, *(fmt(stats[k]) for k in ("mean", "p50", "p95", "min", "max"))) for name, stats, fmt in rows]
    title = f"adaptive: {result.samples} inputs of {result.data}, {result.policy}"
    con.print(render.table(title, ["per input", "mean", "p50", "p95", "min", "max"], table))
    if result.iterations is not None:
        hist = [(stage, " ".join(f"{n}:{c}" for n, c in counts.items())) for stage, counts in result.iterations.items()]
        con.print(render.table("iterations used (iterations:inputs)", ["stage", "histogram"], hist))
    else:
        con.print(render.table("exits (output:inputs)", ["exits"],
                               [(" ".join(f"{n}:{c}" for n, c in result.exits.items()),)]))
    m = result.metric
    click.echo(f"{m} {result.score:.4f} adaptive, {result.fixed_score:.4f} at the fixed cost "
               f"({result.fixed_run}, {render.human(result.fixed_macs)} MACs); {result.line()}")
    if run.chip is not None:
        chip = run.chip
        click.echo(f"on {chip['arrays']:,} arrays of {chip['crossbar']} ({chip['area_mm2']:.2f} mm², {chip['tech']})")
