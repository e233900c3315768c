"""More Hugging Face families, tiny configs: graphcost's dispatch capture and torch.export vs FlopCounterMode.

Each family at 2 layers, hidden 64 (or the family's names for those), 32 token ids (16 decoder ids for
bart; a 64x64 image for swin and convnext), built on the meta device. For each: MACs and ``complete``
by ``tracer="dispatch"`` and ``tracer="export"`` with their wall times (the second of two runs each), and FlopCounterMode on an eager-attention forward on fake tensors (tests/oracles.py).

    nice -n 10 python benchmarks/hf_tiny_families.py [FAMILY ...]
"""
from __future__ import annotations

import logging
import os
import sys
import time
import warnings

import torch

import graphcost
from graphcost.inputs import InputSpec
from graphcost.resolve import ModelSpec, build_for_shapes

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from oracles import eager_macs  # noqa: E402

TINY = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
        "vocab_size": 1000}
IDS = {"input_ids": InputSpec((1, 32), torch.int64)}
IMAGE = {"pixel_values": InputSpec((1, 3, 64, 64))}
FAMILIES = {  # name: (hf source, config parameters, inputs)
    "roberta": ("hf:roberta", TINY, IDS),
    "distilbert": ("hf:distilbert", {"n_layers": 2, "dim": 64, "n_heads": 4, "hidden_dim": 128, "vocab_size": 1000},
                   IDS),
    "albert": ("hf:albert", {**TINY, "embedding_size": 32}, IDS),
    "electra": ("hf:electra", {**TINY, "embedding_size": 32}, IDS),
    "mistral": ("hf:mistral", {**TINY, "num_key_value_heads": 2}, IDS),
    "qwen2": ("hf:qwen2", {**TINY, "num_key_value_heads": 2}, IDS),
    "phi": ("hf:phi", TINY, IDS),
    "gemma": ("hf:gemma", {**TINY, "num_key_value_heads": 2, "head_dim": 16}, IDS),
    "deberta-v2": ("hf:deberta-v2", TINY, IDS),
    "mobilebert": ("hf:mobilebert", {**TINY, "embedding_size": 32, "intermediate_size": 64, "true_hidden_size": 32,
                                     "intra_bottleneck_size": 32}, IDS),
    "bart": ("hf:bart", {"encoder_layers": 2, "decoder_layers": 2, "d_model": 64, "encoder_attention_heads": 4,
                         "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128,
                         "vocab_size": 1000}, {**IDS, "decoder_input_ids": InputSpec((1, 16), torch.int64)}),
    "gpt_neox": ("hf:gpt_neox", TINY, IDS),
    "opt": ("hf:opt", {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "ffn_dim": 128,
                       "vocab_size": 1000, "word_embed_proj_dim": 64}, IDS),
    "swin": ("hf:swin:image-cls", {"embed_dim": 16, "depths": [1, 1], "num_heads": [2, 2], "image_size": 64}, IMAGE),
    "convnext": ("hf:convnext:image-cls", {"hidden_sizes": [16, 32], "depths": [1, 1], "num_stages": 2}, IMAGE),
}


def capture(model, inputs, tracer: str) -> str:
    """MACs, completeness and the wall time of the second of two runs (the first warms caches up)."""
    try:
        graphcost.analyze(model, inputs, tracer=tracer)
        start = time.perf_counter()
        a = graphcost.analyze(model, inputs, tracer=tracer)
    except graphcost.UserError as exc:
        return f"fails: {str(exc)[:60]}"
    return f"{a.macs:,} ({'complete' if a.complete else 'INCOMPLETE'}, {time.perf_counter() - start:.2f} s)"


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)  # transformers' notes on tiny configs
    names = sys.argv[1:] or list(FAMILIES)
    source, params, inputs = FAMILIES[names[0]]
    for tracer in ("dispatch", "export"):  # the process's first captures import and register lazily
        capture(build_for_shapes(ModelSpec(name=source, params=params)).module, inputs, tracer)
    print("| family | dispatch MACs | export MACs | FlopCounterMode (eager attention) |\n|---|---|---|---|")
    for name in names:
        source, params, inputs = FAMILIES[name]
        model = build_for_shapes(ModelSpec(name=source, params=params)).module
        reference = build_for_shapes(ModelSpec(name=source, params={**params, "attn_implementation": "eager"})).module
        examples = {k: torch.zeros(v.shape, dtype=v.dtype or torch.float32) for k, v in inputs.items()}
        print(f"| {name} | {capture(model, inputs, 'dispatch')} | {capture(model, inputs, 'export')} | "
              f"{eager_macs(reference, **examples):,} |", flush=True)


if __name__ == "__main__":
    main()
