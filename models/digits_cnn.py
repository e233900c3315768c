"""digits-cnn: a small CNN for scikit-learn's 8 x 8 handwritten digits (``--data digits``).

Not from a paper: the zoo's classification check case for the crossbar simulator, small enough
to train in seconds on a CPU and to ship float and hardware-aware (HWA) checkpoints with the
package (``crossbar/weights/``). Its data ship with scikit-learn (``sklearn.datasets.
load_digits``: 1,797 images, 10 classes), so accuracy under analog noise can be measured on
real data without a download. Published reference point for the data: a linear SVM reaches
~97-99 % on this set (scikit-learn's "Recognizing hand-written digits" example); the shipped
float checkpoint's measured top-1 is in its JSON file beside it.

Architecture (1 x 8 x 8 in, 10 logits out), every conv 3 x 3 with padding 1:

    conv 1->16, BN, ReLU -> conv 16->32, BN, ReLU, max-pool 2 (4 x 4)
    -> conv 32->32, BN, ReLU, max-pool 2 (2 x 2) -> flatten -> linear 128->10

>>> import torch
>>> from graphcost.models import get_model
>>> net = get_model("digits-cnn")
>>> tuple(net(torch.zeros(2, 1, 8, 8)).shape), sum(p.numel() for p in net.parameters())
((2, 10), 15418)
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from .registry import DATASETS, check_int, register_model

__all__ = ["DigitsCNN", "digits_cnn"]


def _conv_bn_relu(cin: int, cout: int) -> list:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DigitsCNN(nn.Sequential):
    """Three 3 x 3 conv blocks (``width``, ``2 width``, ``2 width`` channels) and a linear classifier."""

    def __init__(self, classes: int = 10, width: int = 16, in_channels: int = 1, size: int = 8):
        check_int("classes", classes, 2)
        check_int("width", width, 1)
        if size % 4:
            raise ValueError(f"input size must be a multiple of 4, got {size}")
        w2 = 2 * width
        super().__init__(
            *_conv_bn_relu(in_channels, width),
            *_conv_bn_relu(width, w2), nn.MaxPool2d(2),
            *_conv_bn_relu(w2, w2), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(w2 * (size // 4) ** 2, classes),
        )


@register_model("digits-cnn", default_dataset="digits")
def digits_cnn(*, dataset: str = "digits", classes: Optional[int] = None, width: int = 16) -> nn.Module:
    """A small CNN for the 8x8 handwritten digits (scikit-learn's load_digits); ~15.4 K params."""
    preset = DATASETS[dataset]
    if preset.height != preset.width:
        raise ValueError(f"digits-cnn needs square inputs, the {dataset} preset is {preset.height}x{preset.width}")
    return DigitsCNN(classes or preset.classes, width, preset.channels, preset.height)
