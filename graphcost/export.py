"""Export the loop-keeping graph or the execution DAG, with each node's costs, as GraphML or DOT.

Every node carries ``op``, ``kind``, ``calls``, ``macs``, ``other_ops``, ``params`` (unique
parameter elements its calls use) as integers and ``shapes`` (its calls' output shapes,
``1x64x56x56``) as a string: GraphML types them (``long``, ``string``), DOT writes the numbers
bare and the strings quoted, and its labels break lines the way Graphviz renders them.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List

import networkx as nx

from . import passes, render
from .errors import UserError
from .errors import shape_text
from .fileio import write_atomic
from .schema import RECORD, flat_attributes
from .tracing import Trace

FORMATS = (".graphml", ".dot")

#: ``--view``: the name a user picks -> the :class:`~graphcost.Trace` attribute holding that graph.
VIEWS = {"loop": "loop_graph", "dag": "dag"}


def _scalar(value: Any):
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _shapes(trace: Trace, calls: Iterable[str]) -> str:
    """The distinct output shapes of ``calls``, in call order (``1x8x4x4; 1x8x2x2``)."""
    seen: Dict[str, None] = {}
    for call in calls:
        seen.setdefault(", ".join(shape_text(s) for s in trace.call(call).out_shapes), None)
    return "; ".join(s for s in seen if s)


def _costs(trace: Trace, calls: List[str]) -> Dict[str, Any]:
    return {"calls": len(calls), "macs": passes.macs(trace, calls), "other_ops": passes.other_ops(trace, calls),
            "params": passes.params(trace, calls), "shapes": _shapes(trace, calls)}


def annotated_graph(trace: Trace, view: str = "loop") -> nx.DiGraph:
    """The ``view`` graph of ``trace`` (``loop`` or ``dag``) with flat scalar attributes, costs included.

    >>> import torch, graphcost
    >>> g = annotated_graph(graphcost.trace(torch.nn.Conv2d(3, 8, 3), (1, 3, 8, 8)))
    >>> {k: g.nodes["model"][k] for k in ("op", "calls", "macs", "params", "shapes")}
    {'op': 'conv2d', 'calls': 1, 'macs': 7776, 'params': 224, 'shapes': '1x8x6x6'}
    """
    graph = getattr(trace, VIEWS[view])
    out = nx.DiGraph()
    for node, data in graph.nodes(data=True):
        record = data[RECORD]
        calls = list(record.dag_nodes) if view == "loop" else [node]
        flat = {k: _scalar(v) for k, v in flat_attributes(record).items() if k not in ("param_ids", "out_shapes")}
        out.add_node(node, **{**flat, **_costs(trace, calls)})
    for u, v, data in graph.edges(data=True):
        out.add_edge(u, v, **{k: _scalar(val) for k, val in data.items()})
    return out


def _quote(text: str) -> str:
    """A DOT string: quotes and backslashes escaped, so nothing in ``text`` reads as an escape."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(node: str, data: Dict[str, Any]) -> str:
    """A multi-line DOT label: each line quoted-escaped, joined by DOT's ``\\n`` line break."""
    lines = [node, f"{data['op']} x{data['calls']}"]
    if data.get("macs") or data.get("params"):
        lines.append(f"{render.human(data['macs'])} MACs, {render.human(data['params'])} params")
    if data.get("shapes"):
        lines.append(data["shapes"])
    return "\\n".join(_quote(line)[1:-1] for line in lines)


def _dot_value(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else _quote(value)


def to_dot(graph: nx.DiGraph, name: str = "graphcost") -> str:
    """Graphviz DOT text of an :func:`annotated_graph`; weight layers are boxes, back edges dashed.

    >>> print(to_dot(nx.DiGraph([("a", "a")])).splitlines()[2])
      "a" -> "a";
    """
    lines = [f"digraph {_quote(name)} {{", "  rankdir=TB;"]
    for node, data in graph.nodes(data=True):
        attrs = ["shape=box"] if data.get("is_weight_layer") else []
        if "op" in data and "calls" in data:
            attrs.append(f'label="{_label(node, data)}"')
        attrs += [f"{key}={_dot_value(data[key])}" for key in ("op", "kind", "calls", "macs", "params", "shapes")
                  if key in data]
        if attrs:
            lines.append(f"  {_quote(node)} [{', '.join(attrs)}];")
    for u, v, data in graph.edges(data=True):
        style = " [style=dashed]" if data.get("back_edge") else ""
        lines.append(f"  {_quote(u)} -> {_quote(v)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def export_graph(trace: Trace, path: str, view: str = "loop") -> nx.DiGraph:
    """Write ``trace``'s ``view`` graph (``loop`` or ``dag``) with its costs to ``path`` (``.graphml``
    or ``.dot``), atomically; return the graph written."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise UserError(f"the file must end in .graphml or .dot, got {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise UserError(f"cannot write {path!r}: folder {directory!r} does not exist or is not writable")
    graph = annotated_graph(trace, view)
    if ext == ".graphml":
        write_atomic(path, lambda tmp: nx.write_graphml(graph, tmp))
    else:
        def write_dot(tmp):
            with open(tmp, "w") as fh:
                fh.write(to_dot(graph))

        write_atomic(path, write_dot)
    return graph
