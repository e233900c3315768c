"""graphcost vs FlopCounterMode on Hugging Face transformers at their default configs (the README table).

Each model is what ``graphcost analyze hf:MODEL_TYPE[:TASK]`` builds (transformers' default config,
random weights, on the meta device: nothing allocated) on its default input (128 token ids, decoder
ids too for t5; a 224x224 image for vit). graphcost captures it by ``tracer="auto"`` (fx cannot: the
dispatch capture, one forward on meta tensors) on the default attention backend; the reference is FlopCounterMode on a fake-tensor forward of the same config
with ``attn_implementation="eager"`` (attention as explicit matmuls). Prints a Markdown table.

    nice -n 10 python benchmarks/hf_models.py
"""
from __future__ import annotations

import warnings

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

import graphcost
from graphcost.resolve import ModelSpec, build_for_shapes

SOURCES = ["hf:bert", "hf:gpt2:causal-lm", "hf:llama", "hf:t5", "hf:vit:image-cls"]


def flop_counter_macs(source: str, inputs: dict) -> int:
    """MACs of an eager-attention forward of ``source`` on fake tensors (FLOPs // 2)."""
    model = build_for_shapes(ModelSpec(name=source, params={"attn_implementation": "eager"})).module.eval()
    with FakeTensorMode(allow_non_fake_inputs=True):
        kwargs = {name: torch.zeros(spec.shape, dtype=spec.dtype or torch.float32, device="meta")
                  for name, spec in inputs.items()}
        with FlopCounterMode(display=False) as counter:
            model(**kwargs)
    return counter.get_total_flops() // 2


def main():
    warnings.filterwarnings("ignore")
    print("| model | input | params | graphcost MACs | FlopCounterMode (eager attention) | complete |")
    print("|---|---|---|---|---|---|")
    for source in SOURCES:
        built = build_for_shapes(ModelSpec(name=source))
        a = graphcost.analyze(built.module, built.call_inputs)
        reference = flop_counter_macs(source, built.call_inputs)
        shown = ", ".join(f"{name} {'x'.join(map(str, spec.shape))}" for name, spec in built.call_inputs.items())
        print(f"| `{source}` | {shown} | {a.params:,} | {a.macs:,} | {reference:,} | {str(a.complete).lower()} |")


if __name__ == "__main__":
    main()
