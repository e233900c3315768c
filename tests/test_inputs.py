"""Inputs: shapes, InputSpec, example tensors, positional and keyword, from the API and the CLI."""
import json
import os

import pytest
import torch

import graphcost
from clirun import run
from graphcost import InputSpec, UserError
from graphcost.resolve import parse_input
from nets import LoopNet, TwoInputs
from oracles import eager_macs

HERE = os.path.dirname(__file__)


def test_every_input_form_gives_the_same_analysis():
    model = LoopNet(2)
    shape = (1, 3, 16, 16)
    expected = graphcost.analyze(model, shape)
    for inputs in (InputSpec(shape), torch.empty(shape), torch.empty(shape, device="meta"), [shape], {"x": shape}):
        a = graphcost.analyze(model, inputs)
        assert (a.macs, a.params, a.graph_size_bytes, a.latency_layers) == \
            (expected.macs, expected.params, expected.graph_size_bytes, expected.latency_layers)


def test_int_ids_and_a_keyword_input_each_at_their_own_dtype():
    model = TwoInputs()
    ids = InputSpec((2, 7), torch.int64)
    plain = graphcost.analyze(model, ids)
    assert plain.macs == 2 * 7 * 16 * 4 and plain.inputs == (("input_ids", (2, 7), "int64"),)
    # the linear layer reads 2x7x16 float32 activations and writes 2x7x4: weights stay 4 bytes each
    assert plain.graph_size_bytes == (16 * 4 + 4) * 4 + (2 * 7 * 16 + 2 * 7 * 4) * 4
    with_bias = graphcost.analyze(model, (ids, {"bias": (2, 7, 16)}))
    assert with_bias.other_ops == plain.other_ops + 2 * 7 * 16  # the add ran: bias was given
    assert graphcost.analyze(model, {"input_ids": ids}).macs == plain.macs


def test_a_model_built_on_the_meta_device():
    with torch.device("meta"):
        model = LoopNet(2)
    assert graphcost.analyze(model, (1, 3, 16, 16)).macs == graphcost.analyze(LoopNet(2), (1, 3, 16, 16)).macs


@pytest.mark.parametrize("inputs,message", [
    ({"nope": (1, 3)}, "cannot take these inputs"),
    (((1, 3, 8, 8), (1,), (1,)), "cannot take these inputs"),
    ((1, 0, 8), "must be positive"),
    ("1x3", "inputs must be"),
])
def test_bad_inputs_are_user_errors(inputs, message):
    with pytest.raises(UserError, match=message):
        graphcost.analyze(LoopNet(1), inputs)


@pytest.mark.parametrize("text,expected", [
    ("512x1024", (None, InputSpec((1, 3, 512, 1024)))),
    ("3x32x32", (None, InputSpec((1, 3, 32, 32)))),
    ("1x1x28x28", (None, InputSpec((1, 1, 28, 28)))),
    ("input_ids=1x128:int64", ("input_ids", InputSpec((1, 128), torch.int64))),
    ("x=2x8:float16", ("x", InputSpec((2, 8), torch.float16))),
    ("8", (None, InputSpec((8,)))),
])
def test_parse_input(text, expected):
    assert parse_input(text) == expected


@pytest.mark.parametrize("text", ["1x128:int65", "a b=1x2", "ids=", "1x0", "=1x2"])
def test_parse_input_rejects(text):
    with pytest.raises(UserError):
        parse_input(text)


def test_cli_named_typed_inputs(capsys, monkeypatch):
    monkeypatch.syspath_prepend(HERE)
    rc, out, err = run(capsys, "analyze", "nets:make_two_inputs", "--input", "input_ids=2x7:int64",
                       "--input", "bias=2x7x16:float32", "--format", "json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["macs"] == 2 * 7 * 16 * 4 and d["complete"]
    assert d["inputs"] == [{"name": "input_ids", "shape": [2, 7], "dtype": "int64"},
                           {"name": "bias", "shape": [2, 7, 16], "dtype": "float32"}]


@pytest.mark.parametrize("args,message", [
    (["--input", "ids=1x2:int65"], "unknown dtype"),
    (["--input", "a=1x2:int64", "--input", "a=1x2:int64"], "given twice"),
    (["--input", "nope=1x2:int64"], "cannot take these inputs"),
])
def test_cli_bad_inputs_one_line_exit_2(capsys, monkeypatch, args, message):
    monkeypatch.syspath_prepend(HERE)
    rc, out, err = run(capsys, "analyze", "nets:make_two_inputs", *args)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1 and not out


def test_a_factory_that_raises_is_one_build_line(capsys, monkeypatch):
    monkeypatch.syspath_prepend(HERE)
    rc, _, err = run(capsys, "analyze", "nets:make_failing")
    assert rc == 2 and err.strip() == \
        "graphcost: error: building nets:make_failing failed: TypeError: unsupported operand inside the factory"


def test_timm_source(capsys):
    rc, out, err = run(capsys, "analyze", "timm:resnet18", "--input", "64x64", "--format", "json")
    assert rc == 0, err
    import timm  # the test extra installs it; a missing timm must fail, not skip

    with torch.device("meta"):
        reference = eager_macs(timm.create_model("resnet18", pretrained=False), (1, 3, 64, 64))
    assert json.loads(out)["macs"] == reference == 148_557_824  # the oracle: FlopCounterMode, eager forward
    rc, _, err = run(capsys, "analyze", "timm:resnet18", "--param", "pretrained=True")
    assert rc == 2 and "never downloads" in err
