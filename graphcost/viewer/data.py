"""The plain data a view page draws: both graph views of a trace, with the costs already computed.

Nothing here counts a cost: node costs are the :class:`~graphcost.Analysis`' per-layer numbers
(summed over calls by the passes), the DAG's per-call numbers recorded by tracing, the sub-graph
of an output is :func:`graphcost.passes.anytime.needed_calls` and depth is
:func:`graphcost.passes.latency.longest_path_layers`. The page embeds ``Analysis.to_dict()`` and
``Performance.to_dict()`` unchanged beside this payload, so its numbers are those of
``--format json``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..analysis import Analysis
from ..passes.anytime import needed_calls
from ..passes.latency import longest_path_layers
from ..schema import CallRecord
from ..tracing import Trace

#: The per-call fields of the execution DAG a page shows (from tracing's :class:`CallRecord`).
CALL_FIELDS = ("op", "kind", "macs", "other_ops", "in_bytes", "out_bytes")
#: Per-layer numbers of a loop-graph node taken from ``Analysis.layers``.
LAYER_FIELDS = ("params", "macs", "other_ops", "in_bytes", "out_bytes", "param_bytes", "graph_size_bytes",
                "latency_layers")


def scope_of(record: CallRecord) -> str:
    """The module path a DAG call sits in: a submodule call sits in its parent, any other call in
    the module whose code made it."""
    return record.module.rpartition(".")[0] if record.calls_module else record.module


def _shapes(record: CallRecord) -> List[List[int]]:
    return [list(s) for s in record.out_shapes]


def dag_payload(trace: Trace, depth: Dict[str, int], layer_index: Dict[str, int]) -> Dict[str, Any]:
    """One record per call, in execution order, and the edges as index pairs."""
    dag = trace.dag
    order = sorted(dag.nodes, key=lambda n: trace.call(n).order)
    index = {name: i for i, name in enumerate(order)}
    nodes = []
    for name in order:
        record = trace.call(name)
        node = {"id": name, "layer": layer_index[record.layer], "scope": scope_of(record),
                "weight": record.is_weight_layer, "depth": depth[name], "shapes": _shapes(record)}
        node.update({key: getattr(record, key) for key in CALL_FIELDS})
        nodes.append(node)
    edges = [[index[u], index[v]] for u, v in dag.edges]
    return {"nodes": nodes, "edges": edges, "index": index}


def loop_payload(trace: Trace, analysis: Analysis, depth: Dict[str, int]) -> Dict[str, Any]:
    """One record per loop-graph node (unique layer), in first-call order, and the edges with
    their call counts and back-edge flags.

    Weight-free io / shape nodes are not among ``analysis.layers``: their numbers are the sums
    of their calls' (no parameters, no graph size), as the analysis would count them.
    """
    loop = trace.loop_graph
    layers = {layer.name: layer for layer in analysis.layers}
    order = sorted(loop.nodes, key=lambda n: trace.layer(n).first_order)
    nodes = []
    for name in order:
        data = trace.layer(name)
        first = trace.call(data.dag_nodes[0])
        node = {"id": name, "op": data.op, "kind": data.kind, "calls": data.calls,
                "weight": data.is_weight_layer, "scope": scope_of(first), "shapes": _shapes(first)}
        layer = layers.get(name)
        if layer is not None:
            node.update({key: getattr(layer, key) for key in LAYER_FIELDS})
        else:
            calls = [trace.call(c) for c in data.dag_nodes]
            node.update({key: 0 for key in LAYER_FIELDS})
            node.update(macs=sum(c.macs for c in calls), other_ops=sum(c.other_ops for c in calls),
                        latency_layers=max(depth[c] for c in data.dag_nodes))
        nodes.append(node)
    index = {name: i for i, name in enumerate(order)}
    edges = [[index[u], index[v], d["count"], bool(d["back_edge"])] for u, v, d in loop.edges(data=True)]
    return {"nodes": nodes, "edges": edges, "index": index}


def critical_path(dag, depth: Dict[str, int], end: str) -> List[str]:
    """A longest path (most weight layers) from an input to ``end``, input first.

    >>> import networkx as nx
    >>> g = nx.DiGraph([("x", "a"), ("a", "b"), ("x", "b")])
    >>> critical_path(g, longest_path_layers(g, counts=lambda node: node != "x"), "b")
    ['x', 'a', 'b']
    """
    path = [end]
    while True:
        preds = list(dag.predecessors(path[-1]))
        if not preds:
            return path[::-1]
        path.append(max(preds, key=lambda p: depth[p]))  # the predecessor that carries the depth


def outputs_payload(trace: Trace, depth: Dict[str, int], index: Dict[str, int]) -> List[Dict[str, Any]]:
    """For every output (from 1): its DAG node, the calls it needs and its longest path, as indices."""
    out = []
    for n, node in enumerate(trace.outputs, start=1):
        needed = sorted(index[c] for c in needed_calls(trace, node))
        path = [index[c] for c in critical_path(trace.dag, depth, node)]
        out.append({"index": n, "node": index[node], "needed": needed, "critical": path})
    return out


def view_payload(trace: Trace, analysis: Analysis) -> Dict[str, Any]:
    """Everything the page's graph needs, as JSON-ready plain data."""
    depth = longest_path_layers(trace.dag)
    loop = loop_payload(trace, analysis, depth)
    dag = dag_payload(trace, depth, loop.pop("index"))
    outputs = outputs_payload(trace, depth, dag.pop("index"))
    return {"loop": loop, "dag": dag, "outputs": outputs}


def page_data(analysis: Analysis, trace: Optional[Trace] = None, mapping=None) -> Dict[str, Dict[str, Any]]:
    """The JSON blocks of a page: ``analysis`` (= ``analyze --format json``), ``map`` (= ``map
    --format json``: ``mapping.to_dict()``) and ``graph`` (with a trace)."""
    blocks: Dict[str, Dict[str, Any]] = {"analysis": analysis.to_dict()}
    if mapping is not None:
        blocks["map"] = mapping.to_dict()
    if trace is not None:
        blocks["graph"] = view_payload(trace, analysis)
    return blocks

