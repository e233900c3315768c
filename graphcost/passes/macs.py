"""Multiply-accumulates (MACs, not FLOPs) and other ops, summed over every call."""
from __future__ import annotations

from typing import Iterable, Optional

from ..tracing import Trace


def macs(trace: Trace, nodes: Optional[Iterable[str]] = None) -> int:
    """MACs of conv, linear, matmul and recurrent calls in ``nodes`` (default: all of the DAG).

    A layer called N times costs N times: MACs walk the execution DAG, not the loop graph.

    >>> import torch, graphcost
    >>> macs(graphcost.trace(torch.nn.Conv2d(2, 4, 1), (1, 2, 3, 3)))
    72
    """
    return sum(trace.cost_record(n).macs for n in (trace.captured_dag if nodes is None else nodes))


def other_ops(trace: Trace, nodes: Optional[Iterable[str]] = None) -> int:
    """Element operations outside MACs: pooling, interpolation, normalisation, activations, adds."""
    return sum(trace.cost_record(n).other_ops for n in (trace.captured_dag if nodes is None else nodes))
