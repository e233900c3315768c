"""tiny-gpt: a GPT-2-style byte-level language model, small enough to train on a CPU in minutes.

The zoo's language-model check case for the crossbar simulator (``--data pydoc``, CPython's own
documentation as bytes): the GPT-2 architecture (Radford et al. 2019, "Language Models are
Unsupervised Multitask Learners": pre-norm transformer decoder blocks, learned position embeddings,
GELU MLP of 4x the width, causal self-attention) at a tiny configuration, written here in plain torch
so it needs no transformers install, with every projection an ``nn.Linear`` (on the arrays) and the
attention's activation-by-activation products and the embeddings digital.

Defaults: vocabulary 256 (bytes), context 64, 2 blocks, width 192, 4 heads; 1.0 M parameters, the low
end of a "small" language model (the shared 2-core CPU it was trained on set the size: minutes of training).
The float and hardware-aware checkpoints shipped in ``crossbar/weights/`` (``tiny_gpt_*.pt``, with
the JSON of how ``graphcost train`` made them) report their held-out perplexity there.

>>> import torch
>>> from graphcost.models import get_model
>>> net = get_model("tiny-gpt")
>>> tuple(net(torch.zeros(2, 64, dtype=torch.long)).shape), sum(p.numel() for p in net.parameters())
((2, 64, 256), 1000704)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .registry import DATASETS, check_int, register_model

__all__ = ["TinyGPT", "tiny_gpt"]


class Block(nn.Module):
    """Pre-norm decoder block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.out = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(n, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(n, t, c))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    """Token and position embeddings, ``layers`` blocks, a final norm and a linear head to ``vocab`` logits."""

    def __init__(self, vocab: int = 256, context: int = 64, layers: int = 2, width: int = 128, heads: int = 4):
        super().__init__()
        for name, value in (("vocab", vocab), ("context", context), ("layers", layers), ("width", width),
                            ("heads", heads)):
            check_int(name, value, 1)
        if width % heads:
            raise ValueError(f"width {width} must be a multiple of heads {heads}")
        self.context = context
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(layers)))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.apply(self._init)
        for block in self.blocks:  # GPT-2: residual projections scaled by 1/sqrt(2 layers)
            nn.init.normal_(block.proj.weight, std=0.02 / math.sqrt(2 * layers))
            nn.init.normal_(block.out.weight, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.tok(ids) + self.pos(positions)
        return self.head(self.ln(self.blocks(x)))


@register_model("tiny-gpt", default_dataset="pydoc")
def tiny_gpt(*, dataset: str = "pydoc", layers: int = 2, width: int = 192, heads: int = 4) -> nn.Module:
    """A GPT-2-style byte-level language model (vocab 256, context 64); ~1.0 M params."""
    preset = DATASETS[dataset]
    if not preset.tokens:
        raise ValueError(f"tiny-gpt reads token ids; the {dataset} preset is images (use pydoc)")
    return TinyGPT(vocab=preset.classes, context=preset.width, layers=layers, width=width, heads=heads)
