"""``graphcost train``: a checkpoint that loads, and bad input -> one line, exit 2, nothing written."""
import json

import pytest
import torch

from clirun import run
from graphcost.crossbar.accuracy import load_weights
from graphcost.models import get_model


def test_train_writes_a_checkpoint_and_its_record(capsys, tmp_path):
    out = tmp_path / "digits.pt"
    rc, stdout, err = run(capsys, "train", "digits-cnn", "--data", "digits", "--epochs", "1", "--samples", "256",
                          "--seed", "2", "--out", str(out))
    assert rc == 0, err
    assert "top1 on the held-out digits split" in stdout and "epoch 1/1: loss" in err
    meta = json.loads((tmp_path / "digits.json").read_text())
    assert meta["model"] == "digits-cnn" and meta["config"]["seed"] == 2 and 0 <= meta["top1"] <= 1
    load_weights(get_model("digits-cnn"), str(out))


def test_full_depth_weight_is_recorded(capsys, tmp_path):
    """--ponder and --full-depth-weight on a tiny iterative-resnet: both weights in the checkpoint's JSON."""
    out = tmp_path / "halt.pt"
    rc, _, err = run(capsys, "train", "iterative-resnet", "--param", "iterations=(2, 2)", "--param", "width=4",
                     "--data", "digits", "--epochs", "1", "--samples", "64", "--ponder", "0.01",
                     "--full-depth-weight", "0.5", "--out", str(out))
    assert rc == 0, err
    config = json.loads((tmp_path / "halt.json").read_text())["config"]
    assert config["ponder"] == 0.01 and config["full_depth_weight"] == 0.5


@pytest.mark.parametrize("args, match", [
    # --data digits builds the digits preset (1 x 8 x 8, 10 classes): ItNet then answers per pixel
    (["itnet", "--param", "N=1", "--data", "digits"], "pick a classification model"),
    (["digits-cnn", "--data", "imagenet"], "--data"),
    (["digits-cnn", "--init", "{shipped}"], "does not fit the model"),
    (["digits-cnn", "--init", "{missing}"], "does not exist"),
    (["digits-cnn", "--epochs", "0"], "--epochs"),
    (["digits-cnn", "--lr", "0"], "--lr"),
    (["digits-cnn", "--data", "digits", "--full-depth-weight", "1"], "halting (ACT) stages"),
    (["iterative-resnet", "--data", "digits", "--full-depth-weight", "-1"], "--full-depth-weight"),
])
def test_bad_input_is_one_line_exit_2_and_no_file(capsys, tmp_path, args, match):
    from graphcost.crossbar.accuracy import default_weights_path

    args = [a.format(shipped=default_weights_path(), missing=tmp_path / "nope.pt") for a in args]
    out = tmp_path / "w.pt"
    rc, _, err = run(capsys, "train", *args, "--out", str(out))
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1 and not err.startswith("Traceback")
    assert not out.exists() and list(tmp_path.iterdir()) == []
