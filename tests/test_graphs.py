"""The execution DAG and the loop-keeping graph against the implementation they replaced, kept here verbatim.

``graphcost.graphs`` fills networkx's dicts directly and looks each module, parameter and module path up once;
``reference_build_dag`` / ``reference_build_loop_graph`` below are the plain ``add_nodes_from`` /
``add_edges_from`` / ``UnionFind`` version it replaced. Every graph must match it exactly: node order, node
attributes (each record field), successor and predecessor order, edge attributes, inputs and outputs, on every
capture path, for shared and independent ItNets, resnet18, a transformer, tied and re-registered parameters,
parameters read by ``get_attr``, an unused optional input and nested outputs.
"""
import copy
from typing import Any, Dict, List, Optional, Tuple

import networkx as nx
import pytest
import torch
import torchvision
from networkx.utils import UnionFind
from torch import fx, nn

import graphcost
import graphcost.tracing as tracing
from graphcost import ops
from graphcost.graphs import COMPUTE_OPS, build_dag, build_loop_graph, get_attr
from graphcost.models import get_model
from graphcost.schema import RECORD, CallRecord, Evaluated, LayerRecord, layer_name
from nets import AnytimeNet, DictHeads, LoopNet, TiedNet, TwoInputs

# ---- the reference: graphcost.graphs as it was before its dicts were filled directly (names prefixed) ----

def reference_build_dag(root: nn.Module, graph: fx.Graph, records: Dict[str, Evaluated]
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
    parameters = ReferenceParameterIds(root)
    for n in graph.nodes:
        if n.op == "placeholder":
            inputs.append(n.name)
        if n.op not in COMPUTE_OPS and n.op != "placeholder":
            continue
        rec = records.get(n.name)
        if rec is None:  # an unused optional placeholder
            continue
        record = reference_call_record(root, n, rec, len(nodes), ordinals, parameters(n))
        nodes.append((n.name, {RECORD: record}))
        added.add(n.name)
        edges.extend((src.name, n.name) for src in n.all_input_nodes if src.name in added)
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)  # in bulk: a third of the time of one add_node / add_edge per call
    dag.add_edges_from(edges)
    returned = next(n for n in reversed(graph.nodes) if n.op == "output").args[0]
    outputs = [(path or "output", o.name) for path, o in ops.named_leaves(returned, fx.Node) if o.name in dag]
    return dag, inputs, outputs


class ReferenceParameterIds:
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


def reference_call_record(root: nn.Module, n: fx.Node, rec: Evaluated, order: int, ordinals: Dict[str, int],
                 param_ids: Tuple[int, ...]) -> CallRecord:
    info: ops.OpInfo = rec.info
    cost: ops.OpCost = rec.cost
    target = reference_record_target(root, n, param_ids)
    # a module without a formula still holds a weight layer when torch counted MACs in it
    computes_with_weights = info.kind == "opaque" or (info.kind == "custom" and param_ids)
    return CallRecord(
        order=order,
        op=info.name,
        kind=info.kind,
        is_weight_layer=info.is_weight_layer or bool(computes_with_weights and cost.macs > 0),
        target=target,
        module=n.target if n.op == "call_module" else reference_owner_module(n),
        macs=int(cost.macs),
        other_ops=int(cost.other_ops),
        in_bytes=int(rec.in_bytes),
        out_bytes=int(rec.out_bytes),
        out_shapes=rec.out_shapes,
        param_ids=param_ids,
        site=reference_call_site(n, target, ordinals),
    )


def reference_record_target(root: nn.Module, n: fx.Node, param_ids: Tuple[int, ...]) -> str:
    """A call's target: a module call's path, else the function / method name. An aten op of an
    exported graph stands for its module (path), so its layer reads as in an fx trace, when it
    uses weights, or runs in a leaf module without any (an activation module)."""
    if isinstance(n.target, str):
        return n.target
    owner = reference_owner_module(n)
    if isinstance(n.target, torch._ops.OpOverload) and owner and (param_ids or reference_is_weightless_leaf(root, owner)):
        return owner
    return reference_target_name(n)


def reference_is_weightless_leaf(root: nn.Module, path: str) -> bool:
    try:
        module = root.get_submodule(path)
    except AttributeError:  # a path export recorded that is no attribute chain (a module called by hooks)
        return False
    return next(module.children(), None) is None and next(module.parameters(), None) is None


def reference_call_site(n: fx.Node, target: str, ordinals: Dict[str, int]) -> Optional[Tuple[str, int]]:
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


def reference_owner_module(n: fx.Node) -> str:
    """The path of the innermost module a node ran in (``""`` at the top level)."""
    stack = n.meta.get("nn_module_stack") or {}
    if stack:
        path = list(stack.values())[-1]
        return path[0] if isinstance(path, tuple) else str(path)
    return ""


def reference_target_name(n: fx.Node) -> str:
    """How messages and records name a function or method node: ``add``, ``.view()``, ``aten.mm``."""
    if n.op == "call_method":
        return f".{n.target}()"
    if isinstance(n.target, torch._ops.OpOverload):
        return str(n.target.overloadpacket)
    return getattr(n.target, "__name__", str(n.target))


def reference_build_loop_graph(dag: nx.DiGraph) -> Tuple[nx.DiGraph, nx.DiGraph]:
    """Quotient of ``dag`` by parameter identity (union of calls sharing any parameter).

    A parameter-free call (activation, add, resize) joins the calls made from the same place of
    the same module's code: the relu inside a shared block run N times is one node, like the
    block's convs. Parameter-free code of a module that runs once (e.g. the model's own loop
    body, where per-iteration batch norms live) stays unrolled, one node per call.

    Parameters
    ----------
    dag : networkx.DiGraph
        An execution DAG from :func:`reference_build_dag`; it is not modified.

    Returns
    -------
    (networkx.DiGraph, networkx.DiGraph)
        A copy of ``dag`` whose records name their layer, and the loop-keeping graph (edge
        attributes ``count``: activations passed, ``back_edge``: into an earlier layer).
    """
    records = {name: data[RECORD] for name, data in dag.nodes(data=True)}
    layer_of: Dict[str, str] = {}
    layers: Dict[str, LayerRecord] = {}
    for calls in reference_parameter_groups(dag, records):
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
    labelled.add_nodes_from((c, {**data, RECORD: reference_with_layer(data[RECORD], layer_of[c])})
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


def reference_with_layer(record: CallRecord, layer: str) -> CallRecord:
    """``dataclasses.replace(record, layer=layer)`` without re-running the frozen ``__init__`` (a fifth of
    the loop graph's time): the fields are copied as they are, ``layer`` set."""
    labelled = object.__new__(CallRecord)
    labelled.__dict__.update(record.__dict__, layer=layer)
    return labelled


def reference_parameter_groups(dag: nx.DiGraph, records: Dict[str, CallRecord]) -> List[List[str]]:
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


# ---- the models, and the graphs of each capture ----

class AttrParams(nn.Module):
    """Parameters read by ``get_attr`` in its own forward (one of them also a module's), and a module
    registered under two paths: fx names both calls by the first."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.twice = self.conv2 = nn.Conv2d(4, 4, 1, bias=False)
        self.scale = nn.Parameter(torch.ones(4, 1, 1))
        self.shared_bias = self.conv.bias
        self.register_buffer("offset", torch.zeros(4, 1, 1))

    def forward(self, x):
        y = self.conv(x) * self.scale + self.offset
        y = torch.relu(self.twice(y)) + self.shared_bias.view(4, 1, 1)
        return self.conv2(y) * self.scale


class Scaled(nn.Module):
    """A module no formula knows, given one by ``custom_costs`` (:data:`CUSTOM`): with weights or without; a
    weight layer when it has weights and its formula counts MACs."""

    def __init__(self, weighted, counted=True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4, 1, 1)) if weighted else None
        self.counted = counted

    def forward(self, x):
        return x * self.weight if self.weight is not None else x * 2


class CustomCosts(nn.Module):
    def __init__(self):
        super().__init__()
        self.weighted, self.free, self.idle = Scaled(True), Scaled(False), Scaled(True, counted=False)

    def forward(self, x):
        return self.idle(self.free(self.weighted(x)))


CUSTOM = {Scaled: lambda call: ops.OpCost(macs=call.out_numel if call.module.counted else 0)}


def _itnet(shared, n=4):
    return get_model("itnet", dataset="cityscapes", N=n, shared=shared).eval(), (1, 3, 32, 64)


def _transformer():
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval(), (1, 6, 16)


MODELS = {
    "itnet-shared": lambda: _itnet(True),
    "itnet-independent": lambda: _itnet(False),
    "itnet-shared-N16": lambda: _itnet(True, 16),  # the benchmark's graph: 956 calls, 266 layers
    "resnet18": lambda: (torchvision.models.resnet18(weights=None).eval(), (1, 3, 32, 32)),
    "transformer": _transformer,
    "tied": lambda: (TiedNet(), (1, 4, 8, 8)),
    "attr-params": lambda: (AttrParams(), (1, 4, 5, 5)),
    "loop": lambda: (LoopNet(3), (1, 3, 16, 16)),
    "anytime": lambda: (AnytimeNet(3), (1, 3, 8, 8)),
    "dict-heads": lambda: (DictHeads(), (1, 3, 8, 8)),
    "custom-costs": lambda: (CustomCosts(), (1, 4, 3, 3)),
    "unused-input": lambda: (TwoInputs(), {"input_ids": graphcost.InputSpec((1, 5), torch.int64)}),
}
#: (model, tracer): fx for all; the meta, export and eager captures (aten ops standing for their modules) for some
CASES = [(name, "fx") for name in MODELS] + [
    ("itnet-shared", "dispatch"), ("tied", "dispatch"), ("attr-params", "dispatch"), ("transformer", "dispatch"),
    ("itnet-shared", "export"), ("tied", "export"), ("attr-params", "export"), ("transformer", "export"),
    ("resnet18", "export"), ("loop", "eager"), ("custom-costs", "dispatch"),
]


@pytest.fixture(scope="module", params=CASES, ids=[f"{m}-{t}" for m, t in CASES])
def captured(request):
    """(Trace, the ``build_dag`` arguments its capture gave): ``build_dag`` is spied on inside ``trace``."""
    name, tracer = request.param
    model, inputs = MODELS[name]()
    seen = []

    def spy(*args):
        seen.append(args)
        return build_dag(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tracing, "build_dag", spy)
        t = graphcost.trace(model, inputs, tracer=tracer, custom_costs=CUSTOM)
    assert t.capture == tracer and len(seen) == 1
    return t, seen[0]


def assert_same_graph(new: nx.DiGraph, old: nx.DiGraph) -> None:
    """Equal node order, node attributes (each record field, same type), successor and predecessor order, edge
    attributes, graph attributes; and networkx's own invariant: one data dict per edge in both directions."""
    assert list(new.nodes) == list(old.nodes)
    assert new.graph == old.graph
    for node, data in old.nodes(data=True):
        got = new.nodes[node]
        assert list(got) == list(data) and got == data
        assert type(got[RECORD]) is type(data[RECORD]) and vars(got[RECORD]) == vars(data[RECORD])
        assert list(new.succ[node].items()) == list(old.succ[node].items())
        assert list(new.pred[node].items()) == list(old.pred[node].items())
        for succ, edge in new.succ[node].items():
            assert new.pred[succ][node] is edge
    assert list(new.edges(data=True)) == list(old.edges(data=True))
    assert new.adj is not None and new._succ is new._adj  # the cached views read the dicts given


def test_dag_as_the_reference_builds_it(captured):
    t, args = captured
    dag, inputs, outputs = build_dag(*args)
    ref_dag, ref_inputs, ref_outputs = reference_build_dag(*args[:3])
    assert_same_graph(dag, ref_dag)
    assert_same_graph(t.captured_dag, ref_dag)
    assert (inputs, outputs) == (ref_inputs, ref_outputs)
    assert (t.inputs, t.outputs) == (ref_inputs, [node for _, node in ref_outputs])


def test_loop_graph_as_the_reference_builds_it(captured):
    t, args = captured
    ref_dag = reference_build_dag(*args[:3])[0]
    ref_labelled, ref_loop = reference_build_loop_graph(ref_dag)
    before = copy.deepcopy(t.captured_dag)
    labelled, loop = build_loop_graph(t.captured_dag)
    assert_same_graph(labelled, ref_labelled)
    assert_same_graph(loop, ref_loop)
    assert_same_graph(t.dag, ref_labelled)
    assert_same_graph(t.loop_graph, ref_loop)
    assert_same_graph(t.captured_dag, before)  # the DAG given is left as it was
    assert all(t.captured_dag.nodes[n][RECORD].layer == "" for n in t.captured_dag)


def test_labelled_copy_shares_no_dict_with_the_dag(captured):
    t, _ = captured
    labelled, _ = build_loop_graph(t.captured_dag)
    for u, v, data in labelled.edges(data=True):
        assert data is not t.captured_dag.edges[u, v]
    for node in labelled:
        assert labelled.nodes[node] is not t.captured_dag.nodes[node]
    labelled.add_edge("extra", next(iter(labelled)), count=1)
    assert "extra" not in t.captured_dag


def test_cases_cover_what_the_fast_paths_skip():
    """The cases above reach each shortcut: get_attr Parameters, a module under two paths, tied parameters,
    aten ops standing for their module, an unused input."""
    model = AttrParams()
    graph = fx.symbolic_trace(model).graph
    fetched = {n.target for n in graph.nodes if n.op == "get_attr"}
    assert {"scale", "shared_bias", "offset"} <= fetched
    assert [n.target for n in graph.nodes if n.op == "call_module"] == ["conv", "twice", "twice"]
