"""``graphcost view MODEL --out report.html``: parse options into specs, call :func:`graphcost.viewer.view`."""
from __future__ import annotations

from typing import Optional

import click

from graphcost.cli_options import model_options
from graphcost.crossbar.cli import map_command, map_request
from graphcost.crossbar.cli_specs import ARRAY, CHIP, LANGUAGE, NOISE_SPEC, TECH_SPEC
from graphcost.resolve import ModelSpec

#: options of ``graphcost map`` that a page has no use for (how map runs and renders), and the spec groups view
#: declares itself (the same groups as map, ``--crossbar`` without a default: a page maps only when asked);
#: view shares all the other options (the very same click options: names, types, defaults)
NOT_SHARED = ("executor_kind", "address", "per_layer", "fmt")


@click.command(name="view")
@model_options
@click.option("--out", "out_path", required=True, metavar="FILE.html", help="The HTML page to write.")
@click.option("--all-layers", is_flag=True, help="Graph size counts non-conv layers too.")
@click.option("--bytes-per-element", type=click.IntRange(min=1), default=None,
              help="Bytes per parameter / activation element for graph size (default: the model's dtype).")
@ARRAY.options(crossbar_default=None, crossbar_help="Also map onto RxC crossbar arrays (as graphcost map, whose "
                                                   "hardware and accuracy options below apply) and show the mapping.")
@CHIP.options()
@NOISE_SPEC.options()
@TECH_SPEC.options()
@LANGUAGE.options()
def view(spec: ModelSpec, out_path: str, all_layers: bool, bytes_per_element: Optional[int], array, chip, noise,
         tech, preset, generate, attention, **map_options):
    """One self-contained HTML page of MODEL: loop-keeping graph and DAG, costs, anytime outputs, mapping
    (and, with --accuracy, accuracy per output against its costs, as the ItNet paper's Fig. 5)."""
    from graphcost.crossbar.run import check_request, run_map
    from graphcost.resolve import build_for_shapes

    from . import check_out_file, view as render_view

    path = check_out_file(out_path)
    request = None
    if array is not None:
        request = map_request(spec, array, chip, tech, noise, preset=preset, generate=generate, attention=attention,
                              **map_options)
        check_request(request)
    elif chip.arrays is not None or map_options["accuracy"]:
        raise click.UsageError("--arrays and --accuracy need --crossbar RxC (the array size)")
    built = build_for_shapes(spec)  # the page shows shapes and costs: no weights needed
    # the mapping as graphcost map computes it, so the page holds the very JSON of map --format json
    mapping = run_map(request) if request is not None else None
    render_view(built.module, built.call_inputs, out=path, name=built.label, mapping=mapping,
                bytes_per_element=bytes_per_element, all_layers=all_layers, tracer=map_options["tracer"])
    click.echo(f"wrote {path}", err=True)


_OWN = {p.name for p in view.params}
MAP_OPTIONS = tuple(p.name for p in map_command.params if p.name not in NOT_SHARED and p.name not in _OWN)
view.params.extend(p for p in map_command.params if p.name in MAP_OPTIONS)
#: the spec groups map and view both declare (view's ``--crossbar`` has no default)
SPEC_OPTIONS = tuple(sorted(_OWN & {p.name for p in map_command.params}))
