"""Training (float): Eq. 1, digits-cnn on the digits split, checks before any step, atomic checkpoints."""
import os

import numpy as np
import pytest
import torch

import graphcost
from graphcost.crossbar.accuracy import load_weights
from graphcost.crossbar.training import check_model_fits_data, evaluate, multi_output_loss, save_checkpoint, train
from graphcost.crossbar.data import open_dataset
from graphcost.models import get_model


def test_eq1_is_the_weighted_mean_of_the_per_output_losses():
    torch.manual_seed(0)
    outs = [torch.randn(4, 5, 6, 6) for _ in range(3)]
    y = torch.randint(0, 5, (4, 6, 6))
    y[0, 0, 0] = 255  # ignored
    ce = [torch.nn.functional.cross_entropy(o, y, ignore_index=255) for o in outs]
    assert torch.allclose(multi_output_loss(outs, y), sum(ce) / 3)
    assert torch.allclose(multi_output_loss(outs, y, [0, 1, 3]), (ce[1] + 3 * ce[2]) / 4)
    with pytest.raises(graphcost.UserError, match="loss weights"):
        multi_output_loss(outs, y, [1, 1])


def _top1_by_hand(model, data):
    """The reference: one float forward over the whole held-out split, argmax against the labels."""
    images, labels = open_dataset(data, None, split="test").tensors()
    with torch.no_grad():
        return (model.eval()(images).argmax(1) == labels).double().mean().item()


def _miou_by_hand(prediction, target, classes):
    """Mean over the classes present in target or prediction of |P & T| / |P | T| (numpy, not the tool's)."""
    p, t = prediction.numpy().ravel(), target.numpy().ravel()
    keep = t < classes  # 255 = ignore
    p, t = p[keep], t[keep]
    ious = [((p == c) & (t == c)).sum() / ((p == c) | (t == c)).sum()
            for c in range(classes) if ((p == c) | (t == c)).any()]
    return float(np.mean(ious)) if ious else 0.0


def test_digits_cnn_learns_the_digits_and_is_reproducible():
    torch.manual_seed(0)  # the initial weights: every draw of the run is seeded
    a = get_model("digits-cnn")
    torch.manual_seed(1)
    b = get_model("digits-cnn")
    b.load_state_dict(a.state_dict())
    losses = []
    ra = train(a, "digits", epochs=2, lr=3e-3, seed=3, train_samples=512, on_epoch=lambda e, n, l: losses.append(l))
    rb = train(b, "digits", epochs=2, lr=3e-3, seed=3, train_samples=512)
    assert ra.metric == "top1" and ra.task == "classification" and len(ra.per_output) == 1
    assert ra.per_output[0] == pytest.approx(_top1_by_hand(a, "digits"), abs=1e-12)  # what it reports is true
    assert ra.score > 0.85  # 2 short epochs on 512 images; the shipped checkpoint gets more
    assert losses == list(ra.loss_per_epoch) and losses[1] < losses[0]
    assert ra.per_output == rb.per_output
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_segmentation_training_reports_miou_per_output():
    torch.manual_seed(0)
    net = get_model("itnet", N=2, L=1, f=8, classes=11)
    r = train(net, "synthetic", epochs=1, batch_size=4, train_samples=8, eval_samples=4, crop=32)
    assert r.metric == "miou" and len(r.per_output) == 2
    # The reference: each anytime output's mIoU recomputed by hand from one float forward of the trained net.
    images, labels = open_dataset("synthetic", 4, split="test").tensors()
    with torch.no_grad():
        outputs = net.eval()(images)
    expected = [_miou_by_hand(o.argmax(1), labels, 11) for o in outputs]
    assert list(r.per_output) == pytest.approx(expected, abs=1e-9)  # float64 sums in a different order


@pytest.mark.parametrize("model, data, match", [
    ("itnet", "digits", "cannot run on the digits data"),
    ("digits-cnn", "synthetic", "cannot run on the synthetic data"),
])
def test_model_that_does_not_fit_the_data_fails_before_training(model, data, match):
    net = get_model(model, **({"N": 1, "L": 1, "f": 8} if model == "itnet" else {}))
    with pytest.raises(graphcost.UserError, match=match):
        train(net, data, epochs=1)


def test_classification_set_on_a_segmentation_output_is_named():
    class Seg(torch.nn.Module):  # runs on 1x8x8, but returns per-pixel logits
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 10, 1)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(graphcost.UserError, match="classification set but the model returns"):
        check_model_fits_data(Seg(), open_dataset("digits", 2))


def test_checkpoint_is_written_atomically_and_loads_weights_only(tmp_path, monkeypatch):
    net = get_model("digits-cnn")
    path = tmp_path / "sub" / "w.pt"
    save_checkpoint(net, str(path), {"top1": 0.5})
    assert path.is_file() and (tmp_path / "sub" / "w.json").is_file()
    other = load_weights(get_model("digits-cnn"), str(path))
    assert all(torch.equal(p, q) for p, q in zip(net.state_dict().values(), other.state_dict().values()))

    def boom(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(net, str(tmp_path / "x.pt"))
    assert sorted(os.listdir(tmp_path)) == ["sub"]


def test_evaluate_top1_by_hand():
    class Const(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(x.flatten(1)[:, 0].long(), 3).float()

    images = torch.tensor([0., 1, 2, 1]).view(4, 1, 1, 1)
    assert evaluate(Const(), images, torch.tensor([0, 1, 0, 1]), 3) == [0.75]
