"""``analyze`` leaves its trace to reference counting (no fx graph for the cycle collector), and a trace the
user keeps is untouched by analyses: still whole, and analysed to the same numbers."""
import gc

import pytest
import torch
from torch import fx

import graphcost
from graphcost.capture_memo import Invocation
from nets import LoopNet

SHAPE = (1, 3, 32, 32)


def cyclic_garbage(run):
    """The objects ``run()`` leaves that only the cycle collector would free."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


def test_analyze_leaves_no_graph_or_memo_to_the_collector():
    model = LoopNet(3).eval()
    graphcost.analyze(model, SHAPE)  # warm: lazily made module-level state is not garbage
    left = cyclic_garbage(lambda: graphcost.analyze(model, SHAPE))
    kinds = {type(o) for o in left}
    assert not kinds & {fx.Node, fx.Graph, Invocation, graphcost.Trace}, kinds


def test_a_kept_trace_is_whole_after_analyses_and_analyzes_as_analyze_does():
    model = LoopNet(3).eval()
    kept = graphcost.trace(model, SHAPE)
    fresh = graphcost.analyze(model, SHAPE)
    graphcost.analyze(model, SHAPE)
    assert graphcost.analyze_trace(kept).to_dict() == fresh.to_dict()
    assert graphcost.analyze_trace(graphcost.trace(model, SHAPE)).to_dict() == fresh.to_dict()
    nodes = list(kept.graph.nodes)
    assert nodes and all(n.graph is kept.graph for n in nodes)
    assert set(kept.dag) <= {n.name for n in nodes}
    x = torch.randn(SHAPE)
    assert torch.equal(kept.graph_module(x), model(x))
    assert kept.loop_graph.number_of_nodes() == fresh.loop_nodes and kept.dag.number_of_nodes() == fresh.dag_nodes


def test_a_released_trace_leaves_no_graph_to_the_collector_and_still_analyses():
    """``Trace.release`` (what a sweep does with every trace it drops): the fx graph goes by reference counts,
    the DAG, loop graph and records stay, and analyse to what a whole trace gives."""
    model = LoopNet(3).eval()
    fresh = graphcost.analyze(model, SHAPE)
    graphcost.trace(model, SHAPE).release()  # warm

    def run():
        t = graphcost.trace(model, SHAPE)
        t.release()
        assert graphcost.analyze_trace(t).to_dict() == fresh.to_dict()

    kinds = {type(o) for o in cyclic_garbage(run)}
    assert not kinds & {fx.Node, fx.Graph}, kinds


def test_the_sweep_leaves_no_graph_to_the_collector():
    from graphcost.explore import SweepSpec, parse_grid, run_sweep

    spec = SweepSpec(model="itnet", grid=parse_grid(["N=1,2"]), fixed=(("L", 1), ("K", 1)), input_shape=(1, 3, 32, 48),
                     shared=False, macs_budget=5e6)
    run_sweep(spec)
    kinds = {type(o) for o in cyclic_garbage(lambda: run_sweep(spec))}
    assert not kinds & {fx.Node, fx.Graph}, kinds


def test_a_sweep_work_item_runs_with_the_collector_paused_and_restores_it(monkeypatch):
    """The cycle collector waits while a sweep's work item runs (its traces die by reference counting, cycles are
    collected once at its end) and is on again afterwards, also when the item fails."""
    from graphcost.explore import SweepSpec, parse_grid, sweep

    spec = sweep.resolve_spec(SweepSpec(model="itnet", grid=parse_grid(["N=1,2"]), fixed=(("L", 1), ("K", 1)),
                                        input_shape=(1, 3, 32, 48), shared=False))
    seen = []
    original = sweep.analyze_trace

    def spy(*args, **kwargs):
        seen.append(gc.isenabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(sweep, "analyze_trace", spy)
    tasks = [sweep.point_task(spec, point) for point in spec.points()]
    rows = sweep.evaluate_architecture(sweep.architecture_tasks(tasks, [0])[0][0]) + [sweep.evaluate_point(tasks[1])]
    assert [r["status"] for r in rows] == ["ok", "ok"] and seen == [False, False] and gc.isenabled()

    def failing(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(sweep, "analyze_trace", failing)
    with pytest.raises(RuntimeError, match="boom"):
        sweep.evaluate_point(tasks[0])
    assert gc.isenabled()
