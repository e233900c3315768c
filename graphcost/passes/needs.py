"""Which calls each output needs, for all outputs of a DAG in one walk.

Output ``o`` needs its ancestors (itself included). Walking them once per output costs outputs x nodes
set operations; here one walk in reverse topological order gives every node the set of outputs that need
it, as a Python int with bit ``o`` set (its *need bits*), and :func:`need_matrix` turns those into a
boolean matrix (one row per output, one column per node) that per-output sums and maxima reduce with
numpy. Sums stay exact integers: int64 where they fit, Python ints otherwise.

>>> import networkx as nx
>>> g = nx.DiGraph([("x", "a"), ("x", "b"), ("a", "c")])
>>> order, position, bits = need_bits(g, ["c", "b"])
>>> order, bits
(['x', 'a', 'b', 'c'], [3, 1, 2, 1])
>>> need_matrix(bits, 2).astype(int).tolist()
[[1, 1, 0, 1], [1, 0, 1, 0]]
>>> masked_sums(need_matrix(bits, 2), [1, 10, 100, 1000])
[1011, 101]
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import networkx as nx
import numpy as np


def topological_nodes(dag: nx.DiGraph) -> List[str]:
    """The DAG's nodes in a topological order: the order they were added when that is one (a trace adds its
    calls in execution order), else :func:`networkx.topological_sort`'s (which raises on a cycle)."""
    pred, seen = dag._pred, set()  # the predecessor dicts themselves: the public view wraps every lookup
    for node in pred:
        if not seen.issuperset(pred[node]):
            return list(nx.topological_sort(dag))
        seen.add(node)
    return list(pred)


def need_bits(dag: nx.DiGraph, outputs: Sequence[str]) -> Tuple[List[str], Dict[str, int], List[int]]:
    """The nodes in a topological order, each node's position in it, and for each node the outputs that need it:
    bit ``i`` set when ``outputs[i]`` is the node or one of its descendants."""
    order = list(dag._pred)  # the order the nodes were added: a trace's execution order, checked as we walk
    position = {node: i for i, node in enumerate(order)}
    bits = _propagated(order, position, dag._pred, outputs)
    if bits is None:  # added out of order
        order = topological_nodes(dag)
        position = {node: i for i, node in enumerate(order)}
        bits = _propagated(order, position, dag._pred, outputs)
    return order, position, bits


def _propagated(order: List[str], position: Dict[str, int], pred: Dict[str, Dict], outputs: Sequence[str]
                ) -> Optional[List[int]]:
    """Need bits walked backwards along ``order``; None when an edge that matters runs against it."""
    bits = [0] * len(order)
    for i, out in enumerate(outputs):
        bits[position[out]] |= 1 << i
    for i in range(len(order) - 1, -1, -1):  # every successor of a node is final before the node is reached
        mine = bits[i]
        if mine:
            for p in pred[order[i]]:
                j = position[p]
                if j >= i:
                    return None
                bits[j] |= mine
    return bits


def need_matrix(bits: Sequence[int], outputs: int) -> np.ndarray:
    """``(outputs, len(bits))`` booleans: entry ``[o, j]`` is bit ``o`` of ``bits[j]``."""
    if not outputs or not bits:
        return np.zeros((outputs, len(bits)), dtype=bool)
    if outputs < 63:  # one int64 per call holds its bits
        return ((np.asarray(bits, dtype=np.int64)[None, :] >> np.arange(outputs, dtype=np.int64)[:, None]) & 1) == 1
    width = (outputs + 7) // 8
    raw = np.frombuffer(b"".join(b.to_bytes(width, "little") for b in bits), dtype=np.uint8)
    unpacked = np.unpackbits(raw.reshape(len(bits), width), axis=1, count=outputs, bitorder="little")
    return unpacked.T.astype(bool)


def masked_sums(mask: np.ndarray, values: Iterable[int]) -> List[int]:
    """Per row of ``mask``, the sum of ``values`` where the row is true, as exact Python ints."""
    values = list(values)
    if sum(map(abs, values)) < 2 ** 63:
        return (mask.astype(np.int64) @ np.asarray(values, dtype=np.int64).reshape(-1)).tolist()
    return [sum(v for v, keep in zip(values, row) if keep) for row in mask.tolist()]  # beyond int64: exact
