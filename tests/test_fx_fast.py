"""graphcost.fx_fast: fx's per-node bookkeeping made cheaper, with fx's own results (the oracle: fx itself)."""
import copy
import collections
import operator

import pytest
import torch
import torchvision
from torch import fx, nn

from graphcost import fx_fast
from graphcost.capture_fx import LeafTracer, _symbolic_trace
from graphcost.models import get_model


def _rows(graph: fx.Graph):
    def by_name(arg):
        return fx.node.map_arg(arg, lambda n: n.name)
    return [(n.name, n.op, n.target, by_name(n.args), by_name(n.kwargs), n.type, sorted(n.meta),
             type(n.meta.get("nn_module_stack")), list((n.meta.get("nn_module_stack") or {}).items()))
            for n in graph.nodes]


class Mixed(nn.Module):
    """Names fx derives differently: capitals, magic methods, a lambda, a method call, a constant."""

    def __init__(self):
        super().__init__()
        self.layerNorm = nn.LayerNorm(8)
        self.Head = nn.Sequential(nn.Linear(8, 8), nn.GELU())
        self.register_buffer("Scale", torch.ones(8))

    def forward(self, x):
        y = self.layerNorm(x) * self.Scale
        y = operator.add(y, 1).transpose(0, 1).transpose(0, 1)
        return self.Head(torch.nn.functional.relu(y)) + x.size(0)


@pytest.mark.parametrize("name", ["itnet", "resnet18", "mixed"])
def test_a_leaf_tracer_builds_the_graph_fx_builds(name):
    """LeafTracer (module stacks, scopes, names, node creation of fx_fast) against torch's own fx.Tracer: the
    same nodes, names, arguments, types, meta, scopes; the graph's create_node is fx's own again afterwards."""
    model = {"itnet": lambda: get_model("itnet", dataset="camvid", N=3, L=2, K=1, f=16),
             "resnet18": lambda: torchvision.models.resnet18(weights=None), "mixed": Mixed}[name]()
    ours, theirs = LeafTracer(set(), {}, memoise=False), fx.Tracer()
    graph, expected = ours.trace(model), theirs.trace(model)
    assert _rows(graph) == _rows(expected)
    assert ours.node_name_to_scope == theirs.node_name_to_scope
    _, traced, _, _ = _symbolic_trace(model, (), {}, {"x"}, memoise=False)  # the capture's own call: restored
    assert "create_node" not in vars(traced) and _rows(traced) == _rows(expected)


def test_copies_of_the_stack_and_the_scope_are_what_copy_copy_makes_of_fxs():
    stack = fx_fast.ModuleStack([("a", ("a", nn.Linear)), ("a.b@1", ("a.b", nn.ReLU))])
    copied = copy.copy(stack)
    assert type(copied) is collections.OrderedDict and copied == stack and copied is not stack
    assert copy.copy(collections.OrderedDict(stack)) == copied
    scope = fx_fast.CopyableScope("a.b", nn.ReLU)
    copied = copy.copy(scope)
    assert type(copied) is fx.proxy.Scope and (copied.module_path, copied.module_type) == ("a.b", nn.ReLU)


@pytest.mark.parametrize("target", ["blocks.0.conv", "layerNorm", "Head.0", "__add__", "__getitem__", "x", "",
                                    torch.relu, operator.add, torch.nn.functional.interpolate, getattr,
                                    lambda x: x, torch.Tensor.transpose])
def test_a_name_candidate_is_fxs(target):
    graph = fx.Graph()
    assert fx_fast.name_candidate(graph, target) == graph._target_to_str(target)


def test_append_node_numbers_and_links_nodes_as_create_node_does():
    graphs = [fx.Graph(), fx.Graph()]
    for i, graph in enumerate(graphs):
        make = graph.create_node if i else lambda *a, **k: fx_fast.append_node(graph, *a, **k)
        x = make("placeholder", "x", name="x")
        a = make("call_function", torch.relu, (x,), {})
        b = make("call_function", torch.relu, (a,), {}, "relu")
        c = make("call_method", "add", (a, b), {"alpha": 2})
        make("output", "output", (c,))
        graph.lint()
    assert _rows(graphs[0]) == _rows(graphs[1])
    assert all([u.name for u in n.users] == [u.name for u in m.users] for n, m in zip(*(g.nodes for g in graphs)))
    assert len(graphs[0].nodes) == len(graphs[1].nodes) == 5
    assert [n.name for n in graphs[0].find_nodes(op="call_method")] == ["add"]


def test_skip_scan_is_undone():
    graph = fx.Graph()
    fx_fast.skip_scan(graph)
    assert vars(graph)["create_node"].func is fx_fast.append_node
    graph.placeholder("x")
    fx_fast.restore_scan(graph)
    assert "create_node" not in vars(graph) and graph.create_node.__func__ is fx.Graph.create_node


def test_unique_names_are_the_namespaces():
    """Any order of candidates, repeated, numbered, builtins, keywords, not yet identifiers: fx's names."""
    from torch.fx.graph import _Namespace

    candidates = ["conv", "conv", "conv_1", "conv", "add_3", "add", "add", "list", "list", "None", "if", "x_0",
                  "blocks.0.conv", "0", "", "conv_1", "getattr_1", "getattr", "getattr", "a__", "_1", "_1"]
    for order in (candidates, candidates[::-1], sorted(candidates)):
        theirs, ours = _Namespace(), _Namespace()
        assert [theirs.create_name(c, None) for c in order] == [fx_fast.unique_name(ours, c) for c in order]
        assert ours._used_names == theirs._used_names and ours._base_count == theirs._base_count
