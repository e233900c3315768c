"""The two networkx views of a captured graph: the execution DAG and the loop-keeping graph.

* :func:`build_dag` — one node per call of a captured fx graph (placeholders included), in
  execution order, each holding its :class:`~graphcost.schema.CallRecord`; edges carry activations.
* :func:`build_loop_graph` — the quotient of that DAG by parameter identity: every call of the
  same weight tensors (a module called N times, or two modules holding one tied ``Parameter``)
  is one node holding its :class:`~graphcost.schema.LayerRecord`; re-use shows up as back edges
  and self-loops. It returns a new DAG whose records name their layer, and leaves the DAG it
  is given as it was.

Pure functions over graphs; nothing here captures, runs or costs anything.

>>> import networkx as nx
>>> from graphcost.schema import RECORD, CallRecord
>>> def call(order, params):
...     return CallRecord(order=order, op="conv2d", kind="conv", is_weight_layer=True, target="conv", module="conv",
...                       macs=1, other_ops=0, in_bytes=4, out_bytes=4, out_shapes=((1,),), param_ids=params, site=None)
>>> dag = nx.DiGraph([("conv", "conv_1")])
>>> dag.nodes["conv"][RECORD], dag.nodes["conv_1"][RECORD] = call(0, (7,)), call(1, (7,))
>>> labelled, loop = build_loop_graph(dag)
>>> list(loop.nodes), loop.has_edge("conv", "conv")
(['conv'], True)
>>> labelled.nodes["conv_1"][RECORD].layer, dag.nodes["conv_1"][RECORD].layer  # the DAG given is unchanged
('conv', '')
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import networkx as nx
import torch
from networkx.utils import UnionFind
from torch import fx, nn

from . import ops
from .schema import RECORD, CallRecord, Evaluated, LayerRecord, layer_name

#: fx node ops that are calls (the DAG's nodes besides its inputs)
COMPUTE_OPS = ("call_module", "call_function", "call_method")


def build_dag(root: nn.Module, graph: fx.Graph, records: Dict[str, Evaluated]
              ) -> Tuple[nx.DiGraph, List[str], List[Tuple[str, str]]]:
    """The execution DAG of ``graph``, its input nodes, and its outputs as (name in the returned value, node).

    Parameters
    ----------
    root : torch.nn.Module
        What the graph's ``call_module`` / ``get_attr`` targets are paths of.
    graph : torch.fx.Graph
        The captured graph (any capture path).
    records : dict
        Each node's :class:`~graphcost.schema.Evaluated` by node name; a node without one (an
        unused optional placeholder) is left out.

    Returns
    -------
    (networkx.DiGraph, list of str, list of (str, str))
        The DAG (records without a layer yet), its placeholders, its named outputs.
    """
    nodes: List[Tuple[str, Dict[str, CallRecord]]] = []
    edges: List[Tuple[str, str]] = []
    inputs: List[str] = []
    ordinals: Dict[str, int] = {}
    added: set = set()
    parameters = _ParameterIds(root)
    for n in graph.nodes:
        if n.op == "placeholder":
            inputs.append(n.name)
        if n.op not in COMPUTE_OPS and n.op != "placeholder":
            continue
        rec = records.get(n.name)
        if rec is None:  # an unused optional placeholder
            continue
        record = _call_record(root, n, rec, len(nodes), ordinals, parameters(n))
        nodes.append((n.name, {RECORD: record}))
        added.add(n.name)
        edges.extend((src.name, n.name) for src in n.all_input_nodes if src.name in added)
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)  # in bulk: a third of the time of one add_node / add_edge per call
    dag.add_edges_from(edges)
    returned = next(n for n in reversed(graph.nodes) if n.op == "output").args[0]
    outputs = [(path or "output", o.name) for path, o in ops.named_leaves(returned, fx.Node) if o.name in dag]
    return dag, inputs, outputs


class _ParameterIds:
    """``n -> sorted ids of the Parameters node n uses``, each module's parameters listed once."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.of_module: Dict[str, set] = {}

    def __call__(self, n: fx.Node) -> Tuple[int, ...]:
        ids = set()
        if n.op == "call_module":
            if n.target not in self.of_module:
                self.of_module[n.target] = {id(p) for p in self.root.get_submodule(n.target).parameters()}
            ids |= self.of_module[n.target]
        for src in n.all_input_nodes:
            if src.op == "get_attr":
                value = get_attr(self.root, src.target)
                if isinstance(value, nn.Parameter):
                    ids.add(id(value))
        return tuple(sorted(ids))


def _call_record(root: nn.Module, n: fx.Node, rec: Evaluated, order: int, ordinals: Dict[str, int],
                 param_ids: Tuple[int, ...]) -> CallRecord:
    info: ops.OpInfo = rec.info
    cost: ops.OpCost = rec.cost
    target = _record_target(root, n, param_ids)
    # a module without a formula still holds a weight layer when torch counted MACs in it
    computes_with_weights = info.kind == "opaque" or (info.kind == "custom" and param_ids)
    return CallRecord(
        order=order,
        op=info.name,
        kind=info.kind,
        is_weight_layer=info.is_weight_layer or bool(computes_with_weights and cost.macs > 0),
        target=target,
        module=n.target if n.op == "call_module" else owner_module(n),
        macs=int(cost.macs),
        other_ops=int(cost.other_ops),
        in_bytes=int(rec.in_bytes),
        out_bytes=int(rec.out_bytes),
        out_shapes=rec.out_shapes,
        param_ids=param_ids,
        site=_call_site(n, target, ordinals),
    )


def _record_target(root: nn.Module, n: fx.Node, param_ids: Tuple[int, ...]) -> str:
    """A call's target: a module call's path, else the function / method name. An aten op of an
    exported graph stands for its module (path), so its layer reads as in an fx trace, when it
    uses weights, or runs in a leaf module without any (an activation module)."""
    if isinstance(n.target, str):
        return n.target
    owner = owner_module(n)
    if isinstance(n.target, torch._ops.OpOverload) and owner and (param_ids or _is_weightless_leaf(root, owner)):
        return owner
    return target_name(n)


def _is_weightless_leaf(root: nn.Module, path: str) -> bool:
    try:
        module = root.get_submodule(path)
    except AttributeError:  # a path export recorded that is no attribute chain (a module called by hooks)
        return False
    return next(module.children(), None) is None and next(module.parameters(), None) is None


def _call_site(n: fx.Node, target: str, ordinals: Dict[str, int]) -> Optional[Tuple[str, int]]:
    """(owning module path, position among that module call's nodes), or None at the top level.

    fx (and export) name the i-th call of a module ``path@i`` in ``nn_module_stack``; the
    position counts nodes within one such call, so the same line of a re-used module gets the
    same site.
    """
    stack = list((n.meta.get("nn_module_stack") or {}).items())
    if stack and stack[-1][1][0] == target:
        stack = stack[:-1]  # a leaf's own entry: its owner is the module that called it
    if not stack:
        return None
    invocation, (path, _) = stack[-1]
    ordinal = ordinals.get(invocation, 0)
    ordinals[invocation] = ordinal + 1
    return (path, ordinal)


def owner_module(n: fx.Node) -> str:
    """The path of the innermost module a node ran in (``""`` at the top level)."""
    stack = n.meta.get("nn_module_stack") or {}
    if stack:
        path = list(stack.values())[-1]
        return path[0] if isinstance(path, tuple) else str(path)
    return ""


def target_name(n: fx.Node) -> str:
    """How messages and records name a function or method node: ``add``, ``.view()``, ``aten.mm``."""
    if n.op == "call_method":
        return f".{n.target}()"
    if isinstance(n.target, torch._ops.OpOverload):
        return str(n.target.overloadpacket)
    return getattr(n.target, "__name__", str(n.target))


def get_attr(root: nn.Module, target: str):
    """The object at dotted path ``target`` below ``root`` (what an fx ``get_attr`` node fetches)."""
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def build_loop_graph(dag: nx.DiGraph) -> Tuple[nx.DiGraph, nx.DiGraph]:
    """Quotient of ``dag`` by parameter identity (union of calls sharing any parameter).

    A parameter-free call (activation, add, resize) joins the calls made from the same place of
    the same module's code: the relu inside a shared block run N times is one node, like the
    block's convs. Parameter-free code of a module that runs once (e.g. the model's own loop
    body, where per-iteration batch norms live) stays unrolled, one node per call.

    Parameters
    ----------
    dag : networkx.DiGraph
        An execution DAG from :func:`build_dag`; it is not modified.

    Returns
    -------
    (networkx.DiGraph, networkx.DiGraph)
        A copy of ``dag`` whose records name their layer, and the loop-keeping graph (edge
        attributes ``count``: activations passed, ``back_edge``: into an earlier layer).
    """
    records = {name: data[RECORD] for name, data in dag.nodes(data=True)}
    layer_of: Dict[str, str] = {}
    layers: Dict[str, LayerRecord] = {}
    for calls in _parameter_groups(dag, records):
        first = records[calls[0]]
        name = layer_name(calls[0], first)
        if name in layers:  # module path reused by a distinct parameter group: disambiguate
            name = calls[0]
        layer_of.update((c, name) for c in calls)
        params = {pid for c in calls for pid in records[c].param_ids}
        layers[name] = LayerRecord(op=first.op, kind=first.kind, is_weight_layer=first.is_weight_layer,
                                   calls=len(calls), dag_nodes=tuple(calls), param_ids=tuple(sorted(params)),
                                   first_order=first.order)
    # a new graph with new attribute dicts per node: the DAG given keeps its records
    labelled = nx.DiGraph()
    labelled.graph.update(dag.graph)
    labelled.add_nodes_from((c, {**data, RECORD: _with_layer(data[RECORD], layer_of[c])})
                            for c, data in dag.nodes(data=True))
    labelled.add_edges_from(dag.edges(data=True))
    loop = nx.DiGraph()
    loop.add_nodes_from((name, {RECORD: record}) for name, record in layers.items())
    counts: Dict[Tuple[str, str], int] = {}
    for u, v in dag.edges:
        pair = (layer_of[u], layer_of[v])
        counts[pair] = counts.get(pair, 0) + 1
    loop.add_edges_from((lu, lv, {"count": count, "back_edge": layers[lv].first_order <= layers[lu].first_order})
                        for (lu, lv), count in counts.items())
    return labelled, loop


def _with_layer(record: CallRecord, layer: str) -> CallRecord:
    """``dataclasses.replace(record, layer=layer)`` without re-running the frozen ``__init__`` (a fifth of
    the loop graph's time): the fields are copied as they are, ``layer`` set."""
    labelled = object.__new__(CallRecord)
    labelled.__dict__.update(record.__dict__, layer=layer)
    return labelled


def _parameter_groups(dag: nx.DiGraph, records: Dict[str, CallRecord]) -> List[List[str]]:
    """The DAG's calls grouped into unique layers (each group in execution order, groups by first call)."""
    uf = UnionFind()
    param_owner: Dict[int, str] = {}
    site_owner: Dict[Tuple[str, int], str] = {}
    for name in dag.nodes:
        record = records[name]
        uf[name]  # noqa: B018 - registers the call as its own group
        for pid in record.param_ids:
            uf.union(param_owner.setdefault(pid, name), name)
        if record.site is not None and not record.param_ids:
            uf.union(site_owner.setdefault(record.site, name), name)
    groups: Dict[Any, List[str]] = {}
    for name in dag.nodes:  # dag node order is execution order
        groups.setdefault(uf[name], []).append(name)
    return list(groups.values())
