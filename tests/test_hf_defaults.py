"""Every Hugging Face modality runs without ``--input``: default inputs come from the model itself.

Its ``main_input_name`` and config decide: log-mel features of the config's length (whisper), one
second of raw audio at 16 kHz (wav2vec2), token ids and pixel values at the vision config's size
(CLIP), pixel values at the config's size (DETR, SegFormer), token ids plus decoder token ids for an
encoder-decoder (T5, BART). Each default is checked against FlopCounterMode on the same inputs
(attention as explicit matmuls), tiny configs built on the meta device.
"""
import json

import pytest
import torch

import graphcost
from clirun import run
from graphcost.resolve import ModelSpec, build, build_for_shapes
from oracles import eager_macs

pytest.importorskip("transformers")

HEADS = {"encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128}
TEXT = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
CASES = {  # name: (hf source, tiny config, the default inputs expected: name -> (shape, dtype))
    "whisper": ("hf:whisper", {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "max_source_positions": 64,
                               **HEADS},
                {"input_features": ((1, 80, 128), torch.float32), "decoder_input_ids": ((1, 128), torch.int64)}),
    "wav2vec2": ("hf:wav2vec2", TEXT, {"input_values": ((1, 16000), torch.float32)}),
    "clip": ("hf:clip", {"text_config": {**TEXT, "vocab_size": 1000},
                         "vision_config": {**TEXT, "image_size": 64, "patch_size": 16}, "projection_dim": 32},
             {"input_ids": ((1, 77), torch.int64), "pixel_values": ((1, 3, 64, 64), torch.float32)}),
    "detr": ("hf:detr", {"use_timm_backbone": False, "use_pretrained_backbone": False, "d_model": 64,
                         "encoder_layers": 1, "decoder_layers": 1, "num_queries": 10, **HEADS},
             {"pixel_values": ((1, 3, 224, 224), torch.float32)}),
    "segformer": ("hf:segformer:semantic-seg", {"hidden_sizes": [16, 32, 64, 128], "decoder_hidden_size": 64,
                                                "image_size": 64},
                  {"pixel_values": ((1, 3, 64, 64), torch.float32)}),
    "t5": ("hf:t5", {"num_layers": 2, "d_model": 64, "num_heads": 4, "d_kv": 16, "d_ff": 128, "vocab_size": 1000},
           {"input_ids": ((1, 128), torch.int64), "decoder_input_ids": ((1, 128), torch.int64)}),
    "bart": ("hf:bart", {"encoder_layers": 2, "decoder_layers": 2, "d_model": 64, "vocab_size": 1000, **HEADS},
             {"input_ids": ((1, 128), torch.int64), "decoder_input_ids": ((1, 128), torch.int64)}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_default_inputs_equal_flop_counter(case):
    source, params, expected = CASES[case]
    built = build_for_shapes(ModelSpec(name=source, params=params))
    a = graphcost.analyze(built.module, built.call_inputs)
    assert {name: (shape, dtype) for name, shape, dtype in a.inputs} == \
        {name: (shape, str(dtype).replace("torch.", "")) for name, (shape, dtype) in expected.items()}
    # real weights for the reference (wav2vec2's weight-normed convolution computes on them)
    reference = build(ModelSpec(name=source, params={**params, "attn_implementation": "eager"})).module
    example = {name: torch.zeros(shape, dtype=dtype) for name, (shape, dtype) in expected.items()}
    assert a.macs == eager_macs(reference, **example)
    assert a.params == sum(p.numel() for p in built.module.parameters())
    assert a.complete, a.uncounted


@pytest.mark.parametrize("case", ["whisper", "wav2vec2", "clip"])
def test_cli_runs_without_input(capsys, case):
    source, params, expected = CASES[case]
    rc, out, err = run(capsys, "analyze", source, *[f"--param={k}={v!r}" for k, v in params.items()],
                       "--format", "json")
    assert rc == 0, err
    assert [i["name"] for i in json.loads(out)["inputs"]] == list(expected)


def test_a_wrong_input_says_what_the_model_needs_and_how_to_give_it(capsys):
    source, params, _ = CASES["whisper"]
    rc, _, err = run(capsys, "analyze", source, *[f"--param={k}={v!r}" for k, v in params.items()],
                     "--input", "input_features=1x80x100:float32")
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "layer 'encoder' (WhisperEncoder) cannot run on input 1x80x100" in err
    assert "expects the mel input features to be of length 128" in err  # the model's own words
    assert "--input" in err and "co_varnames" not in err and "torch.fx" not in err
