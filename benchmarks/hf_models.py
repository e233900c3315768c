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
from graphcost.resolve import ModelSpec, build, build_for_shapes

SOURCES = ["hf:bert", "hf:gpt2:causal-lm", "hf:llama", "hf:t5", "hf:vit:image-cls"]


def flop_counter_macs(source: str, inputs: dict, real_weights: bool = False) -> int:
    """MACs of an eager-attention forward of ``source`` on fake tensors (FLOPs // 2); ``real_weights``
    builds it with real (random) weights, for a model that computes on them (wav2vec2's weight norm)."""
    make = build if real_weights else build_for_shapes
    model = make(ModelSpec(name=source, params={"attn_implementation": "eager"})).module.eval()
    device = next(model.parameters()).device
    with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
        kwargs = {name: torch.zeros(spec.shape, dtype=spec.dtype or torch.float32, device=device)
                  for name, spec in inputs.items()}
        with FlopCounterMode(display=False) as counter:
            model(**kwargs)
    return counter.get_total_flops() // 2


def print_table(sources, input_header: str, real_weights=frozenset()) -> None:
    """The Markdown table: each source on its default inputs, graphcost's MACs beside FlopCounterMode's."""
    warnings.filterwarnings("ignore")
    print(f"| model | {input_header} | params | graphcost MACs | FlopCounterMode (eager attention) | complete |")
    print("|---|---|---|---|---|---|")
    for source in sources:
        built = build_for_shapes(ModelSpec(name=source))
        a = graphcost.analyze(built.module, built.call_inputs)
        reference = flop_counter_macs(source, built.call_inputs, source in real_weights)
        shown = ", ".join(f"{name} {'x'.join(map(str, spec.shape))}" for name, spec in built.call_inputs.items())
        print(f"| `{source}` | {shown} | {a.params:,} | {a.macs:,} | {reference:,} | {str(a.complete).lower()} |",
              flush=True)


def main():
    print_table(SOURCES, "input")


if __name__ == "__main__":
    main()
