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

from hf_models import print_table  # one table and one reference for both HF benchmarks

SOURCES = ["hf:whisper", "hf:wav2vec2", "hf:clip", "hf:detr", "hf:segformer:semantic-seg", "hf:bart"]
REAL_WEIGHTS = {"hf:wav2vec2"}


def main():
    print_table(SOURCES, "default inputs", REAL_WEIGHTS)


if __name__ == "__main__":
    main()
