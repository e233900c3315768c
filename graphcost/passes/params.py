"""Unique parameter count."""
from __future__ import annotations

from ..tracing import Trace


def params(trace: Trace) -> int:
    """Elements of the model's unique parameters (a tied or re-used tensor counts once).

    >>> import torch, graphcost
    >>> params(graphcost.trace(torch.nn.Linear(3, 2), (1, 3)))
    8
    """
    return sum(p.numel() for p in trace.module.parameters())
