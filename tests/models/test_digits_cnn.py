"""digits-cnn: shape, parameter count by hand, registry entry, tracing."""
import pytest
import torch

import graphcost
from graphcost.models import get_model, list_models
from oracles import param_count


def test_registered_with_the_digits_preset():
    entry = list_models()["digits-cnn"]
    assert entry.default_dataset == "digits"
    assert graphcost.models.DATASETS["digits"].input_shape == (1, 1, 8, 8)


def test_output_shape_and_parameter_count_by_hand():
    net = get_model("digits-cnn")
    assert net(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    bn = lambda c: 2 * c
    expected = (9 * 1 * 16 + bn(16)) + (9 * 16 * 32 + bn(32)) + (9 * 32 * 32 + bn(32)) + (32 * 2 * 2 * 10 + 10)
    assert param_count(net) == expected == 15418
    wide = get_model("digits-cnn", width=8, classes=4)
    assert wide(torch.rand(1, 1, 8, 8)).shape == (1, 4)


def test_analysis_counts_the_four_weight_layers():
    a = graphcost.analyze(get_model("digits-cnn"), (1, 1, 8, 8))
    assert a.params == 15418 and a.latency_layers == 4
    assert a.macs == 64 * 9 * 16 + 64 * 9 * 16 * 32 + 16 * 9 * 32 * 32 + 128 * 10


def test_bad_parameters_are_user_errors():
    with pytest.raises(graphcost.UserError, match="width"):
        get_model("digits-cnn", width=0)
