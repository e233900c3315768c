"""Every cost pass against a naive reference written here: networkx ancestors, plain sums, plain maxima.

The passes compute all outputs at once (graphcost.passes.needs); these references walk each output on
its own, as the paper's definitions read, so a fast path that drifts by one byte fails here.
"""
import networkx as nx
import pytest
import torch
import torchvision
from hypothesis import given, settings, strategies as st
from torch import nn

import graphcost
from graphcost import passes
from graphcost.models import get_model
from graphcost.passes.needs import masked_sums, need_bits, need_matrix
from graphcost.schema import RECORD
from nets import AnytimeNet, LoopNet, TiedNet


class Branches(nn.Module):
    """Three outputs whose ancestor sets are not nested; ``shared`` and ``a`` each called on two input sizes."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.a, self.b = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 4, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        a = self.a(self.shared(h))
        b = self.b(self.shared(self.pool(h)))
        c = self.a(self.pool(h))
        return {"b": b, "a": a, "c": c}


class Masked(nn.Module):
    """A bool mask among the inputs: feature-map bytes that ``bytes_per_element`` scales to fractions, rounded."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)

    def forward(self, x):
        y = self.conv(x)
        return y.masked_fill(y > 0, 0.5)


def _itnet(n, shared):
    return get_model("itnet", dataset="cityscapes", N=n, shared=shared).eval(), (1, 3, 32, 64)


MODELS = {
    **{f"itnet-{'shared' if s else 'independent'}-N{n}": (lambda n=n, s=s: _itnet(n, s))
       for s in (True, False) for n in (1, 4, 16)},
    "resnet18": lambda: (torchvision.models.resnet18(weights=None).eval(), (1, 3, 32, 32)),
    "branches": lambda: (Branches(), (1, 3, 16, 16)),
    "anytime": lambda: (AnytimeNet(3), (1, 3, 8, 8)),
    "loop": lambda: (LoopNet(3), (1, 3, 16, 16)),
    "tied": lambda: (TiedNet(), (1, 4, 8, 8)),
    "masked-25": lambda: (Masked(), (1, 1, 5, 5)),  # 9 x 25 bytes x 3/4 = 168.75
    "masked-6": lambda: (Masked(), (1, 1, 2, 3)),  # 9 x 6 bytes x 3/4 = 40.5: rounded half to even
}
OPTIONS = [{}, {"all_layers": True}, {"bytes_per_element": 1}, {"bytes_per_element": 3, "all_layers": True}]


@pytest.fixture(scope="module", params=list(MODELS))
def traced(request):
    model, shape = MODELS[request.param]()
    return graphcost.trace(model, shape)


def call(t, node):
    return t.dag.nodes[node][RECORD]


def naive_needed(t, out):
    return nx.ancestors(t.dag, out) | {out}


def naive_params(t, nodes):
    numel = {id(p): p.numel() for p in t.module.parameters()}
    return sum(numel[pid] for pid in {pid for n in nodes for pid in call(t, n).param_ids})


def naive_layer_bytes(t, nodes, bytes_per_element=None, all_layers=False):
    element = t.element_size
    scale = bytes_per_element / element if bytes_per_element else 1.0
    numel = {id(p): p.numel() for p in t.module.parameters()}
    sizes = {}
    for layer in t.loop_graph:
        record = t.loop_graph.nodes[layer][RECORD]
        if not (record.is_weight_layer or (all_layers and record.kind not in ("io", "shape"))):
            continue
        calls = [call(t, c) for c in record.dag_nodes if c in nodes]
        if calls:
            fmap = max(c.in_bytes + c.out_bytes for c in calls) * scale
            weights = sum(numel[pid] for pid in record.param_ids) * (bytes_per_element or element)
            sizes[layer] = int(round(fmap + weights))
    return sizes


def naive_depth(dag):
    depth = {}
    for node in nx.topological_sort(dag):
        own = int(dag.nodes[node][RECORD].is_weight_layer)
        depth[node] = own + max([depth[p] for p in dag.predecessors(node)] + [0])
    return depth


def test_needed_calls_macs_other_ops_params_and_latency(traced):
    t = traced
    depth = naive_depth(t.dag)
    assert passes.longest_path_layers(t.dag) == depth
    assert passes.latency_layers(t) == {out: depth[out] for out in t.outputs}
    everything = set(t.dag)
    assert passes.macs(t) == sum(call(t, n).macs for n in everything)
    assert passes.other_ops(t) == sum(call(t, n).other_ops for n in everything)
    assert passes.params(t) == sum(p.numel() for p in t.module.parameters())
    for out in t.outputs:
        needed = naive_needed(t, out)
        assert passes.needed_calls(t, out) == needed
        assert passes.macs(t, needed) == sum(call(t, n).macs for n in needed)
        assert passes.other_ops(t, needed) == sum(call(t, n).other_ops for n in needed)
        assert passes.params(t, needed) == naive_params(t, needed)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_graph_size_and_output_costs(traced, options):
    t = traced
    everything = set(t.dag)
    assert passes.layer_graph_bytes(t, **options) == naive_layer_bytes(t, everything, **options)
    assert passes.graph_size_bytes(t, **options) == sum(naive_layer_bytes(t, everything, **options).values())
    depth = naive_depth(t.dag)
    costs = passes.output_costs(t, **options)
    assert [(c.node, c.name) for c in costs] == t.named_outputs()
    for cost in costs:
        needed = naive_needed(t, cost.node)
        assert passes.layer_graph_bytes(t, nodes=needed, **options) == naive_layer_bytes(t, needed, **options)
        assert (cost.macs, cost.other_ops, cost.params, cost.latency_layers, cost.graph_size_bytes) == (
            sum(call(t, n).macs for n in needed), sum(call(t, n).other_ops for n in needed),
            naive_params(t, needed), depth[cost.node], sum(naive_layer_bytes(t, needed, **options).values()))


@pytest.mark.parametrize("options", OPTIONS[:2], ids=str)
def test_analysis_layers_against_plain_sums(traced, options):
    t = traced
    a = graphcost.analysis.analyze_trace(t, **options)
    depth = naive_depth(t.dag)
    graph_bytes = naive_layer_bytes(t, set(t.dag), **options)
    assert a.graph_size_bytes == sum(graph_bytes.values())
    assert a.latency_layers == max(depth[o] for o in t.outputs)
    for layer in a.layers:
        record = t.loop_graph.nodes[layer.name][RECORD]
        calls = [call(t, c) for c in record.dag_nodes]
        assert (layer.calls, layer.macs, layer.other_ops, layer.latency_layers, layer.graph_size_bytes) == (
            len(calls), sum(c.macs for c in calls), sum(c.other_ops for c in calls),
            max(depth[c] for c in record.dag_nodes), graph_bytes.get(layer.name, 0))


def test_a_layer_called_on_two_sizes_counts_its_largest_call_per_output():
    t = graphcost.trace(Branches(), (1, 3, 16, 16))
    by_name = {c.name: c for c in passes.output_costs(t)}
    shared_full = (8 * 8 * 9 + 8 + 2 * 8 * 16 * 16) * 4  # weights + bias, input and output at 16x16
    shared_half = (8 * 8 * 9 + 8 + 2 * 8 * 8 * 8) * 4
    assert passes.layer_graph_bytes(t, nodes=naive_needed(t, t.outputs[1]))["shared"] == shared_full
    assert passes.layer_graph_bytes(t, nodes=naive_needed(t, t.outputs[0]))["shared"] == shared_half
    assert passes.layer_graph_bytes(t)["shared"] == shared_full
    head_full, head_half = (8 * 4 + 4 + 12 * 16 * 16) * 4, (8 * 4 + 4 + 12 * 8 * 8) * 4  # a on h, b on pool(h)
    # output a: stem, shared and head a at full size; output b: stem, shared and head b at half size
    assert by_name["a"].graph_size_bytes - by_name["b"].graph_size_bytes == (shared_full + head_full) - (
        shared_half + head_half)


dags = st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n),
    st.lists(st.integers(0, n - 1), min_size=1, max_size=70), st.randoms(use_true_random=False)))


@settings(max_examples=60, deadline=None)
@given(dags)
def test_need_bits_are_the_ancestor_sets_whatever_order_the_nodes_were_added(case):
    """Random DAGs (edges low -> high index), nodes added in a shuffled order, up to 70 outputs (bits past one
    byte and past int64), outputs repeated."""
    n, pairs, outputs, rng = case
    nodes = [f"n{i}" for i in range(n)]
    shuffled = nodes[:]
    rng.shuffle(shuffled)
    dag = nx.DiGraph()
    dag.add_nodes_from(shuffled)
    dag.add_edges_from((nodes[min(a, b)], nodes[max(a, b)]) for a, b in pairs if a != b)
    outs = [nodes[i] for i in outputs]
    order, position, bits = need_bits(dag, outs)
    assert sorted(order) == sorted(nodes) and all(order[position[node]] == node for node in nodes)
    mask = need_matrix(bits, len(outs))
    for row, out in zip(mask, outs):
        assert {order[j] for j in row.nonzero()[0]} == nx.ancestors(dag, out) | {out}
    weights = [rng.randrange(-10 ** 20, 10 ** 20) if n % 2 else rng.randrange(100) for _ in order]
    assert masked_sums(mask, weights) == [sum(w for w, keep in zip(weights, row) if keep) for row in mask.tolist()]
    depth = passes.longest_path_layers(dag, counts=lambda node: int(node[1:]) % 3 == 0)
    reference = {}
    for node in nx.topological_sort(dag):
        reference[node] = (int(node[1:]) % 3 == 0) + max([reference[p] for p in dag.predecessors(node)] + [0])
    assert depth == reference


def test_a_cycle_is_refused_as_networkx_refuses_it():
    with pytest.raises(nx.NetworkXUnfeasible):
        passes.longest_path_layers(nx.DiGraph([("a", "b"), ("b", "a")]), counts=bool)
