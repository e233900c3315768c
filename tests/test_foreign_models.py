"""Oracle suite: models graphcost does not ship, against PyTorch's FlopCounterMode.

Every torchvision classification and segmentation family (one small variant each), timm models
(ViT / DeiT included), nn.Transformer*, recurrent and multi-input models. Reference: FlopCounterMode
on an eager forward (fake tensors) with attention as explicit matmuls (tests/oracles.eager_macs).
Params exact, MACs exactly equal (no tolerance: 0.5% of a model would hide a dropped classifier),
``complete`` true.
Models are built on the meta device: only shapes matter, nothing is allocated.
"""
import pytest
import torch
import torchvision
from torch import nn

import graphcost
from oracles import eager_macs

TORCHVISION = [  # (name, image side): one per family, the smallest variant, small images
    ("alexnet", 64), ("convnext_tiny", 64), ("densenet121", 64), ("efficientnet_b0", 64),
    ("efficientnet_v2_s", 64), ("googlenet", 64), ("inception_v3", 80), ("maxvit_t", 224), ("mnasnet0_5", 64),
    ("mobilenet_v2", 64), ("mobilenet_v3_small", 64), ("regnet_y_400mf", 64), ("resnet18", 64),
    ("resnext50_32x4d", 64), ("shufflenet_v2_x0_5", 64), ("squeezenet1_0", 64), ("swin_t", 224),
    ("swin_v2_t", 256), ("vgg11", 64), ("vit_b_16", 224), ("wide_resnet50_2", 64),
    ("fcn_resnet50", 64), ("deeplabv3_mobilenet_v3_large", 64), ("lraspp_mobilenet_v3_large", 64),
]
TIMM = [("vit_tiny_patch16_224", 224), ("deit_tiny_patch16_224", 224), ("convnext_atto", 64),
        ("efficientnet_b0", 64), ("mobilevit_xxs", 256), ("levit_128s", 224)]


def check(model, *inputs, **kw_inputs):
    a = graphcost.analyze(model, tuple(inputs) + ((kw_inputs,) if kw_inputs else ()))
    reference = eager_macs(model, *inputs, **kw_inputs)
    assert a.macs == reference, (a.macs, reference)
    assert a.params == sum(p.numel() for p in model.parameters())
    assert a.complete, a.uncounted
    return a


def torchvision_model(name):
    kwargs = {}
    if name.startswith(("fcn", "deeplab", "lraspp")):
        kwargs = {"weights_backbone": None} if name.startswith("lraspp") else {"weights_backbone": None, "aux_loss": False}
    try:
        with torch.device("meta"):
            return torchvision.models.get_model(name, weights=None, **kwargs).eval()
    except NotImplementedError:  # regnet computes its widths with tensors: build it for real (it is small)
        return torchvision.models.get_model(name, weights=None, **kwargs).eval()


@pytest.mark.parametrize("name,side", TORCHVISION, ids=[n for n, _ in TORCHVISION])
def test_torchvision(name, side):
    check(torchvision_model(name), (1, 3, side, side))


@pytest.mark.parametrize("name,side", TIMM, ids=[n for n, _ in TIMM])
def test_timm(name, side):
    import timm  # the test extra installs it; a missing timm must fail, not skip
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False).eval()
    check(model, (1, 3, side, side))


class Seq2Seq(nn.Module):
    """nn.Transformer: two inputs (source, target), both batch-first."""

    def __init__(self):
        super().__init__()
        self.transformer = nn.Transformer(64, 4, 2, 2, 128, batch_first=True)

    def forward(self, src, tgt):
        return self.transformer(src, tgt)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(32, 64, num_layers=2, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(128, 32, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.gru(self.lstm(x)[0])[0][:, -1])


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(64, 4, 128, batch_first=True), 2)

    def forward(self, tgt, memory):
        return self.decoder(tgt, memory)


def test_nn_transformer_two_inputs():
    a = check(Seq2Seq(), (2, 20, 64), (2, 12, 64))
    assert a.opaque_modules == ("transformer",)


def test_nn_transformer_decoder():
    check(Decoder(), (1, 16, 64), (1, 24, 64))


def test_nn_transformer_encoder_long_sequence():
    """The issue's case: seq 1024, d 64, 2 layers was 0.080 G (fast path) against 0.348 G."""
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 256, batch_first=True), 2).eval()
    a = check(model, (1, 1024, 64))
    assert a.macs == 2 * (4 * 1024 * 64 * 64 + 2 * 1024 * 1024 * 64 + 2 * 1024 * 64 * 256)


def test_lstm_gru_by_hand():
    """FlopCounterMode is no oracle here: it counts 369,280 (GRU and head only, nothing of the LSTM)."""
    model = Recurrent()
    a = graphcost.analyze(model, (2, 12, 32))
    steps = 2 * 12
    lstm = 2 * steps * 4 * 64 * ((32 + 64) + (128 + 64))  # two directions, two layers, four gates
    gru = steps * 3 * 32 * (128 + 32)
    assert a.macs == lstm + gru + 2 * 32 * 10 and a.complete
    assert eager_macs(model, (2, 12, 32)) == gru + 2 * 32 * 10


def test_keyword_inputs_multi_input_model():
    check(Seq2Seq(), src=(1, 10, 64), tgt=(1, 6, 64))
