"""The meta run (graphcost.capture_fx.run_on_meta_inputs): a model built on the meta device, or one on the CPU
reading meta twins of its tensors (capture_dispatch.MetaTwins), is costed on plain meta tensors, no fake mode;
every analysis equals the fake run's, key by key, and a process that only analyses such models never imports
torch._dynamo."""
import subprocess
import sys
import textwrap

import pytest
import torch
import torchvision
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor

import graphcost
import graphcost.capture_fx as capture_fx
from graphcost.models import get_model
from graphcost.resolve import ModelSpec, build_for_shapes


def on_meta(factory):
    with torch.device("meta"):
        return factory().eval()


def fake_only(x):
    """Runs on fake tensors only (as code that asks a tensor for its fake mode does)."""
    if not isinstance(x, FakeTensor):
        raise RuntimeError("not a fake tensor")
    return x * 2


torch.fx.wrap("fake_only")


class NeedsFakeTensors(nn.Module):
    """Calls, as one fx-wrapped function, code the meta run cannot take: the fake run decides."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        return fake_only(self.lin(x))


CASES = {
    "itnet shared": (lambda: get_model("itnet", dataset="camvid", shared=True), (1, 3, 64, 96)),
    "itnet independent": (lambda: get_model("itnet", dataset="camvid", shared=False), (1, 3, 64, 96)),
    "enet": (lambda: get_model("enet", dataset="camvid"), (1, 3, 64, 96)),
    "espnetv2": (lambda: get_model("espnetv2", dataset="camvid"), (1, 3, 64, 96)),
    "cgnet": (lambda: get_model("cgnet", dataset="camvid"), (1, 3, 64, 96)),
    "vgg8": (lambda: get_model("vgg8"), (1, 3, 32, 32)),
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), (1, 3, 64, 64)),
    "swin_t": (lambda: torchvision.models.swin_t(weights=None), (1, 3, 64, 64)),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(weights=None), (1, 3, 64, 64)),
    "transformer encoder": (lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2),
                            (1, 16, 32)),
    "needs fake tensors": (NeedsFakeTensors, (2, 8)),
}


def analysis(model, shape, meta_run: bool, monkeypatch, memoise=True, **options):
    """``model``'s analysis as a dict, the meta run allowed or not, and whether the fake run ran."""
    ran_fake = []
    real_fake_run = capture_fx.run_on_fake_inputs
    with monkeypatch.context() as patch:
        patch.setattr(capture_fx, "run_on_fake_inputs", lambda *a, **k: ran_fake.append(1) or real_fake_run(*a, **k))
        if not meta_run:
            patch.setattr(capture_fx, "_run_on_meta", lambda *a, **k: None)
        result = graphcost.analyze(model, shape, memoise=memoise, **options).to_dict()
    return result, bool(ran_fake)


@pytest.mark.parametrize("weights", ["meta", "real"])
@pytest.mark.parametrize("name", CASES)
def test_meta_run_gives_the_fake_runs_analysis(name, weights, monkeypatch):
    factory, shape = CASES[name]
    model = on_meta(factory) if weights == "meta" else factory().eval()
    meta, fell_back = analysis(model, shape, True, monkeypatch)
    fake, ran_fake = analysis(model, shape, False, monkeypatch)
    assert ran_fake
    assert meta == fake
    assert meta["macs"] > 0
    assert fell_back == (name == "needs fake tensors")  # the one model the meta run cannot take


def test_meta_run_without_memo_equals_the_fake_run(monkeypatch):
    model = on_meta(lambda: get_model("itnet", dataset="camvid", shared=True))
    meta, fell_back = analysis(model, (1, 3, 64, 96), True, monkeypatch, memoise=False)
    fake, _ = analysis(model, (1, 3, 64, 96), False, monkeypatch, memoise=False)
    assert not fell_back and meta == fake


class TiedAndConstant(nn.Module):
    """A weight used by two layers and read directly, a buffer, a frozen parameter and a tensor constant."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)
        self.b.weight = self.a.weight
        self.register_buffer("offset", torch.ones(8))
        self.frozen = nn.Parameter(torch.ones(8), requires_grad=False)

    def forward(self, x):
        y = self.b(self.a(x)) + self.offset * self.frozen
        return y @ self.a.weight.t() + torch.tensor([1.0] * 8)


def test_a_real_models_tensors_are_read_as_meta_twins_and_left_as_they_were(monkeypatch):
    model = TiedAndConstant().eval()
    before = {name: (t, t.device, t.requires_grad) for name, t in model.state_dict(keep_vars=True).items()}
    meta, fell_back = analysis(model, (2, 8), True, monkeypatch)
    fake, _ = analysis(model, (2, 8), False, monkeypatch)
    assert not fell_back and meta == fake
    assert meta["params"] == 8 * 8 + 2 * 8 + 8  # one tied weight, two biases, the frozen vector
    after = {name: (t, t.device, t.requires_grad) for name, t in model.state_dict(keep_vars=True).items()}
    assert after.keys() == before.keys() and all(after[k][0] is before[k][0] and after[k][1:] == before[k][1:]
                                                 for k in before)


def test_twins_are_made_once_per_tensor_and_keep_what_a_run_reads():
    from graphcost.capture_dispatch import MetaTwins
    twins, model = MetaTwins(), TiedAndConstant()
    weight = twins.of(model.a.weight)
    assert weight is twins.of(model.b.weight) and weight.is_meta and isinstance(weight, nn.Parameter)
    assert twins.state(model)["b.weight"] is weight and twins.state(model.a)["weight"] is weight
    frozen = twins.of(model.frozen)
    assert not frozen.requires_grad and frozen.shape == (8,) and frozen.dtype == torch.float32
    assert twins.of(weight) is weight  # a meta tensor is its own twin
    assert twins.call(model.a, (torch.empty(2, 8, device="meta"),), {}).is_meta


class Unruled(nn.Module):
    """A leaf with parameters and no formula: the run calls it (with twins) where a shape rule answers the rest."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(8))

    def forward(self, x):
        return x * self.scale


@pytest.mark.parametrize("leaf", [True, False])
def test_twins_are_made_only_for_tensors_the_run_reads(leaf, monkeypatch):
    """A layer whose call a shape rule answers needs no twin (only its tensors' dtype, read off the tensors);
    a leaf the run calls, or a parameter a node fetches, gets its own. The same analysis as the fake run."""
    import graphcost.capture_dispatch as capture_dispatch

    made = []
    real = capture_dispatch.meta_like
    monkeypatch.setattr(capture_dispatch, "meta_like", lambda t: made.append(t) or real(t))
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), Unruled()).eval()
    options = {"leaf_modules": ["3"]} if leaf else {}
    meta, fell_back = analysis(model, (2, 8), True, monkeypatch, **options)
    assert not fell_back and [id(t) for t in made] == [id(model[3].scale)]
    fake, _ = analysis(model, (2, 8), False, monkeypatch, **options)
    assert meta == fake


def test_models_on_an_accelerator_keep_the_fake_run():
    def never_called(**kwargs):
        raise AssertionError("an interpreter was made")
    assert capture_fx._run_on_meta(never_called, torch.fx.Graph(), {}, torch.float32, torch.device("cuda"), []) is None


def test_analysing_real_cpu_models_never_imports_torch_dynamo():
    script = textwrap.dedent("""
        import sys
        import graphcost
        from graphcost.models import get_model
        a = graphcost.analyze(get_model("itnet", dataset="camvid").eval(), (1, 3, 64, 96))
        assert a.macs > 0
        print("torch._dynamo" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_layer_that_rejects_its_input_is_named_as_on_the_fake_run():
    model = on_meta(lambda: nn.Sequential(nn.Linear(8, 4), nn.Linear(5, 2)))
    with pytest.raises(graphcost.errors.UserError, match=r"layer '1' \(Linear\) cannot run on input 1x4"):
        graphcost.analyze(model, (1, 8))


def test_analysing_meta_models_never_imports_torch_dynamo():
    script = textwrap.dedent("""
        import sys
        import graphcost
        from graphcost.resolve import ModelSpec, build_for_shapes
        built = build_for_shapes(ModelSpec(name="itnet", dataset="camvid"))
        a = graphcost.analyze(built.module, (1, 3, 64, 96))
        assert a.macs > 0
        print("torch._dynamo" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_build_for_shapes_then_analyze_equals_a_real_model():
    built = build_for_shapes(ModelSpec(name="itnet", dataset="camvid"))
    real = get_model("itnet", dataset="camvid").eval()
    meta = graphcost.analyze(built.module, (1, 3, 64, 96)).to_dict()
    assert meta == graphcost.analyze(real, (1, 3, 64, 96)).to_dict()


def test_the_run_and_the_dag_read_the_modules_fx_tracing_walked():
    """fx tracing walks the model's modules once; the run (its ``submodules``) and the DAG read that walk's
    dict, which is the model's ``named_modules`` (a module held twice: its first path), in order."""
    from graphcost.capture_fx import fx_capture
    from graphcost.inputs import InputSpec

    shared_conv = nn.Conv2d(3, 3, 1)
    model = nn.Sequential(shared_conv, nn.ReLU(), nn.Sequential(shared_conv, nn.BatchNorm2d(3)))
    captured = fx_capture(model, {"input": InputSpec((1, 3, 8, 8))}, torch.float32, torch.device("cpu"))
    assert list(captured.modules.items()) == list(model.named_modules())
    assert captured.modules["0"] is shared_conv and "2.0" not in captured.modules
