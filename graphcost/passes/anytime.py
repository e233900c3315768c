"""Per-output costs for anytime (multi-output) networks.

Output n needs exactly its ancestors in the execution DAG: its MACs are theirs, its latency is
its longest path, its graph size is that of the unique layers those calls use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Set

from ..tracing import Trace
from .graph_size import LayerTable
from .latency import longest_path_layers
from .needs import masked_sums, need_bits, need_matrix
from .params import params_per_output


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
                 depth: Optional[Dict[str, int]] = None, layers: Optional[LayerTable] = None) -> List[OutputCost]:
    """Cost of every output of ``trace``, in the order the model returns them (``depth``: the
    :func:`~graphcost.passes.latency.longest_path_layers` of its DAG, ``layers``: its
    :class:`~graphcost.passes.graph_size.LayerTable` for these options, when the caller has them).

    Each output's numbers are :func:`macs`, :func:`other_ops`, :func:`params` and :func:`graph_size_bytes` over its
    :func:`needed_calls`, computed for all outputs at once: one walk gives every call the outputs that need it
    (:mod:`~graphcost.passes.needs`), numpy sums and maxima over the resulting masks do the rest.
    """
    depth = depth if depth is not None else longest_path_layers(trace.dag)
    named = trace.named_outputs()
    order, position, bits = need_bits(trace.dag, [out for out, _ in named])
    calls = trace._records("_calls", trace.dag)  # the record dict ``trace.call`` reads, without a call per node
    records = [calls[node] for node in order]
    mask = need_matrix(bits, len(named))
    all_macs = masked_sums(mask, [r.macs for r in records])
    all_other_ops = masked_sums(mask, [r.other_ops for r in records])
    all_params = params_per_output([r.param_ids for r in records], bits, len(named), trace.parameter_numel)
    if layers is None:
        layers = LayerTable.of(trace, bytes_per_element=bytes_per_element, all_layers=all_layers)
    sizes = layers.totals(mask, position)
    costs = []
    for index, (out, name) in enumerate(named, start=1):
        shapes = calls[out].out_shapes
        costs.append(OutputCost(
            index=index,
            node=out,
            shape=tuple(shapes[0]) if shapes else (),
            macs=all_macs[index - 1],
            other_ops=all_other_ops[index - 1],
            latency_layers=depth[out],
            graph_size_bytes=sizes[index - 1],
            params=all_params[index - 1],
            name=name,
        ))
    return costs
