"""``--data random``: inputs drawn to the model's input specs (standard normal floats, token ids in
``[0, vocab)``), no labels: only the label-free fidelity against the float model is scored. The
``train`` split draws with another seed than ``test``.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from .base import DataSource, Samples, check_samples, check_split, input_layout, random_like, register_source

#: Samples drawn when no count is given.
RANDOM_SAMPLES = 8


@register_source
class RandomSource(DataSource):
    """Random inputs for any model; ``classes`` (where given) bounds the token ids."""

    scheme = "random"
    task = "none"

    def load(self, model_inputs: Any, samples: Optional[int] = None, *, split: str = "test", seed: int = 0,
             classes: Optional[int] = None) -> Samples:
        check_samples(samples)
        check_split(split)
        n = samples or RANDOM_SAMPLES
        gen = torch.Generator().manual_seed(seed * 2 + (split == "train"))
        vocab = classes or 256
        args, kwargs = input_layout(model_inputs)
        return Samples(tuple(random_like(s, n, gen, vocab) for s in args),
                       {k: random_like(s, n, gen, vocab) for k, s in kwargs.items()}, None, self.task, None)
