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
        # (a width the model refused is no probe); a prediction only where the estimates agreed with the probes
        assert set(result.probes) - set(result.predicted) <= set(real)
        assert all(result.probes[f] == macs(f) for f in result.probes)
    if result.predicted:
        assert error == "exact" and result.predicted == (result.width + 1,) and result.width + 1 not in real
    if error == "exact" and plain.width is not None and start >= minimum:
        assert len(real) <= 2  # the start and the width; the next width predicted, or the start itself


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
    # ItNet's MACs are all conv calls: every estimate exact, the next width an agreed prediction
    assert all(n <= 2 for n in counts[0]), counts
    assert sum(counts[0]) < sum(counts[1]), counts


@pytest.mark.parametrize("shared, budget", [(True, 3e6), (False, 2e7)])
def test_agreed_predictions_give_the_widths_of_real_probes_over_a_grid(shared, budget, monkeypatch):
    """A grid like the paper's (N = 1, 3, L = 1..4, K = 1, 2) at a small input: the same rows (widths, MACs of
    the next width included) as the search with real probes only, in at most 2 analyses per point."""
    spec = SweepSpec(model="itnet", grid=parse_grid(["N=1,3", "L=1,2,3,4", "K=1,2"]), input_shape=(1, 3, 32, 48),
                     shared=shared, macs_budget=budget)
    fitted, plain = _rows(spec, True, monkeypatch), _rows(spec, False, monkeypatch)
    assert [{k: v for k, v in r.items() if k not in BOOKKEEPING} for r in fitted] == \
        [{k: v for k, v in r.items() if k not in BOOKKEEPING} for r in plain]
    assert len({r["f"] % 2 for r in fitted}) == 2  # both roundings of f // 2 among the widths
    assert all(r["analyses"] <= 2 for r in fitted) and sum(r["analyses"] for r in plain) > 2 * len(plain)
