"""Multiply-accumulates (MACs, not FLOPs) and other ops, summed over every call."""
from __future__ import annotations

from typing import Iterable, Optional

from ..schema import CallRecord
from ..tracing import Trace


def macs(trace: Trace, nodes: Optional[Iterable[str]] = None) -> int:
    """MACs of conv, linear, matmul and recurrent calls in ``nodes`` (default: all of the DAG).

    A layer called N times costs N times: MACs walk the execution DAG, not the loop graph.

    >>> import torch, graphcost
    >>> macs(graphcost.trace(torch.nn.Conv2d(2, 4, 1), (1, 2, 3, 3)))
    72
    """
    return sum(r.macs for r in _records(trace, nodes))


def other_ops(trace: Trace, nodes: Optional[Iterable[str]] = None) -> int:
    """Element operations outside MACs: pooling, interpolation, normalisation, activations, adds."""
    return sum(r.other_ops for r in _records(trace, nodes))


def _records(trace: Trace, nodes: Optional[Iterable[str]]) -> Iterable[CallRecord]:
    """The cost records of ``nodes`` (default: every call), read from the dict ``trace.cost_record`` reads."""
    records = trace._records("_captured", trace.captured_dag)
    return records.values() if nodes is None else (records[n] for n in nodes)
