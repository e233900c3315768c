"""``--data cityscapes:PATH``: ``root/leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
``root/gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` (or ``*_gtFine_labelIds.png``, mapped to the
19 train ids, other ids -> 255); resized to 512 x 1024, normalised to [-1, 1].
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch

from graphcost.errors import UserError

from .base import register_source
from .images import LabelledFolderSource, SegmentationSet, list_png, read_image, read_label, reason
from .base import IGNORE_INDEX

CITYSCAPES_CLASSES = 19
CITYSCAPES_SHAPE = (512, 1024)
#: Cityscapes label id -> train id (cityscapesScripts ``labels.py``); all other ids -> 255.
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                        25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}

_ID_TO_TRAIN = torch.full((256,), IGNORE_INDEX, dtype=torch.long)
for _id, _train in CITYSCAPES_TRAIN_IDS.items():
    _ID_TO_TRAIN[_id] = _train


class CityscapesDataset(SegmentationSet):
    """Cityscapes (``leftImg8bit`` + ``gtFine``), 19 train ids, images scaled to [-1, 1].

    Uses ``*_gtFine_labelTrainIds.png`` where present, else maps ``*_gtFine_labelIds.png``
    through :data:`CITYSCAPES_TRAIN_IDS`. Images are resized to ``size`` (default 512 x 1024).
    """

    name = "cityscapes"
    classes = CITYSCAPES_CLASSES

    def __init__(self, root: str, split: str = "val", samples: Optional[int] = None,
                 size: Tuple[int, int] = CITYSCAPES_SHAPE):
        self.root, self.split, self.size = root, split, tuple(size)
        CityscapesSource.check_folder(root)
        img_root, lab_root = os.path.join(root, "leftImg8bit", split), os.path.join(root, "gtFine", split)
        missing = [d for d in (img_root, lab_root) if not os.path.isdir(d)]
        if missing:
            raise UserError(f"{root!r} is not a Cityscapes folder: {missing[0]!r} is missing "
                            f"(expected leftImg8bit/{split}/<city>/ and gtFine/{split}/<city>/)")
        try:
            cities = sorted(d for d in os.listdir(img_root) if os.path.isdir(os.path.join(img_root, d)))
        except OSError as exc:
            raise UserError(f"cannot list {img_root!r}: {exc.strerror or reason(exc)}") from None
        pairs = []
        suffix = "_leftImg8bit.png"
        for city in cities:
            for f in list_png(os.path.join(img_root, city)):
                if not f.endswith(suffix):
                    continue
                stem = f[: -len(suffix)]
                lab_dir = os.path.join(lab_root, city)
                train_ids = os.path.join(lab_dir, stem + "_gtFine_labelTrainIds.png")
                label_ids = os.path.join(lab_dir, stem + "_gtFine_labelIds.png")
                if os.path.isfile(train_ids):
                    pairs.append((os.path.join(img_root, city, f), train_ids, True))
                elif os.path.isfile(label_ids):
                    pairs.append((os.path.join(img_root, city, f), label_ids, False))
                else:
                    raise UserError(f"Cityscapes image {os.path.join(img_root, city, f)!r} has no label "
                                    f"{label_ids!r}")
                if samples and len(pairs) >= samples:
                    break
            if samples and len(pairs) >= samples:
                break
        if not pairs:
            raise UserError(f"no *{suffix} images in {img_root!r}/<city>/")
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        img_path, lab_path, is_train_ids = self.pairs[index]
        image = read_image(img_path, self.size).mul_(2).sub_(1)
        label = read_label(lab_path, self.size)
        if is_train_ids:
            label = torch.where((label < 0) | (label >= CITYSCAPES_CLASSES), torch.tensor(IGNORE_INDEX), label)
        else:
            label = _ID_TO_TRAIN[label.clamp(0, 255)]
        return image, label


@register_source
class CityscapesSource(LabelledFolderSource):
    """Cityscapes' ``val`` (or ``train``) split."""

    scheme = "cityscapes"
    classes = CITYSCAPES_CLASSES
    dataset = CityscapesDataset
    folder_what = "Cityscapes folder"
    folder_layout = "the folder holding leftImg8bit/ and gtFine/"

    def split_folder(self, split: str) -> str:
        return "train" if split == "train" else "val"
