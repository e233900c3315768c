import json
import os

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphcost
from graphcost import UserError
from graphcost.explore import (InvalidWidth, SweepSpec, auc, evaluate_point, parse_grid, rank_rows, run_sweep,
                               widest_width)
from graphcost.models import get_model
from graphcost.runtime.executor import make_executor
from graphcost.runtime.store import open_store
from clirun import run

TINY = dict(model="itnet", grid=parse_grid(["N=1,2", "L=1,2", "K=1"]), input_shape=(1, 3, 64, 96),
            macs_budget=2e7, shared=True)
VOLATILE = {"seconds"}


def last_output_macs(model, shape):
    t = graphcost.trace(model, shape)
    out = t.outputs[-1]
    return graphcost.passes.macs(t, nx.ancestors(t.dag, out) | {out})


def stable(rows):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


# --------------------------------------------------------------------------- parsing
def test_parse_grid():
    assert parse_grid(["N=1,2,4", "K=1..3", "s=0.5,2.0", "mode=a,b"]) == (
        ("N", (1, 2, 4)), ("K", (1, 2, 3)), ("s", (0.5, 2.0)), ("mode", ("a", "b")))


@pytest.mark.parametrize("items,needle", [
    (["N"], "KEY=V1,V2"), (["=1,2"], "KEY=V1,V2"), (["N="], "without gaps"), (["N=1,,2"], "without gaps"),
    (["N=1,2", "N=3"], "twice"), (["N=3..1"], "empty range"), (["N=1,1"], "repeats"), (["1N=2"], "KEY=V1,V2"),
])
def test_parse_grid_rejects(items, needle):
    with pytest.raises(UserError, match=needle):
        parse_grid(items)


# --------------------------------------------------------------------------- the width search
@settings(max_examples=25, deadline=None)
@given(a=st.floats(1, 1e6), b=st.floats(0, 1e7), budget=st.floats(1e3, 1e10), start=st.integers(1, 300),
       minimum=st.integers(1, 12))
def test_widest_width_matches_brute_force(a, b, budget, start, minimum):
    def macs(f):  # monotone, with the rounding jitter of f // 2 widths
        if f < minimum:
            raise InvalidWidth(f"f must be >= {minimum}")
        return int(a * f * (f // 2 + 1) + b * f)

    result = widest_width(macs, budget, 1, 2048, start=start)
    brute = max((f for f in range(minimum, 2049) if macs(f) <= budget), default=None)
    assert result.width == brute
    if brute is not None and brute < 2048:
        assert result.probes[brute] <= budget < result.probes[brute + 1]  # both ends were really analysed


def test_tiny_sweep_finds_the_widest_f_within_budget():
    result = run_sweep(SweepSpec(**TINY))
    assert [(r["N"], r["L"], r["K"]) for r in result.rows] == [(1, 1, 1), (1, 2, 1), (2, 1, 1), (2, 2, 1)]
    assert result.computed == 4 and result.cached == 0
    assert all(r["status"] == "ok" for r in result.rows)
    for r in result.rows:
        shape = (1, 3, 64, 96)
        at_f = last_output_macs(get_model("itnet", dataset="camvid", shared=True, N=r["N"], L=r["L"], K=r["K"],
                                          f=r["f"]), shape)
        above = last_output_macs(get_model("itnet", dataset="camvid", shared=True, N=r["N"], L=r["L"], K=r["K"],
                                           f=r["f"] + 1), shape)
        assert at_f == r["macs"] <= 2e7 < above == r["macs_next_width"]
        full = graphcost.analyze(get_model("itnet", dataset="camvid", shared=True, N=r["N"], L=r["L"], K=r["K"],
                                           f=r["f"]), shape)
        assert (r["params"], r["graph_size_bytes"], r["latency_layers"]) == (
            full.params, full.graph_size_bytes, full.latency_layers)
        assert r["output_macs"] == [o.macs for o in full.outputs] and r["macs_total"] == full.macs
        assert r["analyses"] <= 6  # the fitted search needs few traces per point


def test_store_resumes_an_interrupted_sweep_and_never_recomputes(tmp_path, monkeypatch):
    spec = SweepSpec(**TINY)
    calls = []

    def interrupted(task):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(dict(task.point))
        return evaluate_point(task)

    with open_store(str(tmp_path / "s.sqlite")) as store:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(spec, store=store, evaluate=interrupted)
        assert len(store) == 2  # what finished before the interruption is kept

        counted = []

        def counting(task):
            counted.append(dict(task.point))
            return evaluate_point(task)

        resumed = run_sweep(spec, store=store, evaluate=counting)
        assert resumed.cached == 2 and resumed.computed == 2 and len(counted) == 2
        assert not {tuple(p.items()) for p in counted} & {tuple(p.items()) for p in calls}

        def must_not_run(task):
            raise AssertionError(f"recomputed {task.point}")

        again = run_sweep(spec, store=store, evaluate=must_not_run)
        assert again.cached == 4 and again.computed == 0
        assert stable(again.rows) == stable(resumed.rows)
        other = run_sweep(SweepSpec(**dict(TINY, macs_budget=1.5e7, grid=parse_grid(["N=1", "L=1", "K=1"]))),
                          store=store, evaluate=counting)
        assert other.computed == 1  # a different budget is a different point


def test_local_pool_gives_the_same_rows_as_inline():
    spec = SweepSpec(**dict(TINY, grid=parse_grid(["N=1,2", "L=1", "K=1"])))
    inline = run_sweep(spec)
    with make_executor("local", workers=2) as ex:
        pooled = run_sweep(spec, ex)
    assert stable(pooled.rows) == stable(inline.rows)


def test_ray_executor_on_a_local_ray_equals_the_local_executor():
    import ray  # the ray extra is part of the test install: fail, never skip, without it

    spec = SweepSpec(**dict(TINY, grid=parse_grid(["N=1,2,3", "L=1", "K=1"])))
    local = run_sweep(spec)
    with make_executor("ray", workers=2) as ex:
        assert ray.is_initialized() and ex.workers == 2
        remote = run_sweep(spec, ex)
    assert not ray.is_initialized()  # it started Ray, so it shut it down
    assert len(remote.rows) == 3
    assert stable(remote.rows) == stable(local.rows)


def test_generic_sweep_without_budget_over_a_baseline():
    result = run_sweep(SweepSpec(model="espnetv2", grid=parse_grid(["s=0.5,1.0"]), input_shape=(1, 3, 64, 128)))
    assert [r["s"] for r in result.rows] == [0.5, 1.0]
    small = graphcost.analyze(get_model("espnetv2", dataset="cityscapes", s=0.5), (1, 3, 64, 128))
    assert result.rows[0]["macs"] == small.macs and result.rows[0]["params"] == small.params
    assert result.rows[0]["macs"] < result.rows[1]["macs"]


def test_auc_and_ranking():
    assert auc([1.0, 2.0], [0.5, 0.6], 0.0) == pytest.approx(0.4)
    rows = [{"status": "ok", "g": 3}, {"status": "ok", "g": 1}, {"status": "ok", "g": 2}]
    ranked = rank_rows(rows, "g")
    assert [r["g"] for r in ranked] == [1, 2, 3] and [r["rank"] for r in ranked] == [1, 2, 3]
    assert [r["g"] for r in rank_rows(rows, "g:max")] == [3, 2, 1]
    with pytest.raises(UserError, match="not a column"):
        rank_rows(rows, "nope")


# --------------------------------------------------------------------------- the command
def test_cli_json_contract_and_accuracy_ranking(capsys, tmp_path):
    acc = tmp_path / "acc.csv"
    acc.write_text("N,L,K,output,miou\n1,1,1,1,50\n2,1,1,1,40\n2,1,1,2,60\n")
    rc, out, err = run(capsys, "sweep", "itnet", "--grid", "N=1,2", "--grid", "L=1", "--grid", "K=1",
                       "--input", "64x96", "--macs-budget", "2e7", "--shared", "--format", "json",
                       "--accuracy-table", str(acc), "--workers", "1")
    assert rc == 0, err
    payload = json.loads(out)
    rows = payload["rows"]
    assert {"N", "L", "K", "f", "macs", "params", "graph_size_bytes", "latency_layers"} <= set(rows[0])
    assert payload["metric"] == "auc" and all("auc" in r for r in rows)
    # N=2 peaks at 0.60; N=1 peaks at 0.50 <= 0.60 - 0.02 and is discarded as in the paper
    assert rows[0]["N"] == 2 and rows[0]["rank"] == 1
    assert next(r for r in rows if r["N"] == 1)["discarded"] is True


def test_cli_writes_table_csv_json_and_heatmaps(capsys, tmp_path):
    out_dir = tmp_path / "out"
    rc, out, err = run(capsys, "sweep", "itnet", "--grid", "N=1,2", "--grid", "L=1,2", "--grid", "K=1",
                       "--input", "64x96", "--macs-budget", "2e7", "--independent", "--out", str(out_dir),
                       "--metric", "graph_size_bytes", "--workers", "1")
    assert rc == 0, err
    assert "graph size" in out and "sweep itnet" in out
    names = sorted(os.listdir(out_dir))
    assert names == ["index.html"] + [f"sweep-itnet-independent.{e}" for e in ("csv", "json", "png", "svg")]
    rows = json.loads((out_dir / "sweep-itnet-independent.json").read_text())["rows"]
    assert len(rows) == 4 and rows[0]["rank"] == 1
    assert (out_dir / "sweep-itnet-independent.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args,needle", [
    (["--grid", "N"], "KEY=V1,V2"),
    (["--grid", "N=1,,2"], "without gaps"),
    (["--grid", "Q=1,2"], "no parameter 'Q'"),
    (["--grid", "N=1", "--grid", "f=3"], "searched for the MAC budget"),
    (["--grid", "N=1,2", "--macs-budget", "10"], "cannot be met at 2 of 2 grid points: N=1 (even f=2 needs"),
    (["--grid", "N=1", "--metric", "bogus"], "not a column"),
    (["--grid", "N=1", "--macs-budget", "-5"], "--macs-budget"),
])
def test_cli_bad_input_is_one_line_exit_2(capsys, tmp_path, args, needle):
    out_dir = tmp_path / "out"
    rc, out, err = run(capsys, "sweep", "itnet", "--input", "64x96", "--workers", "1", "--out", str(out_dir),
                       *(["--macs-budget", "2e7"] if "--macs-budget" not in args else []), *args)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("graphcost: error: ") and needle in err, err
    assert out == ""
    assert not out_dir.exists()  # nothing written, not even the folder


def test_cli_unwritable_out_is_one_line_exit_2(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, out, err = run(capsys, "sweep", "itnet", "--grid", "N=1", "--input", "64x96", "--out", str(blocker / "d"))
    assert rc == 2 and err.count("\n") == 1 and "--out" in err and out == ""


def test_row_columns_are_the_columns_every_ok_row_has():
    """--metric is checked against row_columns before the sweep runs: they must not drift from real rows."""
    from graphcost.explore import row_columns

    result = run_sweep(SweepSpec(**dict(TINY, grid=parse_grid(["N=1", "L=1", "K=1"]), crossbar=(64, 64),
                                        chip_arrays=8)))
    (row,) = result.rows
    assert row["status"] == "ok"
    numbers = {k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)} | {"fits"}
    assert set(row_columns(result.spec)) == numbers


def test_work_items_are_handed_out_largest_first_and_rows_stay_in_grid_order():
    """The pool gets the points with the largest model values first (its last items are then its smallest, no
    worker idles waiting for a big one); the rows come back in grid order, each with its own point."""
    from graphcost.explore.sweep import architecture_tasks, point_task, resolve_spec

    spec = resolve_spec(SweepSpec(model="itnet", grid=parse_grid(["N=1,4", "L=1,2", "hw.adc_bits=4,8"]),
                                  fixed=(("K", 1),), input_shape=(1, 3, 32, 48), shared=True))
    tasks = [point_task(spec, p) for p in spec.points()]
    order = [dict(work.points[0])["N"] * dict(work.points[0])["L"]
             for work, _ in architecture_tasks(tasks, range(len(tasks)))]
    assert order == sorted(order, reverse=True) == [8, 4, 2, 1]
    rows = run_sweep(spec).rows
    assert [(r["N"], r["L"], r["hw.adc_bits"]) for r in rows] == \
        [(dict(t.point)["N"], dict(t.point)["L"], dict(t.point)["hw.adc_bits"]) for t in tasks]
