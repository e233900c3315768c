"""Building on the meta device without initialising parameters (``graphcost.resolve.no_init``): the same
modules, parameter and buffer shapes and dtypes as a meta build that initialises, and nothing leaks out."""
import pytest
import torch
from torch import nn

from graphcost.explore import SweepSpec, parse_grid, run_sweep
from graphcost.resolve import ModelSpec, build, build_for_shapes, direct_attributes, no_init

SPECS = [
    ModelSpec(name="itnet", dataset="camvid", params={"N": 3, "L": 2, "K": 2, "f": 13}, shared=True),
    ModelSpec(name="itnet", dataset="camvid", params={"N": 3, "L": 2, "K": 2, "f": 13}, shared=False),
    ModelSpec(name="tiny-gpt"),  # embeddings, layer norms, linear layers
    ModelSpec(name="espnetv2"),  # batch norms, PReLU, grouped and dilated convs
    ModelSpec(name="torchvision:resnet18"),
    ModelSpec(name="cgnet"),  # PReLU
    ModelSpec(name="recurrent-seg"),
    ModelSpec(name="torchvision:mobilenet_v3_small"),
]


def _layout(module: nn.Module):
    """Every module's type and every parameter's and buffer's name, shape, dtype, device and requires_grad."""
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    return ([(name, type(m).__name__) for name, m in module.named_modules()],
            [(name, tuple(t.shape), t.dtype, t.device.type, t.requires_grad) for name, t in tensors])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.name}-{s.shared}")
def test_meta_build_without_initialisation_has_the_same_layout(spec):
    with torch.device("meta"):
        initialised = build(spec)
    built = build_for_shapes(spec)
    assert _layout(built.module) == _layout(initialised.module)
    assert all(p.is_meta for p in built.module.parameters())
    assert (built.input_shape, built.inputs, built.label, built.dataset) == \
        (initialised.input_shape, initialised.inputs, initialised.label, initialised.dataset)


def test_initialisers_are_skipped_on_meta_only(monkeypatch):
    calls = []
    original = nn.init.kaiming_uniform_

    def counting(tensor, *args, **kwargs):
        calls.append(tensor.device.type)
        return original(tensor, *args, **kwargs)

    monkeypatch.setattr(nn.init, "kaiming_uniform_", counting)
    build_for_shapes(ModelSpec(name="itnet", dataset="camvid", params={"N": 2, "L": 1, "K": 1, "f": 8}))
    assert calls == []  # every conv's weight left alone on meta
    with no_init():
        real = nn.Conv2d(2, 3, 3)  # a real tensor inside the block is initialised as ever
        filled = nn.init.ones_(torch.zeros(2, 2))
        meta = torch.empty(2, 2, device="meta")
        assert nn.init.normal_(meta) is meta
    assert calls == ["cpu"] and real.weight.abs().sum() > 0 and bool((filled == 1).all())
    assert nn.init.kaiming_uniform_ is counting  # restored


def _patchable():
    """Everything no_init may patch: torch.nn.init's functions and every torch layer's own reset_parameters."""
    layers = {}
    todo = [nn.Module]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("torch.nn") and "reset_parameters" in cls.__dict__:
            layers[cls] = cls.__dict__["reset_parameters"]
    return {name: getattr(nn.init, name) for name in dir(nn.init) if not name.startswith("__")}, layers


def test_no_init_restores_everything_when_the_block_raises():
    before = _patchable()
    with pytest.raises(ZeroDivisionError):
        with no_init():
            assert nn.init.uniform_ is not before[0]["uniform_"]
            assert nn.Conv2d.reset_parameters is not before[1][nn.modules.conv._ConvNd]
            raise ZeroDivisionError
    assert _patchable() == before


def test_layers_with_real_tensors_are_reset_inside_no_init():
    torch.manual_seed(0)
    expected = [nn.Linear(3, 4), nn.BatchNorm2d(3), nn.Embedding(5, 2), nn.LSTM(3, 4)]
    torch.manual_seed(0)
    with no_init():
        got = [nn.Linear(3, 4), nn.BatchNorm2d(3), nn.Embedding(5, 2), nn.LSTM(3, 4)]
        meta = nn.BatchNorm2d(3, device="meta")
    for a, b in zip(expected, got):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert _layout(meta) == _layout(nn.BatchNorm2d(3, device="meta"))


def needs_real_weights():
    """A constructor that computes with its own weights: fails on the meta device."""
    layer = nn.Linear(4, 4)
    if float(layer.weight.detach().abs().sum()) == 0:  # reading a meta tensor's value raises
        raise AssertionError("not initialised")
    return layer


def test_a_failed_meta_build_falls_back_to_an_initialised_real_build():
    spec = ModelSpec(name="test_build_for_shapes:needs_real_weights")
    built = build_for_shapes(spec)
    assert not any(p.is_meta for p in built.module.parameters())
    assert all(p.abs().sum() > 0 for p in built.module.parameters())


def test_sweep_rows_equal_those_of_initialised_meta_builds(monkeypatch):
    """The sweep on builds without initialisation gives the rows of builds that initialise (every number)."""
    spec = SweepSpec(model="itnet", grid=parse_grid(["N=1,2", "K=1,2"]), fixed=(("L", 2),), input_shape=(1, 3, 32, 48),
                     shared=False, macs_budget=5e6)
    fast = run_sweep(spec).rows

    def initialised(model_spec):
        with torch.device("meta"):
            return build(model_spec)

    monkeypatch.setattr("graphcost.explore.sweep.build_for_shapes", initialised)
    slow = run_sweep(spec).rows
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in fast] == \
        [{k: v for k, v in r.items() if k not in drop} for r in slow]


def test_nested_and_overlapping_blocks_restore_the_originals_once_the_last_closes():
    import threading

    before = _patchable()
    first, second = no_init(), no_init()
    first.__enter__()
    second.__enter__()  # as another thread's block would overlap
    first.__exit__(None, None, None)  # closed out of order: the other block still skips
    assert nn.init.uniform_ is not before[0]["uniform_"]
    second.__exit__(None, None, None)
    assert _patchable() == before
    threads = [threading.Thread(target=lambda: [build_for_shapes(SPECS[0]) for _ in range(3)]) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _patchable() == before


def _state(module: nn.Module):
    """Every module's attributes in order: plain values as they are, tensors by layout, submodules by type, and
    the order of its parameters, buffers and children."""
    def value(v):
        if isinstance(v, torch.Tensor):
            return ("tensor", type(v).__name__, tuple(v.shape), v.dtype, v.device.type, v.requires_grad)
        if isinstance(v, nn.Module):
            return ("module", type(v).__name__)
        if isinstance(v, dict):
            return ("dict", [(k, value(x)) for k, x in v.items()])
        if isinstance(v, set):
            return ("set", sorted(map(repr, v)))
        if callable(v) and not isinstance(v, type):
            return ("callable", getattr(v, "__qualname__", repr(type(v))))
        return v
    return [(name, type(m).__name__, [(k, value(v)) for k, v in vars(m).items()]) for name, m in module.named_modules()]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.name}-{s.shared}")
def test_direct_attributes_build_the_same_modules_attribute_for_attribute(spec):
    """``direct_attributes`` (inside every ``build_for_shapes``) stores what torch's ``__setattr__`` would, in
    the same order: every module's attributes, parameters, buffers and children equal a build without it."""
    with torch.device("meta"), no_init():
        plain = build(spec).module
    assert nn.Module.__setattr__.__module__ == "torch.nn.modules.module"  # restored after every block
    fast = build_for_shapes(spec).module
    assert _state(fast) == _state(plain)


def test_direct_attributes_leave_parameters_children_and_buffers_to_torch():
    with direct_attributes():
        conv = nn.Conv2d(3, 8, 3, device="meta")
        conv.bias = None  # a parameter's name: registered as an absent parameter
        conv.stride = (2, 2)  # a plain attribute
        conv.extra = nn.ReLU()  # a module: a child
        conv.register_buffer("scale", torch.ones(1))
        conv.scale = None  # a buffer's name: still a buffer
        with pytest.raises(TypeError, match="cannot assign"):
            conv.weight = 3  # torch's own refusal
        with pytest.raises(TypeError, match="cannot assign"):
            conv.extra = (1, 2)
    assert "bias" in conv._parameters and conv.bias is None and "bias" not in vars(conv)
    assert conv.stride == (2, 2) and "extra" in conv._modules and "scale" in conv._buffers and conv.scale is None
    assert nn.Module.__setattr__.__module__ == "torch.nn.modules.module"


def test_direct_attributes_store_parameters_and_children_as_torch_would_and_leave_the_rest_to_it():
    """Inside the block a parameter or module under a fresh name is stored directly; a name that moves from one kind
    to another, a class attribute in the way, a registration hook to call and ``__init__`` with arguments all take
    torch's own path, so each ends as it would without the block (hooks called, errors raised, entries moved)."""
    seen = []

    class Holder(nn.Module):
        @property
        def taken(self):
            return 1

    def run(fresh_module):
        m = fresh_module()
        m.p = nn.Parameter(torch.zeros(2, device="meta"))  # fresh: stored directly
        m.register_buffer("b", torch.zeros(1, device="meta"))
        m.b = nn.Parameter(torch.zeros(1, device="meta"))  # a buffer's name: moved to the parameters by torch
        m.plain = 3
        m.plain = nn.Parameter(torch.zeros(1, device="meta"))  # an attribute's name: moved too
        m.child = nn.ReLU()  # fresh: stored directly
        with pytest.raises(KeyError, match="already exists"):
            m.taken = nn.Parameter(torch.zeros(1, device="meta"))  # a class attribute (a property) in the way
        handle = nn.modules.module.register_module_module_registration_hook(lambda *a: seen.append(a[1]))
        try:
            m.hooked = nn.Identity()  # a registration hook to call: torch's path calls it
        finally:
            handle.remove()
        return (list(m._parameters), list(m._buffers), list(m._modules), [k for k in vars(m) if not k.startswith("_")])

    plain = run(Holder)
    with direct_attributes():
        fast = run(Holder)
        assert nn.Module.__init__.__module__ == nn.Module.__setattr__.__module__ == "graphcost.resolve"
    assert fast == plain == (["p", "b", "plain"], [], ["child", "hooked"], ["training"])
    assert seen == ["hooked", "hooked"]
    assert nn.Module.__init__.__module__ == nn.Module.__setattr__.__module__ == "torch.nn.modules.module"


def test_direct_init_leaves_a_class_that_defines_its_attributes_to_torch():
    class Frozen(nn.Module):
        training = False  # a class attribute of a name Module.__init__ sets: torch's __init__ runs

    with direct_attributes():
        frozen, fast = Frozen(), nn.Sequential(nn.ReLU())
    plain = nn.Sequential(nn.ReLU())
    assert list(vars(frozen)) == list(vars(nn.Module())) and frozen.training is True
    assert _state(fast) == _state(plain)
