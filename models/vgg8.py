"""VGG-8: NeuroSim's CIFAR-10 reference network (DNN_NeuroSim_V1.3, ``Inference_pytorch/models/VGG.py``).

Six 3 x 3 same-padding convolutions 128-128-M-256-256-M-512-512-M (``M`` a 2 x 2 max-pool)
and two fully-connected layers 8192 -> 1024 -> classes, ReLU after every layer but the last,
no biases and no batch norm (NeuroSim's quantised ``QConv2d`` / ``QLinear`` have none).
12.97 M parameters and 616 M MACs at 3 x 32 x 32 with 10 classes, the numbers NeuroSim's
manual reports for it (Fig. 24: 25.72 TOPS/W, 0.846 TOPS, 37.75 uJ dynamic energy per image
on its default 22 nm RRAM chip; ``graphcost map vgg8 --dataset cifar10 --preset neurosim-v1.3``
compares, see the README).

>>> import torch
>>> from graphcost.models import get_model
>>> net = get_model("vgg8", dataset="cifar10")
>>> tuple(net(torch.zeros(1, 3, 32, 32)).shape), sum(p.numel() for p in net.parameters())
((1, 10), 12973440)
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from .registry import DATASETS, check_int, register_model

__all__ = ["VGG8", "vgg8"]

#: Output channels of the convolutions, ``"M"`` a 2 x 2 max-pool (NeuroSim's ``cfg_list['cifar10']``).
CONFIG = (128, 128, "M", 256, 256, "M", 512, 512, "M")


class VGG8(nn.Sequential):
    """The six convolutions and two linear layers of :data:`CONFIG` at ``size x size`` inputs."""

    def __init__(self, classes: int = 10, in_channels: int = 3, size: int = 32):
        check_int("classes", classes, 2)
        if size % 8:
            raise ValueError(f"VGG-8 input size must be a multiple of 8 (three 2x2 pools), got {size}")
        layers, cin = [], in_channels
        for item in CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, item, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
                cin = item
        features = cin * (size // 8) ** 2
        super().__init__(*layers, nn.Flatten(), nn.Linear(features, 1024, bias=False), nn.ReLU(inplace=True),
                         nn.Linear(1024, classes, bias=False))


@register_model("vgg8", default_dataset="cifar10")
def vgg8(*, dataset: str = "cifar10", classes: Optional[int] = None) -> VGG8:
    """VGG-8 for ``dataset`` (square inputs; ``classes`` defaults to the dataset's)."""
    preset = DATASETS[dataset]
    if preset.height != preset.width:
        raise ValueError(f"vgg8 takes square inputs; {dataset} is {preset.height}x{preset.width}")
    return VGG8(classes=classes or preset.classes, in_channels=preset.channels, size=preset.height)
