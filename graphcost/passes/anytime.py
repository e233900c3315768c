"""Per-output costs for anytime (multi-output) networks.

Output n needs exactly its ancestors in the execution DAG: its MACs are theirs, its latency is
its longest path, its graph size is that of the unique layers those calls use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Set

from ..tracing import Trace
from .graph_size import graph_size_bytes
from .latency import longest_path_layers
from .macs import macs, other_ops
from .params import params


@dataclass(frozen=True)
class OutputCost:
    """Cost of producing one output (``index`` counts from 1, as the paper's m_n; ``name`` is where
    it sits in what ``forward`` returns: a dict key, a tuple index or a dotted path of them)."""

    index: int
    node: str
    shape: tuple
    macs: int
    other_ops: int
    latency_layers: int
    graph_size_bytes: int
    params: int
    name: str = ""


def needed_calls(trace: Trace, output: str) -> Set[str]:
    """The DAG calls output node ``output`` depends on, itself included (``networkx.ancestors`` and the
    node, walked on the predecessor dicts: the anytime pass asks this once per output)."""
    pred = trace.captured_dag._pred  # networkx's predecessor dicts (its public view wraps each lookup in an
    # object); the captured DAG: a width search's probe needs no loop graph
    needed, todo = {output}, [output]
    while todo:
        for p in pred[todo.pop()]:
            if p not in needed:
                needed.add(p)
                todo.append(p)
    return needed


def output_costs(trace: Trace, *, bytes_per_element: Optional[int] = None, all_layers: bool = False,
                 depth: Optional[Dict[str, int]] = None) -> List[OutputCost]:
    """Cost of every output of ``trace``, in the order the model returns them (``depth``: the
    :func:`~graphcost.passes.latency.longest_path_layers` of its DAG, when the caller has it)."""
    depth = depth if depth is not None else longest_path_layers(trace.dag)
    costs = []
    for index, (out, name) in enumerate(trace.named_outputs(), start=1):
        needed = needed_calls(trace, out)
        shapes = trace.call(out).out_shapes
        costs.append(OutputCost(
            index=index,
            node=out,
            shape=tuple(shapes[0]) if shapes else (),
            macs=macs(trace, needed),
            other_ops=other_ops(trace, needed),
            latency_layers=depth[out],
            graph_size_bytes=graph_size_bytes(trace, bytes_per_element=bytes_per_element, all_layers=all_layers,
                                              nodes=needed),
            params=params(trace, needed),
            name=name,
        ))
    return costs
