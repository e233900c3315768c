"""Evaluation data for ``graphcost map --accuracy``: a built-in synthetic set, CamVid and Cityscapes.

Every dataset is a small sequence of ``(image, label)`` pairs: ``image`` a float32 ``3 x H x W``
tensor, ``label`` an int64 ``H x W`` tensor of class indices with :data:`IGNORE_INDEX` (255) for
pixels that do not count.

* :class:`SyntheticSegmentation` (the default; no download): random coloured, striped shapes on a
  textured background. Every class has its own colour and stripe orientation / period, with
  per-object colour jitter, smooth illumination and pixel noise on top, so a small network can
  learn it but not trivially. Generated deterministically from ``(seed, index)`` with a
  ``torch.Generator``; values in [0, 1].
* :class:`CamVidDataset` — the SegNet CamVid layout: ``root/{train,val,test}/*.png`` and
  ``root/{trainannot,valannot,testannot}/*.png`` (same file names), 11 classes, label 11 (void)
  -> 255; images at 360 x 480, normalised to [0, 1] (ItNet paper, Sec. II-D).
* :class:`DigitsDataset` — scikit-learn's handwritten digits (``sklearn.datasets.load_digits``:
  1,797 grey 8 x 8 images of 10 classes, shipped inside scikit-learn, so no download), values
  scaled from 0..16 to [0, 1]; a fixed seeded split (numpy ``RandomState(0)`` permutation:
  1,437 training and 360 held-out images). A classification set: labels are ``(S,)`` class ids.
* :class:`CityscapesDataset` — ``root/leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
  ``root/gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` (or ``*_gtFine_labelIds.png``, mapped
  to the 19 train ids, other ids -> 255); resized to 512 x 1024, normalised to [-1, 1].

:func:`open_dataset` parses ``"synthetic" | "digits" | "camvid:PATH" | "cityscapes:PATH"``; anything a user
can get wrong (unknown scheme, missing folder, unreadable file) raises :class:`graphcost.UserError`.
"""
from __future__ import annotations

import colorsys
import math
import os
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from graphcost.errors import UserError, first_line

__all__ = ["IGNORE_INDEX", "SYNTHETIC_SHAPE", "SYNTHETIC_TEST_SEED", "SYNTHETIC_TRAIN_SEED", "SegmentationSet",
           "SyntheticSegmentation", "CamVidDataset", "CityscapesDataset", "DigitsDataset", "open_dataset",
           "CITYSCAPES_TRAIN_IDS", "DATA_KINDS", "DIGITS_CLASSES", "DIGITS_SHAPE", "DIGITS_SPLIT_SEED"]

IGNORE_INDEX = 255
#: Default resolution of the synthetic set (H, W): a multiple of 16, so ItNet's scales divide it.
SYNTHETIC_SHAPE = (96, 128)
#: Data seeds of the synthetic evaluation ("test") and training sets: disjoint images.
SYNTHETIC_TEST_SEED = 0
SYNTHETIC_TRAIN_SEED = 1

CAMVID_CLASSES = 11
CAMVID_SHAPE = (360, 480)
CITYSCAPES_CLASSES = 19
CITYSCAPES_SHAPE = (512, 1024)
DIGITS_CLASSES = 10
DIGITS_SHAPE = (8, 8)
#: Seed of the fixed digits split (numpy ``RandomState``, stable across numpy versions).
DIGITS_SPLIT_SEED = 0
#: Held-out share of the digits split: 360 of 1,797 images.
DIGITS_TEST_SIZE = 360
#: The data forms :func:`open_dataset` accepts (PATH forms end in ``:``).
DATA_KINDS = ("synthetic", "digits", "camvid:PATH", "cityscapes:PATH")

#: Cityscapes label id -> train id (cityscapesScripts ``labels.py``); all other ids -> 255.
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                        25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


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


# --------------------------------------------------------------------------- synthetic
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
                 classes: int = CAMVID_CLASSES, seed: int = SYNTHETIC_TEST_SEED):
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


# --------------------------------------------------------------------------- digits
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


def _digits_arrays():
    """``(images (1797, 64) float, labels (1797,) int)`` from scikit-learn's bundled copy."""
    try:
        from sklearn.datasets import load_digits  # lazy: only the digits data needs scikit-learn
    except ImportError:
        raise UserError("the digits data needs scikit-learn; pip install scikit-learn") from None
    bunch = load_digits()
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target, dtype=np.int64)


# --------------------------------------------------------------------------- files
def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with matplotlib
        raise UserError("reading CamVid / Cityscapes needs pillow; pip install pillow") from None
    return Image


def _read_image(path: str, size: Tuple[int, int]) -> torch.Tensor:
    """RGB image resized (bilinear) to ``size = (H, W)``, as float32 ``3 x H x W`` in [0, 1]."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            data = im.tobytes()
    except Exception as exc:
        raise UserError(f"cannot read image {path!r}: {first_line(exc)}") from None
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(size[0], size[1], 3)
    return t.permute(2, 0, 1).float().div_(255.0)


def _read_label(path: str, size: Tuple[int, int]) -> torch.Tensor:
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
        raise UserError(f"cannot read label image {path!r}: {first_line(exc)}") from None
    if arr.ndim != 2:
        raise UserError(f"label image {path!r} must have one channel (class ids), it has shape {arr.shape}")
    return torch.from_numpy(arr)


def _list_png(folder: str) -> List[str]:
    try:
        return sorted(f for f in os.listdir(folder) if f.lower().endswith(".png"))
    except OSError as exc:
        raise UserError(f"cannot list {folder!r}: {exc.strerror or first_line(exc)}") from None


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
        if not os.path.isdir(root):
            raise UserError(f"CamVid folder {root!r} does not exist; give camvid:PATH of a folder in the SegNet layout")
        img_dir, lab_dir = os.path.join(root, split), os.path.join(root, split + "annot")
        missing = [d for d in (img_dir, lab_dir) if not os.path.isdir(d)]
        if missing:
            raise UserError(f"{root!r} is not a CamVid folder in the SegNet layout: {missing[0]!r} is missing "
                            f"(expected {split}/ and {split}annot/)")
        files = _list_png(img_dir)
        if not files:
            raise UserError(f"no .png images in {img_dir!r}")
        labels = set(_list_png(lab_dir))
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
        image = _read_image(img_path, self.size)
        label = _read_label(lab_path, self.size)
        label = torch.where((label < 0) | (label >= CAMVID_CLASSES), torch.tensor(IGNORE_INDEX), label)
        return image, label


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
        if not os.path.isdir(root):
            raise UserError(f"Cityscapes folder {root!r} does not exist; give cityscapes:PATH of the folder "
                            f"holding leftImg8bit/ and gtFine/")
        img_root, lab_root = os.path.join(root, "leftImg8bit", split), os.path.join(root, "gtFine", split)
        missing = [d for d in (img_root, lab_root) if not os.path.isdir(d)]
        if missing:
            raise UserError(f"{root!r} is not a Cityscapes folder: {missing[0]!r} is missing "
                            f"(expected leftImg8bit/{split}/<city>/ and gtFine/{split}/<city>/)")
        try:
            cities = sorted(d for d in os.listdir(img_root) if os.path.isdir(os.path.join(img_root, d)))
        except OSError as exc:
            raise UserError(f"cannot list {img_root!r}: {exc.strerror or first_line(exc)}") from None
        pairs = []
        suffix = "_leftImg8bit.png"
        for city in cities:
            for f in _list_png(os.path.join(img_root, city)):
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
        image = _read_image(img_path, self.size).mul_(2).sub_(1)
        label = _read_label(lab_path, self.size)
        if is_train_ids:
            label = torch.where((label < 0) | (label >= CITYSCAPES_CLASSES), torch.tensor(IGNORE_INDEX), label)
        else:
            label = _ID_TO_TRAIN[label.clamp(0, 255)]
        return image, label


# --------------------------------------------------------------------------- parsing
def open_dataset(text: str, samples: Optional[int], *, classes: Optional[int] = None,
                 size: Optional[Tuple[int, int]] = None, seed: Optional[int] = None,
                 split: str = "test") -> SegmentationSet:
    """``"synthetic"``, ``"digits"``, ``"camvid:PATH"`` or ``"cityscapes:PATH"`` -> a dataset of at
    most ``samples`` images (``None``: all of the split).

    ``classes`` sets the synthetic set's class count (digits have 10, CamVid 11, Cityscapes 19: a
    different value is an error); ``size = (H, W)`` overrides the resolution (default: synthetic
    96 x 128, CamVid 360 x 480, Cityscapes 512 x 1024); ``split`` is ``"test"`` (evaluation: the
    synthetic test seed, the digits held-out images, CamVid ``test``, Cityscapes ``val``) or
    ``"train"``; ``seed`` overrides the synthetic set's data seed.

    >>> open_dataset("digits", 5).task, len(open_dataset("digits", None, split="train"))
    ('classification', 1437)
    """
    kind, path = parse_data(text)
    if samples is not None and samples < 1:
        raise UserError(f"samples must be at least 1, got {samples}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if kind == "synthetic":
        h, w = size or SYNTHETIC_SHAPE
        if seed is None:
            seed = SYNTHETIC_TEST_SEED if split == "test" else SYNTHETIC_TRAIN_SEED
        return SyntheticSegmentation(samples or 512, h, w, classes=classes or CAMVID_CLASSES, seed=seed)
    if kind == "digits":
        _check_classes(kind, DIGITS_CLASSES, classes)
        return DigitsDataset(split, samples=samples)
    cls = CamVidDataset if kind == "camvid" else CityscapesDataset
    _check_classes(kind, cls.classes, classes)
    kwargs = {"size": tuple(size)} if size else {}
    folder = split if kind == "camvid" or split == "train" else "val"
    return cls(path, split=folder, samples=samples, **kwargs)


def check_data(text: str) -> str:
    """``text`` if it is a data form of :data:`DATA_KINDS` (see :func:`parse_data`), else :class:`UserError`."""
    parse_data(text)
    return text


def parse_data(text: str) -> Tuple[str, Optional[str]]:
    """A data form of :data:`DATA_KINDS` -> ``(kind, path or None)``; the command line's ``--data`` type.

    >>> parse_data("digits"), parse_data("camvid:/data/camvid")
    (('digits', None), ('camvid', '/data/camvid'))
    """
    kind, sep, path = (text or "").partition(":")
    if kind in ("synthetic", "digits") and not sep:
        return kind, None
    if kind in ("camvid", "cityscapes") and sep:
        if not path:
            raise UserError(f"{kind} data needs a path, e.g. {kind}:/data/{kind}")
        return kind, path
    raise UserError(f"data is {', '.join(DATA_KINDS[:-1])} or {DATA_KINDS[-1]}, got {text!r}")


def _check_classes(kind: str, expected: int, classes: Optional[int]) -> None:
    if classes is not None and classes != expected:
        raise UserError(f"{kind} has {expected} classes but the model predicts {classes}; "
                        f"build the model with {expected} classes")
