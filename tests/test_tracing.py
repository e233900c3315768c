import sys

import pytest
import torch
from torch import nn

import graphcost
from graphcost import UserError
from nets import AnytimeNet, LoopNet, TiedNet, WrapsUntraceable, DataDependent


def weight_nodes(graph):
    return [n for n, record in graph.nodes(data="record") if record.is_weight_layer]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_dag_unrolls_and_loop_graph_keeps_one_node_per_weight(n):
    t = graphcost.trace(LoopNet(n), (1, 3, 64, 64))
    assert len(weight_nodes(t.dag)) == 2 + 2 * n          # stem, head, two convs per iteration
    assert sorted(weight_nodes(t.loop_graph)) == ["blocks.0.c1", "blocks.0.c2", "head", "stem"]
    assert t.layer("blocks.0.c1").calls == n


def test_reuse_is_a_back_edge():
    t = graphcost.trace(LoopNet(3), (1, 3, 32, 32))
    back = [(u, v) for u, v, d in t.loop_graph.edges(data=True) if d["back_edge"]]
    assert any(v == "blocks.0.c1" for _, v in back)
    # the unrolled (independent) network has no back edges at all
    t2 = graphcost.trace(LoopNet(3, shared=False), (1, 3, 32, 32))
    assert not [1 for *_, d in t2.loop_graph.edges(data=True) if d["back_edge"]]


def test_self_loop_for_module_feeding_itself():
    conv = nn.Conv2d(4, 4, 3, padding=1)
    model = nn.Sequential(conv, conv, conv)
    t = graphcost.trace(model, (1, 4, 8, 8))
    assert t.loop_graph.has_edge("0", "0")
    assert t.layer("0").calls == 3


def test_tied_parameters_collapse_to_one_node():
    t = graphcost.trace(TiedNet(), (1, 4, 8, 8))
    assert len(weight_nodes(t.dag)) == 2
    assert len(weight_nodes(t.loop_graph)) == 1


def test_outputs_in_return_order():
    t = graphcost.trace(AnytimeNet(4), (1, 3, 16, 16))
    assert len(t.outputs) == 4
    assert [t.call(o).module for o in t.outputs] == [f"heads.{i}" for i in range(4)]


def test_untraceable_submodule_falls_back_to_opaque_leaf():
    t = graphcost.trace(WrapsUntraceable(), (1, 3, 8, 8))
    assert t.opaque_modules == ["inner"]
    a = graphcost.analyze_trace(t)
    # the opaque leaf's conv MACs are still counted (via torch's flop counter on fake tensors)
    assert a.macs == 8 * 8 * 3 * 3 + 8 * 8 * 4 * 3 * 9


def test_untraceable_root_names_the_model():
    with pytest.raises(UserError, match="DataDependent"):
        graphcost.trace(DataDependent(), (1, 3, 8, 8), tracer="fx")


def test_data_dependent_root_is_run_eagerly_by_auto():
    """fx, meta tensors and export all fail on its data-dependent branch: auto runs one real forward."""
    t = graphcost.trace(DataDependent(), (1, 3, 8, 8))
    assert t.capture == "eager"
    assert graphcost.analyze_trace(t).macs == 8 * 8 * 4 * 3 * 9


def test_no_activation_memory_is_allocated_for_large_inputs():
    """Shape propagation is on fake tensors: a 2048x1024 input costs no activation memory."""
    import subprocess
    code = (
        "import resource, sys, torch, graphcost\n"
        "from graphcost.models import get_model\n"
        "m = get_model('itnet', dataset='cityscapes')\n"
        "a = graphcost.analyze(m, (1, 3, 2048, 1024))\n"
        "assert a.macs > 1e10\n"
        # VmHWM is this process's own peak; ru_maxrss also counts the forking pytest process's RSS
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')] if sys.platform == 'linux' else []\n"
        "print(hwm[0].split()[1] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_kib = int(out.stdout.strip().splitlines()[-1])
    assert peak_kib < 1.5 * 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"


def test_trace_leaves_training_mode_untouched():
    m = LoopNet(2).train()
    graphcost.trace(m, (1, 3, 16, 16))
    assert m.training


def test_trace_runs_in_eval_mode_and_restores_each_modules_own_mode():
    """A model in training with one submodule frozen in eval (a fine-tuning set-up) comes back exactly so; the
    trace itself sees eval mode (dropout and batch norm as at inference)."""
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(self.training)
            return x

    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Sequential(Probe())).train()
    m[1].eval()
    before = [sub.training for sub in m.modules()]
    graphcost.trace(m, (1, 3, 8, 8))
    assert [sub.training for sub in m.modules()] == before == [True, True, False, True, True]
    assert seen and not any(seen)


def test_trace_honours_a_train_override_of_any_module():
    """A module that overrides ``train`` (here: its probe stays in training, a frozen-statistics set-up in
    reverse) is put in eval mode through that override, as ``model.eval()`` would, even when the module itself
    is already in eval mode; the direct flip is only for models that use ``nn.Module.train`` throughout."""
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(self.training)
            return x

    class KeepsProbeTraining(torch.nn.Sequential):
        def train(self, mode=True):
            super().train(mode)
            self[0].training = True
            return self

    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), KeepsProbeTraining(Probe())).train()
    m[1].training = False  # the override's owner is in eval already; its child is not
    graphcost.trace(m, (1, 3, 8, 8))
    assert seen == [True]
    assert [sub.training for sub in m.modules()] == [True, True, False, True]


def test_bad_input_shape():
    with pytest.raises(UserError):
        graphcost.trace(LoopNet(1), (1, 3, 0, 16))


def test_parameter_free_calls_of_a_shared_block_are_one_node():
    t = graphcost.trace(LoopNet(4), (1, 3, 16, 16))
    # the relu and the residual add inside the shared block collapse like its convs
    assert t.layer(t.layer_of("relu_3")).calls == 4
    assert t.layer_of("relu") == t.layer_of("relu_2")
    assert t.loop_graph.number_of_nodes() == 7  # input, stem, c1, relu, c2, add, head


def test_feed_forward_network_has_no_loops():
    import torchvision
    t = graphcost.trace(torchvision.models.resnet18(weights=None), (1, 3, 64, 64))
    assert t.loop_graph.number_of_nodes() == t.dag.number_of_nodes()
    assert not [1 for *_, d in t.loop_graph.edges(data=True) if d["back_edge"]]
