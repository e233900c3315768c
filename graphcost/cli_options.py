"""Click option decorators shared by every ``graphcost`` command, core and plugin alike.

They live apart from :mod:`graphcost.cli` so plugin commands (``graphcost.crossbar.cli``,
``graphcost.reports.cli``) can use them while ``graphcost.cli`` imports those plugins.
"""
from __future__ import annotations

import functools

import click

from .models.registry import DATASETS
from .resolve import ModelSpec, parse_input_shape, parse_params

FORMATS = ("table", "json", "csv")


def model_options(func):
    """MODEL plus ``--shared/--independent --dataset --input --param``, parsed into ``spec: ModelSpec``."""

    @click.argument("model", required=False, default="itnet")
    @click.option("--shared/--independent", "shared", default=None,
                  help="Weight-shared (looped) or independent (unrolled) variant, where the model has both.")
    @click.option("--dataset", type=click.Choice(list(DATASETS)), default=None,
                  help="Dataset preset: input resolution and classes (camvid 360x480/11, cityscapes 512x1024/19).")
    @click.option("--input", "input_text", default=None, metavar="HxW", help="Input resolution, e.g. 512x1024.")
    @click.option("--param", "param_items", multiple=True, metavar="KEY=VALUE",
                  help="Model parameter (repeatable), e.g. --param N=8 --param f=32.")
    @functools.wraps(func)
    def wrapper(model, shared, dataset, input_text, param_items, **kwargs):
        spec = ModelSpec(
            name=model,
            dataset=dataset,
            input_shape=parse_input_shape(input_text) if input_text is not None else None,
            params=parse_params(param_items),
            shared=shared,
        )
        return func(spec=spec, **kwargs)

    return wrapper


def format_option(func):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                        help="Output format.")(func)
