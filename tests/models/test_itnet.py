"""ItNet (Pfeil): structure, weight sharing, exact parameter count and the paper's numbers."""
import pytest
import torch
import torch.fx as fx
from torch import nn

from graphcost.models import get_model
from graphcost.models.itnet import ItNet, itnet
from oracles import macs_and_output, param_count

MB = 10**6  # the paper's "MB": decimal megabytes fit its numbers better than MiB


def measure(model: ItNet, height: int, width: int) -> dict:
    """Params, MACs (total and last output), graph size and state, without real activations.

    Graph size: for every unique nn.Conv2d (a module called N times counts once), 4 bytes x
    (its parameters + its input feature map + its output feature map).
    """
    model.eval()
    seen = {}

    def hook(mod, inp, out):
        if id(mod) not in seen:
            seen[id(mod)] = param_count(mod) + inp[0].numel() + out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        macs, outs = macs_and_output(model, (1, 3, height, width))
    finally:
        for h in handles:
            h.remove()
    cls = model.classifiers[-1].conv  # the other N-1 classifiers do not feed the last output
    cls_macs = cls.in_channels * cls.out_channels * (height // 8) * (width // 8)
    return dict(
        params=param_count(model),
        macs=macs,
        macs_last=macs - (model.N - 1) * cls_macs,
        graph_bytes=4 * sum(seen.values()),
        state_bytes=model.state_bytes(height, width),
        out_shapes=[tuple(o.shape) for o in outs],
    )


def conv_latency(gm: fx.GraphModule) -> list:
    """Conv layers on the longest path from the input to each output."""
    mods = dict(gm.named_modules())
    depth = {}
    for node in gm.graph.nodes:
        d = max((depth[a] for a in node.all_input_nodes), default=0)
        if node.op == "call_module" and isinstance(mods[node.target], nn.Conv2d):
            d += 1
        depth[node] = d
        if node.op == "output":
            return [depth[o] for o in node.args[0]]
    raise AssertionError("no output node")


def expected_params(f, N, L, K, C, shared):
    """Hand count (see the builder's docstring for the architecture)."""
    r = f // 2
    data = 27 * r + 2 * (r + 3) + 9 * (r + 3) * f + 2 * (f + r + 3)
    data += L * (9 * (f + r + 3) * r + 2 * r + 9 * r * r + 2 * r)
    brb = 12 * r * r + 67 * r  # expand (w+b), depthwise (w+b), project (w+b)
    mix = 9 * L * r * r + r
    if shared:
        block = L * K * brb + (L * mix if N > 1 else 0)
    else:
        block = N * L * K * brb + (N - 1) * L * mix
    bn_between = (N - 1) * L * 2 * r
    cls = N * (L * r * C + C)
    return data + block + bn_between + cls


@pytest.fixture(scope="module")
def paper_configs():
    return {
        "camvid_shared": measure(itnet(dataset="camvid", shared=True), 360, 480),
        "camvid_independent": measure(itnet(dataset="camvid", shared=False), 360, 480),
        "cityscapes": measure(itnet(dataset="cityscapes"), 512, 1024),
    }


def within(value, paper, tol=0.15):
    return abs(value / paper - 1) <= tol


@pytest.mark.parametrize("shared", [True, False])
def test_fx_trace_and_forward_shapes(shared):
    model = itnet(dataset="camvid", shared=shared).eval()
    gm = fx.symbolic_trace(model)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        eager, traced = model(x), gm(x)
    assert isinstance(eager, list) and len(eager) == 16 and len(traced) == 16
    for a, b in zip(eager, traced):
        assert a.shape == (1, 11, 64, 96)
        torch.testing.assert_close(a, b)


def test_latency_identical_for_shared_and_independent():
    lat = {s: conv_latency(fx.symbolic_trace(itnet(dataset="camvid", shared=s))) for s in (True, False)}
    # data block 4 convs, iteration 1: 3 BRB convs, later iterations: mixing + 3, classifier 1.
    assert lat[True] == lat[False] == [8 + 4 * n for n in range(16)]


@pytest.mark.parametrize("shared", [True, False])
def test_weight_sharing_structure(shared):
    N, L, K = 16, 3, 1
    model = itnet(dataset="camvid", shared=shared)
    gm = fx.symbolic_trace(model)
    calls = [
        n.target for n in gm.graph.nodes
        if n.op == "call_module" and isinstance(gm.get_submodule(n.target), nn.Conv2d)
    ]
    data_convs, brb_convs, mix_convs = 2 + 2 * L, 3 * K * L, L
    assert len(calls) == data_convs + N * brb_convs + (N - 1) * mix_convs + N
    if shared:
        assert len(set(calls)) == data_convs + brb_convs + mix_convs + N
        assert isinstance(model.block, nn.Module) and not hasattr(model, "blocks")
        assert calls.count("block.brbs.0.0.expand") == N and calls.count("block.mix.convs.0") == N - 1
    else:
        assert len(set(calls)) == len(calls)  # every conv is its own module: N copies
        assert model.blocks[0].mix is None and all(b.mix is not None for b in model.blocks[1:])
    bns = [bn for per_iter in model.bns for bn in per_iter]
    assert len(bns) == (N - 1) * L and len({id(b) for b in bns}) == len(bns)  # never shared
    assert len({id(c) for c in model.classifiers}) == N


@pytest.mark.parametrize(
    "dataset,shared,f,N,L,K",
    [("camvid", True, 51, 16, 3, 1), ("camvid", False, 29, 16, 3, 1), ("cityscapes", True, 50, 16, 3, 1),
     ("camvid", True, 20, 4, 2, 2), ("camvid", False, 9, 3, 4, 0), ("camvid", True, 7, 1, 1, 1)],
)
def test_params_exact(dataset, shared, f, N, L, K):
    model = get_model("itnet", dataset=dataset, shared=shared, f=f, N=N, L=L, K=K)
    C = 11 if dataset == "camvid" else 19
    assert param_count(model) == expected_params(f, N, L, K, C, shared)


def test_defaults_per_dataset():
    assert itnet(dataset="camvid", shared=True).f == 51
    assert itnet(dataset="camvid", shared=False).f == 29
    city = get_model("itnet", dataset="cityscapes")
    assert (city.f, city.N, city.L, city.K, city.classes, city.shared) == (50, 16, 3, 1, 19, True)
    assert param_count(itnet(dataset="camvid")) == 178_092
    assert param_count(itnet(dataset="camvid", shared=False)) == 433_307


def test_state_helper_matches_feedback_shapes():
    model = itnet(dataset="camvid", N=2).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feedback = model.block(model.data(x), mix=False)
    assert [tuple(t.shape[1:]) for t in feedback] == model.state_shapes(64, 96)
    assert model.state_bytes(64, 96) == 4 * sum(t.numel() for t in feedback)
    # Cityscapes: 1/4, 1/8, 1/16 of 1024x512 at f_r = 25 channels.
    assert itnet(dataset="cityscapes").state_bytes(512, 1024) == 4 * 25 * (128 * 256 + 64 * 128 + 32 * 64)


def test_paper_numbers_camvid(paper_configs):
    s, i = paper_configs["camvid_shared"], paper_configs["camvid_independent"]
    assert s["out_shapes"] == [(1, 11, 360, 480)] * 16
    assert within(s["params"], 182e3) and within(i["params"], 424e3)
    assert within(s["macs_last"], 6.2e9) and within(i["macs_last"], 2.0e9)
    assert within(s["graph_bytes"] / MB, 83) and within(i["graph_bytes"] / MB, 384)
    assert s["macs"] > s["macs_last"] and within(s["macs"], 6.2e9)
    # independent weights: ~2.3x the params, ~3x fewer MACs, >4x the graph (Sec. III-C)
    assert 2.0 < i["params"] / s["params"] < 2.7
    assert 2.8 < s["macs_last"] / i["macs_last"] < 3.4
    assert i["graph_bytes"] / s["graph_bytes"] > 4


def test_paper_numbers_cityscapes(paper_configs):
    c = paper_configs["cityscapes"]
    assert c["out_shapes"] == [(1, 19, 512, 1024)] * 16
    assert within(c["macs_last"], 16.7e9)
    assert within(c["graph_bytes"] / MB, 276)
    assert within(c["state_bytes"] / MB, 4.8)


@pytest.mark.parametrize(
    "knobs", [dict(N=0), dict(f=0), dict(f=-4), dict(f=1), dict(L=0), dict(K=-1), dict(classes=0), dict(N=2.5)]
)
def test_invalid_knobs_raise(knobs):
    with pytest.raises(ValueError):
        itnet(dataset="camvid", **knobs)
