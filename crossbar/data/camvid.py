"""``--data camvid:PATH``: CamVid in the SegNet layout, ``root/{train,val,test}/*.png`` and
``root/{trainannot,valannot,testannot}/*.png`` (same file names), 11 classes, label 11 (void) ->
255; images at 360 x 480, normalised to [0, 1] (ItNet paper, Sec. II-D).
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch

from graphcost.errors import UserError

from .base import register_source
from .images import LabelledFolderSource, SegmentationSet, list_png, read_image, read_label
from .base import IGNORE_INDEX

CAMVID_CLASSES = 11
CAMVID_SHAPE = (360, 480)


class CamVidDataset(SegmentationSet):
    """CamVid in the SegNet layout (``root/<split>/*.png`` + ``root/<split>annot/*.png``).

    Labels 0-10 are the 11 classes; 11 (void) and anything larger become 255. Images are resized
    to ``size`` (default 360 x 480) and scaled to [0, 1]. ``samples`` keeps the first N files
    (sorted by name).
    """

    name = "camvid"
    classes = CAMVID_CLASSES

    def __init__(self, root: str, split: str = "test", samples: Optional[int] = None,
                 size: Tuple[int, int] = CAMVID_SHAPE):
        self.root, self.split, self.size = root, split, tuple(size)
        CamVidSource.check_folder(root)
        img_dir, lab_dir = os.path.join(root, split), os.path.join(root, split + "annot")
        missing = [d for d in (img_dir, lab_dir) if not os.path.isdir(d)]
        if missing:
            raise UserError(f"{root!r} is not a CamVid folder in the SegNet layout: {missing[0]!r} is missing "
                            f"(expected {split}/ and {split}annot/)")
        files = list_png(img_dir)
        if not files:
            raise UserError(f"no .png images in {img_dir!r}")
        labels = set(list_png(lab_dir))
        pairs = []
        for f in files[:samples] if samples else files:
            if f not in labels:
                raise UserError(f"CamVid image {os.path.join(img_dir, f)!r} has no label {os.path.join(lab_dir, f)!r}")
            pairs.append((os.path.join(img_dir, f), os.path.join(lab_dir, f)))
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        img_path, lab_path = self.pairs[index]
        image = read_image(img_path, self.size)
        label = read_label(lab_path, self.size)
        label = torch.where((label < 0) | (label >= CAMVID_CLASSES), torch.tensor(IGNORE_INDEX), label)
        return image, label


@register_source
class CamVidSource(LabelledFolderSource):
    """CamVid's ``test`` (or ``train``) split."""

    scheme = "camvid"
    classes = CAMVID_CLASSES
    dataset = CamVidDataset
    folder_what = "CamVid folder"
    folder_layout = "a folder in the SegNet layout"
