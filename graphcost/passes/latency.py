"""Latency in layers: the longest path from the input, counted in conv layers (the paper's depth)."""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional

import networkx as nx

from ..schema import RECORD
from ..tracing import Trace
from .needs import topological_nodes


def longest_path_layers(dag: nx.DiGraph, counts: Optional[Callable[[str], bool]] = None) -> Dict[str, int]:
    """For every node, the most counted nodes on any path ending in it (itself included).

    ``counts(node)`` says whether a node counts; by default, whether its call is a weight layer.

    >>> g = nx.DiGraph([("x", "a"), ("a", "b"), ("x", "b")])
    >>> longest_path_layers(g, counts=lambda node: node != "x")["b"]
    2
    """
    if counts is None:
        nodes = dag._node  # networkx's own dicts: its views wrap every lookup in an object

        def counts(node: str) -> bool:
            return nodes[node][RECORD].is_weight_layer
    depth = _depths(dag._pred, dag._pred, counts)  # the order nodes were added: a trace's execution order
    return depth if depth is not None else _depths(topological_nodes(dag), dag._pred, counts)


def _depths(order: Iterable[str], pred: Dict[str, Dict], counts: Callable[[str], bool]) -> Optional[Dict[str, int]]:
    """Longest counted paths along ``order``; None when a node comes before one of its predecessors."""
    depth: Dict[str, int] = {}
    for node in order:
        best = 0
        for p in pred[node]:
            d = depth.get(p)
            if d is None:
                return None
            if d > best:
                best = d
        depth[node] = best + (1 if counts(node) else 0)
    return depth


def latency_layers(trace: Trace) -> Dict[str, int]:
    """Latency (conv layers on the longest path from the input) of each output node."""
    depth = longest_path_layers(trace.dag)
    return {out: depth[out] for out in trace.outputs}
