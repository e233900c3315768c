"""The eager capture (``tracer="eager"``): one real forward, for models whose work depends on values.

Checked against FlopCounterMode on the very same forward (same weights, same input values):
torchvision detectors (NMS decides how many boxes the heads see; a list of images as input) and a
mixture-of-experts transformer whose experts run as a data-dependent loop — MACs equal, params
exact. Inputs are small (128x128 images, detectors configured for 3 classes and few boxes) to keep
the tests fast; weights are random (``weights=None``), nothing is downloaded.
"""
import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import graphcost
from clirun import run
from graphcost.inputs import InputSpec
from graphcost.resolve import ModelSpec, build, build_for_shapes

torchvision = pytest.importorskip("torchvision")

SMALL = {"num_classes": 3, "min_size": 128, "max_size": 128}
DETECTORS = {  # name: extra builder arguments (fewer proposals / detections: fast heads)
    "fasterrcnn_mobilenet_v3_large_320_fpn": {"rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 50},
    "retinanet_resnet50_fpn": {"topk_candidates": 100, "detections_per_img": 20},
    "maskrcnn_resnet50_fpn": {"rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 50,
                              "box_detections_per_img": 10},
}


def flop_counter_macs(model, *args, **kwargs) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    return counter.get_total_flops() // 2


def detector(name: str) -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None, weights_backbone=None, **SMALL,
                                        **DETECTORS[name]).eval()


@pytest.mark.parametrize("name", list(DETECTORS))
def test_detector_equals_flop_counter_on_the_same_forward(name):
    model = detector(name)
    images = [torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(1))]
    # the first detector through auto: fx, meta and export all fail on NMS, so auto runs it eagerly
    a = graphcost.analyze(model, (images,), tracer="auto" if name.startswith("fasterrcnn") else "eager")
    assert a.capture == "eager" and a.to_dict()["capture"] == "eager" and "these input values" in a.capture_note
    assert a.macs == flop_counter_macs(model, images)
    assert a.params == sum(p.numel() for p in model.parameters())
    assert a.complete, a.uncounted  # NMS and RoI alignment do no multiply-accumulate
    assert [name for name, _, _ in a.inputs] == ["images.0"] and a.inputs[0][1] == (3, 128, 128)


def test_mixture_of_experts_with_a_data_dependent_expert_loop():
    pytest.importorskip("transformers")
    params = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
              "vocab_size": 1000, "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2,
              "attn_implementation": "eager", "experts_implementation": "eager"}
    model = build(ModelSpec(name="hf:mixtral", params=params)).module.eval()
    ids = torch.randint(0, 1000, (1, 32), generator=torch.Generator().manual_seed(0))
    a = graphcost.analyze(model, {"input_ids": ids})
    assert a.capture == "eager"  # the experts loop over the experts the router picked: no meta capture can
    assert a.macs == flop_counter_macs(model, input_ids=ids)
    assert a.params == sum(p.numel() for p in model.parameters())
    assert a.complete


def test_shape_only_captures_are_kept_where_they_work():
    a = graphcost.analyze(nn.Conv2d(3, 8, 3), (1, 3, 16, 16))
    assert a.capture == "fx" and a.capture_note == ""
    e = graphcost.analyze(nn.Conv2d(3, 8, 3), (1, 3, 16, 16), tracer="eager")
    assert (e.capture, e.macs, e.params) == ("eager", a.macs, a.params)


def test_a_meta_model_runs_on_seeded_stand_in_weights():
    """A model built on the meta device (as the CLI builds it) runs eagerly on seeded weights, twice the same."""
    spec = ModelSpec(name="torchvision:fasterrcnn_mobilenet_v3_large_320_fpn",
                     params={**SMALL, **DETECTORS["fasterrcnn_mobilenet_v3_large_320_fpn"]})
    model = build_for_shapes(spec).module
    assert next(model.parameters()).device.type == "meta"
    first, second = (graphcost.analyze(model, ([InputSpec((3, 128, 128))],), tracer="eager") for _ in range(2))
    assert first.macs == second.macs > 0 and first.complete
    assert first.params == sum(p.numel() for p in model.parameters())
    assert next(model.parameters()).device.type == "meta"  # the user's model is left as it was


def test_cli_list_input_falls_back_to_eager_with_one_note(capsys):
    rc, out, err = run(capsys, "analyze", "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", "--input", "[3x128x128]",
                       *[f"--param={k}={v}" for k, v in {**SMALL, **DETECTORS[
                           "fasterrcnn_mobilenet_v3_large_320_fpn"]}.items()], "--format", "json")
    assert rc == 0, err
    assert len(err.strip().splitlines()) == 1 and "data-dependent" in err and "these input values" in err
    d = json.loads(out)
    assert d["capture"] == "eager" and "these input values" in d["capture_note"] and d["complete"]
    assert d["inputs"] == [{"name": "images.0", "shape": [3, 128, 128], "dtype": "float32"}]


class Router(nn.Module):
    def forward(self, x):
        if (x > 2).any():  # never true for inputs in [0, 1): the model's own error below
            return x
        raise ValueError("routing found no expert for this token\nsecond line of the model's message")


class Routed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.router = Router()

    def forward(self, x):
        return self.router(self.proj(x))


def make_routed():
    return Routed()


def test_an_eager_forward_that_raises_is_one_line_naming_the_layer(capsys):
    rc, out, err = run(capsys, "analyze", "test_eager:make_routed", "--input", "x=4x16:float32", "--tracer", "eager")
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "layer 'router' (Router)" in err and "routing found no expert for this token" in err
    assert "second line" not in err and "Traceback" not in err


@pytest.mark.parametrize("text, message", [("[]", "1 to 64 tensors"), ("[3x8x8; x]", "a list input is"),
                                            ("[3x0x8]", "positive"), ("[3x8x8:float7]", "unknown dtype")])
def test_bad_list_inputs_name_the_flag(capsys, text, message):
    rc, _, err = run(capsys, "analyze", "torchvision:resnet18", "--input", text)
    assert rc == 2 and "--input" in err and message in err and len(err.strip().splitlines()) == 1
