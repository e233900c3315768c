"""Evaluation and training data, by task: one registered :class:`DataSource` per ``--data`` form.

==================  ===============  ==========================================================
form                task             what
==================  ===============  ==========================================================
``synthetic``       segmentation     built-in coloured, striped shapes (:mod:`.synthetic`)
``digits``          classification   scikit-learn's 8 x 8 digits, fixed split (:mod:`.digits`)
``camvid:PATH``     segmentation     CamVid, SegNet layout (:mod:`.camvid`)
``cityscapes:PATH`` segmentation     Cityscapes ``leftImg8bit`` + ``gtFine`` (:mod:`.cityscapes`)
``imagefolder:PATH``classification   torchvision ``ImageFolder`` layout (:mod:`.imagefolder`)
``text:FILE``       language-model   UTF-8 bytes, fixed windows (:mod:`.text`)
``pydoc``           language-model   CPython's documentation topics (:mod:`.pydoc`)
``random``          none             inputs drawn to the model's specs (:mod:`.random`)
==================  ===============  ==========================================================

:func:`parse_data` turns the text into a checked source; ``source.task`` says what its labels are
for and ``source.load(model_inputs, samples, split=..., seed=...)`` (or ``source.batches(model_inputs,
batch_size, seed)``) gives what the model is called with. :func:`open_dataset` is the older entry
to the image sets (``(image, label)`` sequences), kept for its callers. Anything a user can get wrong
(unknown form, missing folder, empty file) raises :class:`graphcost.UserError`.
"""
from __future__ import annotations

from typing import Optional, Tuple

from graphcost.errors import UserError

from .base import (IGNORE_INDEX, SOURCES, TASKS, Batch, DataSource, Samples, check_data, data_kinds, input_layout,
                   parse_data, register_source)
from .images import ImageSource, SegmentationSet
# each import registers its source, in this order (the order ``--help`` lists them)
from .synthetic import (SYNTHETIC_SHAPE, SYNTHETIC_TEST_SEED, SYNTHETIC_TRAIN_SEED, SyntheticSegmentation,
                        SyntheticSource)
from .digits import DIGITS_CLASSES, DIGITS_SHAPE, DIGITS_SPLIT_SEED, DigitsDataset, DigitsSource
from .camvid import CAMVID_CLASSES, CAMVID_SHAPE, CamVidDataset, CamVidSource
from .cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_SHAPE, CITYSCAPES_TRAIN_IDS, CityscapesDataset, CityscapesSource
from .imagefolder import ImageFolderSet, ImageFolderSource
from .text import TextSource, TokenSource, byte_windows
from .pydoc import PydocSource, pydoc_text
from .random import RandomSource

__all__ = ["IGNORE_INDEX", "TASKS", "SOURCES", "DATA_KINDS", "DataSource", "ImageSource", "Samples", "Batch",
           "register_source", "parse_data", "check_data", "data_kinds", "input_layout", "open_dataset",
           "SegmentationSet", "SyntheticSegmentation", "DigitsDataset", "CamVidDataset", "CityscapesDataset",
           "ImageFolderSet", "byte_windows", "pydoc_text", "SYNTHETIC_SHAPE", "SYNTHETIC_TEST_SEED",
           "SYNTHETIC_TRAIN_SEED", "CITYSCAPES_TRAIN_IDS", "DIGITS_CLASSES", "DIGITS_SHAPE", "DIGITS_SPLIT_SEED"]

#: The ``--data`` forms (PATH / FILE forms take a path after the ``:``).
DATA_KINDS = data_kinds()


def open_dataset(text: str, samples: Optional[int], *, classes: Optional[int] = None,
                 size: Optional[Tuple[int, int]] = None, seed: Optional[int] = None,
                 split: str = "test") -> SegmentationSet:
    """An image form (``synthetic``, ``digits``, ``camvid:PATH``, ``cityscapes:PATH``) -> its set of at
    most ``samples`` images (``None``: all of the split).

    ``classes`` sets the synthetic set's class count (digits have 10, CamVid 11, Cityscapes 19: a
    different value is an error); ``size = (H, W)`` overrides the resolution (default: synthetic
    96 x 128, CamVid 360 x 480, Cityscapes 512 x 1024); ``split`` is ``"test"`` (evaluation: the
    synthetic test seed, the digits held-out images, CamVid ``test``, Cityscapes ``val``) or
    ``"train"``; ``seed`` overrides the synthetic set's data seed.

    >>> open_dataset("digits", 5).task, len(open_dataset("digits", None, split="train"))
    ('classification', 1437)
    """
    source = parse_data(text)
    if samples is not None and samples < 1:
        raise UserError(f"samples must be at least 1, got {samples}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not isinstance(source, ImageSource) or isinstance(source, ImageFolderSource):
        raise UserError(f"{text!r} is not a fixed-size image set; use parse_data(text).load(model_inputs)")
    extra = {}
    if size:
        extra["size"] = tuple(size)
    if seed is not None and isinstance(source, SyntheticSource):
        extra["seed"] = seed
    return source.open(samples, split, classes, **extra)
