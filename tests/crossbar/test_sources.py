"""The data sources: a tiny image folder and text file made here, pydoc's held-out topics, random inputs,
and label-free fidelity on random data (1.0 exact, < 1 with PCM)."""
import numpy as np
import pytest
import torch
from PIL import Image

import graphcost
from graphcost.crossbar.accuracy import AccuracyConfig, evaluate_accuracy
from graphcost.crossbar.data import (DATA_KINDS, SOURCES, DataSource, byte_windows, parse_data, pydoc_text,
                                     register_source)
from graphcost.crossbar.specs import ArraySpec, NoiseSpec
from graphcost.inputs import InputSpec

EXACT = ArraySpec(256, 256, weight_bits=16, cell_bits=16, dac_bits=16, adc_bits=16)
TOKENS = {"input_ids": InputSpec((1, 16), torch.int64)}


def _folder(root, classes=("cat", "dog"), per_class=3):
    rng = np.random.RandomState(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.rand(10, 14, 3) * 100 + 120 * c).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_registry_lists_every_form_and_rejects_a_scheme_twice():
    assert DATA_KINDS == ("synthetic", "digits", "camvid:PATH", "cityscapes:PATH", "imagefolder:PATH", "text:FILE",
                          "pydoc", "random")
    assert {s: c.task for s, c in SOURCES.items()}["pydoc"] == "language-model"
    with pytest.raises(ValueError, match="twice"):
        register_source(type("Again", (DataSource,), {"scheme": "digits"}))


def test_imagefolder_reads_classes_resizes_and_mixes(tmp_path):
    _folder(tmp_path)
    source = parse_data(f"imagefolder:{tmp_path}")
    assert source.task == "classification" and source.classes == 2
    s = source.load((1, 3, 8, 12), 4)
    assert s.args[0].shape == (4, 3, 8, 12) and s.labels.tolist() != [0, 0, 0, 0]
    assert set(s.labels.tolist()) <= {0, 1} and s.classes == 2
    grey = source.load((1, 1, 8, 8))
    assert grey.args[0].shape == (6, 1, 8, 8) and 0 <= float(grey.args[0].min()) <= float(grey.args[0].max()) <= 1
    assert torch.equal(source.load((1, 3, 8, 12), 4).args[0], s.args[0])  # a fixed order
    with pytest.raises(graphcost.UserError, match="N x C x H x W"):
        source.load({"input_ids": InputSpec((1, 8), torch.int64)})


def test_imagefolder_bad_folders_are_user_errors(tmp_path):
    with pytest.raises(graphcost.UserError, match="does not exist"):
        parse_data(f"imagefolder:{tmp_path / 'missing'}")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(graphcost.UserError, match="no images"):
        parse_data(f"imagefolder:{tmp_path / 'empty'}")


def test_text_windows_are_next_byte_targets(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("héllo wörld " * 40, encoding="utf-8")
    source = parse_data(f"text:{text}")
    s = source.load(TOKENS, 3)
    ids, labels = s.kwargs["input_ids"], s.labels
    assert ids.shape == (3, 16) and labels.shape == (3, 16) and ids.dtype == torch.int64
    assert torch.equal(ids[:, 1:], labels[:, :-1]) and torch.equal(labels[0, -1:], ids[1, :1])
    data = text.read_bytes()
    cut = int(len(data) * 0.9)
    assert bytes(ids[0].tolist()) == data[cut:cut + 16]  # the held-out tenth is the test split
    assert bytes(source.load(TOKENS, 1, split="train").kwargs["input_ids"][0].tolist()) == data[:16]
    assert byte_windows(b"abcdefg", 3, None).tolist() == [[97, 98, 99, 100], [100, 101, 102, 103]]


def test_bad_text_is_a_user_error(tmp_path):
    with pytest.raises(graphcost.UserError, match="does not exist"):
        parse_data(f"text:{tmp_path / 'missing.txt'}")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(graphcost.UserError, match="empty"):
        parse_data(f"text:{tmp_path / 'empty.txt'}")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(graphcost.UserError, match="not UTF-8"):
        parse_data(f"text:{tmp_path / 'bin.txt'}")
    (tmp_path / "short.txt").write_text("hi")
    with pytest.raises(graphcost.UserError, match="needs 17"):
        parse_data(f"text:{tmp_path / 'short.txt'}").load(TOKENS)
    with pytest.raises(graphcost.UserError, match="integer inputs"):
        parse_data("pydoc").load((1, 3, 8, 8))


def test_pydoc_holds_out_whole_topics():
    test, train = pydoc_text("test").decode(), pydoc_text("train").decode()
    assert 20_000 < len(test) < len(train) / 5
    from pydoc_data.topics import topics

    names = sorted(topics)
    assert topics[names[0]] in test and topics[names[0]] not in train
    assert topics[names[1]] in train and topics[names[1]] not in test
    s = parse_data("pydoc").load(TOKENS, 5)
    assert s.task == "language-model" and s.classes == 256 and int(s.kwargs["input_ids"].max()) < 256


def test_random_draws_to_the_specs_reproducibly():
    source = parse_data("random")
    inputs = ((1, 3, 4, 4), {"ids": InputSpec((1, 7), torch.int64)})
    a, b = source.load(inputs, 3, seed=1), source.load(inputs, 3, seed=1)
    assert a.args[0].shape == (3, 3, 4, 4) and a.kwargs["ids"].shape == (3, 7) and a.labels is None
    assert torch.equal(a.args[0], b.args[0]) and not torch.equal(a.args[0], source.load(inputs, 3, seed=2).args[0])
    assert int(source.load(inputs, 50, classes=5).kwargs["ids"].max()) < 5


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):  # flattened, so random inputs give varied decisions with small margins
        return self.head(torch.relu(self.conv(x)).flatten(1))


def test_random_fidelity_is_one_exactly_and_below_one_with_pcm():
    net = Classifier()
    exact = evaluate_accuracy(net, AccuracyConfig(EXACT, NoiseSpec(), data="random", samples=8, trials=1),
                              model_inputs=(1, 3, 8, 8))
    assert exact.metric == "fidelity_top1" and exact.task == "none"
    # not 200 dB: the converters are calibrated on the first batch, later batches clip a little
    assert exact.score == 1.0 and exact.to_dict()["snr_db"] > 30
    pcm = evaluate_accuracy(net, AccuracyConfig(ArraySpec(64, 64), NoiseSpec.pcm(), data="random", samples=32,
                                                trials=2, times_seconds=(86400.0,)), model_inputs=(1, 3, 8, 8))
    d = pcm.to_dict()
    assert d["fidelity_top1"] < 1.0 and d["snr_db"] < 40 and "top1" not in d and "miou" not in d


def test_a_task_that_does_not_fit_is_a_user_error(tmp_path):
    config = AccuracyConfig(EXACT, NoiseSpec(), data="digits", samples=2, trials=1)
    seg = torch.nn.Conv2d(1, 10, 1)
    with pytest.raises(graphcost.UserError, match="classification set but the model returns shape"):
        evaluate_accuracy(seg, config, model_inputs=(1, 1, 8, 8))
    _folder(tmp_path, classes=("a", "b", "c"))
    with pytest.raises(graphcost.UserError, match="predicts 10 classes but the imagefolder data has 3"):
        evaluate_accuracy(Classifier(), AccuracyConfig(EXACT, NoiseSpec(), data=f"imagefolder:{tmp_path}", trials=1),
                          model_inputs=(1, 3, 8, 8))
