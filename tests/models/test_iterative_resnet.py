"""iterative-resnet (Leroux et al. 2022, IterativeNet152): build, trace, shapes, sharing, ACT, costs."""
import pytest
import torch

from graphcost.models import DATASETS, get_model
from graphcost.errors import UserError
from oracles import flop_counter_macs, hook_macs, module_calls, param_count

RESNET152 = (3, 8, 36, 3)


def _meta(**kwargs):
    with torch.device("meta"):  # parameter counts and MACs need no initialised weights
        return get_model("iterative-resnet", **kwargs)


def _expected_params(iterations=RESNET152, expansion=4, width=64, depthwise=False, shared=True,
                     stem="imagenet", classes=1000, act_hidden=64, return_halting=False):
    """Parameter count derived by hand from the architecture described in the builder."""
    if isinstance(iterations, int):
        iterations = (iterations,) * 4
    k = 7 if stem == "imagenet" else 3
    total = 3 * width * k * k + 2 * width  # stem conv + BN
    in_ch = width
    for s, iters in enumerate(iterations):
        n = width * 2 ** s
        c = expansion * n
        if in_ch != c or s > 0:
            total += in_ch * c + 2 * c  # 1x1 transition conv + BN
        conv = c * n + n * c + (9 * n + n * n if depthwise else 9 * n * n)
        act = 2 * c * act_hidden + act_hidden + act_hidden + 1
        copies = 1 if shared else iters
        scored = iters if return_halting else iters - 1  # no halting unit after the last iteration
        total += copies * conv + min(copies, scored) * act
        bn = 2 * (n + n + c + (n if depthwise else 0))
        total += iters * bn
        in_ch = c
    return total + in_ch * classes + classes


def test_default_traces_and_outputs_logits():
    model = get_model("iterative-resnet").eval()  # camvid preset: 11 classes
    gm = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        eager, traced = model(x), gm(x)
    assert isinstance(eager, torch.Tensor)
    assert eager.shape == (1, DATASETS["camvid"].classes)
    assert torch.allclose(eager, traced, atol=1e-5)


@pytest.mark.parametrize("dataset", ["camvid", "cityscapes", "pascal"])
def test_classes_default_to_dataset(dataset):
    model = get_model("iterative-resnet", dataset=dataset, iterations=1)
    assert model.fc.out_features == DATASETS[dataset].classes
    assert get_model("iterative-resnet", dataset=dataset, iterations=1, classes=7).fc.out_features == 7


def test_shared_block_is_one_module_called_per_iteration_with_own_bns():
    iterations = (2, 3, 4, 2)
    gm = torch.fx.symbolic_trace(get_model("iterative-resnet", iterations=iterations))
    calls = module_calls(gm)
    for s, k in enumerate(iterations):
        for conv in ("conv1", "conv2", "conv3"):
            assert calls[f"stages.{s}.blocks.0.{conv}"] == k
        assert calls.get(f"stages.{s}.acts.0.fc1", 0) == k - 1  # no halting after the last
        assert calls.get(f"stages.{s}.acts.0.fc2", 0) == k - 1
        assert f"stages.{s}.blocks.1.conv1" not in calls
        for i in range(k):  # per-iteration batch norm: a different module every iteration
            for bn in ("bn1", "bn2", "bn3"):
                assert calls[f"stages.{s}.norms.{i}.{bn}"] == 1
    model = get_model("iterative-resnet", iterations=iterations)
    assert len(model.stages[2].blocks) == 1 and len(model.stages[2].norms) == 4


def test_independent_variant_unrolls_every_iteration():
    iterations = (2, 3, 4, 2)
    gm = torch.fx.symbolic_trace(get_model("iterative-resnet", iterations=iterations, shared=False))
    calls = module_calls(gm)
    for s, k in enumerate(iterations):
        for i in range(k):
            assert calls[f"stages.{s}.blocks.{i}.conv2"] == 1
        for i in range(k - 1):
            assert calls[f"stages.{s}.acts.{i}.fc1"] == 1
    model = get_model("iterative-resnet", iterations=iterations, shared=False)
    weighted = {name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))}
    assert weighted and all(calls[name] == 1 for name in weighted)


@pytest.mark.parametrize("kwargs", [
    {},
    {"shared": False},
    {"expansion": 1, "stem": "cifar", "classes": 10},
    {"expansion": 2, "depthwise": True},
    {"expansion": 3, "width": 16, "iterations": (1, 2, 5), "shared": False, "depthwise": True, "act_hidden": 8},
    {"iterations": (1, 2, 5), "return_halting": True},
    {"iterations": (1, 2, 5), "return_halting": True, "shared": False},
    {"iterations": 1},
])
def test_params_exact(kwargs):
    model = _meta(**{"classes": 1000, **kwargs})
    ref = {"classes": 1000, **kwargs}
    assert param_count(model) == _expected_params(**ref)


def test_params_exact_literal():
    # The README's numbers, each = the hand derivation _expected_params (not the tool's output).
    assert param_count(_meta(stem="cifar", classes=10, expansion=1)) == \
        _expected_params(stem="cifar", classes=10, expansion=1) == 4_205_774
    assert param_count(_meta(stem="cifar", classes=10, expansion=4)) == \
        _expected_params(stem="cifar", classes=10, expansion=4) == 9_353_294


def test_cifar_numbers_match_paper():
    # Paper (CIFAR-10): 4M params with expansion 1, 9M with expansion 4; the all-iteration cost
    # is "slightly higher" than the 3.7 GMAC of the CIFAR ResNet-152 it is modelled on.
    e1 = _meta(stem="cifar", classes=10, expansion=1)
    e4 = _meta(stem="cifar", classes=10, expansion=4)
    assert abs(param_count(e1) / 4e6 - 1) < 0.10
    assert abs(param_count(e4) / 9e6 - 1) < 0.10
    assert abs(hook_macs(e4, (1, 3, 32, 32)) / 3.7e9 - 1) < 0.10


def test_imagenet_numbers_match_paper():
    # Paper (ImageNet 224): same convolutions as ResNet-152 (11.5 GMAC) at full iterations;
    # 9M params (expansion 4) and 6M (expansion 2) = our counts without the 1000-way classifier.
    e4 = _meta(classes=1000)
    e2 = _meta(classes=1000, expansion=2)
    fc = lambda m: param_count(m.fc)  # noqa: E731
    assert abs((param_count(e4) - fc(e4)) / 9e6 - 1) < 0.10
    assert abs((param_count(e2) - fc(e2)) / 6e6 - 1) < 0.10
    macs = hook_macs(e4, (1, 3, 224, 224))
    assert abs(macs / 11.5e9 - 1) < 0.10
    shared_params = param_count(e4)
    with torch.device("meta"):  # 67M parameters: skip the initialisation
        independent = _meta(classes=1000, shared=False)
    assert hook_macs(independent, (1, 3, 224, 224)) == macs  # sharing changes weights, not MACs
    assert param_count(independent) > 5 * shared_params


def test_mac_helper_agrees_with_flop_counter():
    model = get_model("iterative-resnet", iterations=(1, 2, 1, 1), depthwise=True, expansion=2)
    assert hook_macs(model, (1, 3, 64, 64)) == flop_counter_macs(get_model(
        "iterative-resnet", iterations=(1, 2, 1, 1), depthwise=True, expansion=2), (1, 3, 64, 64))


def test_depthwise_is_cheaper():
    base = _meta(stem="cifar", classes=10)
    dw = _meta(stem="cifar", classes=10, depthwise=True)
    assert param_count(dw) < param_count(base)
    assert hook_macs(dw, (1, 3, 32, 32)) < hook_macs(base, (1, 3, 32, 32))


def _set_halting_bias(model, value):
    for stage in model.stages:
        for act in stage.acts:
            torch.nn.init.constant_(act.fc2.bias, value)
            torch.nn.init.zeros_(act.fc2.weight)


def test_return_halting_outputs_and_ponder_cost():
    iterations = (2, 3, 4, 1)
    model = get_model("iterative-resnet", iterations=iterations, return_halting=True).eval()
    gm = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    _set_halting_bias(model, -30.0)  # h ~ 0: never halts, R = 1 at the last iteration
    with torch.no_grad():
        out = gm(x)
    assert set(out) == {"logits", "halting", "ponder_cost"}
    assert out["logits"].shape == (2, 11)
    assert out["halting"].shape == (2, sum(iterations))
    assert out["ponder_cost"].shape == (2, 1)
    assert torch.allclose(out["ponder_cost"], torch.full((2, 1), float(sum(iterations) + len(iterations))))
    _set_halting_bias(model, 30.0)  # h ~ 1: every stage halts after its first iteration
    with torch.no_grad():
        out = gm(x)
    assert torch.allclose(out["halting"], torch.ones(2, sum(iterations)))
    assert torch.allclose(out["ponder_cost"], torch.full((2, 1), 2.0 * len(iterations)))


def test_halting_changes_the_output_like_stopping_early():
    # With h ~ 1 the ACT-weighted output is the state after ONE iteration: the logits equal
    # those of a 1-iteration network holding the same weights.
    model = get_model("iterative-resnet", iterations=(2, 3, 4, 2)).eval()
    _set_halting_bias(model, 30.0)
    short = get_model("iterative-resnet", iterations=1).eval()
    short.load_state_dict({k: v for k, v in model.state_dict().items() if k in short.state_dict()})
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), short(x), atol=1e-5)
        _set_halting_bias(model, -30.0)
        assert not torch.allclose(model(x), short(x), atol=1e-3)


def test_halting_scores_are_in_the_logits_graph():
    model = get_model("iterative-resnet", iterations=(2, 2, 2, 2))
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    for stage in model.stages:
        assert stage.acts[0].fc1.weight.grad is not None
        assert stage.acts[0].fc1.weight.grad.abs().sum() > 0


def test_iterations_as_int_and_custom_stage_count():
    assert [s.iterations for s in get_model("iterative-resnet", iterations=2).stages] == [2, 2, 2, 2]
    model = get_model("iterative-resnet", iterations=[1, 2], expansion=2, width=8).eval()
    assert model.fc.in_features == 2 * 8 * 2
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 11)


@pytest.mark.parametrize("kwargs", [
    {"iterations": 0}, {"iterations": (3, 0)}, {"iterations": ()}, {"iterations": "3"},
    {"expansion": 0}, {"width": -1}, {"stem": "tiny"}, {"classes": 0}, {"shared": "yes"},
    {"depthwise": 1},
])
def test_invalid_knobs(kwargs):
    with pytest.raises(UserError):
        get_model("iterative-resnet", **kwargs)
