"""What a halting or early-exit deployment executes: the calls of each loop iteration, of each exit.

Adaptive inference (Leroux et al.'s ACT stages, ItNet's anytime outputs) runs part of the traced
graph per input. These pure functions split ONE trace into the pieces a deployment runs or skips,
so a per-sample cost is a sum of precomputed per-piece costs and nothing is re-traced per sample:

* :func:`loop_stage`: a looped stage's calls, iteration by iteration. Iteration ``i`` starts with
  the call of its entry module (the block's first layer) and runs until the next iteration's
  entry; calls of the stage before its first entry (a transition) are not part of any iteration.
  Halting after ``n`` of ``L`` iterations skips iterations ``n+1 .. L``.
* :func:`exit_calls`: the calls an early exit at output ``n`` has executed: the ancestors of
  outputs ``1 .. n`` (``cumulative=True``: the deployment evaluated every earlier output to
  decide whether to stop) or of output ``n`` alone (a fixed exit).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, List, Sequence, Tuple

from ..tracing import Trace
from .anytime import needed_calls
from .latency import longest_path_layers
from .macs import macs, other_ops


@dataclass(frozen=True)
class LoopStage:
    """One looped stage of a trace: its DAG calls per iteration and what halting early saves.

    ``calls[i]`` are the calls of iteration ``i + 1``; ``macs[i]`` / ``other_ops[i]`` their costs;
    ``latency_saved_layers[n - 1]`` the conv layers the longest path loses when the stage halts
    after ``n`` iterations (0 for ``n = iterations``).
    """

    name: str
    calls: Tuple[Tuple[str, ...], ...]
    macs: Tuple[int, ...]
    other_ops: Tuple[int, ...]
    latency_saved_layers: Tuple[int, ...]

    @property
    def iterations(self) -> int:
        return len(self.calls)

    def macs_skipped(self, used: int) -> int:
        """MACs of the iterations after the ``used``-th (``1 <= used <= iterations``)."""
        return sum(self.macs[used:])


def _in_scope(module: str, stage: str) -> bool:
    return module == stage or module.startswith(stage + ".")


def loop_stage(trace: Trace, stage: str, entries: Sequence[str]) -> LoopStage:
    """Split the calls of module ``stage`` into its iterations.

    Parameters
    ----------
    trace : Trace
        The model traced at its maximum number of iterations.
    stage : str
        Module path of the looped stage (e.g. ``"stages.0"``).
    entries : sequence of str
        Module path of the first module each iteration calls, one per iteration (a shared block
        repeats the same path; its ``i``-th call starts iteration ``i``).

    Returns
    -------
    LoopStage

    Raises
    ------
    ValueError
        The trace has fewer calls of the entry modules (in order) than ``entries`` names.
    """
    ordered = sorted((trace.call(n).order, n) for n in trace.dag.nodes)
    scoped = [n for _, n in ordered if _in_scope(trace.call(n).module, stage)]
    starts: List[int] = []
    for position, node in enumerate(scoped):
        call = trace.call(node)
        if len(starts) < len(entries) and call.calls_module and call.target == entries[len(starts)]:
            starts.append(position)
    if len(starts) < len(entries):
        raise ValueError(f"stage {stage!r}: found {len(starts)} of {len(entries)} iteration entries "
                         f"({entries[len(starts)]!r} is not called where expected)")
    bounds = starts + [len(scoped)]
    calls = tuple(tuple(scoped[bounds[i]:bounds[i + 1]]) for i in range(len(entries)))
    depth = longest_path_layers(trace.dag)
    anchors = [depth[scoped[s]] for s in starts]
    saved = tuple(anchors[-1] - anchors[n - 1] for n in range(1, len(entries) + 1))
    return LoopStage(stage, calls, tuple(macs(trace, c) for c in calls), tuple(other_ops(trace, c) for c in calls),
                     saved)


def exit_calls(trace: Trace, cumulative: bool = True) -> List[FrozenSet[str]]:
    """Per output (in the order the model returns them): the calls an exit there has executed.

    ``cumulative=True``: the ancestors of this output and of every earlier one (a confidence
    policy evaluates each output until one passes); ``False``: of this output only.

    Examples
    --------
    >>> import torch
    >>> from graphcost.tracing import trace
    >>> class TwoExits(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.a, self.b, self.head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         h = self.a(x)
    ...         return self.head(h), self.b(h)
    >>> t = trace(TwoExits(), (1, 4))
    >>> [macs(t, c) for c in exit_calls(t)], [macs(t, c) for c in exit_calls(t, cumulative=False)]
    ([24, 40], [24, 32])
    """
    result: List[FrozenSet[str]] = []
    seen: FrozenSet[str] = frozenset()
    for out in trace.outputs:
        own = frozenset(needed_calls(trace, out))
        seen = seen | own
        result.append(seen if cumulative else own)
    return result
