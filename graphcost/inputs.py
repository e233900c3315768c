"""What a model is called with: shapes, typed specs, example tensors, positional or by keyword.

``analyze(model, inputs)`` and ``trace(model, inputs)`` accept

* a shape tuple ``(1, 3, 224, 224)``: one float input at the model's dtype (as always);
* :class:`InputSpec` ``(shape, dtype)``: e.g. token ids ``InputSpec((1, 128), torch.int64)``;
* an example tensor (real, fake or meta): its shape and dtype, never its values;
* a tuple / list of these: positional inputs;
* a dict ``{name: input}``: keyword inputs (``{"input_ids": ..., "attention_mask": ...}``);
* inside those, a list or tuple of inputs (not a shape) is one argument holding them, nested as
  deep as ``forward`` takes it: ``([(3, 320, 320)],)`` calls a torchvision detector with a list
  of one image.

Optional ``forward`` arguments not given keep their defaults.

>>> args, kwargs = split_inputs(((1, 3, 8, 8), {"mask": InputSpec((1, 8), torch.bool)}))
>>> args, kwargs
([InputSpec(shape=(1, 3, 8, 8), dtype=None)], {'mask': InputSpec(shape=(1, 8), dtype=torch.bool)})
>>> split_inputs(([(3, 32, 32), (3, 16, 16)],))[0]
[[InputSpec(shape=(3, 32, 32), dtype=None), InputSpec(shape=(3, 16, 16), dtype=None)]]
>>> described("images", [InputSpec((3, 32, 32))], torch.float32)
{'images.0': InputSpec(shape=(3, 32, 32), dtype=torch.float32)}
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from .errors import UserError


#: more elements than any tensor can have (torch's storage size overflows long before 2**63 bytes)
MAX_ELEMENTS = 2 ** 48


@dataclass(frozen=True)
class InputSpec:
    """One input tensor by shape and dtype (``dtype=None``: the model's floating-point dtype)."""

    shape: Tuple[int, ...]
    dtype: Optional[torch.dtype] = None

    def __post_init__(self):
        shape = tuple(self.shape)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in shape) or any(s <= 0 for s in shape):
            raise UserError(f"input shape {shape} must be positive integers")
        if math.prod(shape) >= MAX_ELEMENTS:
            raise UserError(f"input shape {shape} has more than 2**48 elements; no tensor that large exists")
        object.__setattr__(self, "shape", shape)
        if self.dtype is not None and not isinstance(self.dtype, torch.dtype):
            raise UserError(f"input dtype must be a torch.dtype, got {self.dtype!r}")


Input = Union[Sequence[int], InputSpec, torch.Tensor]


def _is_shape(value) -> bool:
    return isinstance(value, (tuple, list, torch.Size)) and all(
        isinstance(s, int) and not isinstance(s, bool) for s in value)


def _one(value):
    """One argument: an InputSpec or tensor, or a list / tuple of arguments (nested)."""
    if isinstance(value, (InputSpec, torch.Tensor)):
        return value
    if _is_shape(value):
        return InputSpec(tuple(int(s) for s in value))
    if isinstance(value, (tuple, list)) and value:
        return type(value)(_one(v) for v in value)
    raise UserError(f"an input is a shape tuple, an InputSpec, a tensor or a list of them, not {value!r:.80}")


def map_leaves(fn, value):
    """``value`` with ``fn`` applied to each InputSpec / tensor in it (lists and tuples kept)."""
    if isinstance(value, (tuple, list)):
        return type(value)(map_leaves(fn, v) for v in value)
    return fn(value)


def leaves(name: str, value) -> List[Tuple[str, Union[InputSpec, torch.Tensor]]]:
    """Every InputSpec / tensor of argument ``name``, named ``name`` (a lone one) or by its path (``images.0``)."""
    if not isinstance(value, (tuple, list)):
        return [(name, value)]
    return [leaf for i, v in enumerate(value) for leaf in leaves(f"{name}.{i}", v)]


def described(name: str, value, default_dtype: torch.dtype) -> Dict[str, InputSpec]:
    """The shape and dtype of each tensor argument ``name`` holds, by :func:`leaves`' names."""
    return {path: describe(leaf, default_dtype) for path, leaf in leaves(name, value)}


def split_inputs(inputs: Any) -> Tuple[List[Union[InputSpec, torch.Tensor]], Dict[str, Union[InputSpec, torch.Tensor]]]:
    """Positional and keyword inputs, each an :class:`InputSpec` or an example tensor."""
    if isinstance(inputs, dict):
        return [], {str(k): _one(v) for k, v in inputs.items()}
    if _is_shape(inputs) or isinstance(inputs, (InputSpec, torch.Tensor)):
        return [_one(inputs)], {}
    if isinstance(inputs, (tuple, list)) and inputs:
        args, kwargs = [], {}
        for value in inputs:
            if isinstance(value, dict):
                kwargs.update({str(k): _one(v) for k, v in value.items()})
            else:
                args.append(_one(value))
        return args, kwargs
    raise UserError(f"inputs must be a shape, an InputSpec, a tensor, a tuple or a dict of them, got {inputs!r}")


def bind_inputs(module: torch.nn.Module, args, kwargs) -> Dict[str, Any]:
    """The inputs by ``module.forward``'s argument names, checked against its signature.

    >>> bind_inputs(torch.nn.Linear(3, 2), [InputSpec((1, 3))], {})
    {'input': InputSpec(shape=(1, 3), dtype=None)}
    """
    try:
        return dict(inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments)
    except TypeError as exc:
        raise UserError(f"{type(module).__name__}.forward cannot take these inputs: {exc}") from None


def describe(value: Union[InputSpec, torch.Tensor], default_dtype: torch.dtype) -> InputSpec:
    """The shape and dtype an input will have."""
    if isinstance(value, torch.Tensor):
        return InputSpec(tuple(int(s) for s in value.shape), value.dtype)
    return InputSpec(value.shape, value.dtype or default_dtype)


def fake_input(value, default_dtype: torch.dtype, device: torch.device):
    """An empty tensor like ``value`` (a list of them for a list), to be created inside an active ``FakeTensorMode``."""
    def empty(leaf):
        spec = describe(leaf, default_dtype)
        return torch.empty(spec.shape, dtype=spec.dtype, device=device)
    return map_leaves(empty, value)
