"""Latency in layers: the longest path from the input, counted in conv layers (the paper's depth)."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import networkx as nx

from ..schema import call_record
from ..tracing import Trace


def longest_path_layers(dag: nx.DiGraph, counts: Optional[Callable[[str], bool]] = None) -> Dict[str, int]:
    """For every node, the most counted nodes on any path ending in it (itself included).

    ``counts(node)`` says whether a node counts; by default, whether its call is a weight layer.

    >>> g = nx.DiGraph([("x", "a"), ("a", "b"), ("x", "b")])
    >>> longest_path_layers(g, counts=lambda node: node != "x")["b"]
    2
    """
    if counts is None:
        def counts(node: str) -> bool:
            return call_record(dag, node).is_weight_layer
    depth: Dict[str, int] = {}
    for node in nx.topological_sort(dag):
        best = max((depth[p] for p in dag.predecessors(node)), default=0)
        depth[node] = best + int(bool(counts(node)))
    return depth


def latency_layers(trace: Trace) -> Dict[str, int]:
    """Latency (conv layers on the longest path from the input) of each output node."""
    depth = longest_path_layers(trace.dag)
    return {out: depth[out] for out in trace.outputs}
