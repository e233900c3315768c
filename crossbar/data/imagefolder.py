"""``--data imagefolder:PATH``: a user's own labelled images in torchvision's ``ImageFolder`` layout,
``PATH/<class>/<image>`` (class names: the sub-folders, sorted; ids 0, 1, ...), or ``PATH/train/<class>/..``
and ``PATH/val/<class>/..`` for a separate held-out split (else both splits are every image).

Images are resized (bilinear) to the model's input ``H x W``, grey for a 1-channel input, else RGB
normalised with the ImageNet mean and std (what torchvision and timm classifiers expect). The order
is one fixed seeded permutation of the files, so the first N images mix the classes.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple

import numpy as np
import torch

from graphcost.errors import UserError

from .base import first_input, register_source
from .images import ImageSource, SegmentationSet, read_image

#: File endings read as images.
IMAGE_ENDINGS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Seed of the fixed file order.
ORDER_SEED = 0


def _class_files(root: str) -> Tuple[List[str], List[Tuple[str, int]]]:
    """``(class names, [(file, class id)])`` of one ImageFolder root."""
    try:
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    except OSError as exc:
        raise UserError(f"cannot list {root!r}: {exc.strerror or exc}") from None
    files = [(os.path.join(root, c, f), i) for i, c in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(root, c))) if f.lower().endswith(IMAGE_ENDINGS)]
    if not files:
        raise UserError(f"no images in {root!r}: an image folder holds one sub-folder of images per class "
                        f"(PATH/<class>/<image>.png)")
    return classes, files


class ImageFolderSet(SegmentationSet):
    """The images of one ImageFolder root at ``size`` with ``channels`` (1 or 3); labels are class ids."""

    name = "imagefolder"
    task = "classification"

    def __init__(self, root: str, size: Tuple[int, int], channels: int = 3, samples: Optional[int] = None):
        self.class_names, files = _class_files(root)
        self.classes = len(self.class_names)
        order = np.random.RandomState(ORDER_SEED).permutation(len(files))
        self.files = [files[i] for i in order[:samples]] if samples else [files[i] for i in order]
        self.size, self.channels = tuple(size), channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        path, label = self.files[index]
        image = read_image(path, self.size, "L" if self.channels == 1 else "RGB")
        if self.channels == 3:
            image = (image - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
        return image, torch.tensor(label)


@register_source
class ImageFolderSource(ImageSource):
    """A classification set from a folder of class sub-folders."""

    scheme = "imagefolder"
    task = "classification"
    takes_path = True
    folder_what = "image folder"
    folder_layout = "a folder holding one sub-folder of images per class"

    def __init__(self, path: str):
        super().__init__(path)
        split_roots = [os.path.join(path, s) for s in ("train", "val")]
        self.split_roots = all(os.path.isdir(r) for r in split_roots)
        names, _ = _class_files(self._root("test"))  # an empty folder fails here, before any work
        self.classes = len(names)

    def _root(self, split: str) -> str:
        if not self.split_roots:
            return self.path
        return os.path.join(self.path, "train" if split == "train" else "val")

    def open(self, samples: Optional[int], split: str, classes: Optional[int], model_inputs: Any = None
             ) -> SegmentationSet:
        spec = first_input(model_inputs)
        if len(spec.shape) != 4 or spec.shape[1] not in (1, 3):
            raise UserError(f"image data needs a model taking N x C x H x W images with 1 or 3 channels; its input is "
                            f"{tuple(spec.shape)}")
        return ImageFolderSet(self._root(split), spec.shape[-2:], spec.shape[1], samples)
