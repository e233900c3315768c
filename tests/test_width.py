"""The width search's fit, predict, verify (issue 22): the same widths as the search without estimates, in
fewer real analyses, whatever the estimates say."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import graphcost
from graphcost.explore import InvalidWidth, SweepSpec, parse_grid, run_sweep, widest_width
from graphcost.explore import sweep as sweep_module
from graphcost.explore.width import ChannelScaling, last_output_macs

BOOKKEEPING = ("analyses", "seconds")


@settings(max_examples=40, deadline=None)
@given(a=st.floats(1, 1e6), b=st.floats(0, 1e7), budget=st.floats(1e3, 1e10), start=st.integers(1, 300),
       minimum=st.integers(1, 12), error=st.sampled_from(["exact", "low", "high", "none", "wild"]))
def test_estimates_steer_but_never_change_the_answer(a, b, budget, start, minimum, error):
    def macs(f):  # monotone, with the rounding jitter of f // 2 widths
        if f < minimum:
            raise InvalidWidth(f"f must be >= {minimum}")
        return int(a * f * (f // 2 + 1) + b * f)

    def estimate(f):
        value = macs(f)
        return {"exact": value, "low": int(value * 0.9), "high": int(value * 1.1) + 1, "none": None,
                "wild": (f * 7919) % 1000003}[error]

    real = []

    def probe(f):
        real.append(f)
        return macs(f)

    result = widest_width(probe, budget, 1, 2048, start=start, estimate=estimate)
    plain = widest_width(macs, budget, 1, 2048, start=start)
    assert result.width == plain.width
    if result.width is not None and result.width < 2048:
        assert result.probes[result.width] <= budget < result.probes[result.width + 1]  # proved by real probes
        assert set(result.probes) <= set(real)  # (a width the model refused is no probe)
    if error == "exact" and plain.width is not None and start >= minimum:
        assert len(real) <= 3  # the start, the width, the next width


def _rows(spec, estimates: bool, monkeypatch):
    if not estimates:
        monkeypatch.setattr(sweep_module._Probe, "estimate", lambda self, width: None)
    rows = run_sweep(spec).rows
    monkeypatch.undo()
    return rows


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("budget", [5e6, 4e7])
def test_itnet_widths_equal_the_plain_search_in_fewer_analyses(shared, budget, monkeypatch):
    spec = SweepSpec(model="itnet", grid=parse_grid(["N=1,4", "L=1,3", "K=2"]), input_shape=(1, 3, 64, 96),
                     macs_budget=budget, shared=shared)
    fitted, plain = _rows(spec, True, monkeypatch), _rows(spec, False, monkeypatch)
    assert [{k: v for k, v in r.items() if k not in BOOKKEEPING} for r in fitted] == \
        [{k: v for k, v in r.items() if k not in BOOKKEEPING} for r in plain]
    assert all(r["status"] == "ok" and r["macs"] <= budget < r["macs_next_width"] for r in fitted)
    counts = [r["analyses"] for r in fitted], [r["analyses"] for r in plain]
    assert all(n == 3 for n in counts[0]), counts  # ItNet's MACs are all conv calls: every estimate exact
    assert sum(counts[0]) < sum(counts[1]), counts


def test_no_estimate_where_macs_are_not_conv_or_linear_calls():
    class Mixer(torch.nn.Module):
        def __init__(self, f):
            super().__init__()
            self.proj = torch.nn.Linear(8, f)

        def forward(self, x):
            y = self.proj(x)
            return y @ y.transpose(-1, -2)  # MACs of a matmul: no layer to read channels from

    t = graphcost.trace(Mixer(4), (1, 5, 8))
    assert ChannelScaling(t)(Mixer(6)) is None

    def net(f):
        return torch.nn.Sequential(torch.nn.Linear(8, f), torch.nn.Linear(f, 3))

    assert ChannelScaling(graphcost.trace(net(4), (1, 5, 8)))(net(6)) == \
        last_output_macs(graphcost.trace(net(6), (1, 5, 8)))
