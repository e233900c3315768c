"""Model specs: turn what a user names (zoo name, ``torchvision:NAME``, ``pkg.mod:callable``) into a module.

The CLI parses its options into a :class:`ModelSpec`; ``build`` does the rest. Nothing here
traces or counts.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from .errors import UserError

DEFAULT_INPUT = (1, 3, 224, 224)


@dataclass(frozen=True)
class ModelSpec:
    """What to build and at which input shape (``input_shape=None``: the model's default)."""

    name: str = "itnet"
    dataset: Optional[str] = None
    input_shape: Optional[Tuple[int, ...]] = None
    params: Dict[str, Any] = field(default_factory=dict)
    shared: Optional[bool] = None


@dataclass(frozen=True)
class BuiltModel:
    module: nn.Module
    input_shape: Tuple[int, ...]
    label: str
    dataset: Optional[str]


#: Longest literal a model parameter or grid value may be (a width, a tuple of iterations: a few characters).
MAX_LITERAL_CHARS = 1000


def parse_literal(text: str) -> Any:
    """A Python literal, else the text itself; a value too long or too deeply nested is refused.

    >>> parse_literal("(3, 8)"), parse_literal("fast"), parse_literal("-1.5")
    ((3, 8), 'fast', -1.5)
    """
    text = text.strip()
    if len(text) > MAX_LITERAL_CHARS:
        raise UserError(f"a parameter value may have at most {MAX_LITERAL_CHARS} characters, got {len(text)}")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    except (RecursionError, MemoryError):
        raise UserError(f"parameter value {text[:20]!r}... is nested too deeply to read") from None


def parse_param(text: str) -> Tuple[str, Any]:
    """``"f=51"`` -> ``("f", 51)``; values are Python literals, else plain strings.

    >>> parse_param("N=16"), parse_param("mode=fast"), parse_param("iters=(3,8)")
    (('N', 16), ('mode', 'fast'), ('iters', (3, 8)))
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise UserError(f"a model parameter is KEY=VALUE with a Python identifier as KEY, got {text!r}")
    raw = raw.strip()
    if raw == "":
        raise UserError(f"parameter {key} has no value; write {key}=VALUE")
    return key, parse_literal(raw)


def parse_params(items: Sequence[str]) -> Dict[str, Any]:
    return dict(parse_param(item) for item in items)


#: Elements an input may have: shapes beyond this overflow torch's storage-size arithmetic.
MAX_INPUT_ELEMENTS = 2 ** 40
_SHAPE = re.compile(r"^\s*\d+(\s*[xX,]\s*\d+)*\s*$")


def parse_input_shape(text: str, channels: int = 3) -> Tuple[int, ...]:
    """``"512x1024"`` -> ``(1, 3, 512, 1024)``; ``CxHxW`` and ``NxCxHxW`` are taken as given.

    >>> parse_input_shape("360x480"), parse_input_shape("1x1x28x28")
    ((1, 3, 360, 480), (1, 1, 28, 28))
    """
    if not _SHAPE.match(text or "") or len(text) > 64:
        raise UserError(f"an input shape is HxW (e.g. 512x1024), got {text[:64]!r}")
    dims = tuple(int(d) for d in re.split(r"\s*[xX,]\s*", text.strip()))
    if any(d <= 0 for d in dims):
        raise UserError(f"input dimensions must be positive, got {text!r}")
    if math.prod(dims) * channels > MAX_INPUT_ELEMENTS:
        raise UserError(f"input {text!r} has more than {MAX_INPUT_ELEMENTS:.3g} elements; no tensor that large exists")
    if len(dims) == 2:
        return (1, channels) + dims
    if len(dims) == 3:
        return (1,) + dims
    if len(dims) == 4:
        return dims
    raise UserError(f"an input shape is HxW, CxHxW or NxCxHxW, got {text!r}")


def build(spec: ModelSpec) -> BuiltModel:
    """Build the module a spec names, with its input shape."""
    if spec.name.startswith("torchvision:"):
        return _build_torchvision(spec)
    if ":" in spec.name:
        return _build_callable(spec)
    return _build_zoo(spec)


def _build_zoo(spec: ModelSpec) -> BuiltModel:
    from graphcost import models  # lazy: the zoo imports every model family; other sources need none

    entry = models.model_entry(spec.name)
    params = dict(spec.params)
    if spec.shared is not None:
        if "shared" not in entry.parameters():
            raise UserError(f"model {spec.name!r} has no shared/independent variants; drop --shared/--independent")
        params["shared"] = spec.shared
    preset = models.dataset_preset(spec.dataset or entry.default_dataset)
    module = models.get_model(spec.name, dataset=preset.name, **params)
    shape = spec.input_shape or preset.input_shape
    return BuiltModel(module, shape, spec.name, preset.name)


def _input_for(spec: ModelSpec) -> Tuple[Tuple[int, ...], Optional[str]]:
    if spec.input_shape:
        return spec.input_shape, spec.dataset
    if spec.dataset:
        from graphcost import models  # lazy: see _build_zoo

        return models.dataset_preset(spec.dataset).input_shape, spec.dataset
    return DEFAULT_INPUT, None


def _no_shared(spec: ModelSpec) -> None:
    if spec.shared is not None:
        raise UserError(f"{spec.name!r} has no shared/independent variants; drop --shared/--independent")


def _build_torchvision(spec: ModelSpec) -> BuiltModel:
    _no_shared(spec)
    name = spec.name.split(":", 1)[1]
    try:
        import torchvision  # lazy: an optional package, needed only for torchvision: models
    except ImportError:
        raise UserError("torchvision is not installed; pip install torchvision to analyze torchvision models") \
            from None
    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        raise UserError(f"torchvision has no model {name!r}; see torchvision.models.list_models()") from None
    params = {"weights": None, **spec.params}
    if "weights_backbone" in inspect.signature(builder).parameters:
        params.setdefault("weights_backbone", None)
    if params.get("weights") is not None or params.get("weights_backbone") is not None:
        raise UserError("graphcost never downloads weights; drop the weights parameter")
    try:
        module = builder(**params)
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid parameters for torchvision:{name}: {exc}") from None
    shape, dataset = _input_for(spec)
    return BuiltModel(module, shape, spec.name, dataset)


def _build_callable(spec: ModelSpec) -> BuiltModel:
    _no_shared(spec)
    module_name, _, attr = spec.name.partition(":")
    try:
        mod = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the user's module failing while importing
        raise UserError(f"cannot import {module_name!r}: {exc}") from None
    factory = getattr(mod, attr, None)
    if factory is None or not callable(factory):
        raise UserError(f"{module_name!r} has no callable {attr!r}")
    try:
        module = factory(**spec.params)
    except TypeError as exc:
        raise UserError(f"cannot call {spec.name} with {spec.params}: {exc}") from None
    if not isinstance(module, nn.Module):
        raise UserError(f"{spec.name} returned {type(module).__name__}, not a torch.nn.Module")
    shape, dataset = _input_for(spec)
    return BuiltModel(module, shape, spec.name, dataset)


def build_for_shapes(spec: ModelSpec) -> BuiltModel:
    """:func:`build` on the meta device: parameters have shapes but no storage, so a huge width costs nothing.

    For tracing, analysis and mapping, which only read shapes. A model that cannot be built on
    the meta device (its constructor computes with its own weights) is built normally.
    """
    try:
        with torch.device("meta"):
            return build(spec)
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - a constructor that needs real tensors: fall back to real ones
        return build(spec)
