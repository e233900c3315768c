"""graphcost vs FlopCounterMode on HF models of every modality, on the inputs graphcost picks by itself
(the README table): ``graphcost analyze hf:MODEL`` with no ``--input``.

Each model is transformers' default config (random weights, nothing downloaded); graphcost captures
it on the meta device on its default inputs (from ``main_input_name`` and the config); the
reference is FlopCounterMode on a fake-tensor forward of the same config with
``attn_implementation="eager"`` on those very inputs (real weights where a weight-normed convolution
computes on them: wav2vec2). Prints a Markdown table.

    nice -n 10 python benchmarks/hf_default_inputs.py
"""
from __future__ import annotations

import warnings

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

import graphcost
from graphcost.resolve import ModelSpec, build, build_for_shapes

SOURCES = ["hf:whisper", "hf:wav2vec2", "hf:clip", "hf:detr", "hf:segformer:semantic-seg", "hf:bart"]
REAL_WEIGHTS = {"hf:wav2vec2"}


def flop_counter_macs(source: str, inputs: dict) -> int:
    make = build if source in REAL_WEIGHTS else build_for_shapes
    model = make(ModelSpec(name=source, params={"attn_implementation": "eager"})).module.eval()
    device = next(model.parameters()).device
    with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
        kwargs = {name: torch.zeros(spec.shape, dtype=spec.dtype or torch.float32, device=device)
                  for name, spec in inputs.items()}
        with FlopCounterMode(display=False) as counter:
            model(**kwargs)
    return counter.get_total_flops() // 2


def main():
    warnings.filterwarnings("ignore")
    print("| model | default inputs | params | graphcost MACs | FlopCounterMode (eager attention) | complete |")
    print("|---|---|---|---|---|---|")
    for source in SOURCES:
        built = build_for_shapes(ModelSpec(name=source))
        a = graphcost.analyze(built.module, built.call_inputs)
        reference = flop_counter_macs(source, built.call_inputs)
        shown = ", ".join(f"{name} {'x'.join(map(str, spec.shape))}" for name, spec in built.call_inputs.items())
        print(f"| `{source}` | {shown} | {a.params:,} | {a.macs:,} | {reference:,} | {str(a.complete).lower()} |",
              flush=True)


if __name__ == "__main__":
    main()
