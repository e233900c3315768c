"""Latency in layers: the longest path from the input, counted in conv layers (the paper's depth)."""
from __future__ import annotations

from typing import Dict

import networkx as nx

from ..tracing import Trace


def longest_path_layers(dag: nx.DiGraph, weight: str = "is_weight_layer") -> Dict[str, int]:
    """For every node, the most ``weight``-flagged nodes on any path ending in it (itself included).

    >>> g = nx.DiGraph([("x", "a"), ("a", "b"), ("x", "b")])
    >>> nx.set_node_attributes(g, {"x": False, "a": True, "b": True}, "is_weight_layer")
    >>> longest_path_layers(g)["b"]
    2
    """
    depth: Dict[str, int] = {}
    for node in nx.topological_sort(dag):
        best = max((depth[p] for p in dag.predecessors(node)), default=0)
        depth[node] = best + int(bool(dag.nodes[node].get(weight)))
    return depth


def latency_layers(trace: Trace) -> Dict[str, int]:
    """Latency (conv layers on the longest path from the input) of each output node."""
    depth = longest_path_layers(trace.dag)
    return {out: depth[out] for out in trace.outputs}
