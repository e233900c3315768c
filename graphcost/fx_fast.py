"""fx's per-node bookkeeping during symbolic tracing, at a fraction of its cost and with the same outcome.

``torch.fx`` copies the tracer's module stack into every node's ``nn_module_stack`` and its scope at every module
call with :func:`copy.copy` (for an ``OrderedDict`` and a plain object: pickling's ``__reduce_ex__`` path, some
microseconds each), names a node after its target through a regular expression with a replacement template
(a Python-level call per node), and scans every node's arguments with pytree for symbolic ints, which symbolic
tracing never makes (the scan only warns). On ItNet these were a sixth of tracing. Here:

* :class:`ModuleStack` / :class:`CopyableScope`: what ``copy.copy`` gives (an ``OrderedDict`` of the same items, a
  ``Scope`` of the same path and type), made directly;
* :func:`name_candidate`: ``Graph._target_to_str`` where a target's name is lower case already (its snake case is
  itself), fx's own function otherwise;
* :func:`unique_name`: the namespace's numbering of a name, its regex matched once per candidate string;
* :func:`append_node`: ``Graph.create_node`` less the scan, with the graph's names, order and lookups kept as it
  keeps them; :func:`skip_scan` makes a graph create its nodes that way while a tracer fills it.

``tests/test_fx_fast.py`` checks each against fx's own result.
"""
from __future__ import annotations

import collections
import functools
from typing import Dict, Optional, Tuple

from torch import fx
from torch.fx.graph import _illegal_names, _name_regex
from torch.fx.proxy import Scope

#: the graph's own bookkeeping :func:`append_node` keeps as ``Graph.create_node`` does
_GRAPH_STATE = frozenset({"_graph_namespace", "_find_nodes_lookup_table", "_len"})
#: the namespace's own bookkeeping :func:`unique_name` keeps as ``_Namespace.create_name`` does
_NAMESPACE_STATE = frozenset({"_obj_to_name", "_used_names", "_base_count"})
#: candidate -> (base, numeric suffix or None): fx's name regex, matched once per candidate
_SPLITS: Dict[str, Tuple[str, Optional[str]]] = {}
_MOST_SPLITS = 100_000


class ModuleStack(collections.OrderedDict):
    """The tracer's module stack; ``copy.copy`` of it is the plain ``OrderedDict`` fx would copy."""

    def __copy__(self) -> collections.OrderedDict:
        return collections.OrderedDict(self)


class CopyableScope(Scope):
    """The tracer's scope; ``copy.copy`` of it is a plain ``Scope`` of the same path and type."""

    def __copy__(self) -> Scope:
        return Scope(self.module_path, self.module_type)


def name_candidate(graph: fx.Graph, target) -> str:
    """``graph._target_to_str(target)``: the name fx starts from for a node calling ``target``.

    >>> import torch
    >>> g = torch.fx.Graph()
    >>> [name_candidate(g, t) for t in ("blocks.0.conv", torch.relu, "__add__", "layerNorm")]
    ['blocks.0.conv', 'relu', 'add', 'layer_norm']
    """
    name = target if type(target) is str else getattr(target, "__name__", None) if callable(target) else None
    if name is None or name[:2] == "__" or name.lower() != name:  # magic names, capitals: fx's own rule
        return graph._target_to_str(target)
    return name


def can_append(graph: fx.Graph) -> bool:
    """Whether ``graph`` keeps the bookkeeping :func:`append_node` updates (fx's ``Graph`` of this torch)."""
    return _GRAPH_STATE.issubset(vars(graph)) and hasattr(graph, "_target_to_str") and \
        _NAMESPACE_STATE.issubset(vars(graph._graph_namespace))


def unique_name(namespace, candidate: str) -> str:
    """``namespace.create_name(candidate, None)`` (fx's ``_Namespace``): the candidate, or its base numbered
    past every name used, never a builtin's or a keyword's. fx matches its name regex on every call (a copied
    block names the same candidates again and again); here once per candidate string."""
    split = _SPLITS.get(candidate)
    if split is None:
        match = _name_regex.match(candidate)
        if match is None:  # not an identifier yet: fx's own path makes it one
            return namespace.create_name(candidate, None)
        if len(_SPLITS) >= _MOST_SPLITS:  # (a long sweep of many models: kept bounded)
            _SPLITS.clear()
        split = _SPLITS[candidate] = match.group(1, 2)
    base, num = split
    used = namespace._used_names
    if num is None or candidate in used:
        number = namespace._base_count.get(base, 0)
        if _illegal_names.get(candidate) is not None:
            number += 1
            candidate = f"{base}_{number}"
    else:
        number = int(num)
    while candidate in used:
        number += 1
        candidate = f"{base}_{number}"
    used.add(candidate)
    namespace._base_count[base] = number
    return candidate


def append_node(graph: fx.Graph, op: str, target, args: Optional[tuple] = None, kwargs: Optional[dict] = None,
                name=None, type_expr=None) -> fx.Node:
    """``graph.create_node(...)`` without its scan of the arguments for symbolic ints (a warning for graphs
    made from fake tensors; symbolic tracing and copies of its nodes never hold one). Names, order and
    lookups as ``create_node`` keeps them; only for a graph :func:`can_append` accepts."""
    candidate = name if name is not None else name_candidate(graph, target)
    name = unique_name(graph._graph_namespace, candidate)
    node = fx.Node(graph, name, op, target, args or (), kwargs or fx.immutable_collections.immutable_dict(),
                   type_expr)
    for hook in getattr(graph.owning_module, "_create_node_hooks", None) or ():
        hook(node)
    graph._graph_namespace.associate_name_with_obj(name, node)
    graph._insert(node)
    graph._find_nodes_lookup_table.insert(node)
    graph._len += 1
    return node


def skip_scan(graph: fx.Graph) -> None:
    """Make ``graph.create_node`` :func:`append_node` (where :func:`can_append`) until :func:`restore_scan`: for a
    graph a symbolic tracer is filling (fx creates nodes through the graph's method, from several places)."""
    if can_append(graph) and "create_node" not in vars(graph):
        graph.create_node = functools.partial(append_node, graph)


def restore_scan(graph: fx.Graph) -> None:
    """``graph.create_node`` fx's own method again (after :func:`skip_scan`)."""
    vars(graph).pop("create_node", None)
