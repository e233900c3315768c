"""``--data digits``: scikit-learn's handwritten digits (``sklearn.datasets.load_digits``: 1,797 grey
8 x 8 images of 10 classes, shipped inside scikit-learn, so no download), values scaled from 0..16 to
[0, 1]; a fixed seeded split (numpy ``RandomState(0)`` permutation: 1,437 training and 360 held-out
images). A classification set: labels are ``(S,)`` class ids.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from graphcost.errors import UserError

from .base import register_source
from .images import ImageSource, SegmentationSet, check_classes

DIGITS_CLASSES = 10
DIGITS_SHAPE = (8, 8)
#: Seed of the fixed digits split (numpy ``RandomState``, stable across numpy versions).
DIGITS_SPLIT_SEED = 0
#: Held-out share of the digits split: 360 of 1,797 images.
DIGITS_TEST_SIZE = 360


class DigitsDataset(SegmentationSet):
    """scikit-learn's handwritten digits, one fixed seeded split (``split`` ``"train"`` or ``"test"``).

    >>> test = DigitsDataset("test")
    >>> len(test), len(DigitsDataset("train")), tuple(test[0][0].shape), test.classes
    (360, 1437, (1, 8, 8), 10)

    Images are float32 ``1 x 8 x 8`` in [0, 1] (the 0..16 grey levels / 16), labels int64
    scalars; ``samples`` keeps the first N of the split (its order is the seeded permutation).
    """

    name = "digits"
    classes = DIGITS_CLASSES
    task = "classification"

    def __init__(self, split: str = "test", samples: Optional[int] = None):
        if split not in ("train", "test"):
            raise UserError(f"digits split must be train or test, got {split!r}")
        images, labels = _digits_arrays()
        order = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(labels))
        keep = order[:DIGITS_TEST_SIZE] if split == "test" else order[DIGITS_TEST_SIZE:]
        if samples:
            keep = keep[:samples]
        self.split = split
        self.images = torch.from_numpy(images[keep]).float().div_(16.0).view(-1, 1, *DIGITS_SHAPE)
        self.labels = torch.from_numpy(labels[keep]).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def tensors(self) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.images.clone(), self.labels.clone()


@register_source
class DigitsSource(ImageSource):
    """The digits' held-out (``test``) or training split."""

    scheme = "digits"
    task = "classification"
    classes = DIGITS_CLASSES

    def open(self, samples: Optional[int], split: str, classes: Optional[int], model_inputs: Any = None
             ) -> SegmentationSet:
        check_classes(self.scheme, DIGITS_CLASSES, classes)
        return DigitsDataset(split, samples=samples)


def _digits_arrays():
    """``(images (1797, 64) float, labels (1797,) int)`` from scikit-learn's bundled copy."""
    try:
        from sklearn.datasets import load_digits  # lazy: only the digits data needs scikit-learn
    except ImportError:
        raise UserError("the digits data needs scikit-learn; pip install scikit-learn") from None
    bunch = load_digits()
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target, dtype=np.int64)


