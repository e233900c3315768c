"""The dispatch capture (``tracer="dispatch"``): one forward on meta tensors, module calls kept by
hooks, every other aten op costed per op. The same Trace as fx where fx can trace (costs, loop
graph by parameter identity); ``tracer="auto"`` uses it where fx cannot, and torch.export where it
cannot run either. Reference for MACs: FlopCounterMode on an eager forward (tests/oracles.eager_macs)."""
import pytest
import torch
import torchvision
from torch import nn

import graphcost
from graphcost.inputs import InputSpec
from nets import LoopNet, ShapeLoop, TiedLM, make_spectral
from oracles import eager_macs
from test_capture_export import TwoHeads


def weight_layers(t):
    """{layer name: calls} of the loop graph's weight layers (conv, linear, recurrent)."""
    return {name: t.layer(name).calls for name in t.loop_graph if t.layer(name).is_weight_layer}


@pytest.mark.parametrize("make,shape", [(lambda: torchvision.models.resnet18(), (1, 3, 64, 64)),
                                        (lambda: LoopNet(3), (1, 3, 32, 32)),
                                        (lambda: torchvision.models.VisionTransformer(
                                            image_size=32, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32,
                                            mlp_dim=64), (1, 3, 32, 32))],
                         ids=["resnet18", "loopnet", "vit"])
def test_dispatch_gives_the_costs_and_loop_graph_of_fx(make, shape):
    model = make().eval()
    by_fx, by_dispatch = (graphcost.trace(model, shape, tracer=tracer) for tracer in ("fx", "dispatch"))
    a_fx, a_dispatch = graphcost.analyze_trace(by_fx), graphcost.analyze_trace(by_dispatch)
    assert (a_dispatch.params, a_dispatch.macs, a_dispatch.latency_layers) == (a_fx.params, a_fx.macs,
                                                                               a_fx.latency_layers)
    assert a_dispatch.graph_size_bytes == a_fx.graph_size_bytes and a_dispatch.complete
    assert weight_layers(by_dispatch) == weight_layers(by_fx)  # same names (module paths), same calls
    # a leaf module is one node costed by its formula, as on the fx path
    assert {name: by_dispatch.layer(name).op for name in weight_layers(by_dispatch)} == \
        {name: by_fx.layer(name).op for name in weight_layers(by_fx)}


def test_real_parameters_are_left_as_they_are():
    model = LoopNet(2).eval()
    before = {name: p.clone() for name, p in model.state_dict().items()}
    t = graphcost.trace(model, (1, 3, 16, 16), tracer="dispatch")
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[name], p) for name, p in model.state_dict().items())
    assert t.layer("blocks.0.c1").calls == 2 and t.layer("blocks.0.c1").param_ids == \
        (id(model.blocks[0].c1.weight),)  # the model's own Parameter, not the meta copy that ran


def test_tied_weights_stay_one_layer():
    model = TiedLM()
    t = graphcost.trace(model, InputSpec((2, 7), torch.int64), tracer="dispatch")
    a = graphcost.analyze_trace(t)
    assert a.params == 50 * 16 + 16 * 16 + 16
    assert t.layer("embed").calls == 2 and "head" not in t.loop_graph
    assert a.macs == eager_macs(model, torch.zeros(2, 7, dtype=torch.int64)) == 2 * 7 * (16 * 16 + 16 * 50)


def test_auto_uses_the_dispatch_capture_when_fx_cannot_trace_the_model():
    model = ShapeLoop()
    t = graphcost.trace(model, (2, 5, 16))
    assert t.layer("cell").op == "linear" and t.layer("cell").calls == 5  # the registry's name: a module call
    a = graphcost.analyze_trace(t)
    assert a.macs == eager_macs(model, (2, 5, 16)) == 5 * 2 * 32 * 16 and a.complete


class MadeOnCpu(ShapeLoop):
    """Makes a CPU tensor inside forward: meta tensors cannot meet it, torch.export's fake tensors can."""

    def forward(self, x):
        return super().forward(x) + torch.ones(self.width)


def test_auto_falls_back_to_export_when_meta_tensors_cannot_run_the_model():
    model = MadeOnCpu()
    with pytest.raises(graphcost.UserError, match="MadeOnCpu cannot run on input 2x16, 16: .*device"):
        graphcost.analyze(model, (2, 5, 16), tracer="dispatch")
    t = graphcost.trace(model, (2, 5, 16))
    assert t.layer("cell").op == "aten.linear"  # export's aten op
    assert graphcost.analyze_trace(t).macs == eager_macs(model, (2, 5, 16))


class Gated(ShapeLoop):
    """ShapeLoop with an RMSNorm: a torch.nn leaf nobody wrote a formula for."""

    def __init__(self):
        super().__init__()
        self.norm = nn.RMSNorm(16)

    def forward(self, x):
        return self.norm(super().forward(x))


def test_a_leaf_without_a_formula_is_opaque_and_costed_by_its_aten_ops():
    t = graphcost.trace(Gated(), (2, 5, 16), tracer="dispatch")
    a = graphcost.analyze_trace(t)
    assert t.opaque_modules == ["norm"] and t.layer("norm").op == "opaque:RMSNorm"
    assert t.layer("norm").param_ids == (id(t.module.norm.weight),) and a.complete
    assert 2 * 16 <= sum(layer.other_ops for layer in a.layers if layer.name == "norm") <= 8 * 2 * 16


def test_an_op_nobody_can_count_is_uncounted():
    a = graphcost.analyze(make_spectral(), (2, 8), tracer="dispatch")
    assert not a.complete and a.macs == 2 * 8 * 8
    assert a.uncounted["aten._fft_r2c"].calls == 1


def test_outputs_keep_their_names():
    t = graphcost.trace(TwoHeads(), (1, 4), tracer="dispatch")
    assert t.output_names == ["out", "aux.0", "aux.1"]


@pytest.mark.parametrize("tracer", ["dispatch", "auto"])
def test_an_invalid_shape_is_one_line_naming_the_layer(tracer):
    with pytest.raises(graphcost.UserError) as info:
        graphcost.analyze(ShapeLoop(), (2, 5, 17), tracer=tracer)
    message = str(info.value)
    assert "\n" not in message and "layer 'cell' (Linear) cannot run on input 2x33" in message, message


def test_module_formulas_and_leaf_modules_apply_on_the_dispatch_path():
    from graphcost.ops import OpCost
    a = graphcost.analyze(ShapeLoop(), (2, 5, 16), tracer="dispatch",
                          custom_costs={nn.Linear: lambda call: OpCost(macs=7)})
    assert a.macs == 5 * 7  # the per-call formula, once per call of the cell
    model = LoopNet(3).eval()
    t = graphcost.trace(model, (1, 3, 16, 16), tracer="dispatch", leaf_modules=["blocks.0"])
    assert t.layer("blocks.0").calls == 3 and t.opaque_modules == ["blocks.0"]
    assert graphcost.analyze_trace(t).macs == eager_macs(model, (1, 3, 16, 16))
