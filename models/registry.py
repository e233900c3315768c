"""Model registry and dataset presets: the one place that maps a zoo name to a builder.

A family file registers one builder per named variant::

    @register_model("itnet", default_dataset="camvid")
    def itnet(*, dataset="camvid", shared=True, N=16, L=3, K=1, f=None, classes=None): ...

Builders take keyword-only arguments; ``dataset`` is always passed (a key of ``DATASETS``)
so a builder can pick the paper's per-dataset defaults. ``get_model`` checks parameter
names against the builder's signature, so ``--param`` typos fail with one clear line.

A family file is imported when one of its models is first asked for (``manifest.ZOO`` says
which file holds which name), so this module and the dataset presets import no torch.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

from graphcost.errors import UserError

from .manifest import FAMILIES, ZOO

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class DatasetPreset:
    """Input resolution and class count of a benchmark (a text corpus: ``channels = 0``, ``width`` tokens
    per sequence of byte ids, ``classes`` the vocabulary)."""

    name: str
    height: int
    width: int
    classes: int
    channels: int = 3

    @property
    def tokens(self) -> bool:
        """Whether the inputs are token ids (``1 x width`` int64) rather than images."""
        return self.channels == 0

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return (1, self.width) if self.tokens else (1, self.channels, self.height, self.width)


DATASETS: Dict[str, DatasetPreset] = {
    # CamVid at the SegNet pre-processing used by ItNet (480x360), 11 classes.
    "camvid": DatasetPreset("camvid", 360, 480, 11),
    # Cityscapes resized to 1024x512 as in ItNet, 19 train ids.
    "cityscapes": DatasetPreset("cityscapes", 512, 1024, 19),
    # PASCAL VOC 2012 at 513x513 (McIntosh et al., Table 3), 21 classes.
    "pascal": DatasetPreset("pascal", 513, 513, 21),
    # scikit-learn's handwritten digits (load_digits): 8x8 grey images, 10 classes.
    "digits": DatasetPreset("digits", 8, 8, 10, channels=1),
    # CIFAR-10 (Krizhevsky 2009): 32x32 colour images, 10 classes (NeuroSim's VGG-8 benchmark).
    "cifar10": DatasetPreset("cifar10", 32, 32, 10),
    # CPython's documentation (pydoc_data.topics) as byte tokens: sequences of 64, vocabulary 256.
    "pydoc": DatasetPreset("pydoc", 1, 64, 256, channels=0),
}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    default_dataset: str
    description: str

    def parameters(self) -> Dict[str, inspect.Parameter]:
        params = inspect.signature(self.builder).parameters
        return {k: p for k, p in params.items() if k != "dataset"}


_REGISTRY: Dict[str, ModelEntry] = {}


#: Upper bounds on structural integers. Building a model is Python work per module even on the meta
#: device, so a repeat count of 10**30 would hang or exhaust memory before any analysis: refuse it.
#: The papers use at most 16 iterations and a few layers per block; the bounds leave ample room.
MAX_REPEATS = 1024
MAX_WIDTH = 1 << 20


def check_int(name: str, value, minimum: int = 1, maximum: Optional[int] = None) -> int:
    """``value`` if it is an int (not a bool) in ``[minimum, maximum]``, else a ValueError naming ``name``.

    >>> check_int("N", 16)
    16
    >>> check_int("N", 10**30, maximum=MAX_REPEATS)
    Traceback (most recent call last):
    ...
    ValueError: N must be an integer in [1, 1024], got 1000000000000000000000000000000
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}")
    return value


def register_model(name: str, *, default_dataset: str = "camvid"):
    """Decorator: register ``builder`` under ``name`` (lower-case, dashes allowed)."""

    def wrap(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        doc = (inspect.getdoc(builder) or "").split("\n", 1)[0]
        _REGISTRY[name] = ModelEntry(name, builder, default_dataset, doc)
        return builder

    return wrap


def _import_family(family: str) -> None:
    importlib.import_module(f"{__package__}.{family}")  # its @register_model builders register


def list_models() -> Dict[str, ModelEntry]:
    """All registered zoo models, by name (every family file imported)."""
    for family in FAMILIES:
        _import_family(family)
    return dict(sorted(_REGISTRY.items()))


def model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY and name in ZOO:
        _import_family(ZOO[name].family)
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(set(ZOO) | set(_REGISTRY)))
        raise UserError(f"unknown model {name!r}; zoo models are: {known}") from None


def dataset_preset(name: str) -> DatasetPreset:
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None


def get_model(name: str, dataset: Optional[str] = None, **params) -> nn.Module:
    """Build zoo model ``name`` for ``dataset`` (default: the model's own preset).

    >>> m = get_model("itnet", dataset="camvid", shared=True, N=2)
    """
    entry = model_entry(name)
    preset = dataset_preset(dataset or entry.default_dataset)
    accepted = entry.parameters()
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = sorted(set(params) - set(accepted))
    if unknown and not takes_any:
        names = ", ".join(sorted(k for k, p in accepted.items() if p.kind is not p.VAR_KEYWORD))
        raise UserError(f"model {name!r} has no parameter {unknown[0]!r}; its parameters are: {names}")
    try:
        return entry.builder(dataset=preset.name, **params)
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid parameters for model {name!r}: {exc}") from None
