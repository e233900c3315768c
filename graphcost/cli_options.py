"""Click option types and decorators shared by every ``graphcost`` command, core and plugin alike.

Values are parsed *at the option*: a :class:`Parsed` type calls the library's parse function, so
a bad value becomes a click ``BadParameter`` that names its flag (``Invalid value for '--input':
...``), while the library's own messages never speak in flags. A new option type is one line::

    TECH = Parsed(load_tech, "tech", "FILE.toml")      # then: click.option("--tech", type=TECH)

This lives apart from :mod:`graphcost.cli` so plugin commands (``graphcost.crossbar.cli``,
``graphcost.reports.cli``) can use it while ``graphcost.cli`` imports those plugins.
"""
from __future__ import annotations

import functools
import importlib
from typing import Any, Callable, Optional, Union

import click

from .errors import UserError
from .models.registry import DATASETS

FORMATS = ("table", "json", "csv")


class Parsed(click.ParamType):
    """A click type whose values a library function parses; its :class:`UserError` becomes ``BadParameter``.

    Values that are not strings (defaults given already parsed) pass through unchanged. ``parse``
    may be a ``"module:function"`` path, imported at the first value: the option then costs
    nothing at start-up (``graphcost --help`` imports no torch).

    >>> SIZE = Parsed("graphcost.resolve:parse_input_shape", "shape", "HxW")
    >>> SIZE.convert("32x48", None, None)
    (1, 3, 32, 48)
    """

    def __init__(self, parse: Union[Callable[[str], Any], str], name: str, metavar: Optional[str] = None) -> None:
        self._parse = parse
        self.name = name
        self.metavar = metavar or name.upper()

    @property
    def parse(self) -> Callable[[str], Any]:
        if isinstance(self._parse, str):
            module, _, function = self._parse.partition(":")
            self._parse = getattr(importlib.import_module(module), function)
        return self._parse

    def get_metavar(self, param, ctx=None) -> str:
        return self.metavar

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except UserError as exc:
            self.fail(str(exc), param, ctx)


INPUT_SHAPE = Parsed("graphcost.resolve:parse_input_shape", "input shape", "HxW")
INPUT = Parsed("graphcost.resolve:parse_input", "input", "[NAME=]DIMS[:DTYPE]")
MODEL_PARAM = Parsed("graphcost.resolve:parse_param", "model parameter", "KEY=VALUE")
TRACER = Parsed("graphcost.tracing:parse_tracer", "tracer", "auto|fx|dispatch|export|eager")


#: What MODEL may be, for the message of a command that needs one named.
MODEL_FORMS = "a zoo name (graphcost models), torchvision:NAME, timm:NAME, hf:MODEL_TYPE[:TASK] or pkg.module:callable"


def model_options(func=None, *, default: Optional[str] = "itnet"):
    """MODEL plus ``--shared/--independent --dataset --input --param``, parsed into ``spec: ModelSpec``.

    ``default``: the model a command maps when none is named; ``None`` makes MODEL required, with a
    one-line usage error that says what to give (``analyze``: a cost report is never of a silent default).
    """
    if func is None:
        return functools.partial(model_options, default=default)

    @click.argument("model", required=False, default=default)
    @click.option("--shared/--independent", "shared", default=None,
                  help="Weight-shared (looped) or independent (unrolled) variant, where the model has both.")
    @click.option("--dataset", type=click.Choice(list(DATASETS)), default=None,
                  help="Dataset preset: input resolution and classes (camvid 360x480/11, cityscapes 512x1024/19).")
    @click.option("--input", "inputs", type=INPUT, multiple=True,
                  help="Input (repeatable): resolution HxW / CxHxW (e.g. 512x1024), or an exact tensor "
                       "[NAME=]DIMS[:DTYPE] (e.g. input_ids=1x128:int64); named inputs are keywords.")
    @click.option("--param", "params", type=MODEL_PARAM, multiple=True,
                  help="Model parameter (repeatable), e.g. --param N=8 --param f=32.")
    @functools.wraps(func)
    def wrapper(model, shared, dataset, inputs, params, **kwargs):
        if model is None:
            raise click.UsageError(f"give a MODEL to analyze: {MODEL_FORMS}")
        from .resolve import ModelSpec, input_fields  # torch: imported when a command runs, not at start-up

        spec = ModelSpec(name=model, dataset=dataset, params=dict(params), shared=shared, **input_fields(inputs))
        return func(spec=spec, **kwargs)

    return wrapper


def tracer_option(func):
    """``--tracer auto|fx|dispatch|export|eager``, passed as ``tracer``."""
    return click.option("--tracer", type=TRACER, default="auto", show_default=True,
                        help="Graph capture: torch.fx, dispatch (one forward on meta tensors), torch.export "
                             "(non-strict, fake tensors), eager (one real forward on random inputs: costs for "
                             "those values, for data-dependent models), or auto (the first of fx, dispatch, "
                             "export that can run the model; eager when all fail on data-dependent ops).")(func)


def format_option(func):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default=FORMATS[0], show_default=True,
                        help="Output format.")(func)
