"""Export the DAG or the loop-keeping graph as GraphML or Graphviz DOT."""
from __future__ import annotations

import os
from typing import Any

import networkx as nx

from .errors import UserError
from .render import write_atomic
from .schema import RECORD, flat_attributes

FORMATS = (".graphml", ".dot")


def _scalar(value: Any):
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _flat(data: dict) -> dict:
    """A node's attributes with its record spread out as flat fields."""
    if RECORD not in data:
        return data
    flat = {k: v for k, v in data.items() if k != RECORD}
    flat.update(flat_attributes(data[RECORD]))
    return flat


def plain_graph(graph: nx.DiGraph) -> nx.DiGraph:
    """A copy whose attributes are scalars (GraphML and DOT take nothing else)."""
    out = nx.DiGraph()
    for node, data in graph.nodes(data=True):
        out.add_node(node, **{k: _scalar(v) for k, v in _flat(data).items() if k != "param_ids"})
    for u, v, data in graph.edges(data=True):
        out.add_edge(u, v, **{k: _scalar(val) for k, val in data.items()})
    return out


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: nx.DiGraph, name: str = "graphcost") -> str:
    """Graphviz DOT text; weight layers are boxes, back edges dashed.

    >>> print(to_dot(nx.DiGraph([("a", "a")])).splitlines()[2])
      "a" -> "a";
    """
    lines = [f"digraph {_quote(name)} {{", "  rankdir=TB;"]
    for node, data in plain_graph(graph).nodes(data=True):
        attrs = []
        if data.get("is_weight_layer"):
            attrs.append("shape=box")
        label = f"{node}\\n{data['op']} x{data['calls']}" if "calls" in data and "op" in data else None
        if label:
            attrs.append(f"label={_quote(label)}")
        if attrs:
            lines.append(f"  {_quote(node)} [{', '.join(attrs)}];")
    for u, v, data in graph.edges(data=True):
        style = " [style=dashed]" if data.get("back_edge") else ""
        lines.append(f"  {_quote(u)} -> {_quote(v)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def export_graph(graph: nx.DiGraph, path: str) -> None:
    """Write ``graph`` to ``path`` (``.graphml`` or ``.dot``), atomically."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise UserError(f"--out must end in .graphml or .dot, got {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise UserError(f"cannot write {path!r}: folder {directory!r} does not exist or is not writable")
    plain = plain_graph(graph)
    if ext == ".graphml":
        write_atomic(path, lambda tmp: nx.write_graphml(plain, tmp))
    else:
        def write_dot(tmp):
            with open(tmp, "w") as fh:
                fh.write(to_dot(plain))

        write_atomic(path, write_dot)
