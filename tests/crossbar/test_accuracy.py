"""mIoU, fidelity over noise seeds, the shipped checkpoint and weight loading."""
import json
import os
import pty
import subprocess
import sys

import pytest
import torch

import graphcost
from graphcost.crossbar.accuracy import (AccuracyConfig, confusion_matrix, default_weights_path, evaluate_accuracy,
                                         load_weights, miou, prepare, run_trial, shipped_checkpoint_for)
from graphcost.crossbar.data import SyntheticSegmentation
from graphcost.crossbar.data.synthetic import _palette
from graphcost.crossbar.specs import ArraySpec, NoiseSpec
from graphcost.runtime.executor import make_executor
from graphcost.models import get_model

EXACT = ArraySpec(256, 256, weight_bits=16, cell_bits=16, dac_bits=16, adc_bits=16)


def test_confusion_and_miou_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 255, 1, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 0]])
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[2, 1, 0], [1, 2, 0], [0, 0, 1]]  # the 255 pixel is ignored
    # IoU: class 0 2/(3+3-2)=0.5, class 1 2/(3+3-2)=0.5, class 2 1/1
    assert miou(conf) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # a class absent from target and prediction does not count
    assert miou(confusion_matrix(pred, target, 5)) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert miou(confusion_matrix(pred, pred, 3, ignore_index=None)) == 1.0


class TwoOutputs(torch.nn.Module):
    """Two anytime outputs of a nearest-colour classifier (raw, then after a depthwise 3x3 blur)."""

    def __init__(self):
        super().__init__()
        palette = _palette(11)
        self.blur = torch.nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)
        self.head1 = torch.nn.Conv2d(3, 11, 1)
        self.head2 = torch.nn.Conv2d(3, 11, 1)
        with torch.no_grad():
            self.blur.weight.fill_(1 / 9)
            for head in (self.head1, self.head2):
                head.weight.copy_(2 * palette.view(11, 3, 1, 1))
                head.bias.copy_(-(palette ** 2).sum(1))

    def forward(self, x):
        return [self.head1(x), self.head2(self.blur(x))]


@pytest.fixture(scope="module")
def seg_state():
    torch.manual_seed(0)
    net = TwoOutputs().eval()
    state = prepare(net, AccuracyConfig(EXACT, NoiseSpec(), samples=2, classes=11), (1, 3, 8, 8))
    assert len(state.float_outputs[0][-1].value.argmax(1).unique()) > 3
    return state


@pytest.fixture(scope="module")
def tiny_itnet():
    torch.manual_seed(0)
    return get_model("itnet", N=2, f=8).eval()


def test_noise_free_16_bit_accuracy_is_the_float_accuracy(tiny_itnet):
    config = AccuracyConfig(array=EXACT, noise=NoiseSpec(), samples=4, trials=2)
    seen = []
    with make_executor("inline") as ex:
        result = evaluate_accuracy(tiny_itnet, config, executor=ex, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)]
    d = result.to_dict()
    assert set(d) >= {"miou", "fidelity_miou", "std", "outputs", "trials", "samples", "data"}
    assert len(d["outputs"]) == 2 and d["outputs"][1]["index"] == 2
    assert d["fidelity_miou"] == pytest.approx(1.0, abs=0.02)
    assert d["miou"] == pytest.approx(d["float_miou"], abs=0.02)
    assert d["trials"] == 2 and d["samples"] == 4 and d["data"] == "synthetic"
    assert json.loads(json.dumps(d)) == d


def test_more_noise_never_raises_fidelity_on_average(seg_state):
    state = seg_state
    means = []
    for level in (0.0, 0.02, 0.05, 0.1, 0.2):
        config = AccuracyConfig(array=ArraySpec(256, 256), noise=NoiseSpec(programming=level, read=level / 2),
                                trials=4)
        fid = [run_trial(config, state, t).fidelity[-1] for t in range(4)]
        means.append(sum(fid) / len(fid))
    assert all(a >= b for a, b in zip(means, means[1:])), means
    assert means[0] > means[-1] + 0.1


def test_trials_are_reproducible_and_seeded(seg_state):
    state = seg_state
    config = AccuracyConfig(array=ArraySpec(256, 256), noise=NoiseSpec(programming=0.1, read=0.05), seed=7)
    a, b = run_trial(config, state, 1), run_trial(config, state, 1)
    assert a == b and a.seed == 8
    assert run_trial(config, state, 2).fidelity != a.fidelity


def test_class_mismatch_is_a_user_error(tiny_itnet):
    config = AccuracyConfig(array=EXACT, noise=NoiseSpec(), samples=1, trials=1, classes=5)
    with pytest.raises(graphcost.UserError, match="classes"):
        evaluate_accuracy(tiny_itnet, config)


def test_load_weights_errors_are_one_sentence(tmp_path, tiny_itnet):
    with pytest.raises(graphcost.UserError, match="does not exist"):
        load_weights(tiny_itnet, tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 definitely not a checkpoint")
    with pytest.raises(graphcost.UserError, match="cannot read weights file") as info:
        load_weights(tiny_itnet, garbage)
    assert "\n" not in str(info.value)
    other = tmp_path / "other.pt"
    torch.save(get_model("itnet", N=3, f=8).state_dict(), other)
    with pytest.raises(graphcost.UserError, match="does not fit the model"):
        load_weights(tiny_itnet, other)
    wider = tmp_path / "wider.pt"
    torch.save(get_model("itnet", N=2, f=10).state_dict(), wider)
    with pytest.raises(graphcost.UserError, match="shape"):
        load_weights(tiny_itnet, wider)
    not_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], not_dict)
    with pytest.raises(graphcost.UserError, match="state dict"):
        load_weights(tiny_itnet, not_dict)


def test_load_weights_round_trip(tmp_path, tiny_itnet):
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in tiny_itnet.state_dict().items()}}, path)
    fresh = get_model("itnet", N=2, f=8)
    load_weights(fresh, path)
    for k, v in tiny_itnet.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_shipped_checkpoint_is_small_and_meaningful():
    path = default_weights_path()
    assert path.is_file() and path.stat().st_size < 2 * 1024 * 1024
    assert shipped_checkpoint_for("itnet", {}) == path
    assert shipped_checkpoint_for("itnet", {"N": 16, "f": 51, "shared": True}, dataset="camvid") == path
    assert shipped_checkpoint_for("itnet", {"N": 8}) is None
    assert shipped_checkpoint_for("itnet", {}, dataset="cityscapes") is None
    assert shipped_checkpoint_for("enet", {}) is None
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["params"] == {"shared": True, "N": 16, "L": 3, "K": 1, "f": 51, "classes": 11}
    model = load_weights(get_model("itnet"), path).eval()
    images, labels = SyntheticSegmentation(4).tensors()
    with torch.inference_mode():
        pred = model(images)[-1].argmax(1)
    # chance level on 11 classes is ~0.05; the shipped network is far above it
    assert miou(confusion_matrix(pred, labels, 11)) > 0.5


def test_trial_items_pickle_for_process_and_ray_workers(seg_state):
    import pickle

    from graphcost.crossbar import accuracy

    config = AccuracyConfig(array=ArraySpec(256, 256), noise=NoiseSpec.pcm(), seed=3)
    item = pickle.loads(pickle.dumps((config, seg_state, 1, None)))  # no batch counter
    fn = pickle.loads(pickle.dumps(accuracy._run_trial_item))
    assert fn(item) == run_trial(config, seg_state, 1)


@pytest.mark.parametrize("executor", [None, "local"])
def test_progress_counts_every_batch_of_every_trial_and_time(executor):
    """One step per batch: trials x times x batches, from a process pool's workers too."""
    state = prepare(TwoOutputs().eval(), AccuracyConfig(EXACT, NoiseSpec(), samples=8, classes=11), (1, 3, 8, 8))
    assert len(state.batches) == 2
    config = AccuracyConfig(EXACT, NoiseSpec.pcm(), samples=8, trials=3, classes=11, times_seconds=(60.0, 3600.0))
    seen = []
    if executor is None:
        result = evaluate_accuracy(None, config, state=state, progress=lambda d, t: seen.append((d, t)))
        assert seen == [(i, 12) for i in range(1, 13)]
    else:
        with make_executor(executor, workers=2) as ex:
            result = evaluate_accuracy(None, config, state=state, executor=ex,
                                       progress=lambda d, t: seen.append((d, t)))
        done = [d for d, _ in seen]
        assert {t for _, t in seen} == {12} and done[-1] == 12 and done == sorted(set(done))
    assert result.trials == 3 and len(result.times) == 2


_MAP_WITH_ACCURACY = [sys.executable, "-m", "graphcost.cli", "map", "digits-cnn", "--accuracy", "--data", "digits",
                      "--samples", "8", "--trials", "2", "--times", "60s,1h", "--noise", "pcm"]
_TERMINAL_ENV = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other side is closed
            return out
        if not chunk:
            return out
        out += chunk


def test_progress_bar_on_a_terminal_only():
    """The map command's accuracy bar: nothing on a pipe; on a terminal, steps = trials x times x batches
    (2 x 2 x 2 = 8)."""
    piped = subprocess.run(_MAP_WITH_ACCURACY, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_TERMINAL_ENV,
                           timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert b"simulating" not in piped.stderr and b"\x1b[" not in piped.stderr
    master, slave = pty.openpty()
    try:  # the terminal is read while the command runs: a full terminal buffer would block its writes
        child = subprocess.Popen(_MAP_WITH_ACCURACY, stdout=subprocess.PIPE, stderr=slave, env=_TERMINAL_ENV)
        os.close(slave)
        screen = _read_all(master)
        child.stdout.read()
        assert child.wait(timeout=300) == 0
    finally:
        os.close(master)
    assert b"simulating" in screen and b"8/8" in screen
