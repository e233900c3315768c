"""Capture by one real forward, for models whose work depends on values (NMS, expert routing, early exits).

Meta and fake tensors carry shapes, not values: a model that decides what to run from its data
(torchvision detectors keep the boxes NMS keeps, a mixture-of-experts layer runs the experts its
router picks) cannot run on them by construction. :func:`eager_capture` runs ``forward`` once on
real tensors, recorded by the same module hooks and dispatch mode as the meta capture
(:func:`graphcost.capture_dispatch.record_forward`), so the same kind of graph comes out: leaf
modules with a formula one node each, every other aten op one node costed by torch's formulas,
parameters fetched by ``get_attr`` of the model's own names.

Its costs hold for these input values: the inputs are drawn at random from each
:class:`~graphcost.inputs.InputSpec` (seeded: floats uniform in [0, 1), integer inputs zeros, ones
for a ``*mask``), or the user's own example tensors as given. A model built on the meta device
runs on seeded stand-in weights (each module's own ``reset_parameters`` where it has one, else
normal with std 0.02); its ``Parameter`` objects stay the model's own. Unlike the other captures it
allocates: every activation stays alive until the capture ends (the recorder knows a tensor by its
identity), so its peak memory is the sum of the forward's activations.

>>> import torch
>>> class Gate(torch.nn.Module):  # runs its second layer only when the first one's mean is positive
...     def __init__(self):
...         super().__init__(); self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
...     def forward(self, x):
...         y = self.a(x)
...         return self.b(y) if y.mean() > -10 else y
>>> captured = eager_capture(Gate(), {"x": torch.ones(1, 4)}, torch.float32, lambda m, path: path in ("a", "b"))
>>> [n.target for n in captured.graph.nodes if n.op == "call_module"]
['a', 'b']
"""
from __future__ import annotations

import copy
import itertools
from typing import Any, Dict, Optional

import torch
from torch import nn

from .capture_dispatch import IsLeaf, record_forward
from .errors import UserError
from .inputs import InputSpec, describe, map_leaves
from .schema import Captured


class EagerCaptureFailed(UserError):
    """The model's forward raised on real inputs (the message names the layer and quotes the model's error)."""


def eager_capture(model: nn.Module, inputs: Dict[str, Any], dtype: torch.dtype, is_leaf: IsLeaf,
                  custom: Optional[Dict] = None, seed: int = 0) -> Captured:
    """Run ``model(**inputs)`` once on real tensors; return its graph of module calls and aten ops.

    Parameters
    ----------
    model : torch.nn.Module
        The model, in the mode it is captured in (real weights, or on the meta device).
    inputs : dict
        ``forward`` arguments by name: :class:`~graphcost.inputs.InputSpec` (random values drawn
        for it), example tensors (used as given), or lists / tuples of them.
    dtype : torch.dtype
        The dtype of an input given without one.
    is_leaf : callable
        ``is_leaf(module, path)``: whether a submodule is one node (costed whole) or traced into.
    custom : dict, optional
        Per-call formula overrides.
    seed : int
        Seeds the inputs drawn and the stand-in weights of a model on the meta device.

    Returns
    -------
    Captured

    Raises
    ------
    EagerCaptureFailed
        If ``forward`` raises: one line naming the layer and quoting the model's own message.
    """
    generator = torch.Generator().manual_seed(seed)
    device = _real_device(model)
    values = {name: map_leaves(lambda leaf, name=name: _draw(name, leaf, dtype, device, generator), value)
              for name, value in inputs.items()}
    seen = _real_state(model, seed)
    with torch.random.fork_rng(devices=[]):  # the model's own random draws (dropout is off: eval mode)
        torch.manual_seed(seed)
        return record_forward(model, values, lambda kwargs: torch.func.functional_call(
            model, seen, (), kwargs, tie_weights=True, strict=False), seen, is_leaf, custom, EagerCaptureFailed)


def _real_device(model: nn.Module) -> torch.device:
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.device.type != "meta":
            return t.device
    return torch.device("cpu")


def _draw(name: str, value, dtype: torch.dtype, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """A real input: an example tensor as given (moved to the model's device), else values drawn for its spec."""
    if isinstance(value, torch.Tensor) and value.device.type != "meta" and not _is_fake(value):
        return value.to(device)
    spec: InputSpec = describe(value, dtype)
    if spec.dtype.is_floating_point or spec.dtype.is_complex:
        return torch.rand(spec.shape, generator=generator).to(device=device, dtype=spec.dtype)
    fill = 1 if name.lower().endswith("mask") else 0  # all positions attended; id 0 exists in every vocabulary
    return torch.full(spec.shape, fill, dtype=spec.dtype, device=device)


def _is_fake(t: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(t, FakeTensor)


def _real_state(model: nn.Module, seed: int) -> Dict[str, torch.Tensor]:
    """Every parameter and buffer by name (tied names too): the model's own where they hold values,
    else a seeded stand-in materialised on the CPU (one per tensor, so tied names stay tied)."""
    named = dict(itertools.chain(model.named_parameters(remove_duplicate=False),
                                 model.named_buffers(remove_duplicate=False)))
    if all(t.device.type != "meta" for t in named.values()):
        return named
    stand_in = _materialised(model, seed)
    replacement = dict(itertools.chain(stand_in.named_parameters(remove_duplicate=False),
                                       stand_in.named_buffers(remove_duplicate=False)))
    return {name: replacement[name] if t.device.type == "meta" else t for name, t in named.items()}


def _materialised(model: nn.Module, seed: int) -> nn.Module:
    """A copy of a meta-device model with real, seeded weights: normal (std 0.02) everywhere, zero
    buffers (one for variances and frozen scales), then each module's own ``reset_parameters``
    (convolutions, norms, running statistics)."""
    clone = copy.deepcopy(model).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for p in clone.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
        for name, b in clone.named_buffers():  # frozen norms' statistics: identity, not a division by zero
            b.fill_(1 if name.endswith(("running_var", "weight")) else 0)
        for module in clone.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    return clone
