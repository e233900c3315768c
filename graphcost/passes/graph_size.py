"""Graph size (Pfeil, ItNet, Sec. II-C): memory of the unique layers of the loop-keeping graph.

For every unique conv layer: bytes of its parameters (weights and bias) + its input feature
map + its output feature map. Re-executions of a layer (a weight-shared block run N times)
add nothing. Where a unique layer is called with inputs of different sizes, its largest call
counts (the physical layer must hold that one).
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional

from ..tracing import Trace


def layer_graph_bytes(trace: Trace, *, bytes_per_element: Optional[int] = None, all_layers: bool = False,
                      nodes: Optional[Iterable[str]] = None) -> Dict[str, int]:
    """Graph-size contribution of every unique layer, by loop-graph node name.

    ``nodes`` restricts the calls considered (e.g. the ancestors of one anytime output);
    ``all_layers`` counts non-conv layers too (activations, norms, adds, ...).
    """
    loop = trace.loop_graph
    element = trace.element_size
    scale = (bytes_per_element / element) if bytes_per_element else 1.0
    param_elements = trace.parameter_numel
    wanted = None if nodes is None else set(nodes)
    sizes: Dict[str, int] = {}
    for layer in loop:
        record = trace.layer(layer)
        if not (record.is_weight_layer or (all_layers and record.kind not in ("io", "shape"))):
            continue
        calls = [trace.call(c) for c in record.dag_nodes if wanted is None or c in wanted]
        if not calls:
            continue
        fmap = max(c.in_bytes + c.out_bytes for c in calls) * scale
        weights = sum(param_elements.get(pid, 0) for pid in record.param_ids) * (bytes_per_element or element)
        sizes[layer] = int(round(fmap + weights))
    return sizes


def graph_size_bytes(trace: Trace, *, bytes_per_element: Optional[int] = None, all_layers: bool = False,
                     nodes: Optional[Iterable[str]] = None) -> int:
    """Size of the computational graph in bytes.

    >>> import torch, graphcost
    >>> t = graphcost.trace(torch.nn.Conv2d(1, 1, 1, bias=False), (1, 1, 2, 2))
    >>> graph_size_bytes(t)   # (1 weight + 4 input + 4 output elements) x 4 bytes
    36
    """
    return sum(layer_graph_bytes(trace, bytes_per_element=bytes_per_element, all_layers=all_layers,
                                 nodes=nodes).values())
