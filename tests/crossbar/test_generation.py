"""Generation on encoder-decoders on any input (Whisper; T5 and BART on tokens): the encoder runs once, in the prefill (time to
first token); a decode step attends to a fixed cross-attention cache of the encoder's length and a growing
self-attention cache, its MACs equal to FlopCounterMode of one real decode step with a real cache of that
length; the decode step's layers carry the prefill's names. Tiny configs, no download."""
import inspect

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from clirun import run
from graphcost.crossbar.generation import (DecodeStep, GenerateSpec, context_note, kv_shape, prefill_inputs,
                                           token_layout)
from graphcost.errors import UserError
from graphcost.crossbar.mapping import map_trace
from graphcost.crossbar.run import MapRequest, run_map
from graphcost.crossbar.specs import ArraySpec
from graphcost.resolve import ModelSpec, build, build_for_shapes

A = ArraySpec(256, 256)
E, P, G = 16, 4, 8  # encoder outputs (max_source_positions), decoder prompt, generated tokens
D, HEADS, DEC_LAYERS = 64, 4, 2
WHISPER = {"d_model": D, "encoder_layers": 1, "decoder_layers": DEC_LAYERS, "encoder_attention_heads": 2,
           "decoder_attention_heads": HEADS, "encoder_ffn_dim": 128, "decoder_ffn_dim": 96, "num_mel_bins": 16,
           "max_source_positions": E, "max_target_positions": 64, "vocab_size": 1000, "pad_token_id": 0,
           "bos_token_id": 0, "eos_token_id": 0, "decoder_start_token_id": 0}
SPEECH = ModelSpec(name="hf:whisper:speech-seq2seq", params=WHISPER)
GPT2 = ModelSpec(name="hf:gpt2:causal-lm", params={"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 1000,
                                                    "bos_token_id": 0, "eos_token_id": 0})


#: encoder-decoders on token ids: the prompt (E tokens) is the encoder's, the decoder starts from one token
TEXT = {"bart": {"d_model": D, "encoder_layers": 1, "decoder_layers": DEC_LAYERS, "encoder_attention_heads": 2,
                 "decoder_attention_heads": HEADS, "encoder_ffn_dim": 128, "decoder_ffn_dim": 96, "vocab_size": 1000,
                 "max_position_embeddings": 64},
        "t5": {"num_layers": 1, "num_decoder_layers": DEC_LAYERS, "d_model": D, "num_heads": HEADS, "d_kv": D // HEADS,
               "d_ff": 128, "vocab_size": 1000}}
CASES = {"whisper": SPEECH, **{name: ModelSpec(name=f"hf:{name}:seq2seq-lm", params=p) for name, p in TEXT.items()}}


def whisper_generation(**request):
    return run_map(MapRequest(SPEECH, A, generate=GenerateSpec(P, G, **request)))


def real_model(spec: ModelSpec):
    """The model with real (seeded) weights, attention as explicit matmuls FlopCounterMode counts."""
    torch.manual_seed(0)
    return build(ModelSpec(name=spec.name, params={**spec.params, "attn_implementation": "eager"})).module.eval()


def encoder_inputs(spec: ModelSpec) -> dict:
    """What the encoder reads: Whisper's log-mel features (E outputs), else E prompt tokens."""
    if spec is SPEECH:
        return {"input_features": torch.randn(1, WHISPER["num_mel_bins"], 2 * E)}
    return {"input_ids": torch.zeros(1, E, dtype=torch.long)}


def flop_macs(model, **inputs):
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        out = model(**inputs)
    return counter.get_total_flops() // 2, out


def real_decode_step_macs(spec: ModelSpec, own_tokens: int) -> int:
    """FlopCounterMode of one real decode step: a real prefill of the encoder's inputs and ``own_tokens``
    decoder tokens fills the caches, then one token runs against them, as ``generate`` runs it."""
    model = real_model(spec)
    with torch.no_grad():  # the encoder's state, which graphcost's model does not output (not a prediction)
        encoded = model.get_encoder()(**encoder_inputs(spec)).last_hidden_state
        prefill = model(encoder_outputs=(encoded,), decoder_input_ids=torch.zeros(1, own_tokens, dtype=torch.long),
                        use_cache=True)
    cache = prefill.past_key_values
    assert (cache.self_attention_cache.get_seq_length(), cache.cross_attention_cache.get_seq_length()) == \
        (own_tokens, E)
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    macs, _ = flop_macs(model, encoder_outputs=(encoded,),
                        decoder_input_ids=torch.zeros(1, 1, dtype=torch.long), use_cache=True, **{name: cache})
    return macs


@pytest.mark.parametrize("case", list(CASES))
def test_decode_step_macs_equal_flop_counter_of_a_real_step(case):
    spec = CASES[case]
    prompt = P if spec is SPEECH else E
    gen = run_map(MapRequest(spec, A, generate=GenerateSpec(prompt, G))).generation
    layout = gen.layout
    # the step making token G reads token G-1 after the decoder's first tokens and G-2 generated ones; a text
    # model's decoder starts from one token, Whisper's from its P start-of-transcript tokens
    own = (P, P + G - 2) if spec is SPEECH else (1, G - 1)
    assert (layout.encoder_tokens, layout.own_first, layout.own_last) == (E,) + own
    assert (gen.first.context, gen.last.context) == (E + own[0], E + own[1])
    model = build_for_shapes(spec).module
    for tokens in own:
        step = map_trace(DecodeStep(model, tokens, kv_shape(model.config), E).trace(1), A)
        assert step.coverage.total_macs == real_decode_step_macs(spec, tokens)
        # by hand: QK^T and AV of every decoder layer and head, self over own + 1 keys, cross over E
        assert step.coverage.digital_macs == DEC_LAYERS * HEADS * (D // HEADS) * 2 * ((tokens + 1) + E)
        assert not any(".encoder." in layer.name for layer in step.layers)  # the encoder does not run again


def test_whisper_time_to_first_token_includes_the_encoder():
    result = whisper_generation()
    g = result.to_dict()["generation"]
    assert g["ttft_s"] == result.performance.latency_s and g["encoder_tokens"] == E
    # the prefill is the encoder over the features and the decoder over the P prompt tokens: FlopCounterMode
    reference, _ = flop_macs(real_model(SPEECH), **encoder_inputs(SPEECH),
                             decoder_input_ids=torch.zeros(1, P, dtype=torch.long))
    assert result.to_dict()["coverage"]["total_macs"] == reference
    encoder = [layer for layer in result.performance.mapping.layers if ".encoder." in layer.name]
    assert encoder and all(layer.macs > 0 for layer in encoder)
    # the KV cache at the end: self (P + G - 1 tokens read) and cross (E) K and V of every decoder layer, 1 byte
    assert g["kv_cache_bytes"] == 2 * DEC_LAYERS * HEADS * (D // HEADS) * (E + P + G - 1)
    contexts = [p["context"] for p in g["by_context"]]
    assert (contexts[0], contexts[-1]) == (E + P, E + P + G - 2)
    assert g["decode_s_per_token_last"] < g["ttft_s"]


def test_whisper_batch_reads_a_batch_of_features():
    model = build_for_shapes(SPEECH).module
    inputs = prefill_inputs(model, GenerateSpec(P, G, batch=3), build_for_shapes(SPEECH).call_inputs)
    assert {name: spec.shape for name, spec in inputs.items()} == {
        "input_features": (3, WHISPER["num_mel_bins"], 2 * E), "decoder_input_ids": (3, P)}
    one, three = whisper_generation(), whisper_generation(batch=3)
    assert three.to_dict()["coverage"]["total_macs"] == 3 * one.to_dict()["coverage"]["total_macs"]


@pytest.mark.parametrize("spec", [GPT2, SPEECH], ids=["gpt2", "whisper"])
def test_decode_step_layers_carry_the_prefill_names(spec):
    result = run_map(MapRequest(spec, A, generate=GenerateSpec(P, G)))
    prefill = {layer.name for layer in result.performance.mapping.layers}
    model = build_for_shapes(spec).module
    encoder = result.generation.layout.encoder_tokens
    step = map_trace(DecodeStep(model, P, kv_shape(model.config), encoder).trace(1), A)
    decode = {layer.name for layer in step.layers}
    assert decode and decode <= prefill
    # every layer of the decoder runs in both, but the encoder and the projections of its outputs to the
    # cross-attention keys and values run once, in the prefill
    once = (".encoder.", "encoder_attn.k_proj", "encoder_attn.v_proj")
    assert decode == {name for name in prefill if not any(part in name for part in once)}


WHISPER_ARGS = ["hf:whisper:speech-seq2seq"] + [x for k, v in WHISPER.items() for x in ("--param", f"{k}={v}")]


def test_whisper_generate_from_the_cli(capsys):
    import json

    rc, out, err = run(capsys, "map", *WHISPER_ARGS, "--generate", f"{P}+{G}", "--format", "json")
    assert rc == 0, err
    g = json.loads(out)["generation"]
    assert (g["prompt_tokens"], g["generated_tokens"], g["encoder_tokens"]) == (P, G, E)
    assert g["tokens_per_s"] > 0 and g["energy_j_per_token"] > 0
    rc, out, err = run(capsys, "map", *WHISPER_ARGS, "--generate", f"{P}+{G}")
    assert rc == 0 and "encoder outputs (cross-attention cache)" in out and f"{E} tokens" in out, err


@pytest.mark.parametrize("args, needle", [
    (WHISPER_ARGS + ["--generate", "60+8"], "positions"),  # past the decoder's 64 positions
    (["hf:gpt2:causal-lm", "--param", "n_layer=1", "--param", "n_embd=32", "--param", "n_head=2",
      "--generate", "1000+25"], "1025 positions"),  # past GPT-2's 1024 learned positions
    (["digits-cnn", "--generate", "8+4"], "language model"),
    (["hf:vit", "--param", "num_hidden_layers=1", "--param", "hidden_size=32", "--param", "num_attention_heads=2",
      "--param", "intermediate_size=32", "--param", "image_size=32", "--generate", "8+4"], "encoder"),
])
def test_what_cannot_generate_is_refused_in_one_line(capsys, args, needle):
    rc, out, err = run(capsys, "map", *args, "--format", "json")
    lines = [line for line in err.strip().splitlines() if not line.startswith("[transformers]")]
    assert rc == 2 and out == "" and len(lines) == 1 and needle in lines[0], err


def test_gain_cell_window_slides_over_the_decoder_tokens_not_the_encoder_outputs():
    from dataclasses import replace

    from graphcost.crossbar.tech import TECH_PRESETS

    tech = replace(TECH_PRESETS["rram-22nm"], gain_cell_window_tokens=8)  # fewer than the E = 16 encoder outputs
    gen = run_map(MapRequest(SPEECH, A, tech=tech, generate=GenerateSpec(P, G), attention="gain-cell")).generation
    filling = [gen.energy_j_per_token(E + own) for own in (P, P + 2)]
    assert filling[1] > filling[0]  # the decoder's own tokens fill the window, the encoder's stay attended
    full = [gen.energy_j_per_token(E + own) for own in (8, 11, 100)]
    assert full == pytest.approx([full[0]] * 3, rel=1e-12)


def _generate_cache_lengths(spec: ModelSpec, prompt: int, generated: int):
    """The decoder's self-attention cache length at each decode step of transformers' own greedy ``generate``
    (every forward after the prefill)."""
    model, seen = real_model(spec), []

    def record(module, args, kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        seen.append(0 if cache is None else cache.get_seq_length())

    hook = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with torch.no_grad():
            model.generate(torch.ones(1, prompt, dtype=torch.long), max_new_tokens=generated, use_cache=True,
                           min_new_tokens=generated, do_sample=False, decoder_start_token_id=0, pad_token_id=0)
    finally:
        hook.remove()
    return seen[1:]


@pytest.mark.parametrize("case", ["gpt2", "t5"])
def test_first_and_last_step_contexts_are_those_of_transformers_generate(case):
    # one convention for both families: the step making token g reads token g-1 against every token before it,
    # so the last token (G) attends to the decoder's first tokens (GPT-2's prompt, T5's start) and G-1 generated
    t5 = ModelSpec(name="hf:t5:seq2seq-lm", params={**TEXT["t5"], "num_layers": DEC_LAYERS})  # generate's cache
    spec = GPT2 if case == "gpt2" else t5  # counts the encoder's layers
    layout = token_layout(build_for_shapes(spec).module, GenerateSpec(P, G), {})
    steps = _generate_cache_lengths(spec, P, G)
    first_read = P if case == "gpt2" else 1
    assert len(steps) == G - 1
    assert (layout.own_first, layout.own_last) == (steps[0], steps[-1]) == (first_read, first_read + G - 2)
    assert layout.own_final == steps[-1] + 1  # the cache at the end: the last token is never read back


def _tiny(name: str, **params):
    return build_for_shapes(ModelSpec(name=name, params=params)).module


def test_learned_positions_are_refused_and_rotary_ones_noted_past_the_trained_context():
    gpt2 = _tiny("hf:gpt2:causal-lm", n_layer=1, n_embd=32, n_head=2, n_positions=16)
    assert context_note(gpt2, GenerateSpec(8, 8)) is None  # P + G = 16: every position in the table
    with pytest.raises(UserError, match="needs 17 positions; gpt2's learned position table has 16"):
        context_note(gpt2, GenerateSpec(8, 9))
    bart = CASES["bart"]  # 64 positions: the prompt is the encoder's, the decoder starts from one token
    model = build_for_shapes(bart).module
    assert context_note(model, GenerateSpec(64, 63)) is None
    with pytest.raises(UserError, match="65 encoder positions"):
        context_note(model, GenerateSpec(65, 2))
    with pytest.raises(UserError, match="65 decoder positions"):
        context_note(model, GenerateSpec(8, 64))
    assert context_note(build_for_shapes(CASES["t5"]).module, GenerateSpec(5000, 3)) is None  # relative positions
    llama = dict(num_hidden_layers=1, hidden_size=32, intermediate_size=32, num_attention_heads=2,
                 num_key_value_heads=2, vocab_size=100, max_position_embeddings=16)
    assert "beyond llama's trained context of 16" in context_note(_tiny("hf:llama", **llama), GenerateSpec(12, 8))
    result = run_map(MapRequest(ModelSpec(name="hf:llama", params=llama), A, generate=GenerateSpec(12, 8)))
    assert any("trained context" in note for note in result.notes)  # rotary: it runs, with the note
