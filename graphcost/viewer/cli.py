"""``graphcost view MODEL --out report.html``: parse options into specs, call :func:`graphcost.viewer.view`."""
from __future__ import annotations

from typing import Optional, Tuple

import click

from graphcost.cli_options import model_options
from graphcost.crossbar.cli import crossbar_option, map_command
from graphcost.crossbar.specs import ArraySpec, ChipSpec
from graphcost.resolve import ModelSpec

#: the hardware options view shares with ``graphcost map`` (the very same click options: names, types, defaults)
MAP_OPTIONS = ("arrays", "weight_bits", "cell_bits", "differential", "analog_bias", "depthwise", "mvm_latency_ns",
               "write_ns_per_row", "tech")


@click.command(name="view")
@model_options
@click.option("--out", "out_path", required=True, metavar="FILE.html", help="The HTML page to write.")
@click.option("--all-layers", is_flag=True, help="Graph size counts non-conv layers too.")
@click.option("--bytes-per-element", type=click.IntRange(min=1), default=None,
              help="Bytes per parameter / activation element for graph size (default: the model's dtype).")
@crossbar_option(default=None, help="Also map onto RxC crossbar arrays (as graphcost map, whose hardware options "
                                    "below apply) and show the mapping.")
def view(spec: ModelSpec, out_path: str, all_layers: bool, bytes_per_element: Optional[int],
         crossbar: Optional[Tuple[int, int]], arrays: Optional[int], weight_bits: int, cell_bits: int,
         differential: bool, analog_bias: bool, depthwise: str, mvm_latency_ns: float, write_ns_per_row: float,
         tech):
    """One self-contained HTML page of MODEL: loop-keeping graph and DAG, costs, anytime outputs, mapping."""
    from graphcost.crossbar.run import MapRequest, check_request, run_map
    from graphcost.resolve import build_for_shapes

    from . import check_out_file, view as render_view

    path = check_out_file(out_path)
    request = None
    if crossbar is not None:
        request = MapRequest(model=spec, depthwise=depthwise, tech=tech,
                             array=ArraySpec(*crossbar, weight_bits=weight_bits, cell_bits=cell_bits,
                                             differential=differential, analog_bias=analog_bias),
                             chip=ChipSpec(arrays=arrays, mvm_latency_ns=mvm_latency_ns,
                                           write_ns_per_row=write_ns_per_row))
        check_request(request)
    elif arrays is not None:
        raise click.UsageError("--arrays needs --crossbar RxC (the array size)")
    built = build_for_shapes(spec)  # the page shows shapes and costs: no weights needed
    # the mapping as graphcost map computes it, so the page holds the very JSON of map --format json
    mapping = run_map(request) if request is not None else None
    render_view(built.module, built.input_shape, out=path, name=built.label, mapping=mapping,
                bytes_per_element=bytes_per_element, all_layers=all_layers)
    click.echo(f"wrote {path}", err=True)


view.params.extend(p for p in map_command.params if p.name in MAP_OPTIONS)
