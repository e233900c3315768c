"""Models the view tests need beyond tests/nets.py."""
import torch
from torch import nn


class DataDependent(nn.Module):
    """A forward whose control flow depends on values: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return x


def make_untraceable():
    return DataDependent()
