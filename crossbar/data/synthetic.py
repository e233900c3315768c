"""``--data synthetic`` (the default; no download): random coloured, striped shapes on a textured
background. Every class has its own colour and stripe orientation / period, with per-object colour
jitter, smooth illumination and pixel noise on top, so a small network can learn it but not
trivially. Generated deterministically from ``(seed, index)`` with a ``torch.Generator``; values in
[0, 1]; ``classes`` follows the model (default 11, CamVid's).
"""
from __future__ import annotations

import colorsys
import math
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F

from graphcost.errors import UserError

from .base import register_source
from .images import ImageSource, SegmentationSet

#: Default resolution of the synthetic set (H, W): a multiple of 16, so ItNet's scales divide it.
SYNTHETIC_SHAPE = (96, 128)
#: Data seeds of the synthetic evaluation ("test") and training sets: disjoint images.
SYNTHETIC_TEST_SEED = 0
SYNTHETIC_TRAIN_SEED = 1
SYNTHETIC_CLASSES = 11
#: Images of the synthetic set when no count is given.
SYNTHETIC_SAMPLES = 512


def _palette(classes: int) -> torch.Tensor:
    """A distinct RGB colour per class (golden-ratio hue steps, varied saturation / value)."""
    colours = []
    for c in range(classes):
        hue = (0.13 + c * 0.618034) % 1.0
        sat = 0.35 + 0.5 * ((c * 0.377) % 1.0)
        val = 0.4 + 0.5 * ((c * 0.713 + 0.3) % 1.0)
        colours.append(colorsys.hsv_to_rgb(hue, sat, val))
    return torch.tensor(colours, dtype=torch.float32)


def _texture(c: int, classes: int, yy: torch.Tensor, xx: torch.Tensor, phase: float) -> torch.Tensor:
    """Class ``c``'s stripes: orientation and period depend on the class only."""
    theta = math.pi * ((c * 0.381966) % 1.0)
    period = 3.0 + 2.0 * (c % 4)
    return torch.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period + phase)


class SyntheticSegmentation(SegmentationSet):
    """Deterministic synthetic scenes: ``samples`` images of ``height x width`` with ``classes`` classes.

    >>> ds = SyntheticSegmentation(2, 32, 48, classes=5, seed=0)
    >>> img, lab = ds[1]
    >>> tuple(img.shape), tuple(lab.shape), int(lab.max()) < 5
    ((3, 32, 48), (32, 48), True)
    >>> bool(torch.equal(img, SyntheticSegmentation(2, 32, 48, classes=5, seed=0)[1][0]))
    True

    Class 0 is the background; every image has 3-7 objects (ellipses, rectangles and
    triangles, later ones on top) of classes 1..C-1.
    """

    name = "synthetic"

    def __init__(self, samples: int, height: int = SYNTHETIC_SHAPE[0], width: int = SYNTHETIC_SHAPE[1],
                 classes: int = SYNTHETIC_CLASSES, seed: int = SYNTHETIC_TEST_SEED):
        if samples < 1 or height < 4 or width < 4:
            raise UserError(f"synthetic data needs samples >= 1 and a size of at least 4x4, got "
                            f"{samples} samples of {height}x{width}")
        if classes < 2:
            raise UserError(f"synthetic data needs at least 2 classes, got {classes}")
        self.samples, self.height, self.width, self.classes, self.seed = samples, height, width, classes, seed
        self.palette = _palette(classes)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.samples:
            raise IndexError(index)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        H, W, C = self.height, self.width, self.classes

        def uniform(lo: float, hi: float, shape=()) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(shape, generator=g)

        yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                                indexing="ij")
        label = torch.zeros(H, W, dtype=torch.long)
        image = self.palette[0].view(3, 1, 1) * (1 + 0.15 * _texture(0, C, yy, xx, float(uniform(0, 6.28))))
        image = image.expand(3, H, W).clone()
        size = min(H, W)
        for _ in range(int(torch.randint(3, 8, (), generator=g))):
            c = int(torch.randint(1, C, (), generator=g))
            cy, cx = float(uniform(0, H)), float(uniform(0, W))
            ry, rx = float(uniform(0.12, 0.32)) * size, float(uniform(0.12, 0.32)) * size
            kind = int(torch.randint(0, 3, (), generator=g))
            angle = float(uniform(0, math.pi))
            dy, dx = yy - cy, xx - cx
            u = dx * math.cos(angle) + dy * math.sin(angle)
            v = -dx * math.sin(angle) + dy * math.cos(angle)
            if kind == 0:
                mask = (u / rx) ** 2 + (v / ry) ** 2 <= 1
            elif kind == 1:
                mask = (u.abs() <= rx) & (v.abs() <= ry)
            else:  # triangle: three half-planes
                mask = (v <= ry) & (v >= -ry + 2 * ry * u.abs() / rx)
            if not bool(mask.any()):
                continue
            colour = (self.palette[c] + 0.05 * torch.randn(3, generator=g)).view(3, 1, 1)
            tex = _texture(c, C, yy, xx, float(uniform(0, 6.28)))
            patch = colour * (1 + 0.2 * tex)
            image = torch.where(mask, patch, image)
            label = torch.where(mask, torch.tensor(c), label)
        # smooth illumination, global brightness, pixel noise
        field = torch.randn(1, 1, 3, 4, generator=g)
        light = F.interpolate(field, size=(H, W), mode="bilinear", align_corners=False)[0]
        image = image * (1 + 0.1 * light) * float(uniform(0.85, 1.15))
        image = image + 0.05 * torch.randn(3, H, W, generator=g)
        return image.clamp_(0, 1).contiguous(), label



@register_source
class SyntheticSource(ImageSource):
    """The synthetic segmentation scenes (test seed 0, train seed 1), at 96 x 128."""

    scheme = "synthetic"
    task = "segmentation"

    def open(self, samples: Optional[int], split: str, classes: Optional[int], model_inputs: Any = None,
             size: Optional[Tuple[int, int]] = None, seed: Optional[int] = None) -> SegmentationSet:
        h, w = size or SYNTHETIC_SHAPE
        if seed is None:
            seed = SYNTHETIC_TEST_SEED if split == "test" else SYNTHETIC_TRAIN_SEED
        return SyntheticSegmentation(samples or SYNTHETIC_SAMPLES, h, w, classes=classes or SYNTHETIC_CLASSES,
                                     seed=seed)
