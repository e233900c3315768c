"""``Analysis``: the plain-data result of all cost passes over one trace.

>>> import torch, graphcost
>>> a = graphcost.analyze(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), (1, 3, 8, 8))
>>> a.params, a.macs, a.latency_layers
(216, 13824, 1)
>>> a.to_dict()["outputs"]
[{'index': 1, 'name': 'output', 'macs': 13824, 'latency_layers': 1, 'graph_size_bytes': 3680, 'params': 216, 'other_ops': 0, 'shape': [1, 8, 8, 8]}]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from torch import nn

from . import ops, passes
from .aten_costs import Uncounted
from .collector import collector_paused
from .errors import UserError
from .passes.anytime import OutputCost
from .passes.graph_size import LayerTable
from .schema import new_record
from .tracing import EAGER_NOTE, Trace, trace as trace_model

if TYPE_CHECKING:
    import pandas as pd  # imported by the two frame methods only: analysing needs no pandas

MACS_NOTE = "macs are multiply-accumulates (1 MAC = 2 FLOPs); other_ops are element ops outside MACs"


@dataclass(frozen=True)
class LayerCost:
    """One unique layer (a node of the loop-keeping graph), its costs summed over its calls."""

    name: str
    op: str
    kind: str
    calls: int
    params: int
    macs: int
    other_ops: int
    in_bytes: int
    out_bytes: int
    param_bytes: int
    graph_size_bytes: int
    latency_layers: int


@dataclass(frozen=True)
class Analysis:
    model: str
    input_shape: Tuple[int, ...]
    params: int
    macs: int
    other_ops: int
    graph_size_bytes: int
    latency_layers: int
    outputs: Tuple[OutputCost, ...]
    layers: Tuple[LayerCost, ...]
    bytes_per_element: int
    all_layers: bool = False
    opaque_modules: Tuple[str, ...] = ()
    unknown_ops: Tuple[str, ...] = ()
    loop_nodes: int = 0
    dag_nodes: int = 0
    #: aten ops that compute but have no formula (op -> calls, example shapes); see ``complete``
    uncounted: Mapping[str, Uncounted] = field(default_factory=dict)
    #: every input: (forward argument name, shape, dtype name)
    inputs: Tuple[Tuple[str, Tuple[int, ...], str], ...] = ()
    #: the capture path that ran (``fx``, ``dispatch``, ``export``; ``eager``: costs for the input values it drew)
    capture: str = ""

    @property
    def capture_note(self) -> str:
        """What the costs hold for: "" for the shape-only captures, a note for one real forward."""
        return EAGER_NOTE if self.capture == "eager" else ""

    @property
    def complete(self) -> bool:
        """Whether every call that computes was counted: False means ``macs`` / ``other_ops`` are lower bounds."""
        return not self.uncounted

    @property
    def incomplete_note(self) -> str:
        """One line naming what was not counted ("" when complete)."""
        return "; ".join(f"{op} x{u.calls} (e.g. shapes {list(map(list, u.shapes))})" for op, u in self.uncounted.items())

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict; the keys of the CLI's ``--format json``."""
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["outputs"] = [
            {"index": o.index, "name": o.name, "macs": o.macs, "latency_layers": o.latency_layers,
             "graph_size_bytes": o.graph_size_bytes, "params": o.params, "other_ops": o.other_ops,
             "shape": list(o.shape)}
            for o in self.outputs
        ]
        d["layers"] = [asdict(layer) for layer in self.layers]
        d["opaque_modules"] = list(self.opaque_modules)
        d["unknown_ops"] = list(self.unknown_ops)
        d["complete"] = self.complete
        d["capture_note"] = self.capture_note
        d["inputs"] = [{"name": name, "shape": list(shape), "dtype": dtype} for name, shape, dtype in self.inputs]
        d["uncounted"] = {op: {"calls": u.calls, "shapes": [list(s) for s in u.shapes]}
                          for op, u in self.uncounted.items()}
        d["units"] = {"macs": MACS_NOTE, "graph_size_bytes": "bytes", "latency_layers": "conv layers on the "
                      "longest path from the input"}
        return d

    def to_frame(self) -> pd.DataFrame:
        """One row per unique layer."""
        import pandas as pd

        columns = list(LayerCost.__dataclass_fields__)
        return pd.DataFrame([asdict(layer) for layer in self.layers], columns=columns)

    def outputs_frame(self) -> pd.DataFrame:
        """One row per output (anytime cost curve)."""
        import pandas as pd

        return pd.DataFrame([asdict(o) for o in self.outputs])


def analyze_trace(trace: Trace, *, name: Optional[str] = None, bytes_per_element: Optional[int] = None,
                  all_layers: bool = False) -> Analysis:
    """Run every cost pass over an existing trace."""
    element = bytes_per_element or trace.element_size
    dag, loop = trace.dag, trace.loop_graph
    depth = passes.longest_path_layers(dag)
    table = LayerTable.of(trace, bytes_per_element=bytes_per_element, all_layers=all_layers)
    graph_bytes = table.layer_bytes()
    layers = _layer_costs(trace, element, depth, graph_bytes)
    outputs = passes.output_costs(trace, bytes_per_element=bytes_per_element, all_layers=all_layers, depth=depth,
                                  layers=table)
    return Analysis(
        model=name or type(trace.module).__name__,
        input_shape=tuple(trace.input_shape),
        params=passes.params(trace),
        macs=passes.macs(trace),
        other_ops=passes.other_ops(trace),
        graph_size_bytes=sum(graph_bytes.values()),
        latency_layers=max((o.latency_layers for o in outputs), default=0),
        outputs=tuple(outputs),
        layers=tuple(layers),
        bytes_per_element=element,
        all_layers=all_layers,
        opaque_modules=tuple(trace.opaque_modules),
        unknown_ops=tuple(trace.unknown_ops),
        uncounted=dict(trace.uncounted),
        inputs=tuple((name, spec.shape, str(spec.dtype).replace("torch.", ""))
                     for name, spec in trace.input_specs.items()),
        loop_nodes=loop.number_of_nodes(),
        dag_nodes=dag.number_of_nodes(),
        capture=trace.capture,
    )


def _layer_costs(trace: Trace, element: int, depth: Dict[str, int], graph_bytes: Dict[str, int]) -> List[LayerCost]:
    """One :class:`LayerCost` per unique layer that has parameters or computes, in order of first call."""
    param_elements, scale = trace.parameter_numel, element / trace.element_size
    calls_of = trace._records("_calls", trace.dag)  # the record dicts ``trace.call`` / ``trace.layer`` read
    records = trace._records("_layers", trace.loop_graph)
    layers = []
    for layer in sorted(records, key=lambda name: records[name].first_order):
        record = records[layer]
        n_params = sum(param_elements.get(pid, 0) for pid in record.param_ids)
        if record.kind in ("io", "shape") and not n_params:
            continue
        macs, other_ops, in_bytes, out_bytes, latency = _call_totals(record.dag_nodes, calls_of, depth)
        layers.append(new_record(LayerCost, {  # (a frozen dataclass's __init__: a quarter of this loop)
            "name": layer,
            "op": record.op,
            "kind": record.kind,
            "calls": len(record.dag_nodes),
            "params": n_params,
            "macs": macs,
            "other_ops": other_ops,
            "in_bytes": int(in_bytes * scale),
            "out_bytes": int(out_bytes * scale),
            "param_bytes": n_params * element,
            "graph_size_bytes": graph_bytes.get(layer, 0),
            "latency_layers": latency,
        }))
    return layers


def _call_totals(nodes: Sequence[str], calls_of: Mapping[str, Any], depth: Dict[str, int]
                 ) -> Tuple[int, int, int, int, int]:
    """Over the calls ``nodes``: MACs and other ops summed, the largest input and output bytes, the deepest depth."""
    macs = other_ops = in_bytes = out_bytes = latency = 0
    for node in nodes:  # one loop, not five generators: a trace has a thousand calls
        call = calls_of[node]
        macs += call.macs
        other_ops += call.other_ops
        if call.in_bytes > in_bytes:
            in_bytes = call.in_bytes
        if call.out_bytes > out_bytes:
            out_bytes = call.out_bytes
        if depth[node] > latency:
            latency = depth[node]
    return macs, other_ops, in_bytes, out_bytes, latency


def analyze(model: nn.Module, inputs: Any = (1, 3, 224, 224), *, name: Optional[str] = None,
            bytes_per_element: Optional[int] = None, all_layers: bool = False, leaf_modules: Sequence[str] = (),
            custom_costs: Optional[Mapping[ops.Op, ops.Formula]] = None, tracer: str = "auto",
            memoise: bool = True) -> Analysis:
    """Trace ``model`` on a fake input and run every cost pass.

    Parameters
    ----------
    model : torch.nn.Module
        The model. Nothing is allocated for activations: shapes come from fake (or meta) tensors.
    inputs : shape, InputSpec, tensor, or a tuple / dict of them, default (1, 3, 224, 224)
        What ``forward`` is called with (see :func:`graphcost.trace`; token ids: ``InputSpec((1, 128), torch.int64)``).
    name : str, optional
        Label of the result (default: the model's class name).
    bytes_per_element : int, optional
        Bytes per parameter and activation element for graph size (default: the model dtype's; 1: int8).
    all_layers : bool, default False
        Graph size counts non-conv layers (activations, norms, adds, ...) too.
    leaf_modules : sequence of str, optional
        Submodule paths to keep as single opaque calls (MACs by torch's flop counter).
    custom_costs : dict, optional
        ``{op: formula}`` for this call only (:func:`graphcost.trace`); for good: :func:`graphcost.register_cost`.
    tracer : {"auto", "fx", "dispatch", "export", "eager"}, default "auto"
        How the graph is captured (:func:`graphcost.trace` says what each path does and when auto uses it).
    memoise : bool, default True
        Cost provably identical calls once (:mod:`graphcost.capture_memo`); the numbers are the same.

    Returns
    -------
    Analysis
        Params, MACs, other ops, graph size and latency, per unique layer and per output.

    Raises
    ------
    UserError
        Non-positive ``bytes_per_element``, malformed ``custom_costs``, or ``tracer`` cannot capture / run the model.

    Examples
    --------
    >>> import torch, graphcost
    >>> conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    >>> a = graphcost.analyze(conv, (1, 3, 8, 8))
    >>> a.params, a.macs, a.latency_layers
    (216, 13824, 1)

    Count a convolution at half its MACs, for this call only:

    >>> half = lambda call: graphcost.ops.OpCost(macs=call.out_numel * 27 // 2)
    >>> graphcost.analyze(conv, (1, 3, 8, 8), custom_costs={torch.nn.Conv2d: half}).macs
    6912
    """
    if bytes_per_element is not None and bytes_per_element <= 0:
        raise UserError(f"bytes per element must be positive, got {bytes_per_element}")
    with collector_paused():  # what the analysis leaves behind dies by reference counting (Trace.release)
        t = trace_model(model, inputs, leaf_modules=leaf_modules, custom_costs=custom_costs, tracer=tracer,
                        memoise=memoise)
        analysis = analyze_trace(t, name=name, bytes_per_element=bytes_per_element, all_layers=all_layers)
        t.release()
        del t  # before the collector resumes (and runs at once): the trace is most of what it would traverse
    return analysis
