"""Provably identical calls costed once (graphcost.capture_memo): every number equals the unmemoised capture's."""
import pytest
import torch
import torchvision
from torch import nn

from graphcost.analysis import analyze_trace
from graphcost.capture_fx import CostInterpreter
from graphcost.capture_memo import CallMemo
from graphcost.models import get_model
from graphcost.schema import RECORD
from graphcost.tracing import trace


@pytest.fixture
def replays(monkeypatch):
    """Counts the calls the memo answered (so a test of equality is not vacuously about a memo never used)."""
    counted = []
    original = CallMemo.replay

    def counting(self, key):
        found = original(self, key)
        counted.append(found is not None)
        return found

    monkeypatch.setattr(CallMemo, "replay", counting)
    return counted


def _models():
    yield "itnet shared", get_model("itnet", dataset="camvid", shared=True, N=4, L=2, K=2, f=16), (1, 3, 48, 64)
    yield "itnet independent", get_model("itnet", dataset="camvid", shared=False, N=4, L=2, K=2, f=16), (1, 3, 48, 64)
    layers = [nn.TransformerEncoderLayer(32, 4, 64, batch_first=True) for _ in range(3)]  # opaque leaves, run per aten op
    yield "transformer (tiny)", nn.Sequential(*layers, nn.Linear(32, 10)), (1, 16, 32)
    yield "resnet18", torchvision.models.resnet18(weights=None), (1, 3, 64, 64)


@pytest.mark.parametrize("name, model, shape", list(_models()), ids=[m[0] for m in _models()])
def test_memoised_capture_equals_every_call_run(name, model, shape, replays):
    memoised = trace(model, shape)
    hits = sum(replays)
    plain = trace(model, shape, memoise=False)
    assert hits > 0 and sum(replays) == hits  # the memo answered calls, and only when asked to
    assert list(memoised.dag.nodes) == list(plain.dag.nodes) and list(memoised.dag.edges) == list(plain.dag.edges)
    assert [memoised.call(n) for n in memoised.dag] == [plain.call(n) for n in plain.dag]  # MACs, shapes, bytes per call
    assert list(memoised.loop_graph.edges(data=True)) == list(plain.loop_graph.edges(data=True))
    assert [memoised.layer(n) for n in memoised.loop_graph] == [plain.layer(n) for n in plain.loop_graph]
    assert (memoised.opaque_modules, memoised.unknown_ops, memoised.uncounted) == \
        (plain.opaque_modules, plain.unknown_ops, plain.uncounted)
    a, b = analyze_trace(memoised), analyze_trace(plain)
    assert a == b  # params, MACs, graph size, latency, every layer and every anytime output
    assert len(a.outputs) == (4 if name.startswith("itnet") else 1)


class Growing(nn.Module):
    """A leaf whose output grows with every call: its state is in the key, so no call is replayed wrongly."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x.repeat(1, self.calls)


class ThreeCalls(nn.Module):
    def __init__(self):
        super().__init__()
        self.grow = Growing()

    def forward(self, x):
        return self.grow(x), self.grow(x), self.grow(x)


@pytest.mark.parametrize("memoise", [True, False])
def test_a_leaf_that_changes_its_own_state_is_never_replayed(memoise):
    t = trace(ThreeCalls(), (1, 4), leaf_modules=["grow"], memoise=memoise)
    assert [t.call(o).out_shapes for o in t.outputs] == [((1, 4),), ((1, 8),), ((1, 12),)]


def test_in_place_calls_real_tensors_and_user_functions_are_not_memoised():
    from torch._subclasses.fake_tensor import FakeTensorMode

    memo = CallMemo()
    assert memo.key("call_function", lambda x: x, (1,), {}) is None  # a user function may read anything
    assert memo.key("call_function", torch.relu, (torch.ones(3, 3),), {}) is None  # a real tensor's values
    hooked = nn.ReLU()
    hooked.register_forward_hook(lambda *a: None)
    assert memo.key("call_module", hooked, (), {}) is None
    with FakeTensorMode():
        x = torch.empty(2, 3)
        key = memo.key("call_method", "relu_", (x,), {})
        memo.store(key, x.relu_(), "cost", (x,))  # the output is its input: an in-place call is never replayed
        assert key is not None and memo.replay(key) is None
        key = memo.key("call_method", "relu", (x,), {})
        memo.store(key, x.relu(), "cost", (x,))
        out, outcome = memo.replay(key)
        assert out is not x and tuple(out.shape) == (2, 3) and outcome == "cost"
        assert memo.key("call_method", "relu", (torch.empty(2, 4),), {}) != key
        assert memo.key("call_method", "relu", (x.t(),), {}) != key  # strides are in the key


@pytest.mark.parametrize("blocks_per_scale", [1, 2])  # K=2: the block's last node lies in a replayed inner call
def test_repeated_block_calls_are_replayed_whole(monkeypatch, blocks_per_scale):
    """ItNet's iterative block called N times: calls 3..N (call 1 skips the mixing block, so its code differs)
    repeat call 2 and are replayed as a whole, as are the N-1 identical classifier heads after the first."""
    paths = []
    original = CostInterpreter._replay_invocation

    def spy(self, invocation):
        found = original(self, invocation)
        if found is not None:
            paths.append(invocation.path)  # the module whose call was replayed
        return found

    monkeypatch.setattr(CostInterpreter, "_replay_invocation", spy)
    for shared in (True, False):
        paths.clear()
        model = get_model("itnet", dataset="camvid", shared=shared, N=4, L=2, K=blocks_per_scale, f=16)
        t = trace(model, (1, 3, 48, 64))
        blocks = [p for p in paths if p in ("block", "blocks.2", "blocks.3")]
        assert len(t.outputs) == 4 and len(blocks) >= 2  # blocks 3 and 4 (shared: one path; independent: two)
        assert sorted(p for p in paths if p.startswith("classifiers")) == ["classifiers.1", "classifiers.2",
                                                                          "classifiers.3"]


def _mutations():
    """Changes to a module after it was keyed, each of which must change (or at least re-take) its key."""
    def stride(m):
        m[0].stride = (2, 2)

    def same_stride_new_tuple(m):
        m[0].stride = tuple(m[0].stride)  # another object, equal value: the key must stay equal

    def weight_shape(m):
        m[0].weight = nn.Parameter(torch.empty(8, 3, 5, 5, device="meta"))

    def requires_grad(m):
        m[0].weight.requires_grad_(False)

    def list_attribute(m):
        m[1].extra = [1, 2]

    def list_in_place(m):
        m[1].extra = [1, 2]
        m[1].extra.append(3)

    def child_replaced(m):
        m[1] = nn.ReLU(inplace=True)

    def child_attribute(m):
        m[2][0].negative_slope = 0.2

    def hook(m):
        m[2][0].register_forward_hook(lambda *a: None)

    def buffer(m):
        m[0].register_buffer("scale", torch.ones(1, device="meta"))

    return [stride, same_stride_new_tuple, weight_shape, requires_grad, list_attribute, list_in_place,
            child_replaced, child_attribute, hook, buffer]


@pytest.mark.parametrize("mutate", _mutations(), ids=lambda f: f.__name__)
def test_a_kept_module_key_is_given_back_only_while_it_holds(mutate):
    """``ModuleKeys`` (keys taken at trace time, reused by the run's memo) gives a module's earlier key back only
    where a fresh key would equal it: after each kind of change the key equals a fresh one, untouched parts
    (the other children) still come back as the very key objects they were."""
    from graphcost.capture_memo import ModuleKeys, _Unkeyable, module_key

    def net():
        with torch.device("meta"):
            return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Sequential(nn.LeakyReLU(0.1), nn.Conv2d(8, 8, 1)))

    m, keys = net(), ModuleKeys()
    before = module_key(m, taken=keys)
    assert module_key(m, taken=keys) is before  # unchanged: the kept key itself
    untouched = module_key(m[2][1], taken=keys)
    mutate(m)
    try:
        fresh = module_key(m)
    except _Unkeyable:
        with pytest.raises(_Unkeyable):
            module_key(m, taken=keys)
        return
    again = module_key(m, taken=keys)
    assert again == fresh
    assert (again == before) == (fresh == before)
    if mutate.__name__ != "child_replaced":
        assert module_key(m[2][1], taken=keys) is untouched


def test_equal_module_keys_of_one_capture_are_one_object():
    """``ModuleKeys.interned``: equal subtrees keyed in one capture share one key object (children compared by
    identity, each hash taken once); keys stay equal by value across captures and differ where the state does."""
    from graphcost.capture_memo import ModuleKey, ModuleKeys, module_key

    def block(stride=1):
        with torch.device("meta"):
            return nn.Sequential(nn.Conv2d(8, 8, 3, stride=stride), nn.ReLU(), nn.Sequential(nn.Conv2d(8, 8, 1)))

    a, b, c, keys = block(), block(), block(stride=2), ModuleKeys()
    key_a, key_b, key_c = (module_key(m, taken=keys) for m in (a, b, c))
    assert isinstance(key_a, ModuleKey) and key_a is key_b and key_c != key_a
    assert key_c.children[2][1] is key_a.children[2][1]  # the equal inner Sequential of the strided block: the same key
    fresh = module_key(block())  # another capture (no ModuleKeys): an equal key, another object
    assert fresh == key_a and fresh is not key_a and hash(fresh) == hash(key_a)


def test_equal_codes_are_compared_node_by_node_once(monkeypatch):
    """An iterated block's stored call and each later copy's: the first comparison of their codes goes node by
    node, later ones find the two codes joined (so the work does not grow with the iterations)."""
    import graphcost.capture_memo as capture_memo

    compared = []
    original = capture_memo._same_arg

    def counting(*args):
        compared.append(1)
        return original(*args)

    monkeypatch.setattr(capture_memo, "_same_arg", counting)
    counts = {}
    for n in (4, 8):
        compared.clear()
        model = get_model("itnet", dataset="camvid", shared=False, N=n, L=2, K=1, f=16)
        assert len(trace(model, (1, 3, 48, 64)).outputs) == n
        counts[n] = len(compared)
    assert counts[4] > 0 and counts[8] == counts[4]


def test_replayed_calls_of_the_same_module_copy_their_dag_records():
    """The run names, for every node of an invocation it replayed from an earlier call of the same module path,
    that call's node (``Captured.templates``); the DAG copies those records but for their order, and equals the
    DAG built without them record by record."""
    from graphcost.capture_fx import fx_capture
    from graphcost.graphs import build_dag
    from graphcost.inputs import bind_inputs, split_inputs

    model = get_model("itnet", dataset="camvid", shared=True, N=5, L=2, K=2, f=16)
    captured = fx_capture(model, bind_inputs(model, *split_inputs((1, 3, 48, 64))), torch.float32, torch.device("cpu"))
    templates = captured.templates
    assert len(templates) > 3 * 20  # iterations 3-5 of the block, every node
    order = {n.name: i for i, n in enumerate(captured.graph.nodes)}
    modules = {n.name: n.meta["nn_module_stack"] for n in captured.graph.nodes if "nn_module_stack" in n.meta}
    for node, source in templates.items():
        assert order[source] < order[node] and captured.records[node] is captured.records[source]
        assert [path for path, _ in modules[node].values()] == [path for path, _ in modules[source].values()]
    with_templates = build_dag(captured.root, captured.graph, captured.records, captured.modules, templates)[0]
    without = build_dag(captured.root, captured.graph, captured.records, captured.modules)[0]
    assert list(with_templates.nodes) == list(without.nodes) and list(with_templates.edges) == list(without.edges)
    assert [with_templates.nodes[n][RECORD] for n in with_templates] == [without.nodes[n][RECORD] for n in without]
