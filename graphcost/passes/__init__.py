"""Cost passes: small pure functions over a :class:`~graphcost.tracing.Trace`.

Each pass reads the graphs and the per-call costs the op registry put on them; none re-traces.
"""
from .anytime import needed_calls, output_costs
from .graph_size import graph_size_bytes, layer_graph_bytes
from .latency import latency_layers, longest_path_layers
from .macs import macs, other_ops
from .params import params

__all__ = ["needed_calls", "output_costs", "graph_size_bytes", "layer_graph_bytes", "latency_layers", "longest_path_layers",
           "macs", "other_ops", "params"]
