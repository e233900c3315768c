"""Metrics by task on hand-made predictions with known values, and the label-free fidelity."""
import math

import pytest
import torch

from graphcost.crossbar.metrics import FidelityTally, Output, Tally, confusion_matrix, miou, model_outputs


def test_top1_and_top5_by_hand():
    # 3 samples, 6 classes: sample 0 right at top-1, sample 1 right only within the top 5, sample 2 last
    logits = torch.tensor([[9., 1, 2, 3, 4, 5],
                           [9., 8, 7, 6, 5, 4],
                           [0., 1, 2, 3, 4, 5]])
    t = Tally("classification", 6)
    t.add(logits, torch.tensor([0, 3, 0]))
    assert t.values() == {"top1": pytest.approx(1 / 3), "top5": pytest.approx(2 / 3)}
    few = Tally("classification", 3)
    few.add(torch.eye(3), torch.tensor([0, 1, 0]))
    assert few.values() == {"top1": pytest.approx(2 / 3)}  # no top-5 for 3 classes


def test_perplexity_and_next_token_top1_by_hand():
    # vocabulary 4, one sequence of 2 tokens (layout N x V x T): probabilities 1/2 and 1/4 of the labels
    probs = torch.tensor([[0.5, 0.25, 0.25, 0.0001], [0.25, 0.25, 0.25, 0.25]]).clamp_min(1e-12)
    logits = probs.log().T.unsqueeze(0)
    t = Tally("language-model", 4)
    t.add(logits, torch.tensor([[0, 1]]))
    v = t.values()
    nll = -(math.log(0.5 / probs[0].sum()) + math.log(0.25))
    assert v["perplexity"] == pytest.approx(math.exp(nll / 2), rel=1e-5)
    assert v["next_token_top1"] == pytest.approx(0.5)  # first right; second a four-way tie, argmax 0, label 1
    uniform = Tally("language-model", 7)
    uniform.add(torch.zeros(3, 7, 5), torch.randint(0, 7, (3, 5)))
    assert uniform.values()["perplexity"] == pytest.approx(7.0)


def test_tallies_over_batches_equal_the_whole():
    torch.manual_seed(0)
    logits, labels = torch.randn(10, 5, 6, 6), torch.randint(0, 5, (10, 6, 6))
    whole, parts = Tally("segmentation", 5), Tally("segmentation", 5)
    whole.add(logits, labels)
    for i in range(0, 10, 3):
        parts.add(logits[i:i + 3], labels[i:i + 3])
    assert whole.values() == parts.values()
    assert whole.values()["miou"] == pytest.approx(miou(confusion_matrix(logits.argmax(1), labels, 5)))


def test_fidelity_by_hand():
    ref = Output(torch.tensor([[2., 0, 0], [0, 2, 0]]), True)
    same = FidelityTally()
    same.add(ref, ref)
    assert same.values()["fidelity_top1"] == 1.0 and same.values()["relative_error"] == 0.0
    off = FidelityTally()
    off.add(Output(torch.tensor([[2., 0, 0], [0, 0, 2]]), True), ref)  # second decision flips
    v = off.values()
    assert v["fidelity_top1"] == 0.5
    # signal 8, error 8: SNR 0 dB, relative error 1
    assert v["snr_db"] == pytest.approx(0.0) and v["relative_error"] == pytest.approx(1.0)
    hidden = FidelityTally()
    hidden.add(Output(torch.ones(2, 3, 4) * 1.1, False), Output(torch.ones(2, 3, 4), False))
    assert set(hidden.values()) == {"snr_db", "relative_error"}
    assert hidden.values()["snr_db"] == pytest.approx(20.0)  # error 10 % of the signal


def test_model_outputs_put_the_class_dimension_first():
    class Out(dict):
        pass

    hf_like = type("ModelOutput", (), {"logits": torch.zeros(2, 5, 9)})()
    (o,) = model_outputs(hf_like, "none")
    assert o.logits and o.value.shape == (2, 9, 5)
    (h,) = model_outputs(torch.zeros(2, 5, 9), "none")
    assert not h.logits  # a plain 3-d tensor of unlabelled data is a hidden state
    assert [x.logits for x in model_outputs([torch.zeros(1, 3), torch.zeros(1, 3, 4, 4)], "segmentation")] == [True,
                                                                                                              True]
