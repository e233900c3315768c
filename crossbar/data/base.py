"""The data layer's frame: :class:`DataSource` (one registered class per ``--data`` form), its task,
and :class:`Samples` / :class:`Batch` (what a model is called with, and the labels).

A source is parsed from its ``--data`` text by :func:`parse_data` (``"digits"``, ``"text:FILE"``,
...) and checked there (a missing folder, an empty file: :class:`~graphcost.UserError`, before any
long work). :meth:`DataSource.load` draws its samples for a model's input specs (what
:attr:`graphcost.resolve.BuiltModel.call_inputs` holds: a shape, or positional / named
:class:`~graphcost.inputs.InputSpec`\\ s): the data fills the model's first input, any other input is
drawn at random to its spec, so a model with an attention mask or two inputs still runs.

Add a source: one file in this package with a :func:`register_source` class (``scheme``, ``task``,
``takes_path``, :meth:`DataSource.load`), imported by the package ``__init__``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple, Type

import torch

from graphcost.errors import UserError
from graphcost.inputs import InputSpec, split_inputs

__all__ = ["TASKS", "IGNORE_INDEX", "DataSource", "Samples", "Batch", "register_source", "SOURCES", "parse_data",
           "check_data", "data_kinds", "input_layout", "random_like"]

#: What a source's labels are for; ``none``: no labels (only fidelity against the float model).
TASKS = ("segmentation", "classification", "language-model", "none")
#: Segmentation pixels that do not count.
IGNORE_INDEX = 255

SOURCES: Dict[str, Type["DataSource"]] = {}


def register_source(cls: Type["DataSource"]) -> Type["DataSource"]:
    """Class decorator: make ``cls`` the source of ``--data cls.scheme[:PATH]`` (a scheme twice raises)."""
    if cls.scheme in SOURCES:
        raise ValueError(f"data source {cls.scheme!r} is registered twice")
    if cls.task not in TASKS:
        raise ValueError(f"data source {cls.scheme!r} has task {cls.task!r}; use one of {TASKS}")
    SOURCES[cls.scheme] = cls
    return cls


def data_kinds() -> Tuple[str, ...]:
    """The ``--data`` forms, in registration order (``scheme:PATH`` where a path is needed)."""
    return tuple(f"{s}:{c.path_name}" if c.takes_path else s for s, c in SOURCES.items())


@dataclass(frozen=True)
class Batch:
    """One forward's worth: ``model(*args, **kwargs)``; ``labels`` (or ``None``) for the task's metric."""

    args: Tuple[torch.Tensor, ...]
    kwargs: Dict[str, torch.Tensor]
    labels: Optional[torch.Tensor]

    def __len__(self) -> int:
        first = self.args[0] if self.args else next(iter(self.kwargs.values()))
        return int(first.shape[0])


@dataclass(frozen=True)
class Samples:
    """A source's samples for one model, every tensor with the sample count as its first dimension."""

    args: Tuple[torch.Tensor, ...]
    kwargs: Dict[str, torch.Tensor] = field(default_factory=dict)
    labels: Optional[torch.Tensor] = None
    task: str = "none"
    classes: Optional[int] = None

    def __len__(self) -> int:
        return int((self.args or tuple(self.kwargs.values()))[0].shape[0])

    def take(self, index) -> Batch:
        """The samples at ``index`` (a slice or an index tensor) as a :class:`Batch`."""
        labels = None if self.labels is None else self.labels[index]
        return Batch(tuple(a[index] for a in self.args), {k: v[index] for k, v in self.kwargs.items()}, labels)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Consecutive batches of at most ``batch_size`` samples, in order."""
        for start in range(0, len(self), batch_size):
            yield self.take(slice(start, start + batch_size))


class DataSource:
    """Base of every ``--data`` form: ``scheme``, ``task``, ``takes_path`` and :meth:`load`.

    The constructor takes the path (``None`` where the form has none) and checks it; nothing is
    read there that takes long.
    """

    scheme = "source"
    task = "none"
    takes_path = False
    path_name = "PATH"
    #: Class count of the labels (``None``: no labels, or the model's own count).
    classes: Optional[int] = None

    def __init__(self, path: Optional[str] = None):
        self.path = path

    @property
    def text(self) -> str:
        return f"{self.scheme}:{self.path}" if self.takes_path else self.scheme

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"

    def __iter__(self):
        """The ``(scheme, path or None)`` pair :func:`parse_data` used to return, for its older callers."""
        return iter((self.scheme, self.path if self.takes_path else None))

    def __getitem__(self, index: int):
        return tuple(self)[index]

    def load(self, model_inputs: Any, samples: Optional[int] = None, *, split: str = "test", seed: int = 0,
             classes: Optional[int] = None) -> Samples:  # pragma: no cover - overridden
        """The first ``samples`` samples of ``split`` (``"test"`` or ``"train"``) for a model called with
        ``model_inputs``; ``classes`` is the model's class count (sources that make up labels use it)."""
        raise NotImplementedError

    def batches(self, model_inputs: Any, batch_size: int, seed: int = 0, *, samples: Optional[int] = None,
                split: str = "test", classes: Optional[int] = None) -> Iterator[Batch]:
        """:meth:`load`, then consecutive batches of ``batch_size``."""
        return self.load(model_inputs, samples, split=split, seed=seed, classes=classes).batches(batch_size)


def parse_data(text: str) -> DataSource:
    """A ``--data`` form -> its :class:`DataSource` (checked: a missing folder or file raises here).

    >>> parse_data("digits").task, parse_data("random").task
    ('classification', 'none')
    """
    scheme, sep, path = (text or "").partition(":")
    cls = SOURCES.get(scheme)
    if cls is not None and cls.takes_path and sep:
        if not path:
            raise UserError(f"{scheme} data needs a path, e.g. {scheme}:/data/{scheme}")
        return cls(path)
    if cls is not None and not cls.takes_path and not sep:
        return cls()
    kinds = data_kinds()
    raise UserError(f"data is {', '.join(kinds[:-1])} or {kinds[-1]}, got {text!r}")


def check_data(text: str) -> str:
    """``text`` if :func:`parse_data` accepts it (the ``--data`` option's check), else :class:`UserError`."""
    parse_data(text)
    return text


# --------------------------------------------------------------------------- a model's inputs
def input_layout(model_inputs: Any) -> Tuple[List[InputSpec], Dict[str, InputSpec]]:
    """The model's positional and named input specs (a bare shape is one float input)."""
    args, kwargs = split_inputs(model_inputs)
    as_spec = (lambda v: InputSpec(tuple(v.shape), v.dtype) if isinstance(v, torch.Tensor) else v)
    return [as_spec(a) for a in args], {k: as_spec(v) for k, v in kwargs.items()}


def random_like(spec: InputSpec, samples: int, gen: torch.Generator, vocab: int = 256) -> torch.Tensor:
    """``samples`` random inputs of ``spec``'s shape (its first dimension replaced): standard normal
    floats, integers in ``[0, vocab)`` (token ids), booleans ``True`` (masks)."""
    shape = (samples,) + tuple(spec.shape[1:])
    dtype = spec.dtype or torch.float32
    if dtype == torch.bool:
        return torch.ones(shape, dtype=torch.bool)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(dtype)
    return torch.randint(0, vocab, shape, generator=gen, dtype=dtype)


def fill_inputs(model_inputs: Any, data: torch.Tensor, gen: torch.Generator, vocab: int = 256
                ) -> Tuple[Tuple[torch.Tensor, ...], Dict[str, torch.Tensor]]:
    """The model's call with ``data`` as its first input and every other input drawn at random."""
    args, kwargs = input_layout(model_inputs)
    n = int(data.shape[0])
    if args:
        return (data,) + tuple(random_like(s, n, gen, vocab) for s in args[1:]), \
            {k: random_like(s, n, gen, vocab) for k, s in kwargs.items()}
    names = list(kwargs)
    return (), {k: (data if i == 0 else random_like(kwargs[k], n, gen, vocab)) for i, k in enumerate(names)}


def first_input(model_inputs: Any) -> InputSpec:
    """The spec of the input the data fills."""
    args, kwargs = input_layout(model_inputs)
    if args:
        return args[0]
    if kwargs:
        return next(iter(kwargs.values()))
    raise UserError("the model takes no inputs; data needs at least one")


def check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def check_samples(samples: Optional[int]) -> None:
    if samples is not None and samples < 1:
        raise UserError(f"samples must be at least 1, got {samples}")
