"""Adaptive inference: iterations / exits per input and their costs (graphcost analyze --adaptive)."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from graphcost.crossbar.adaptive import (NEVER_HALT, adaptive_result, cost_model, halting_stages,
                                         halting_thresholds, iterations_used, observe, observe_at_maximum, parse_exit,
                                         ponder_cost, sample_costs)
from graphcost.errors import UserError
from graphcost.models import get_model
from graphcost.tracing import trace
from tests.clirun import run


# --------------------------------------------------------------------------- a hand-made halting net
class HandHalt(nn.Module):
    """h = sigmoid(GAP(s) + bias): the halting score of a constant image of value v is sigmoid(v + bias)."""

    def __init__(self, bias: float):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1, 1)
        nn.init.ones_(self.fc.weight)
        nn.init.constant_(self.fc.bias, bias)

    def forward(self, s):
        return torch.sigmoid(self.fc(torch.flatten(self.pool(s), 1)))


class HandStage(nn.Module):
    """s_i = s_{i-1} + conv(s_{i-1}) with a zero conv (s stays the input); halting-stage protocol."""

    def __init__(self, iterations: int, kernel: int, bias: float):
        super().__init__()
        self.iterations = iterations
        self.halting_threshold = 0.99
        self.conv = nn.Conv2d(1, 1, kernel, padding=kernel // 2, bias=False)
        nn.init.zeros_(self.conv.weight)
        self.act = HandHalt(bias)

    def halting_units(self):
        return [self.act]

    def iteration_entry(self, i):
        return self.conv

    def forward(self, x):
        s = x
        for i in range(self.iterations):
            s = s + self.conv(s)
            if i < self.iterations - 1:
                s = s * self.act(s)[:, :, None, None] / self.act.fc.weight.detach().sum()  # uses h, keeps it alive
        return s


class HandNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stage1 = HandStage(3, 1, 0.0)
        self.stage2 = HandStage(2, 3, 5.0)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(1, 2)

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.stage2(self.stage1(x))), 1))


def _logit(p):
    return math.log(p / (1 - p))


def test_hand_made_halting_net_iterations_and_macs_by_hand():
    """4x4 grey images of constant v; stage 1 (3 iterations of a 1x1 conv: 16 MACs, halting fc 1 MAC),
    stage 2 (2 iterations of a 3x3 conv: 144 MACs, halting fc 1 MAC), head 2 MACs.
    h1 = sigmoid(v) and (s unchanged by the zero conv, scaled by h) checked below."""
    net = HandNet().eval()
    # v such that h1 = 0.995 (halts after 1), 0.5 (0.5 + 0.5 >= 0.99: after 2), 0.2 (0.4 < 0.99: all 3)
    values = [_logit(0.995), 0.0, _logit(0.2)]
    images = torch.tensor(values).view(3, 1, 1, 1).expand(3, 1, 4, 4).contiguous()
    with torch.no_grad():
        # the stage-2 input is the stage-1 state scaled by h1 at each of the 2 scored iterations
        s2 = [v * (1 / (1 + math.exp(-v))) ** 2 for v in values]
    h2 = [1 / (1 + math.exp(-(v + 5.0))) for v in s2]
    expected_n2 = [1 if h >= 0.99 else 2 for h in h2]
    observed = observe(net, images, torch.zeros(3, dtype=torch.long), 2)
    assert observed.iterations[:, 0].tolist() == [1, 2, 3]
    assert observed.iterations[:, 1].tolist() == expected_n2
    captured = trace(net, (1, 1, 4, 4))
    costs = cost_model(captured, net)
    stage1 = {1: 16 + 1, 2: 2 * 17, 3: 2 * 17 + 16}
    stage2 = {1: 144 + 1, 2: 145 + 144}
    assert costs.fixed_macs == stage1[3] + stage2[2] + 2 == 341
    by_hand = [stage1[n1] + stage2[n2] + 2 for n1, n2 in zip([1, 2, 3], expected_n2)]
    result = adaptive_result(observed, costs, halting_stages(net), None, "hand",
                             observe_at_maximum(net, images, torch.zeros(3, dtype=torch.long), 2))
    assert result.costs.macs.tolist() == by_hand
    assert result.to_dict()["macs"]["mean"] == pytest.approx(sum(by_hand) / 3)
    assert result.to_dict()["macs"]["max"] == max(by_hand)
    assert result.iterations["stage1"] == {"1": 1, "2": 1, "3": 1}
    assert result.saving == pytest.approx(1 - sum(by_hand) / 3 / 341)


def test_iterations_and_ponder_match_the_models_own_act_outputs():
    """Oracle: iterative-resnet with return_halting=True returns its halting scores and ponder cost
    N + R; the hooks on the plain model's halting units give the same iterations and ponder cost."""
    torch.manual_seed(0)
    kwargs = dict(dataset="digits", iterations=(3, 4), width=8)
    plain = get_model("iterative-resnet", **kwargs)
    for stage in plain.stages:  # halting scores around 0.3-0.6, so the samples halt at different iterations
        nn.init.normal_(stage.acts[0].fc2.weight, std=5.0)
        nn.init.zeros_(stage.acts[0].fc2.bias)
    ponder_net = get_model("iterative-resnet", return_halting=True, **kwargs)
    ponder_net.load_state_dict(plain.state_dict())
    images = torch.rand(32, 1, 8, 8) * torch.rand(32, 1, 1, 1) * 4
    plain.eval(), ponder_net.eval()
    with torch.no_grad():
        own = ponder_net(images)
    observed = observe(plain, images, torch.zeros(32, dtype=torch.long), 10)
    stages = halting_stages(plain)
    start = 0
    expected_ponder = torch.zeros(32)
    for k, st in enumerate(stages):
        scores = [own["halting"][:, start + i:start + i + 1] for i in range(st.iterations)]
        start += st.iterations
        assert observed.iterations[:, k].tolist() == iterations_used(scores, st.iterations, st.threshold).tolist()
        expected_ponder += ponder_cost(scores, st.iterations, st.threshold)
    assert torch.allclose(own["ponder_cost"].view(-1), expected_ponder, atol=1e-5)
    assert len(set(observed.iterations[:, 1].tolist())) > 1  # the case is not degenerate


def _halting_at_random(bias: float = -6.0, **kwargs):
    """A small iterative-resnet whose random halting units make the samples halt in its second stage at
    different iterations (bias -6: 11 of 32 before the last one)."""
    torch.manual_seed(0)
    net = get_model("iterative-resnet", dataset="digits", iterations=(3, 4), width=8, **kwargs)
    for stage in net.stages:
        for act in stage.acts:
            nn.init.normal_(act.fc2.weight, std=5.0)
            nn.init.constant_(act.fc2.bias, bias)
    return net.eval()


def test_run_at_the_maximum_runs_every_iteration_without_halting():
    """The fixed-cost run is a forward of its own: every sample uses every iteration, its logits differ
    from the halted ones exactly for the samples that halted early somewhere (and equal them for the
    samples that ran every iteration anyway); the thresholds are restored after."""
    net = _halting_at_random()
    images = torch.rand(32, 1, 8, 8) * torch.rand(32, 1, 1, 1) * 4
    labels = torch.zeros(32, dtype=torch.long)
    stages = halting_stages(net)
    halted = observe(net, images, labels, 10)
    at_max = observe_at_maximum(net, images, labels, 10)
    assert at_max.iterations.tolist() == [[3, 4]] * 32
    assert [st.threshold for st in stages] == [0.99, 0.99]
    with torch.no_grad():
        logits = net(images)
        with halting_thresholds(stages, NEVER_HALT):
            logits_max = net(images)
    early = (halted.iterations < torch.tensor([3, 4])).any(1)
    assert 0 < int(early.sum()) < 32
    same = torch.isclose(logits, logits_max, atol=1e-6).all(1)
    assert torch.equal(same, ~early)


def test_parse_exit_rejects_bad_policies():
    assert parse_exit("confidence=1").value == 1.0
    for bad in ("confidence=0", "confidence=1.5", "confidence=-0.1", "confidence=x", "output=0", "output=-2",
                "fastest", "output=1.5"):
        with pytest.raises(UserError):
            parse_exit(bad)


def test_sample_costs_of_exits_are_lookups():
    net = nn.Conv2d(1, 1, 1)
    with pytest.raises(UserError):
        from graphcost.crossbar.adaptive_run import _check_adaptive
        _check_adaptive(net, trace(net, (1, 1, 4, 4)), [], None, "conv")


# --------------------------------------------------------------------------- command line
@pytest.mark.parametrize("args, needle", [
    (["analyze", "digits-cnn", "--data", "digits", "--adaptive"], "neither halts"),
    (["analyze", "itnet", "--adaptive", "--exit", "confidence=1.2"], "(0, 1]"),
    (["analyze", "itnet", "--adaptive", "--exit", "confidence=0"], "(0, 1]"),
    (["analyze", "itnet", "--adaptive", "--exit", "output=0"], "from 1"),
    (["analyze", "itnet", "--exit", "output=2"], "--adaptive"),
    (["analyze", "iterative-resnet", "--data", "digits", "--adaptive", "--exit", "output=1"], "halts by itself"),
])
def test_bad_input_one_line_exit_2(capsys, args, needle):
    rc, out, err = run(capsys, *args)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_shipped_iterative_resnet_on_digits_halts_and_keeps_accuracy(capsys):
    """The shipped ponder-trained checkpoint, loaded with the parameters it was trained with: mean MACs
    strictly below the fixed maximum; the halted top-1 loses at most 2 points against the same model run
    at every iteration without halting (a forward of its own; measured: halted 0.9833, every iteration
    0.9556, so halting gains 2.8 points here and the two differ)."""
    rc, out, err = run(capsys, "analyze", "iterative-resnet", "--data", "digits", "--adaptive", "--format", "json")
    assert rc == 0, err
    result = json.loads(out)["adaptive"]
    assert result["samples"] == 360
    assert result["macs"]["mean"] < result["fixed_macs"]
    assert result["macs"]["max"] <= result["fixed_macs"]
    assert 0 < result["saving"] < 1
    assert result["top1"] >= result["fixed_top1"] - 0.02
    assert result["top1"] != result["fixed_top1"]  # the fixed-cost run is not the halted run again
    assert result["fixed_run"].startswith("every iteration")
    assert result["top1"] > 0.8  # trained, not a random network
    assert sum(result["iterations"]["stages.0"].values()) == 360


def test_table_line_and_crossbar_energy_follow_iterations(capsys):
    """Arrays programmed once: fewer iterations in any stage (none more) -> strictly less energy and time;
    the inputs that run every iteration pay what graphcost map says one frame costs."""
    import io

    import pandas as pd

    from graphcost.crossbar import energy as energy_mod
    from graphcost.crossbar.mapping import map_trace
    from graphcost.crossbar.perf import performance
    from graphcost.crossbar.specs import ArraySpec, ChipSpec
    from graphcost.crossbar.tech import DEFAULT_TECH, TECH_PRESETS

    rc, out, err = run(capsys, "analyze", "iterative-resnet", "--data", "digits", "--adaptive", "--samples", "40",
                       "--crossbar", "128x128")
    assert rc == 0, err
    assert "% of the fixed cost" in out and "energy (J)" in out
    rc, out, err = run(capsys, "analyze", "iterative-resnet", "--data", "digits", "--adaptive", "--samples", "40",
                       "--crossbar", "128x128", "--format", "csv")
    frame = pd.read_csv(io.StringIO(out))
    iters = frame.filter(like="iterations:").to_numpy()
    energy, seconds = frame["energy_j"].to_numpy(), frame["latency_s"].to_numpy()
    pairs = 0
    for a in range(len(frame)):
        for b in range(len(frame)):
            if np.all(iters[a] <= iters[b]) and np.any(iters[a] < iters[b]):
                assert energy[a] < energy[b] and seconds[a] < seconds[b]
                pairs += 1
    assert pairs > 0
    net = get_model("iterative-resnet", dataset="digits")
    perf = performance(map_trace(trace(net, (1, 1, 8, 8)), ArraySpec(128, 128)), ChipSpec())
    full = energy_mod.energy(perf, TECH_PRESETS[DEFAULT_TECH]).per_frame_j
    at_max = iters.sum(1) == 12
    assert at_max.any()
    assert np.allclose(energy[at_max], full, rtol=1e-9) and np.allclose(seconds[at_max], perf.latency_s)


def test_itnet_confidence_thresholds_monotone():
    """ItNet's shipped checkpoint on small synthetic images, ONE eager pass: over 3 confidence thresholds a
    higher threshold exits later, costs more MACs and (on these thresholds) gives a higher mIoU."""
    from graphcost.crossbar.adaptive import exits_for
    from graphcost.crossbar.adaptive_run import AdaptiveRequest, run_adaptive
    from graphcost.resolve import ModelSpec

    run = run_adaptive(AdaptiveRequest(ModelSpec("itnet", input_shape=(1, 3, 48, 64)), data="synthetic", samples=8,
                                       policy=parse_exit("confidence=0.87"), batch_size=8))
    assert not run.notes  # the shipped checkpoint was loaded
    means, mious = [], []
    # ItNet's mIoU peaks at its 4th-5th output (crossbar/weights/itnet_camvid_synthetic.json): thresholds
    # that keep the exits before the peak; from 0.88 on, later (worse) outputs answer and mIoU falls.
    for threshold in (0.8, 0.85, 0.87):
        exits = exits_for(run.observed, parse_exit(f"confidence={threshold}"))
        means.append(float(sample_costs(run.costs, exits=exits).macs.mean()))
        mious.append(run.observed.score(exits))
    assert means == sorted(means) and means[0] < means[-1]
    assert mious == sorted(mious)
    assert run.result.to_dict()["miou"] == mious[-1]
    assert means[-1] == run.result.to_dict()["macs"]["mean"] < run.result.fixed_macs


# --------------------------------------------------------------------------- shared vs independent on a chip
def test_shared_and_independent_take_the_same_exits_and_pay_their_own_chip():
    """The shipped shared ItNet and its independent counterpart (the same weights copied into all 16
    blocks): identical outputs, so identical exits, MACs and latency per input. With flat wires (no
    H-tree) an MVM costs the same in both, so a frame's energy differs only by leakage, which each input
    pays in proportion to its latency: E_ind(s) - E_sh(s) = t(s) x (P_ind F_ind / T_ind - P_sh F_sh / T_sh),
    P the leakage power of the arrays each variant occupies, F its frame time, T its full latency."""
    from dataclasses import replace

    from graphcost.crossbar.adaptive_run import AdaptiveRequest, run_variants
    from graphcost.crossbar.specs import ArraySpec
    from graphcost.crossbar.tech import DEFAULT_TECH, TECH_PRESETS
    from graphcost.resolve import ModelSpec

    flat = replace(TECH_PRESETS[DEFAULT_TECH], wire_energy_j_per_bit_mm=0.0)
    array = ArraySpec(128, 128)
    runs = run_variants(AdaptiveRequest(ModelSpec("itnet", input_shape=(1, 3, 48, 64)), data="synthetic", samples=8,
                                        batch_size=8, policy=parse_exit("confidence=0.87"), array=array, tech=flat))
    shared, independent = runs["shared"], runs["independent"]
    assert any("copied into every iteration's block" in n for n in independent.notes)
    with torch.no_grad():
        for a, b in zip(shared.model(shared.images[:2]), independent.model(shared.images[:2])):
            assert torch.equal(a, b)
    exits = shared.result.used
    assert np.array_equal(exits, independent.result.used) and len(set(exits.tolist())) > 1
    assert np.array_equal(shared.result.costs.macs, independent.result.costs.macs)
    seconds = shared.result.costs.latency_s
    assert np.allclose(seconds, independent.result.costs.latency_s, rtol=1e-12)
    assert independent.chip["arrays"] > 10 * shared.chip["arrays"]
    assert independent.chip["area_mm2"] > 10 * shared.chip["area_mm2"]
    per_array_w = flat.leakage_w_per_array + flat.adcs_per_array(array) * flat.leakage_w_per_adc
    slope = {v: r.chip["arrays"] * per_array_w * r.chip["frame_time_s"] / r.chip["frame_latency_s"]
             for v, r in runs.items()}
    difference = independent.result.costs.energy_j - shared.result.costs.energy_j
    np.testing.assert_allclose(difference, (slope["independent"] - slope["shared"]) * seconds, rtol=1e-9)
    for run in runs.values():  # a frame's energy is its exit's: equal exits cost the same, later ones more
        energy = run.result.costs.energy_j
        order = np.argsort(exits, kind="stable")
        assert np.all(np.diff(energy[order]) >= 0)
        assert all(np.ptp(energy[exits == e]) == 0 for e in set(exits.tolist()))


def test_report_adaptive_crossbar_draws_shared_vs_independent(capsys, tmp_path):
    """iterative-resnet on digits with a crossbar: the energy figure and its CSV, the same iterations per
    input in both variants, the independent one on more arrays and, with the H-tree's longer wires and
    more leakage, at a higher energy for every input."""
    import pandas as pd

    rc, out, err = run(capsys, "report", "adaptive", "iterative-resnet", "--data", "digits", "--samples", "40",
                       "--crossbar", "128x128", "--out", str(tmp_path), "--format", "json")
    assert rc == 0, err
    variants = json.loads(out)["variants"]
    assert variants["same_exits"] is True
    assert variants["independent"]["chip"]["arrays"] > variants["shared"]["chip"]["arrays"]
    for name in ("png", "svg", "csv"):
        assert (tmp_path / f"adaptive-iterative-resnet-energy.{name}").stat().st_size > 0
    frame = pd.read_csv(tmp_path / "adaptive-iterative-resnet-energy.csv")
    shared, independent = (frame[frame.variant == v].reset_index(drop=True) for v in ("shared", "independent"))
    iterations = [c for c in frame.columns if c.startswith("iterations:")]
    assert len(shared) == len(independent) == 40 and iterations
    assert shared[iterations].equals(independent[iterations])
    assert (independent.energy_j > shared.energy_j).all()


def test_run_variants_refuses_what_it_cannot_compare():
    from graphcost.crossbar.adaptive_run import AdaptiveRequest, run_variants
    from graphcost.crossbar.specs import ArraySpec
    from graphcost.resolve import ModelSpec

    with pytest.raises(UserError, match="no shared and independent variants"):
        run_variants(AdaptiveRequest(ModelSpec("digits-cnn"), data="digits", array=ArraySpec(128, 128)))
    with pytest.raises(UserError, match="needs a crossbar size"):
        run_variants(AdaptiveRequest(ModelSpec("itnet"), data="synthetic"))
