"""Unique parameter count."""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..tracing import Trace
from .needs import masked_sums, need_matrix


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


def params_per_output(param_ids: Sequence[Tuple[int, ...]], bits: Sequence[int], outputs: int,
                      numel: Dict[int, int]) -> List[int]:
    """:func:`params` of every output at once: ``param_ids[j]`` are the parameters call ``j`` uses, ``bits[j]`` the
    outputs that need it (:func:`~graphcost.passes.needs.need_bits`), ``numel`` the elements of each parameter."""
    needed_by: Dict[int, int] = {}
    for ids, need in zip(param_ids, bits):
        for pid in ids:
            needed_by[pid] = needed_by.get(pid, 0) | need
    return masked_sums(need_matrix(list(needed_by.values()), outputs), [numel.get(pid, 0) for pid in needed_by])
