"""Hugging Face transformers from configs alone (``hf:MODEL_TYPE[:TASK]``), against FlopCounterMode.

Tiny configs (2 layers, hidden 64, vocabulary 1000, 32 tokens) of bert, gpt2 (causal LM, embedding
and head tied), llama, t5 (encoder-decoder: two inputs) and vit. graphcost captures them with
the dispatch capture (fx cannot trace them; one forward on meta tensors), and by torch.export to
the same numbers, on the default attention backend (sdpa); the reference is
FlopCounterMode on an eager forward of the same config with ``attn_implementation="eager"``
(attention as explicit matmuls). Params exact (unique parameters: a tied weight counts once),
MACs exactly equal (no tolerance), ``complete`` true. Models are built on the meta device.
"""
import json
import sys

import pytest
import torch

import graphcost
from clirun import run
from graphcost.inputs import InputSpec
from graphcost.resolve import ModelSpec, build_for_shapes
from graphcost.viewer import read_blocks
from oracles import eager_macs

TINY = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
        "vocab_size": 1000}
IDS = InputSpec((1, 32), torch.int64)
CASES = {  # name: (hf source, config parameters, inputs)
    "bert": ("hf:bert", TINY, {"input_ids": IDS}),
    "gpt2": ("hf:gpt2:causal-lm", {"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 1000,
                                   "bos_token_id": 0, "eos_token_id": 0}, {"input_ids": IDS}),
    "llama": ("hf:llama", {**TINY, "num_key_value_heads": 2}, {"input_ids": IDS}),
    "t5": ("hf:t5", {"num_layers": 2, "d_model": 64, "num_heads": 4, "d_kv": 16, "d_ff": 128, "vocab_size": 1000},
           {"input_ids": IDS, "decoder_input_ids": InputSpec((1, 16), torch.int64)}),
    "vit": ("hf:vit:image-cls", {**TINY, "image_size": 64, "patch_size": 16},
            {"pixel_values": InputSpec((1, 3, 64, 64))}),
}
#: more families (decoder-only with grouped KV heads, encoder-decoder, windowed vision attention)
MORE = {
    "mistral": ("hf:mistral", {**TINY, "num_key_value_heads": 2}, {"input_ids": IDS}),
    "bart": ("hf:bart", {"encoder_layers": 2, "decoder_layers": 2, "d_model": 64, "encoder_attention_heads": 4,
                         "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128,
                         "vocab_size": 1000}, {"input_ids": IDS, "decoder_input_ids": InputSpec((1, 16), torch.int64)}),
    "swin": ("hf:swin:image-cls", {"embed_dim": 16, "depths": [1, 1], "num_heads": [2, 2], "image_size": 64},
             {"pixel_values": InputSpec((1, 3, 64, 64))}),
}


def eager_reference(source: str, params: dict) -> torch.nn.Module:
    """The same model with attention as explicit matmuls (the oracle's forward)."""
    spec = ModelSpec(name=source, params={**params, "attn_implementation": "eager"})
    return build_for_shapes(spec).module


def example(inputs: dict) -> dict:
    return {name: torch.zeros(spec.shape, dtype=spec.dtype or torch.float32) for name, spec in inputs.items()}


@pytest.mark.parametrize("case", list(CASES) + list(MORE))
def test_hf_model_matches_flop_counter(case):
    source, params, inputs = {**CASES, **MORE}[case]
    model = build_for_shapes(ModelSpec(name=source, params=params)).module
    a = graphcost.analyze(model, inputs)
    reference = eager_macs(eager_reference(source, params), **example(inputs))
    assert a.macs == reference, (a.macs, reference)
    assert a.params == sum(p.numel() for p in model.parameters())
    assert a.complete, a.uncounted
    assert [name for name, _, _ in a.inputs] == list(inputs)
    assert a.outputs[0].name in ("last_hidden_state", "logits")  # the model output's own names


@pytest.mark.parametrize("case", list(CASES))
def test_dispatch_capture_and_export_agree(case):
    source, params, inputs = CASES[case]
    model = build_for_shapes(ModelSpec(name=source, params=params)).module
    by_auto, by_export = (graphcost.analyze(model, inputs, tracer=tracer) for tracer in ("auto", "export"))
    assert (by_auto.params, by_auto.macs, by_auto.latency_layers, by_auto.graph_size_bytes, by_auto.complete) == \
        (by_export.params, by_export.macs, by_export.latency_layers, by_export.graph_size_bytes, by_export.complete)
    weights = {layer.name for layer in by_export.layers if layer.kind in ("linear", "conv")}
    assert weights == {layer.name for layer in by_auto.layers if layer.kind in ("linear", "conv")}


def test_auto_captures_transformers_by_dispatch_with_module_calls_kept():
    source, params, inputs = CASES["bert"]
    t = graphcost.trace(build_for_shapes(ModelSpec(name=source, params=params)).module, inputs)
    query = t.layer("encoder.layer.0.attention.self.query")
    assert query.op == "linear" and query.kind == "linear"  # the nn.Linear's formula, not an aten op
    assert t.layer("embeddings.LayerNorm").kind == "norm"


def test_gpt2_tied_embedding_and_head_count_once():
    source, params, inputs = CASES["gpt2"]
    model = build_for_shapes(ModelSpec(name=source, params=params)).module
    assert model.lm_head.weight is model.transformer.wte.weight
    t = graphcost.trace(model, inputs)
    every = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    assert graphcost.analyze_trace(t).params == every - model.lm_head.weight.numel()
    assert "lm_head" not in t.loop_graph and t.layer("transformer.wte").calls == 2  # embedding + head: one layer
    assert t.layer("transformer.h.1.attn.c_attn").op == "aten.addmm"  # layers read as module paths


TINY_BERT = [f"--param={k}={v}" for k, v in TINY.items()]


def test_cli_hf_bert_json(capsys):
    rc, out, err = run(capsys, "analyze", "hf:bert", *TINY_BERT, "--format", "json")
    assert rc == 0, err
    d = json.loads(out)
    model = build_for_shapes(ModelSpec(name="hf:bert", params=dict(TINY))).module
    reference = eager_macs(eager_reference("hf:bert", TINY), input_ids=torch.zeros(1, 128, dtype=torch.int64))
    assert d["inputs"] == [{"name": "input_ids", "shape": [1, 128], "dtype": "int64"}]  # the text default
    assert d["params"] == sum(p.numel() for p in model.parameters()) and d["macs"] == reference
    assert d["complete"] is True


def test_cli_hf_inputs_override_the_default(capsys):
    rc, out, err = run(capsys, "analyze", "hf:bert", *TINY_BERT, "--input", "input_ids=2x16:int64",
                       "--input", "attention_mask=2x16:int64", "--format", "json")
    assert rc == 0, err
    assert [i["name"] for i in json.loads(out)["inputs"]] == ["input_ids", "attention_mask"]


@pytest.mark.parametrize("model,needle", [
    ("hf:nosuchmodel", "no model type 'nosuchmodel'"),
    ("hf:bert:translate", "unknown hf task 'translate'"),
    ("hf:bert:image-cls", "building hf:bert:image-cls failed"),
])
def test_cli_hf_bad_model(capsys, model, needle):
    rc, out, err = run(capsys, "analyze", model)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_cli_hf_dataset_preset_is_refused(capsys):
    rc, out, err = run(capsys, "analyze", "hf:vit:image-cls", "--dataset", "camvid")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "no dataset preset" in err


def test_cli_hf_without_transformers_names_the_extra(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    rc, out, err = run(capsys, "analyze", "hf:bert")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "graphcost[hf]" in err


def test_cli_fx_tracer_on_a_model_fx_cannot_trace_is_one_line(capsys):
    rc, out, err = run(capsys, "analyze", "hf:bert", *TINY_BERT, "--tracer", "fx")
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "torch.fx cannot trace" in err, err


def test_cli_map_and_view_take_every_typed_input(capsys, tmp_path):
    """map and view trace with the same typed, named inputs as analyze (not just the first input's shape)."""
    inputs = ["--input", "input_ids=1x16:int64", "--input", "attention_mask=1x16:int64"]
    rc, out, err = run(capsys, "analyze", "hf:bert", *TINY_BERT, *inputs, "--format", "json")
    assert rc == 0, err
    analysed = json.loads(out)
    rc, out, err = run(capsys, "map", "hf:bert", *TINY_BERT, *inputs, "--crossbar", "64x64", "--format", "json")
    assert rc == 0, err
    mapped = json.loads(out)
    names = [o["name"] for o in analysed["outputs"]]
    assert names == ["last_hidden_state", "pooler_output"] and [o["name"] for o in mapped["outputs"]] == names
    # every nn.Linear is one analog weight layer: 2 x (q, k, v, attention output, intermediate, output) + pooler;
    # the rest of the model (embeddings, attention matmuls, norms, activations) is placed on the digital unit
    analog = [layer for layer in mapped["layers"] if layer["resource"] == "analog"]
    assert len(analog) == 2 * 6 + 1
    assert {layer["resource"] for layer in mapped["layers"]} == {"analog", "digital"}
    model = build_for_shapes(ModelSpec(name="hf:bert", params=dict(TINY))).module
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert sum(layer["weights"] for layer in analog) == sum(m.weight.numel() for m in linear)
    # one MVM per token of the 16 given: the sequence length of --input, not the default 128
    assert [layer["mvms"] for layer in analog if "pooler" not in layer["name"]] == [16] * 12
    page = tmp_path / "bert.html"
    rc, _, err = run(capsys, "view", "hf:bert", *TINY_BERT, *inputs, "--crossbar", "64x64", "--out", str(page))
    assert rc == 0, err
    blocks = read_blocks(page.read_text())
    assert blocks["analysis"]["macs"] == analysed["macs"] and blocks["map"]["arrays_used"] == mapped["arrays_used"]


WHISPER_TINY = {"d_model": 64, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
                "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "num_mel_bins": 16,
                "max_source_positions": 16, "max_target_positions": 32, "vocab_size": 100, "pad_token_id": 0,
                "bos_token_id": 0, "eos_token_id": 0, "decoder_start_token_id": 0}


@pytest.mark.parametrize("tracer", ["dispatch", "export"])
def test_outputs_are_the_predictions_not_the_encoder_state_passed_along(tracer):
    """Whisper and T5 return their encoder's last state for reuse: not an output (an anytime exit) of theirs."""
    whisper = build_for_shapes(ModelSpec(name="hf:whisper:speech-seq2seq", params=WHISPER_TINY))
    real = graphcost.resolve.build(ModelSpec(name="hf:whisper:speech-seq2seq", params=WHISPER_TINY)).module
    with torch.no_grad():  # transformers' own forward returns it (the hook drops it)
        assert "encoder_last_hidden_state" in type(real).forward(real, **example(whisper.inputs))
    assert graphcost.trace(whisper.module, whisper.inputs, tracer=tracer).output_names == ["logits"]
    source, params, inputs = CASES["t5"]
    t5 = build_for_shapes(ModelSpec(name=source, params=params)).module
    assert graphcost.trace(t5, inputs, tracer=tracer).output_names == ["last_hidden_state"]
    bert = build_for_shapes(ModelSpec(name="hf:bert", params=dict(TINY))).module  # both are predictions
    assert graphcost.trace(bert, {"input_ids": IDS}, tracer=tracer).output_names == ["last_hidden_state",
                                                                                     "pooler_output"]


def test_map_on_whisper_has_one_output_and_no_anytime_table(capsys):
    args = [f"--param={k}={v}" for k, v in WHISPER_TINY.items()]
    rc, out, err = run(capsys, "map", "hf:whisper:speech-seq2seq", *args, "--crossbar", "64x64", "--format", "json")
    assert rc == 0, err
    assert [o["name"] for o in json.loads(out)["outputs"]] == ["logits"]
    rc, out, err = run(capsys, "map", "hf:whisper:speech-seq2seq", *args, "--crossbar", "64x64")
    assert rc == 0 and "anytime outputs" not in out, err
