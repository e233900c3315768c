"""Shape rules (used instead of running an op on fake tensors) agree with PyTorch."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

import graphcost
from graphcost import ops


def rule_shape(info, module, args, kwargs):
    return info.shape(module, args, kwargs)


@settings(max_examples=40, deadline=None)
@given(cin=st.integers(1, 6), cout=st.integers(1, 6), k=st.integers(1, 4), stride=st.integers(1, 3),
       pad=st.integers(0, 2), dil=st.integers(1, 2), size=st.integers(8, 15), transposed=st.booleans(),
       out_pad=st.integers(0, 1))
def test_conv_shape_rule_matches_torch(cin, cout, k, stride, pad, dil, size, transposed, out_pad):
    if transposed:
        out_pad = min(out_pad, max(stride, dil) - 1)
        m = nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=pad, dilation=dil, output_padding=out_pad)
    else:
        m = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dil)
    x = torch.zeros(2, cin, size, size + 1)
    try:
        expected = tuple(m(x).shape)
    except RuntimeError:
        return  # an impossible geometry: torch refuses it, and so would the real op under graphcost
    assert rule_shape(ops.lookup_module(m), m, (x,), {}) == expected


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv_string_padding(padding):
    m = nn.Conv2d(3, 4, 3, padding=padding, dilation=2 if padding == "same" else 1)
    x = torch.zeros(1, 3, 9, 10)
    assert rule_shape(ops.lookup_module(m), m, (x,), {}) == tuple(m(x).shape)


@pytest.mark.parametrize("fn,args,kwargs", [
    (F.interpolate, (torch.zeros(1, 2, 7, 9),), {"scale_factor": 1.5, "mode": "bilinear"}),
    (F.interpolate, (torch.zeros(1, 2, 7, 9),), {"size": (5, 4), "mode": "nearest"}),
    (F.interpolate, (torch.zeros(1, 2, 7, 9), 11), {}),
    (F.interpolate, (torch.zeros(1, 2, 7, 9), None, (2, 0.5)), {}),
    (F.adaptive_avg_pool2d, (torch.zeros(1, 2, 7, 9), (3, None)), {}),
    (F.adaptive_avg_pool2d, (torch.zeros(2, 7, 9), 1), {}),
    (torch.cat, ([torch.zeros(1, 2, 3), torch.zeros(1, 5, 3)], 1), {}),
    (torch.cat, ([torch.zeros(1, 2, 3), torch.zeros(1, 2, 4)],), {"dim": -1}),
    (torch.add, (torch.zeros(3, 1, 4), torch.zeros(5, 1)), {}),
])
def test_function_shape_rules_match_torch(fn, args, kwargs):
    info = ops.lookup_function(fn)
    assert rule_shape(info, None, args, kwargs) == tuple(fn(*args, **kwargs).shape)


#: pool settings drawn over torch's edges: zero / negative sizes, padding past half the window, ceil mode
POOL = dict(kernel=st.one_of(st.integers(0, 4), st.tuples(st.integers(1, 4), st.integers(1, 4))),
            stride=st.one_of(st.none(), st.integers(0, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)), st.just(())),
            pad=st.one_of(st.integers(-1, 3), st.tuples(st.integers(0, 2), st.integers(0, 2))),
            dil=st.integers(0, 3), ceil=st.booleans(),
            shape=st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 9), st.integers(0, 9)),
                            st.tuples(st.integers(0, 3), st.integers(1, 9), st.integers(1, 9)),
                            st.tuples(st.integers(1, 9), st.integers(1, 9))),
            channels_last=st.booleans(), functional=st.booleans())


def _torch_verdict(run):
    """torch's output shape on meta tensors, or None where torch refuses the call."""
    try:
        return tuple(run().shape)
    except (RuntimeError, ValueError, TypeError, IndexError):
        return None


@settings(max_examples=400, deadline=None, derandomize=True)
@given(max_pool=st.booleans(), **POOL)
def test_pool_shape_rules_accept_exactly_what_torch_accepts(max_pool, kernel, stride, pad, dil, ceil, shape,
                                                            channels_last, functional):
    """The 2-D pool rule gives torch's output shape, and never a shape for a call torch refuses (None there:
    the op runs and torch says why). Non-contiguous and empty inputs are left to torch (its output's layout
    follows the input's)."""
    x = torch.empty(shape, device="meta")
    if channels_last and x.dim() == 4:
        x = x.to(memory_format=torch.channels_last)
    settings_ = dict(kernel_size=kernel, stride=stride, padding=pad, ceil_mode=ceil)
    if max_pool:
        settings_["dilation"] = dil
    fn, module_type = (F.max_pool2d, nn.MaxPool2d) if max_pool else (F.avg_pool2d, nn.AvgPool2d)
    if functional:
        info, module, args, kwargs = ops.lookup_function(fn), None, (x, kernel), {k: v for k, v in settings_.items()
                                                                                   if k != "kernel_size"}
        expected = _torch_verdict(lambda: fn(*args, **kwargs))
    else:
        try:
            module = module_type(**settings_)
        except (RuntimeError, ValueError, TypeError):
            return
        info, args, kwargs = ops.lookup_module(module), (x,), {}
        expected = _torch_verdict(lambda: module(x))
    got = rule_shape(info, module, args, kwargs)
    assert got is None or got == expected
    if expected is not None and x.is_contiguous() and x.dim() >= 3 and 0 not in x.shape:
        assert got == expected  # every plain valid call takes the rule: the op is not dispatched


def test_pool_rule_of_a_typical_call():
    x = torch.zeros(2, 3, 17, 20)
    m = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
    assert rule_shape(ops.lookup_module(m), m, (x,), {}) == tuple(m(x).shape) == (2, 3, 9, 11)
    assert rule_shape(ops.lookup_function(F.avg_pool2d), None, (x, 2), {}) == (2, 3, 8, 10)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(shapes=st.lists(st.lists(st.integers(0, 3), max_size=4).map(tuple), min_size=1, max_size=3))
def test_broadcast_shape_is_torchs(shapes):
    expected = _torch_verdict(lambda: torch.empty(torch.broadcast_shapes(*shapes), device="meta"))
    assert ops.broadcast_shape(*shapes) == expected


def test_upsample_module_rule():
    m = nn.Upsample(scale_factor=8, mode="bilinear")
    x = torch.zeros(1, 3, 5, 6)
    assert rule_shape(ops.lookup_module(m), m, (x,), {}) == tuple(m(x).shape)


@pytest.mark.parametrize("name,dataset,params", [
    ("itnet", "camvid", {"N": 3}), ("enet", "camvid", {}), ("cgnet", "cityscapes", {"M": 2, "N": 3}),
    ("espnetv2", "cityscapes", {"s": 0.5}), ("recunet", "camvid", {"iterations": 2}),
    ("recurrent-seg", "pascal", {"iterations": 2}),
])
def test_traced_output_shapes_equal_a_real_forward(name, dataset, params):
    from graphcost.models import get_model

    model = get_model(name, dataset=dataset, **params).eval()
    shape = (1, 3, 64, 96)
    with torch.no_grad():
        real = model(torch.rand(shape))
    real = real if isinstance(real, (list, tuple)) else [real]
    t = graphcost.trace(model, shape)
    assert [t.call(o).out_shapes[0] for o in t.outputs] == [tuple(r.shape) for r in real]


# --------------------------------------------------------------------------- the registry
@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test vanish after it."""
    for table in ("_MODULES", "_FUNCTIONS", "_METHODS"):
        monkeypatch.setattr(ops, table, dict(getattr(ops, table)))


class Scale(nn.Module):
    """A user module with a weight that fx would otherwise trace into (a mul and a sum)."""

    def __init__(self, n=4):
        super().__init__()
        self.w = nn.Parameter(torch.ones(n, n))

    def forward(self, x):
        return (x.unsqueeze(-1) * self.w).sum(-2)


def scale_cost(call):
    return ops.OpCost(macs=call.out_numel * call.module.w.shape[0])


def test_register_cost_makes_a_user_module_one_costed_leaf(scratch_registry):
    model = nn.Sequential(Scale(), nn.ReLU())
    before = graphcost.analyze(model, (2, 4))
    assert before.macs == 0  # traced into: a mul and a sum, no MACs
    graphcost.register_cost(Scale, name="scale", kind="linear")(scale_cost)
    after = graphcost.analyze(model, (2, 4))
    assert after.macs == 2 * 4 * 4
    assert [(layer.name, layer.op, layer.calls) for layer in after.layers if layer.kind == "linear"] == [("0", "scale", 1)]
    assert after.latency_layers == 1


def test_registering_an_op_twice_raises(scratch_registry):
    graphcost.register_cost(Scale, name="scale")(scale_cost)
    with pytest.raises(ValueError, match="Scale already has a cost formula"):
        graphcost.register_cost(Scale, name="scale")(scale_cost)
    with pytest.raises(ValueError, match="Conv2d already has"):
        graphcost.register_cost(nn.Conv2d, name="conv2d", kind="conv")(scale_cost)
    with pytest.raises(ValueError, match=r"\.view\(\) already has"):
        graphcost.register_cost("view")(ops.free)
    with pytest.raises(TypeError):
        graphcost.register_cost(3)


def test_a_rejected_registration_changes_nothing(scratch_registry):
    with pytest.raises(ValueError):
        graphcost.register_cost(Scale, nn.Linear, name="scale")(scale_cost)
    assert ops.lookup_module(Scale()) is None


def test_custom_costs_override_for_one_call_only():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    plain = graphcost.analyze(conv, (1, 3, 8, 8))
    doubled = graphcost.analyze(conv, (1, 3, 8, 8),
                                custom_costs={nn.Conv2d: lambda call: ops.OpCost(macs=2 * plain.macs)})
    assert doubled.macs == 2 * plain.macs
    assert doubled.layers[0].op == "conv2d" and doubled.latency_layers == 1  # name and kind kept
    assert graphcost.analyze(conv, (1, 3, 8, 8)).macs == plain.macs


def test_custom_costs_for_functions_methods_and_unregistered_modules():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = Scale()

        def forward(self, x):
            return torch.relu(self.scale(x)).view(-1)

    custom = {torch.relu: lambda call: ops.OpCost(other_ops=100), "view": lambda call: ops.OpCost(other_ops=1),
              Scale: scale_cost}
    a = graphcost.analyze(Net(), (2, 4), custom_costs=custom)
    assert (a.macs, a.other_ops) == (2 * 4 * 4, 101)
    assert [layer.op for layer in a.layers if layer.params] == ["Scale"]
    assert a.latency_layers == 1  # a custom module with weights and MACs is a weight layer


@pytest.mark.parametrize("custom", [{3: ops.free}, {nn.Conv2d: "free"}, {int: ops.free}])
def test_malformed_custom_costs_are_user_errors(custom):
    with pytest.raises(graphcost.UserError, match="custom_costs"):
        graphcost.analyze(nn.Conv2d(1, 1, 1), (1, 1, 2, 2), custom_costs=custom)


def test_node_records_are_frozen():
    import dataclasses

    t = graphcost.trace(nn.Conv2d(1, 2, 3), (1, 1, 5, 5))
    record = t.call(t.outputs[0])
    assert (record.op, record.macs, record.out_shapes, record.layer) == ("conv2d", 2 * 9 * 9, ((1, 2, 3, 3),), "model")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.macs = 0
