"""Transformers and language models on the chip (issue 19): every MAC placed, HF Conv1D exact, the tied
LM head on arrays once, generation with a KV cache by hand, gain-cell attention against Leroux et al.
2025, chips, and one clear line for bad input. Tiny configs throughout."""
import json
from dataclasses import replace

import pytest
import torch
from torch import nn

import graphcost
from clirun import run
from graphcost.crossbar.generation import GenerateSpec
from graphcost.crossbar.mapping import map_trace
from graphcost.crossbar.run import MapRequest, run_map
from graphcost.crossbar.specs import ArraySpec, ChipSpec
from graphcost.crossbar.tech import LEROUX_2025, TECH_PRESETS
from graphcost.crossbar.tiling import geometry_of_module, tile_layer
from graphcost.inputs import InputSpec
from graphcost.resolve import ModelSpec, build_for_shapes

A = ArraySpec(256, 256)
IDS = InputSpec((1, 16), torch.int64)
TINY = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
        "vocab_size": 1000}
#: one-layer decoder of the hand-computed case: d 64, 2 heads, FFN 128, vocab 100, LM head tied to the embedding
ONE_LAYER = {"n_layer": 1, "n_embd": 64, "n_head": 2, "n_inner": 128, "vocab_size": 100, "bos_token_id": 0,
             "eos_token_id": 0}
GPT2_TINY = {"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 1000, "bos_token_id": 0, "eos_token_id": 0}

FOREIGN = {  # name: (source, params, inputs)
    "gpt2": ("hf:gpt2:causal-lm", GPT2_TINY, {"input_ids": IDS}),
    "bert": ("hf:bert", TINY, {"input_ids": IDS}),
    "vit": ("hf:vit:image-cls", {**TINY, "image_size": 32, "patch_size": 16}, {"pixel_values": InputSpec((1, 3, 32, 32))}),
    "whisper": ("hf:whisper", {"d_model": 64, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
                               "decoder_attention_heads": 2, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128,
                               "num_mel_bins": 16, "max_source_positions": 16, "vocab_size": 1000,
                               "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0, "decoder_start_token_id": 0},
                {"input_features": InputSpec((1, 16, 32)), "decoder_input_ids": InputSpec((1, 4), torch.int64)}),
    "swin": ("hf:swin:image-cls", {"embed_dim": 16, "depths": [1, 1], "num_heads": [2, 2], "image_size": 64},
             {"pixel_values": InputSpec((1, 3, 64, 64))}),
    "clip": ("hf:clip", {"text_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                         "intermediate_size": 64, "vocab_size": 100},
                         "vision_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                           "intermediate_size": 64, "image_size": 32, "patch_size": 16},
                         "projection_dim": 16},
             {"input_ids": InputSpec((1, 8), torch.int64), "pixel_values": InputSpec((1, 3, 32, 32))}),
    "mamba": ("hf:mamba", {"hidden_size": 32, "num_hidden_layers": 2, "vocab_size": 100, "state_size": 8},
              {"input_ids": IDS}),
    "llama": ("hf:llama", {**TINY, "num_key_value_heads": 2}, {"input_ids": IDS}),
}


def traced(source, params, inputs):
    model = build_for_shapes(ModelSpec(name=source, params=params)).module
    return model, graphcost.trace(model, inputs)


@pytest.mark.parametrize("case", list(FOREIGN) + ["resnet18"])
def test_every_mac_is_placed_once(case):
    if case == "resnet18":
        model = build_for_shapes(ModelSpec(name="torchvision:resnet18")).module
        inputs = (1, 3, 64, 64)
        t = graphcost.trace(model, inputs)
    else:
        model, t = traced(*FOREIGN[case])
        inputs = FOREIGN[case][2]
    m = map_trace(t, A)
    c = m.coverage
    assert c.analog_macs + c.digital_macs == c.total_macs == graphcost.analyze(model, inputs).macs
    assert c.analog_macs > 0 and not m.notes, m.notes  # every weight layer exact, no per-layer notes
    if case in ("gpt2", "bert", "vit", "llama", "whisper", "swin", "clip"):
        assert c.digital_macs > 0  # attention's QK^T and AV on the digital unit
    resources = {entry["resource"] for entry in m.to_dict()["layers"]}
    assert resources <= {"analog", "digital"} and "analog" in resources


def test_gpt2_lm_head_is_on_arrays_exactly_once():
    model, t = traced(*FOREIGN["gpt2"])
    m = map_trace(t, A)
    head = [layer for layer in m.layers if layer.name == "transformer.wte"]
    assert len(head) == 1 and head[0].calls == 1 and head[0].op == "linear"  # the lookup stays digital
    assert (head[0].rows, head[0].cols) == (64, 1000 * A.columns_per_weight)
    assert head[0].mvms == 16 and head[0].macs == 16 * 64 * 1000
    lookups = [g for g in m.digital if g.name == "transformer.wte"]
    assert lookups and lookups[0].work.lookup_elements == 16 * 64  # one memory read per looked-up element
    assert m.embedding_elements == (1000 + 1024) * 64  # token and position tables in digital memory


def test_hf_conv1d_maps_to_the_tiles_of_the_transposed_linear():
    from transformers.pytorch_utils import Conv1D

    conv1d = Conv1D(192, 64)  # nf=192 outputs, nx=64 inputs: weight (64, 192)
    linear = nn.Linear(64, 192)
    assert geometry_of_module(conv1d) == geometry_of_module(linear)
    for array in (A, ArraySpec(32, 48, weight_bits=4, cell_bits=1)):
        assert tile_layer(geometry_of_module(conv1d), array, "dense") == tile_layer(geometry_of_module(linear), array,
                                                                                  "dense")
    _, t = traced(*FOREIGN["gpt2"])
    m = map_trace(t, A)
    c_attn = m.layer("transformer.h.0.attn.c_attn")
    reference = map_trace(graphcost.trace(nn.Linear(64, 192), (16, 64)), A).layers[0]
    assert (c_attn.rows, c_attn.cols, c_attn.tiles, c_attn.mvms) == (reference.rows, reference.cols, reference.tiles,
                                                                     reference.mvms)


def test_map_prints_no_per_layer_notes(capsys):
    args = ["map", "hf:gpt2:causal-lm"] + [x for k, v in GPT2_TINY.items() for x in ("--param", f"{k}={v}")]
    rc, out, err = run(capsys, *args, "--input", "input_ids=1x16:int64", "--format", "json")
    assert rc == 0, err
    assert "note:" not in err
    d = json.loads(out)
    assert d["coverage"]["analog_macs"] + d["coverage"]["digital_macs"] == d["coverage"]["total_macs"]
    assert {entry["resource"] for entry in d["layers"]} == {"analog", "digital"}
    assert d["chips"] == {"count": 1, "arrays_per_chip": None, "link_energy_j_per_token": 0.0}


# --------------------------------------------------------------------------- generation by hand
#: no leakage and no interconnect: every remaining term is a count times a constant
HAND_TECH = replace(TECH_PRESETS["rram-22nm"], leakage_w_per_array=0.0, leakage_w_per_adc=0.0,
                    wire_energy_j_per_bit_mm=0.0, interconnect_energy_j_per_bit=0.0)
D, HEADS, FFN, VOCAB, P, G = 64, 2, 128, 100, 8, 4
HEAD_DIM = D // HEADS
#: (inputs, outputs) of the weight layers of one decode token: c_attn, c_proj, c_fc, mlp c_proj, tied head
MATRICES = [(D, 3 * D), (D, D), (D, FFN), (FFN, D), (D, VOCAB)]


def analog_energy_per_mvm(rows, outputs, tech, array):
    """One MVM of a ``rows x outputs`` layer that fits one row tile (rows <= 256), by the energy model's terms."""
    cols = outputs * array.columns_per_weight
    cycles = tech.input_cycles(array.dac_bits)
    arrays_side = -(-cols // array.cols)
    column_s = tech.column_siemens(rows)
    return (cols * cycles * (tech.adc_energy_j(array.adc_bits, column_s) + tech.shift_add_energy_j_per_op)
            + rows * arrays_side * cycles * tech.row_drive_energy_j
            + rows * cols * cycles * tech.cell_read_energy_j
            + (rows * tech.buffer_read_energy_j_per_byte + outputs * tech.buffer_write_energy_j_per_byte)
            * tech.activation_bits / 8)


def one_layer(**request):
    spec = ModelSpec(name="hf:gpt2:causal-lm", params=ONE_LAYER)
    return run_map(MapRequest(spec, A, tech=HAND_TECH, generate=GenerateSpec(P, G), **request))


def test_one_layer_decoder_generation_by_hand():
    result = one_layer()
    d = result.to_dict()
    # arrays: 64 rows fit one row tile; columns = outputs x 8 (4 slices x differential) over 256
    assert d["arrays_used"] == sum(-(-o * 8 // 256) for _, o in MATRICES) == 6 + 2 + 4 + 2 + 4
    # prefill of P tokens: analog MACs are P x the weights; QK^T and AV digital, causal over P keys
    assert d["coverage"]["analog_macs"] == P * sum(i * o for i, o in MATRICES)
    assert d["coverage"]["digital_macs"] == 2 * HEADS * P * P * HEAD_DIM
    g = d["generation"]
    assert (g["prompt_tokens"], g["generated_tokens"]) == (P, G)
    # KV cache at the end, P+G-1 tokens (the last one is never read back): K and V x 1 layer x 2 heads x 32
    # x 11 tokens x 1 byte (8-bit)
    assert g["kv_cache_bytes"] == 2 * 1 * HEADS * HEAD_DIM * (P + G - 1) * 1 == 1408
    assert g["kv_cache_location"] == "sram"
    # the step making token G reads token G-1 against a cache of P+G-2: QK^T and AV over P+G-1 keys
    last = result.generation.last
    assert last.context == P + G - 2
    step = _decode_mapping(P + G - 2)
    assert step.coverage.digital_macs == 2 * HEADS * (P + G - 1) * HEAD_DIM
    assert step.coverage.analog_macs == sum(i * o for i, o in MATRICES)
    # energy per token, by hand: one MVM per weight layer, the digital unit's MACs and element ops,
    # two embedding rows read, one token's K and V written and the whole cache read from SRAM
    t = HAND_TECH
    analog = sum(analog_energy_per_mvm(i, o, t, A) for i, o in MATRICES)
    ops = sum(group.work.ops for group in step.digital)
    digital = (step.coverage.digital_macs * t.digital_mac_energy_j + ops * t.digital_op_energy_j
               + 2 * D * t.sram_read_energy_j_per_byte)
    kv = 2 * HEADS * HEAD_DIM * t.sram_write_energy_j_per_byte + 2 * HEADS * HEAD_DIM * (P + G - 1) \
        * t.sram_read_energy_j_per_byte
    assert g["energy_j_per_token"] == pytest.approx(analog + digital + kv, rel=1e-9)
    assert g["ttft_s"] == pytest.approx(result.performance.latency_s)
    assert g["tokens_per_s"] == pytest.approx(1 / g["decode_s_per_token_last"])


def _decode_mapping(context):
    from graphcost.crossbar.generation import DecodeStep, kv_shape

    model = build_for_shapes(ModelSpec(name="hf:gpt2:causal-lm", params=ONE_LAYER)).module
    return map_trace(DecodeStep(model, context, kv_shape(model.config)).trace(1), A)


def test_decode_between_captures_is_the_captured_line():
    result = one_layer()
    gen = result.generation
    middle = _decode_mapping(P + 1)  # a third capture, between the two the figures come from
    assert middle.coverage.digital_macs == 2 * HEADS * (P + 2) * HEAD_DIM
    from graphcost.crossbar.energy import energy
    from graphcost.crossbar.generation import step_of
    from graphcost.crossbar.perf import performance

    perf = performance(middle, ChipSpec(), tech=HAND_TECH)
    captured = step_of(P + 1, perf, energy(perf, HAND_TECH))
    assert gen._line("energy_j", P + 1) == pytest.approx(captured.energy_j, rel=1e-9)
    assert gen._line("latency_s", P + 1) == pytest.approx(captured.latency_s, rel=1e-9)


def test_decode_energy_grows_linearly_with_context_under_digital_attention_and_is_flat_past_the_window():
    digital = one_layer().generation
    contexts = [8, 100, 1000, 3000]
    e = [digital.energy_j_per_token(c) for c in contexts]
    slopes = [(e[i + 1] - e[i]) / (contexts[i + 1] - contexts[i]) for i in range(3)]
    assert slopes[0] > 0 and slopes == pytest.approx([slopes[0]] * 3, rel=1e-6)
    window = replace(HAND_TECH, gain_cell_window_tokens=64)
    spec = ModelSpec(name="hf:gpt2:causal-lm", params=ONE_LAYER)
    gain = run_map(MapRequest(spec, A, tech=window, generate=GenerateSpec(P, G), attention="gain-cell")).generation
    below = [gain.energy_j_per_token(c) for c in (16, 32)]
    assert below[1] > below[0]  # filling the window
    full = [gain.energy_j_per_token(c) for c in (64, 500, 5000)]
    assert full == pytest.approx([full[0]] * 3, rel=1e-12)  # the window is full: flat
    assert gain.to_dict()["kv_cache_location"] == "gain-cell"


def test_encoder_decoder_generates_with_its_cross_attention_cache():
    params = {"num_layers": 2, "d_model": 64, "num_heads": 4, "d_kv": 16, "d_ff": 128, "vocab_size": 1000}
    result = run_map(MapRequest(ModelSpec(name="hf:t5", params=params), A, generate=GenerateSpec(16, 8)))
    gen = result.generation
    # prefill: the encoder over 16 tokens and the decoder's start token; steps attend to 16 prompt tokens + their own
    assert (gen.first.context, gen.last.context) == (16 + 1, 16 + 7)
    g = result.to_dict()["generation"]
    assert g["kv_cache_bytes"] == 2 * 2 * 4 * 16 * (16 + 8)  # self (8 tokens) and cross (16) K and V, 1 byte
    assert [p["context"] for p in g["by_context"]][0] == 17 and g["decode_s_per_token_first"] > 0
    from graphcost.crossbar.generation import DecodeStep, kv_shape

    model = build_for_shapes(ModelSpec(name="hf:t5", params=params)).module
    step = map_trace(DecodeStep(model, 4, kv_shape(model.config), encoder_tokens=16).trace(1), A)
    # QK^T and AV of 2 decoder layers x 4 heads x 16: self over 4 cached + 1 new, cross over the 16 prompt tokens
    assert step.coverage.digital_macs == 2 * 2 * 4 * 16 * ((4 + 1) + 16)


# --------------------------------------------------------------------------- gain-cell attention vs Leroux et al.
def test_gain_cell_gpt2_layer_within_2x_of_leroux_2025():
    """GPT-2's attention (12 heads of 64) at a full window of 1024: per token and layer Leroux et al.
    report 73.8 nJ (QK^T 18 %, AV 11 %, digital and routing 65 %, DAC 5 %) and 65 ns."""
    from graphcost.crossbar.energy import energy, work_energy_j
    from graphcost.crossbar.generation import DecodeStep, kv_shape
    from graphcost.crossbar.perf import performance

    params = {"n_layer": 1, "n_embd": 768, "n_head": 12, "vocab_size": 100, "n_positions": 1100,
              "bos_token_id": 0, "eos_token_id": 0}
    model = build_for_shapes(ModelSpec(name="hf:gpt2:causal-lm", params=params)).module
    step = DecodeStep(model, 1023, kv_shape(model.config))
    tech = TECH_PRESETS["rram-22nm"]
    m = map_trace(step.trace(1), A, attention="gain-cell")
    cells = [g for g in m.digital if g.resource == "gain-cell"]
    work = sum((g.work for g in cells), type(cells[0].work)())
    assert work.gain_cell_macs == 12 * 2 * 1024 * 64
    gain = work_energy_j(work, tech)["gain_cell"]
    # the digital unit's share of attention: the score ops around the gain-cell arrays (softmax's place)
    attention_digital = sum(work_energy_j(g.work, tech)["digital"] for g in m.digital if g.name.endswith(".attn"))
    total = gain + attention_digital
    reference = 12 * (LEROUX_2025["qk_j"] + LEROUX_2025["av_j"] + LEROUX_2025["digital_routing_j"]
                      + LEROUX_2025["dac_j"])
    assert reference == pytest.approx(73.8e-9)
    assert reference / 2 <= total <= 2 * reference
    mac_share = work.gain_cell_macs * tech.gain_cell_energy_j_per_mac / total
    assert abs(mac_share - (1.12 + 0.70) / 6.15) <= 0.15
    perf = performance(m, ChipSpec(), tech=tech)
    steps_s = work.gain_cell_steps * tech.gain_cell_step_ns * 1e-9
    assert work.gain_cell_steps == 2  # one query through QK^T, then through AV
    assert LEROUX_2025["layer_ns"] * 1e-9 / 2 <= steps_s <= 2 * LEROUX_2025["layer_ns"] * 1e-9
    assert perf.digital_s >= steps_s


# --------------------------------------------------------------------------- chips
def test_a_model_larger_than_a_chip_is_cut_at_layer_boundaries():
    spec = ModelSpec(name="hf:gpt2:causal-lm", params=ONE_LAYER)
    result = run_map(MapRequest(spec, A, chip=ChipSpec(arrays_per_chip=6), tech=HAND_TECH,
                                generate=GenerateSpec(P, G)))
    d = result.to_dict()
    # layers in order: tied head (4 arrays, called last), c_attn 6, c_proj 2, c_fc 4, c_proj 2 -> 4 | 6 | 2+4 | 2
    assert [entry.get("chip") for entry in d["layers"] if entry["resource"] == "analog"] == [0, 1, 2, 2, 3]
    assert d["chips"]["count"] == 4 and d["chips"]["arrays_per_chip"] == 6
    assert d["chips"]["link_energy_j_per_token"] > 0
    one_chip = one_layer().to_dict()
    assert d["generation"]["energy_j_per_token"] > one_chip["generation"]["energy_j_per_token"]


# --------------------------------------------------------------------------- bad input
GPT2_ARGS = ["hf:gpt2:causal-lm"] + [x for k, v in ONE_LAYER.items() for x in ("--param", f"{k}={v}")]


@pytest.mark.parametrize("args, needle", [
    (["hf:bert", "--param", "num_hidden_layers=1", "--param", "hidden_size=32", "--param", "num_attention_heads=2",
      "--param", "intermediate_size=32", "--generate", "8+4"], "encoder"),
    (GPT2_ARGS + ["--generate", "0+0"], "--generate"),
    (GPT2_ARGS + ["--generate", "8+4", "--batch", "-2"], "--batch"),
    (GPT2_ARGS + ["--attention", "sram"], "--attention"),
    (GPT2_ARGS + ["--generate", "8+4", "--chip-arrays", "3"], "more than one chip"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, args, needle):
    rc, out, err = run(capsys, "map", *args, "--format", "json")
    lines = [line for line in err.strip().splitlines() if not line.startswith("[transformers]")]
    assert rc == 2 and out == "" and len(lines) == 1 and needle in lines[0], err
