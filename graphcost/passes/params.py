"""Unique parameter count."""
from __future__ import annotations

from typing import Iterable, Optional

from ..tracing import Trace


def params(trace: Trace, nodes: Optional[Iterable[str]] = None) -> int:
    """Elements of the unique parameters (a tied or re-used tensor counts once).

    ``nodes`` (DAG node names) restricts the count to the parameters those calls use, e.g. the
    ancestors of one anytime output; by default every parameter of the model counts.

    >>> import torch, graphcost
    >>> params(graphcost.trace(torch.nn.Linear(3, 2), (1, 3)))
    8
    """
    if nodes is None:
        return sum(trace.parameter_numel.values())
    used = {pid for n in nodes for pid in trace.call(n).param_ids}
    return sum(trace.parameter_numel.get(pid, 0) for pid in used)
