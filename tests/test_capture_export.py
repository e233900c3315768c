"""torch.export capture: the same Trace as fx (costs, loop graph by parameter identity), and the
``tracer`` choice. Reference for MACs: FlopCounterMode on an eager forward (tests/oracles.eager_macs)."""
import json
import os

import pytest
import torch
import torchvision
from torch import nn

import graphcost
from clirun import run
from graphcost.inputs import InputSpec
from nets import LoopNet, ShapeLoop, TiedLM, make_spectral
from oracles import eager_macs

HERE = os.path.dirname(__file__)


def weight_layers(t):
    """{layer name: calls} of the loop graph's layers holding weights."""
    return {name: t.layer(name).calls for name in t.loop_graph if t.layer(name).param_ids}


@pytest.mark.parametrize("make,shape", [(lambda: torchvision.models.resnet18(), (1, 3, 64, 64)),
                                        (lambda: LoopNet(3), (1, 3, 32, 32))], ids=["resnet18", "loopnet"])
def test_export_gives_the_costs_and_loop_graph_of_fx(make, shape):
    model = make().eval()
    by_fx, by_export = (graphcost.trace(model, shape, tracer=tracer) for tracer in ("fx", "export"))
    a_fx, a_export = graphcost.analyze_trace(by_fx), graphcost.analyze_trace(by_export)
    assert (a_export.params, a_export.macs, a_export.latency_layers) == (a_fx.params, a_fx.macs, a_fx.latency_layers)
    assert a_export.graph_size_bytes == a_fx.graph_size_bytes and a_export.complete
    assert weight_layers(by_export) == weight_layers(by_fx)  # same names (module paths), same calls
    assert by_export.dag.number_of_nodes() >= by_fx.dag.number_of_nodes()


def test_tied_weights_stay_one_layer_on_the_export_path():
    model = TiedLM()
    t = graphcost.trace(model, InputSpec((2, 7), torch.int64), tracer="export")
    a = graphcost.analyze_trace(t)
    assert a.params == sum(p.numel() for p in model.parameters()) == 50 * 16 + 16 * 16 + 16
    assert t.layer("embed").calls == 2  # the embedding and the head: one weight, one node
    assert "head" not in t.loop_graph and t.loop_graph.has_edge("embed", "body")
    assert a.macs == eager_macs(model, torch.zeros(2, 7, dtype=torch.int64)) == 2 * 7 * (16 * 16 + 16 * 50)


def test_export_captures_what_fx_cannot_trace():
    model = ShapeLoop()
    with pytest.raises(graphcost.UserError, match="torch.fx cannot trace the forward of ShapeLoop"):
        graphcost.analyze(model, (2, 5, 16), tracer="fx")
    a = graphcost.analyze(model, (2, 5, 16), tracer="export")
    assert a.macs == eager_macs(model, (2, 5, 16)) == 5 * 2 * 32 * 16
    assert a.complete and a.params == 32 * 16 + 16
    assert [(layer.name, layer.calls) for layer in a.layers if layer.params] == [("cell", 5)]


def test_an_op_nobody_can_count_is_uncounted_on_the_export_path_too():
    a = graphcost.analyze(make_spectral(), (2, 8), tracer="export")
    assert not a.complete and a.macs == 2 * 8 * 8
    assert a.uncounted["aten._fft_r2c"].calls == 1


def test_bad_tracer_is_a_user_error():
    with pytest.raises(graphcost.UserError, match="tracer"):
        graphcost.analyze(nn.Linear(2, 2), (1, 2), tracer="jit")


def test_cli_tracer_option(capsys, monkeypatch):
    monkeypatch.syspath_prepend(HERE)
    rc, _, err = run(capsys, "analyze", "nets:ShapeLoop", "--input", "2x5x16:float32", "--tracer", "fx")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "torch.fx cannot trace" in err
    results = {}
    for tracer in ("fx", "dispatch", "export"):
        rc, out, err = run(capsys, "analyze", "torchvision:resnet18", "--input", "64x64", "--tracer", tracer,
                           "--format", "json")
        assert rc == 0, err
        d = json.loads(out)
        results[tracer] = (d["params"], d["macs"], d["complete"])
    assert results["fx"] == results["dispatch"] == results["export"] == (11689512, results["fx"][1], True)
    rc, _, err = run(capsys, "analyze", "nets:ShapeLoop", "--input", "2x5x16:float32", "--tracer", "jit")
    assert rc == 2 and "--tracer" in err and len(err.strip().splitlines()) == 1


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.heads = nn.ModuleList([nn.Linear(4, 2), nn.Linear(4, 3)])

    def forward(self, x):
        h = self.body(x)
        return {"out": self.heads[0](h), "aux": (self.heads[1](h), h)}


def test_export_keeps_the_names_of_the_outputs():
    by_fx, by_export = (graphcost.trace(TwoHeads(), (1, 4), tracer=tracer) for tracer in ("fx", "export"))
    assert by_export.output_names == by_fx.output_names == ["out", "aux.0", "aux.1"]
