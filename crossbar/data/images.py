"""Image data shared by the image sources: :class:`SegmentationSet` (the ``(image, label)`` sequence
base), the PNG / JPEG readers, and :class:`ImageSource` (a source whose samples are such a set).

Every set is a small sequence of ``(image, label)`` pairs: ``image`` a float32 ``C x H x W``
tensor, ``label`` an int64 ``H x W`` tensor of class indices (:data:`IGNORE_INDEX`, 255, for pixels
that do not count) or, for classification, one class id.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple

import numpy as np
import torch

from graphcost.errors import UserError, first_line

from .base import IGNORE_INDEX, DataSource, Samples, check_samples, check_split, fill_inputs

__all__ = ["SegmentationSet", "ImageSource", "LabelledFolderSource", "check_folder", "read_image", "read_label", "list_png", "reason"]


class SegmentationSet:
    """Base: ``len``, ``[i] -> (image, label)``, ``name``, ``classes``, and :meth:`tensors`.

    ``task`` is ``"segmentation"`` (labels ``H x W``, scored by mIoU) or ``"classification"``
    (one label per image, scored by top-1 accuracy).
    """

    name = "dataset"
    classes = 0
    task = "segmentation"

    def __len__(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def tensors(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """All samples stacked: images ``(S, 3, H, W)`` float32, labels ``(S, H, W)`` int64."""
        pairs = [self[i] for i in range(len(self))]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])



def check_folder(path: str, what: str, scheme: str, layout: str) -> None:
    """A missing folder is the user's error, named with the form it came from: ``"{what} PATH does not
    exist; give {scheme}:PATH of {layout}"``."""
    if not os.path.isdir(path):
        raise UserError(f"{what} {path!r} does not exist; give {scheme}:PATH of {layout}")


class ImageSource(DataSource):
    """A source whose samples are a :class:`SegmentationSet`: :meth:`open` builds it.

    A source read from a folder (``takes_path``) names it ``folder_what`` and describes its
    ``folder_layout``; the constructor checks the folder exists (:func:`check_folder`)."""

    folder_what = "folder"
    folder_layout = "a folder"

    def __init__(self, path: Optional[str] = None):
        super().__init__(path)
        if self.takes_path:
            self.check_folder(path)

    @classmethod
    def check_folder(cls, path: str) -> None:
        """:func:`check_folder` with this source's names."""
        check_folder(path, cls.folder_what, cls.scheme, cls.folder_layout)

    def open(self, samples: Optional[int], split: str, classes: Optional[int], model_inputs: Any = None
             ) -> SegmentationSet:  # pragma: no cover - overridden
        raise NotImplementedError

    def load(self, model_inputs: Any, samples: Optional[int] = None, *, split: str = "test", seed: int = 0,
             classes: Optional[int] = None) -> Samples:
        check_samples(samples)
        check_split(split)
        dataset = self.open(samples, split, classes, model_inputs)
        images, labels = dataset.tensors()
        args, kwargs = fill_inputs(model_inputs, images, torch.Generator().manual_seed(seed))
        return Samples(args, kwargs, labels, dataset.task, dataset.classes)


class LabelledFolderSource(ImageSource):
    """A segmentation set in a fixed folder layout with its own class count (CamVid, Cityscapes):
    ``dataset`` is its :class:`SegmentationSet` class, built from ``(root, split=..., samples=...,
    size=...)``; :meth:`split_folder` names the folder split of ``"test"`` / ``"train"``."""

    task = "segmentation"
    takes_path = True
    dataset: type = SegmentationSet

    def split_folder(self, split: str) -> str:
        return split

    def open(self, samples: Optional[int], split: str, classes: Optional[int], model_inputs: Any = None,
             size: Optional[Tuple[int, int]] = None) -> SegmentationSet:
        check_classes(self.scheme, self.classes, classes)
        return self.dataset(self.path, split=self.split_folder(split), samples=samples,
                            **({"size": tuple(size)} if size else {}))


# --------------------------------------------------------------------------- files
def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with matplotlib
        raise UserError("reading CamVid / Cityscapes needs pillow; pip install pillow") from None
    return Image


def read_image(path: str, size: Tuple[int, int], mode: str = "RGB") -> torch.Tensor:
    """Image resized (bilinear) to ``size = (H, W)``, as float32 ``C x H x W`` in [0, 1] (``mode`` ``"RGB"``:
    3 channels, ``"L"``: 1)."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            data = im.tobytes()
    except Exception as exc:
        raise UserError(f"cannot read image {path!r}: {reason(exc)}") from None
    channels = len(mode)
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(size[0], size[1], channels)
    return t.permute(2, 0, 1).float().div_(255.0)


def read_label(path: str, size: Tuple[int, int]) -> torch.Tensor:
    """Single-channel label PNG resized (nearest) to ``size``, as int64 ``H x W``."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                im = im.convert("L")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.NEAREST)
            if im.mode == "P":
                im = im.convert("L") if im.getpalette() is None else im
            arr = np.array(im, dtype=np.int64)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"cannot read label image {path!r}: {reason(exc)}") from None
    if arr.ndim != 2:
        raise UserError(f"label image {path!r} must have one channel (class ids), it has shape {arr.shape}")
    return torch.from_numpy(arr)


def reason(exc: Exception) -> str:
    """The first line of a failure's message (:func:`graphcost.errors.first_line`)."""
    return first_line(exc)


def list_png(folder: str) -> List[str]:
    try:
        return sorted(f for f in os.listdir(folder) if f.lower().endswith(".png"))
    except OSError as exc:
        raise UserError(f"cannot list {folder!r}: {exc.strerror or reason(exc)}") from None




def check_classes(kind: str, expected: int, classes: Optional[int]) -> None:
    """A model predicting another class count than the data's labels is the user's error."""
    if classes is not None and classes != expected:
        raise UserError(f"{kind} has {expected} classes but the model predicts {classes}; "
                        f"build the model with {expected} classes")
