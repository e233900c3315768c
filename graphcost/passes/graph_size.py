"""Graph size (Pfeil, ItNet, Sec. II-C): memory of the unique layers of the loop-keeping graph.

For every unique conv layer: bytes of its parameters (weights and bias) + its input feature
map + its output feature map. Re-executions of a layer (a weight-shared block run N times)
add nothing. Where a unique layer is called with inputs of different sizes, its largest call
counts (the physical layer must hold that one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from ..tracing import Trace


@dataclass(frozen=True)
class LayerTable:
    """The counted layers of a trace and their calls, flat: what graph size is computed from.

    ``calls`` holds every counted layer's DAG calls, grouped by layer (layer ``i``'s from ``starts[i]``);
    ``fmap_bytes`` the input + output bytes of each call, ``weight_bytes`` each layer's parameter bytes.
    """

    names: Tuple[str, ...]
    calls: Tuple[str, ...]
    starts: np.ndarray
    fmap_bytes: np.ndarray
    weight_bytes: np.ndarray
    scale: float  #: bytes per element asked for / the model's (feature maps are stored in the model's)

    @classmethod
    def of(cls, trace: Trace, *, bytes_per_element: Optional[int] = None, all_layers: bool = False) -> "LayerTable":
        """The table of ``trace``; ``all_layers`` counts non-conv layers too (activations, norms, adds, ...)."""
        element = trace.element_size
        param_elements = trace.parameter_numel
        names, calls, starts, fmaps, weights = [], [], [], [], []
        calls_of = trace._records("_calls", trace.dag)  # the record dicts ``trace.call`` / ``trace.layer`` read
        for layer, record in trace._records("_layers", trace.loop_graph).items():  # loop-graph order
            if not record.dag_nodes or not (record.is_weight_layer or (all_layers and record.kind not in ("io", "shape"))):
                continue
            names.append(layer)
            starts.append(len(calls))
            calls.extend(record.dag_nodes)
            fmaps.extend(calls_of[c].in_bytes + calls_of[c].out_bytes for c in record.dag_nodes)
            weights.append(sum(param_elements.get(pid, 0) for pid in record.param_ids) * (bytes_per_element or element))
        return cls(tuple(names), tuple(calls), np.asarray(starts, dtype=np.intp), np.asarray(fmaps, dtype=np.int64),
                   np.asarray(weights, dtype=np.float64), (bytes_per_element / element) if bytes_per_element else 1.0)

    def sizes(self, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Per row of ``rows`` (booleans over ``calls``: the calls considered), each layer's bytes (its largest call
        considered, scaled, + its weights, rounded) and whether any call of it is considered; both ``(rows, layers)``."""
        if not self.names:
            return np.zeros((len(rows), 0), dtype=np.int64), np.zeros((len(rows), 0), dtype=bool)
        largest = np.maximum.reduceat(np.where(rows, self.fmap_bytes, -1), self.starts, axis=1)
        # float64 as Python's floats: the same products, sums and round-half-to-even as ``int(round(...))``
        return np.rint(largest * self.scale + self.weight_bytes).astype(np.int64), largest >= 0


    def layer_bytes(self, nodes: Optional[Iterable[str]] = None) -> Dict[str, int]:
        """:func:`layer_graph_bytes` of this table's trace and options."""
        wanted = None if nodes is None else set(nodes)
        row = np.array([wanted is None or c in wanted for c in self.calls], dtype=bool).reshape(1, len(self.calls))
        sizes, present = self.sizes(row)
        return {name: size for name, size, keep in zip(self.names, sizes[0].tolist(), present[0].tolist()) if keep}

    def totals(self, rows: np.ndarray, position: Dict[str, int]) -> List[int]:
        """:func:`graph_size_bytes` for many call sets at once: one per row of ``rows``, booleans over the DAG's
        calls (call ``c`` in column ``position[c]``)."""
        sizes, present = self.sizes(rows[:, [position[c] for c in self.calls]])
        return np.where(present, sizes, 0).sum(axis=1).tolist()


def layer_graph_bytes(trace: Trace, *, bytes_per_element: Optional[int] = None, all_layers: bool = False,
                      nodes: Optional[Iterable[str]] = None) -> Dict[str, int]:
    """Graph-size contribution of every unique layer, by loop-graph node name.

    ``nodes`` restricts the calls considered (e.g. the ancestors of one anytime output);
    ``all_layers`` counts non-conv layers too (activations, norms, adds, ...).
    """
    return LayerTable.of(trace, bytes_per_element=bytes_per_element, all_layers=all_layers).layer_bytes(nodes)


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
