"""Evaluation data: the synthetic set and the CamVid / Cityscapes loaders on tiny generated folders."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import graphcost
from graphcost.crossbar.data import (IGNORE_INDEX, SYNTHETIC_SHAPE, CamVidDataset, CityscapesDataset,
                                     SyntheticSegmentation, open_dataset, parse_data)

H, W = 16, 24


def test_synthetic_is_deterministic_and_well_formed():
    a = SyntheticSegmentation(4, 32, 48, classes=7, seed=5)
    img, lab = a[2]
    assert img.shape == (3, 32, 48) and img.dtype == torch.float32 and lab.dtype == torch.int64
    assert 0 <= float(img.min()) and float(img.max()) <= 1
    assert int(lab.min()) >= 0 and int(lab.max()) < 7
    again = SyntheticSegmentation(4, 32, 48, classes=7, seed=5)[2]
    assert torch.equal(img, again[0]) and torch.equal(lab, again[1])
    other = SyntheticSegmentation(4, 32, 48, classes=7, seed=6)[2]
    assert not torch.equal(img, other[0])
    images, labels = a.tensors()
    assert images.shape == (4, 3, 32, 48) and labels.shape == (4, 32, 48)


def test_synthetic_classes_have_distinct_colours():
    ds = SyntheticSegmentation(24, classes=11, seed=0)
    images, labels = ds.tensors()
    means = torch.stack([images.permute(1, 0, 2, 3)[:, labels == c].mean(1) for c in range(11)])
    assert len(labels.unique()) == 11  # every class occurs
    dist = torch.cdist(means, means) + torch.eye(11)
    assert float(dist.min()) > 0.05


def test_open_dataset_synthetic_default():
    ds = open_dataset("synthetic", 3, classes=5)
    assert len(ds) == 3 and ds.classes == 5
    assert ds[0][0].shape == (3,) + SYNTHETIC_SHAPE


def _png(path, array, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode=mode).save(path)


def _camvid(root, n=3, split="test"):
    rng = np.random.default_rng(0)
    for i in range(n):
        _png(os.path.join(root, split, f"img{i}.png"), rng.integers(0, 256, (H, W, 3)), "RGB")
        label = rng.integers(0, 12, (H, W))
        label[0, 0] = 11  # void
        label[0, 1] = 3
        _png(os.path.join(root, split + "annot", f"img{i}.png"), label, "L")


def test_camvid_layout(tmp_path):
    _camvid(str(tmp_path))
    ds = CamVidDataset(str(tmp_path), size=(H, W))
    assert len(ds) == 3 and ds.classes == 11
    img, lab = ds[0]
    raw = np.array(Image.open(tmp_path / "test" / "img0.png"))
    assert torch.allclose(img, torch.from_numpy(raw).permute(2, 0, 1).float() / 255)
    assert int(lab[0, 0]) == IGNORE_INDEX and int(lab[0, 1]) == 3
    assert set(lab.unique().tolist()) <= set(range(11)) | {IGNORE_INDEX}
    # default: the CamVid preset resolution, labels resized with nearest neighbours
    big = open_dataset(f"camvid:{tmp_path}", 2)
    image, label = big[1]
    assert len(big) == 2 and image.shape == (3, 360, 480) and label.shape == (360, 480)
    assert set(label.unique().tolist()) <= set(range(11)) | {IGNORE_INDEX}


def test_cityscapes_layout_maps_label_ids_to_train_ids(tmp_path):
    img_dir = tmp_path / "leftImg8bit" / "val" / "aachen"
    lab_dir = tmp_path / "gtFine" / "val" / "aachen"
    rng = np.random.default_rng(1)
    _png(str(img_dir / "a_000001_leftImg8bit.png"), rng.integers(0, 256, (H, W, 3)), "RGB")
    ids = np.zeros((H, W), dtype=np.uint8)
    ids[:, :8], ids[:, 8:16], ids[:, 16:] = 7, 26, 1  # road, car, ego vehicle (ignored)
    _png(str(lab_dir / "a_000001_gtFine_labelIds.png"), ids, "L")
    # a second image with a ready-made train-id label: used as is
    _png(str(img_dir / "b_000002_leftImg8bit.png"), rng.integers(0, 256, (H, W, 3)), "RGB")
    _png(str(lab_dir / "b_000002_gtFine_labelIds.png"), ids, "L")
    _png(str(lab_dir / "b_000002_gtFine_labelTrainIds.png"), np.full((H, W), 18), "L")
    ds = CityscapesDataset(str(tmp_path), size=(H, W))
    assert len(ds) == 2 and ds.classes == 19
    img, lab = ds[0]
    assert -1 <= float(img.min()) < 0 < float(img.max()) <= 1
    assert lab[:, :8].eq(0).all() and lab[:, 8:16].eq(13).all() and lab[:, 16:].eq(IGNORE_INDEX).all()
    assert ds[1][1].eq(18).all()
    assert len(open_dataset(f"cityscapes:{tmp_path}", 1, classes=19)) == 1


@pytest.mark.parametrize("text, match", [
    ("imagenet", "data is synthetic, digits"),
    ("camvid", "data is synthetic, digits"),
    ("camvid:", "needs a path"),
    ("camvid:/no/such/folder", "does not exist"),
    ("cityscapes:/no/such/folder", "does not exist"),
])
def test_bad_data_specs_are_user_errors(text, match):
    with pytest.raises(graphcost.UserError, match=match) as caught:
        open_dataset(text, 2)
    assert "--" not in str(caught.value)  # the library never names a command-line flag


@pytest.mark.parametrize("scheme, message", [
    ("camvid", "CamVid folder '/no/such' does not exist; give camvid:PATH of a folder in the SegNet layout"),
    ("cityscapes", "Cityscapes folder '/no/such' does not exist; give cityscapes:PATH of the folder holding "
                   "leftImg8bit/ and gtFine/"),
    ("imagefolder", "image folder '/no/such' does not exist; give imagefolder:PATH of a folder holding one "
                    "sub-folder of images per class"),
])
def test_every_folder_source_names_its_missing_folder(scheme, message):
    """One folder check (ImageSource) serves every folder form, each with its own words; the CamVid and
    Cityscapes sets built directly check the same way."""
    from graphcost.crossbar.data import SOURCES

    with pytest.raises(graphcost.UserError) as caught:
        parse_data(f"{scheme}:/no/such")
    assert str(caught.value) == message
    dataset = getattr(SOURCES[scheme], "dataset", None)
    if dataset is not None:
        with pytest.raises(graphcost.UserError) as direct:
            dataset("/no/such")
        assert str(direct.value) == message


def test_incomplete_or_unreadable_folders_are_user_errors(tmp_path):
    (tmp_path / "test").mkdir()
    with pytest.raises(graphcost.UserError, match="testannot"):
        open_dataset(f"camvid:{tmp_path}", 2)
    (tmp_path / "testannot").mkdir()
    with pytest.raises(graphcost.UserError, match="no .png images"):
        open_dataset(f"camvid:{tmp_path}", 2)
    (tmp_path / "test" / "x.png").write_bytes(b"not a png at all")
    with pytest.raises(graphcost.UserError, match="has no label"):
        open_dataset(f"camvid:{tmp_path}", 2)
    (tmp_path / "testannot" / "x.png").write_bytes(b"not a png either")
    ds = open_dataset(f"camvid:{tmp_path}", 2)
    with pytest.raises(graphcost.UserError, match="cannot read image") as info:
        ds.tensors()
    assert "\n" not in str(info.value)
    with pytest.raises(graphcost.UserError, match="leftImg8bit"):
        open_dataset(f"cityscapes:{tmp_path}", 2)


def test_class_count_mismatch_is_a_user_error(tmp_path):
    _camvid(str(tmp_path), n=1)
    with pytest.raises(graphcost.UserError, match="11 classes"):
        open_dataset(f"camvid:{tmp_path}", 1, classes=19)


def test_digits_split_is_fixed_disjoint_and_complete():
    from graphcost.crossbar.data import DigitsDataset

    test, train = DigitsDataset("test"), DigitsDataset("train")
    assert (len(test), len(train)) == (360, 1437) and test.task == "classification"
    images, labels = test.tensors()
    assert images.shape == (360, 1, 8, 8) and labels.shape == (360,) and labels.dtype == torch.int64
    assert 0 <= float(images.min()) and float(images.max()) <= 1
    assert set(labels.tolist()) == set(range(10))
    # disjoint: no held-out image equals a training image at the same label (the set has few duplicates)
    flat_train = {tuple(x.flatten().tolist()) for x in train.tensors()[0]}
    shared = sum(tuple(x.flatten().tolist()) in flat_train for x in images)
    assert shared <= 2
    again = open_dataset("digits", 5)
    assert torch.equal(again.tensors()[0], images[:5])


def test_digits_class_mismatch_and_forms_are_user_errors():
    with pytest.raises(graphcost.UserError, match="10 classes"):
        open_dataset("digits", 2, classes=11)
    with pytest.raises(graphcost.UserError, match="data is synthetic"):
        open_dataset("digits:/x", 2)
