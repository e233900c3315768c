"""Trace-time replay (graphcost.capture_memo.TraceReplay): a repeated module call copied during fx tracing gives
the very graph plain tracing gives, node by node, and the same records and analysis."""
import inspect

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import fx, nn

from graphcost.analysis import analyze_trace
from graphcost.capture_fx import LeafTracer, _symbolic_trace
from graphcost.models import get_model
from graphcost.tracing import trace


class Scaled(nn.Module):
    """Reads its own parameter in ``forward``: fx caches that parameter's proxy (one get_attr node for all calls)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(8, 8))
        self.lin = nn.Linear(8, 8)

    def forward(self, x, scale=2.0):
        return self.lin(F.linear(x, self.weight)) * scale + x.shape[-1]


class Repeats(nn.Module):
    """One non-leaf module called again and again: same arguments, another constant, the same proxy twice."""

    def __init__(self):
        super().__init__()
        self.block = Scaled()

    def forward(self, x):
        for _ in range(3):
            x = self.block(x)
        y = self.block(x, scale=3.0)
        y = self.block(y, scale=3.0)
        return self.block(x + y), self.block(y)


class Counting(nn.Module):
    """Changes its own state in ``forward``: never replayed."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        self.calls += 1
        for _ in range(self.calls):
            x = self.lin(x)
        return x


class Retuned(nn.Module):
    """Calls a stateful child, and between two calls of another child changes that child's attribute."""

    def __init__(self):
        super().__init__()
        self.counting = Counting()
        self.block = Scaled()
        self.block.extra = 1

    def forward(self, x):
        x = self.counting(self.counting(self.counting(x)))
        x = self.block(self.block(self.block(x)))
        self.block.extra = 2  # a parent changing a child: the next call is traced again
        x = self.block(x)
        self.block.extra = 1
        return self.block(x)


class Head(nn.Module):
    """No parameter read in ``forward``: a call of another instance of equal state is copied, paths renamed."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), nn.ReLU())

    def forward(self, x):
        return self.body(x).relu() + 1


class Twins(nn.Module):
    """Several instances of one module type: heads (copied across instances) and parameter readers (not)."""

    def __init__(self):
        super().__init__()
        self.heads = nn.ModuleList(Head() for _ in range(4))
        self.scaled = nn.ModuleList(Scaled() for _ in range(3))

    def forward(self, x):
        for head, scaled in zip(self.heads, self.scaled):
            x = scaled(head(x))
        return self.heads[3](x)


def _models():
    yield "itnet shared", get_model("itnet", dataset="camvid", shared=True, N=4, L=2, K=2, f=16), (1, 3, 48, 64)
    yield "itnet independent", get_model("itnet", dataset="camvid", shared=False, N=4, L=2, K=2, f=16), (1, 3, 48, 64)
    yield "resnet18", torchvision.models.resnet18(weights=None), (1, 3, 64, 64)
    # nn.TransformerEncoder's own forward is not fx-traceable (graphcost then captures it otherwise): its layers are
    layers = [nn.TransformerEncoderLayer(32, 4, 64, batch_first=True) for _ in range(2)]
    yield "transformer encoder layers", nn.Sequential(*layers, nn.Linear(32, 10)), (1, 16, 32)
    yield "repeats", Repeats(), (2, 8)
    yield "retuned", Retuned(), (2, 8)
    yield "twins", Twins(), (2, 8)


def _rows(graph: fx.Graph):
    """Every node as plain data: name, op, target, arguments (nodes by name), nn_module_stack and its type."""
    def by_name(arg):
        return fx.node.map_arg(arg, lambda n: n.name)
    return [(n.name, n.op, n.target, by_name(n.args), by_name(n.kwargs), sorted(n.meta),
             type(n.meta.get("nn_module_stack")), list((n.meta.get("nn_module_stack") or {}).items()))
            for n in graph.nodes]


def _fresh(model):
    """A model's own state before a trace (a stateful forward counts its calls)."""
    for m in model.modules():
        if isinstance(m, Counting):
            m.calls = 0
    return model


@pytest.mark.parametrize("name, model, shape", list(_models()), ids=[m[0] for m in _models()])
def test_replayed_trace_equals_plain_trace(name, model, shape):
    given = {next(iter(inspect.signature(model.forward).parameters))}
    _, replayed, opaque_r, copies = _symbolic_trace(_fresh(model), (), {}, given, memoise=True)
    _, plain, opaque_p, none = _symbolic_trace(_fresh(model), (), {}, given, memoise=False)
    assert none == {} and opaque_r == opaque_p
    assert _rows(replayed) == _rows(plain)
    if name in ("itnet shared", "itnet independent", "repeats", "retuned", "twins"):
        assert copies  # the equality above is about graphs with copied calls
    assert not any(call.startswith("counting") for call in copies)
    memoised, unmemoised = trace(_fresh(model), shape), trace(_fresh(model), shape, memoise=False)
    assert [memoised.call(n) for n in memoised.dag] == [unmemoised.call(n) for n in unmemoised.dag]
    assert list(memoised.dag.edges) == list(unmemoised.dag.edges)
    assert analyze_trace(memoised) == analyze_trace(unmemoised)


def test_copied_calls_number_module_calls_and_scopes_as_fx_does():
    model = get_model("itnet", dataset="camvid", shared=True, N=4, L=2, K=2, f=16)
    tracers = [LeafTracer(set(), {}, memoise) for memoise in (True, False)]
    graphs = [t.trace(model) for t in tracers]
    assert tracers[0].replay.copies and _rows(graphs[0]) == _rows(graphs[1])
    assert tracers[0].num_calls == tracers[1].num_calls
    assert tracers[0].node_name_to_scope == tracers[1].node_name_to_scope


def test_which_calls_are_copied():
    _, _, _, copies = _symbolic_trace(Repeats(), (), {}, {"x"})
    # calls 1-3 of block: the 1st is traced, the 2nd recorded, the 3rd copied; scale=3.0: recorded, then copied;
    # block(x + y) and block(y): the first call with their structure (one proxy, default scale) after block@1..2
    assert copies.get("block@2") == "block@1" and copies.get("block@4") == "block@3"
    assert copies.get("block@5") == "block@1" and copies.get("block@6") == "block@1"
    _, _, _, copies = _symbolic_trace(Retuned(), (), {}, {"x"})
    assert copies.get("block@2") == "block@1"
    assert "block@3" not in copies and "block@4" not in copies  # extra = 2: traced; back to 1: traced again
    assert not any(call.startswith("counting") for call in copies)


def test_calls_of_other_instances_are_copied_when_no_parameter_is_read():
    _, _, _, copies = _symbolic_trace(Twins(), (), {}, {"x"})
    # heads.0 is traced (the first of its kind), heads.1 recorded, heads.2 and heads.3 copied from it
    assert copies.get("heads.2") == "heads.1" and copies.get("heads.3") == "heads.1"
    assert copies.get("heads.2.body") == "heads.1.body"
    assert not any(call.startswith("scaled") for call in copies)  # each reads its own parameter


def test_the_first_module_of_a_sketch_is_keyed_once(monkeypatch):
    """heads.0 is keyed when heads.1 (its first twin) is called, not again at heads.2's and heads.3's calls."""
    import graphcost.capture_memo as capture_memo

    keyed = []
    real = capture_memo.module_key
    monkeypatch.setattr(capture_memo, "module_key", lambda module, *a, **k: keyed.append(module) or real(module, *a, **k))
    model = Twins()
    _, _, _, copies = _symbolic_trace(model, (), {}, {"x"})
    assert copies.get("heads.3") == "heads.1"  # the keys still find the twins
    assert sum(m is model.heads[0] for m in keyed) == 1
    assert all(sum(m is head for m in keyed) == 1 for head in model.heads[1:3])


@pytest.mark.parametrize("candidate", ["conv", "blocks.0.conv", "0", "3.conv", "a..b", "-", "", "add_3", "list",
                                       "__add__", "layer1.0.downsample.0", "getattr_1"])
def test_a_copys_name_candidate_is_named_as_fx_names_the_raw_one(candidate):
    """Copies hand fx's namespace their candidate made an identifier ahead (capture_memo._identifier): the
    same names, in any order of use, as the raw candidates give."""
    from torch.fx.graph import _Namespace
    from graphcost.capture_memo import _identifier

    raw, ready = _Namespace(), _Namespace()
    for used in ("conv", "blocks_0_conv", "_0", "add_3", candidate, candidate):
        assert raw.create_name(used, None) == ready.create_name(_identifier(used), None)


@pytest.mark.parametrize("change", ["none", "attribute", "new attribute", "parameter", "in place", "child", "hook",
                                    "list", "buffer", "deleted child"])
def test_a_subtree_state_sees_every_change_a_forward_could_read(change):
    from graphcost.capture_memo import SubtreeState

    model = nn.Sequential(nn.Conv2d(2, 2, 3), nn.Sequential(nn.BatchNorm2d(2), nn.ReLU()))
    model[1][1].sizes = [1, 2]  # a mutable attribute: compared by value
    state = SubtreeState(model)
    inner = model[1]
    if change == "attribute":
        model[0].padding = (1, 1)
    elif change == "new attribute":
        inner[1].extra = 3
    elif change == "parameter":
        model[0].weight = nn.Parameter(torch.zeros(2, 2, 3, 3))
    elif change == "in place":
        with torch.no_grad():
            model[0].bias.add_(1)
    elif change == "child":
        inner[1] = nn.GELU()
    elif change == "hook":
        inner[0].register_forward_pre_hook(lambda *a: None)
    elif change == "list":
        inner[1].sizes.append(3)
    elif change == "buffer":
        inner[0].register_buffer("scale", torch.ones(2))
    elif change == "deleted child":
        del inner[1]
    assert state.unchanged() is (change == "none")
