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

from typing import Any, Dict, Iterable, List, Optional, Tuple

import networkx as nx
import torch
from torch import fx, nn

from . import ops
from .schema import RECORD, CallRecord, Evaluated, LayerRecord, layer_name, new_record, with_layer, with_order

#: fx node ops that are calls (the DAG's nodes besides its inputs)
COMPUTE_OPS = ("call_module", "call_function", "call_method")


def build_dag(root: nn.Module, graph: fx.Graph, records: Dict[str, Evaluated],
              modules: Optional[Dict[str, nn.Module]] = None, templates: Optional[Dict[str, str]] = None
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
    modules : dict, optional
        ``dict(root.named_modules())`` where the caller has it (else walked here on first use).
    templates : dict, optional
        Node -> an earlier node whose record this one's equals but for its order (a call of the same module
        path whose outcome the capture replayed, :attr:`~graphcost.schema.Captured.templates`): copied, not
        worked out again.

    Returns
    -------
    (networkx.DiGraph, list of str, list of (str, str))
        The DAG (records without a layer yet), its placeholders, its named outputs.
    """
    nodes: Dict[str, Dict[str, CallRecord]] = {}
    succ: Dict[str, Dict[str, dict]] = {}
    pred: Dict[str, Dict[str, dict]] = {}
    inputs: List[str] = []
    calls = _CallRecords(root, reads_attributes=any(n.op == "get_attr" for n in graph.nodes), modules=modules)
    returned = None
    for n in graph.nodes:
        op, name = n.op, n.name
        if op == "placeholder":
            inputs.append(name)
        elif op not in COMPUTE_OPS:
            if op == "output":
                returned = n.args[0]
            continue
        rec = records.get(name)
        if rec is None:  # an unused optional placeholder
            continue
        sources = n._input_nodes  # (all_input_nodes, without a new list per node: its keys, in that order)
        template = nodes.get(templates.get(name)) if templates else None
        nodes[name] = {RECORD: calls.record(n, sources, rec, len(nodes)) if template is None else
                       with_order(template[RECORD], len(nodes))}
        succ[name], pred[name] = {}, {}
        into = pred[name]
        for src in sources:  # an edge per activation, in networkx's order: as add_edges_from would add them
            if src.name in nodes:
                succ[src.name][name] = into[src.name] = {}
    dag = _digraph(nodes, succ, pred)
    outputs = [(path or "output", o.name) for path, o in ops.named_leaves(returned, fx.Node) if o.name in dag]
    return dag, inputs, outputs


def _digraph(nodes: Dict[str, dict], succ: Dict[str, dict], pred: Dict[str, dict], graph: Optional[dict] = None
             ) -> nx.DiGraph:
    """A ``DiGraph`` holding these node attribute, successor and predecessor dicts (each edge's data one dict in
    both). networkx's own data structure, filled directly: its ``add_nodes_from`` raises and catches a
    ``TypeError`` per ``(node, data)`` pair, and building a graph edge by edge is most of building it."""
    dag = nx.DiGraph()
    if graph:
        dag.graph.update(graph)
    dag._node.update(nodes)
    dag._succ.update(succ)  # the same dict as ``_adj``: filled, not replaced, its cached views stay in step
    dag._pred.update(pred)
    return dag


class _CallRecords:
    """The :class:`CallRecord` of each call of one graph, in execution order; what every call of a module, a
    ``get_attr`` target or a module path shares is looked up once."""

    def __init__(self, root: nn.Module, reads_attributes: bool, modules: Optional[Dict[str, nn.Module]] = None
                 ) -> None:
        self.root = root
        self.reads_attributes = reads_attributes  # whether the graph has get_attr nodes at all
        self.module_params: Dict[str, Tuple[int, ...]] = {}  # call_module target -> its parameters' ids, sorted
        self.attr_param: Dict[str, Optional[int]] = {}  # get_attr target -> id of the Parameter it is, or None
        self.weightless_leaf: Dict[str, bool] = {}
        self.modules: Optional[Dict[str, nn.Module]] = modules  # every submodule by path (walked on first use)
        self.ordinals: Dict[str, int] = {}  # nodes seen so far per module invocation (``placement``)
        self.names: Dict[Tuple[str, Any], str] = {}  # (op, target) -> target_name: one per function or method

    def record(self, n: fx.Node, sources: Iterable[fx.Node], rec: Evaluated, order: int) -> CallRecord:
        """The record of call ``n`` (its input nodes ``sources``), ``order``-th in execution order."""
        info: ops.OpInfo = rec.info
        cost: ops.OpCost = rec.cost
        module_call = n.op == "call_module"
        param_ids = self.module_parameter_ids(n.target) if module_call else ()
        if self.reads_attributes:
            param_ids = self.with_fetched_parameters(param_ids, sources)
        owner, target, site = self.placement(n, param_ids)
        # a module without a formula still holds a weight layer when torch counted MACs in it
        computes_with_weights = info.kind == "opaque" or (info.kind == "custom" and param_ids)
        return new_record(CallRecord, {
            "order": order,
            "op": info.name,
            "kind": info.kind,
            "is_weight_layer": info.is_weight_layer or bool(computes_with_weights and cost.macs > 0),
            "target": target,
            "module": n.target if module_call else owner,
            "macs": int(cost.macs),
            "other_ops": int(cost.other_ops),
            "in_bytes": int(rec.in_bytes),
            "out_bytes": int(rec.out_bytes),
            "out_shapes": rec.out_shapes,
            "param_ids": param_ids,
            "site": site,
            "layer": "",
        })

    def module_parameter_ids(self, path: str) -> Tuple[int, ...]:
        """Sorted ids of the parameters of the module at ``path``."""
        ids = self.module_params.get(path)
        if ids is None:
            module = self.submodule(path)
            # a leaf's parameters() walks named_modules for its own dict (a sixth of building the DAG, all leaves)
            plain = not module._modules and type(module).parameters is nn.Module.parameters and \
                type(module).named_parameters is nn.Module.named_parameters
            params = [p for p in module._parameters.values() if p is not None] if plain else module.parameters()
            ids = self.module_params[path] = tuple(sorted({id(p) for p in params}))
        return ids

    def with_fetched_parameters(self, param_ids: Tuple[int, ...], sources: Iterable[fx.Node]) -> Tuple[int, ...]:
        """``param_ids`` and the ids of the Parameters among ``sources`` (``get_attr`` nodes), sorted."""
        fetched = [self.attr_param_id(src.target) for src in sources if src.op == "get_attr"]
        fetched = [pid for pid in fetched if pid is not None]
        return tuple(sorted(set(param_ids).union(fetched))) if fetched else param_ids

    def placement(self, n: fx.Node, param_ids: Tuple[int, ...]) -> Tuple[str, str, Optional[Tuple[str, int]]]:
        """Where call ``n`` ran, from its ``nn_module_stack``: the innermost module's path (``""`` at the top
        level), its target (:meth:`function_target` for a function), and its site: (owning module path,
        position among that module call's nodes), or None at the top level.

        fx (and export) name the i-th call of a module ``path@i`` in ``nn_module_stack``; the
        position counts nodes within one such call, so the same line of a re-used module gets the
        same site.
        """
        stack = n.meta.get("nn_module_stack")
        target = n.target
        if not stack:
            return "", target if isinstance(target, str) else self.function_target(n, "", param_ids), None
        entries = reversed(stack.items())
        invocation, entry = next(entries)
        owner = entry[0] if isinstance(entry, tuple) else str(entry)
        if not isinstance(target, str):
            target = self.function_target(n, owner, param_ids)
        if entry[0] == target:  # a leaf's own entry: its owner is the module that called it
            invocation, entry = next(entries, (None, None))
            if entry is None:
                return owner, target, None
        path, _ = entry
        ordinal = self.ordinals.get(invocation, 0)
        self.ordinals[invocation] = ordinal + 1
        return owner, target, (path, ordinal)

    def submodule(self, target: str) -> nn.Module:
        """``root.get_submodule(target)``, looked up in one walk of ``named_modules``: every capture names a
        ``call_module`` node's module by that path (``get_submodule`` costs a few microseconds per dot)."""
        if self.modules is None:
            self.modules = dict(self.root.named_modules())
        module = self.modules.get(target)
        return self.root.get_submodule(target) if module is None else module

    def attr_param_id(self, target: str) -> Optional[int]:
        if target not in self.attr_param:
            value = get_attr(self.root, target)
            self.attr_param[target] = id(value) if isinstance(value, nn.Parameter) else None
        return self.attr_param[target]

    def function_target(self, n: fx.Node, owner: str, param_ids: Tuple[int, ...]) -> str:
        """A function call's target: the function name, but an aten op of an exported graph stands for its
        module (path), so its layer reads as in an fx trace, when it uses weights, or runs in a leaf module
        without any (an activation module)."""
        if isinstance(n.target, torch._ops.OpOverload) and owner and (param_ids or self.is_weightless_leaf(owner)):
            return owner
        key = (n.op, n.target)
        try:
            name = self.names.get(key)
        except TypeError:  # an unhashable callable
            return target_name(n)
        if name is None:
            name = self.names[key] = target_name(n)
        return name

    def is_weightless_leaf(self, path: str) -> bool:
        if path not in self.weightless_leaf:
            self.weightless_leaf[path] = _is_weightless_leaf(self.root, path)
        return self.weightless_leaf[path]


def _is_weightless_leaf(root: nn.Module, path: str) -> bool:
    try:
        module = root.get_submodule(path)
    except AttributeError:  # a path export recorded that is no attribute chain (a module called by hooks)
        return False
    return next(module.children(), None) is None and next(module.parameters(), None) is None


def owner_module(n: fx.Node) -> str:
    """The path of the innermost module a node ran in (``""`` at the top level)."""
    stack = n.meta.get("nn_module_stack")
    if stack:
        path = next(reversed(stack.values()))
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
    node_data = dag._node  # networkx's own dicts: the views' per-item overhead is most of this function's time
    records = {name: data[RECORD] for name, data in node_data.items()}
    layer_of, layers = _layers(records)
    # a new graph with new attribute dicts per node and edge: the DAG given keeps its records
    labelled = {c: {**data, RECORD: with_layer(data[RECORD], layer_of[c])} for c, data in node_data.items()}
    succ: Dict[str, Dict[str, dict]] = {c: {} for c in node_data}
    pred: Dict[str, Dict[str, dict]] = {c: {} for c in node_data}
    counts: Dict[Tuple[str, str], int] = {}
    for u, nbrs in dag._succ.items():  # edges in add_edges_from's order (predecessors by the source's position)
        lu, out = layer_of[u], succ[u]
        for v, data in nbrs.items():
            out[v] = pred[v][u] = data.copy()
            pair = (lu, layer_of[v])
            counts[pair] = counts.get(pair, 0) + 1
    loop_succ: Dict[str, Dict[str, dict]] = {name: {} for name in layers}
    loop_pred: Dict[str, Dict[str, dict]] = {name: {} for name in layers}
    for (lu, lv), count in counts.items():
        loop_succ[lu][lv] = loop_pred[lv][lu] = {"count": count,
                                                 "back_edge": layers[lv].first_order <= layers[lu].first_order}
    return (_digraph(labelled, succ, pred, dag.graph),
            _digraph({name: {RECORD: record} for name, record in layers.items()}, loop_succ, loop_pred))


def _layers(records: Dict[str, CallRecord]) -> Tuple[Dict[str, str], Dict[str, LayerRecord]]:
    """Each call's layer name, and each layer's record (in order of first call)."""
    layer_of: Dict[str, str] = {}
    layers: Dict[str, LayerRecord] = {}
    for calls in _parameter_groups(records):
        first = records[calls[0]]
        name = layer_name(calls[0], first)
        if name in layers:  # module path reused by a distinct parameter group: disambiguate
            name = calls[0]
        if len(calls) == 1:  # most layers of a network without loops: its ids are sorted and distinct already
            layer_of[calls[0]] = name
            param_ids = first.param_ids
        else:
            layer_of.update(dict.fromkeys(calls, name))
            param_ids = tuple(sorted(set().union(*[records[c].param_ids for c in calls])))
        layers[name] = new_record(LayerRecord, {
            "op": first.op, "kind": first.kind, "is_weight_layer": first.is_weight_layer, "calls": len(calls),
            "dag_nodes": tuple(calls), "param_ids": param_ids, "first_order": first.order})
    return layer_of, layers


def _parameter_groups(records: Dict[str, CallRecord]) -> List[List[str]]:
    """The calls (``records``, in execution order) grouped into unique layers: calls sharing a parameter, and
    parameter-free calls sharing a site, join. Each group in execution order, groups by first call."""
    parent: Dict[str, str] = {}  # union-find forest over call names, a root its own parent

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = name = parent[parent[name]]  # path halving
        return name

    owner: Dict[Any, str] = {}  # a parameter id or a site -> the first call that used it
    for name, record in records.items():
        parent[name] = joined = name  # ``joined``: the root of name's set
        for key in record.param_ids or (() if record.site is None else (record.site,)):
            first = owner.setdefault(key, name)
            if first != name:
                other = root(first)
                if other != joined:
                    parent[joined] = joined = other
    groups: Dict[str, List[str]] = {}
    for name in records:
        top = parent[name]
        groups.setdefault(top if parent[top] == top else root(top), []).append(name)
    return list(groups.values())


def release(graph: fx.Graph) -> None:
    """Unlink the nodes of an fx graph nobody will read again: each names its neighbours, its users and its
    graph, cycles that only a collector pass would free (ItNet's thousand nodes: some 3 ms of collector time,
    under 1 ms to unlink). The graph is unusable afterwards. ``object.__setattr__``: fx's own keeps a lookup
    table current, work for nothing here."""
    root = getattr(graph, "_root", None)  # fx's sentinel of its node list (private: the collector frees it without)
    if root is None:
        return
    put = object.__setattr__
    for node in (root, *graph.nodes):
        put(node, "_prev", None)
        put(node, "_next", None)
        put(node, "users", {})
        put(node, "graph", None)
