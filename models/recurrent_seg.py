"""Recurrent segmentation with an additive canvas (McIntosh, Maheswaranathan, Sussillo, Shlens 2018).

L. McIntosh, N. Maheswaranathan, D. Sussillo, J. Shlens, "Recurrent Segmentation for Variable
Computational Budgets", CVPR 2018 Workshops (arXiv:1711.10151).

A ResNet-101 feature extractor (output stride 16, 2048 channels) runs once; a stack of three
convolutional LSTMs with 1x1 kernels, whose depth shrinks from the feature channels to the
classes, then runs for ``iterations`` steps. Each step feeds ``concat(features, canvas)`` to the
stack and adds the last LSTM's output to the canvas (the running logits); the prediction of a
step is the bilinearly upsampled canvas. The same ConvLSTM modules are called at every step.
See :func:`recurrent_seg`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .registry import DATASETS, MAX_REPEATS, MAX_WIDTH, check_int, register_model

__all__ = ["ResNet101Trunk", "ConvLSTMCell", "RecurrentSeg", "recurrent_seg", "RESNET101_LAYERS"]

RESNET101_LAYERS = (3, 4, 23, 3)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3 with the stride and dilation, 1x1 x4), BN after each conv."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))
        else:
            self.downsample = None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet101Trunk(nn.Module):
    """ResNet-101 without pooling/classifier: conv1, layer1..layer4 (2048 channels).

    ``output_stride`` 32 is the plain network; 16 (default) and 8 replace the stride of
    layer4 (and layer3) by dilation, torchvision's ``replace_stride_with_dilation`` scheme.
    """

    def __init__(self, layers: Sequence[int] = RESNET101_LAYERS, output_stride: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        dilate = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}[output_stride]
        self.in_channels = 64
        self.dilation = 1
        self.layer1 = self._make_layer(64, layers[0], 1, False)
        self.layer2 = self._make_layer(128, layers[1], 2, dilate[0])
        self.layer3 = self._make_layer(256, layers[2], 2, dilate[1])
        self.layer4 = self._make_layer(512, layers[3], 2, dilate[2])
        self.out_channels = self.in_channels

    def _make_layer(self, width: int, blocks: int, stride: int, dilate: bool) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        layer = [Bottleneck(self.in_channels, width, stride, previous_dilation)]
        self.in_channels = width * Bottleneck.expansion
        layer += [Bottleneck(self.in_channels, width, 1, self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layer)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM (Shi et al. 2015, without peepholes): one conv over concat(x, h) -> 4 gates.

    ``i, f, o = sigmoid``, ``g = tanh``; ``c' = f * c + i * g``; ``h' = o * tanh(c')``.
    ``forward(x, h, c)`` returns ``(h', c')``.
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 1):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size, padding=kernel_size // 2, bias=True)

    def forward(self, x, h, c):
        gates = self.gates(torch.cat([x, h], 1))
        n = self.hidden
        i = torch.sigmoid(gates[:, 0:n])
        f = torch.sigmoid(gates[:, n:2 * n])
        o = torch.sigmoid(gates[:, 2 * n:3 * n])
        g = torch.tanh(gates[:, 3 * n:4 * n])
        c = f * c + i * g
        h = o * torch.tanh(c)
        return h, c


class RecurrentSeg(nn.Module):
    """ResNet-101 features, a ConvLSTM stack iterated ``iterations`` times, an additive canvas.

    ``forward(x)`` returns a list of ``iterations`` tensors ``N x classes x H x W``: the canvas
    after each iteration, bilinearly upsampled (align_corners=True) to the input resolution.
    """

    def __init__(self, *, classes: int = 21, iterations: int = 6, lstm_channels: Sequence[int] = (512, 256),
                 kernel_size: int = 1, output_stride: int = 16):
        super().__init__()
        self.classes = classes
        self.iterations = iterations
        self.backbone = ResNet101Trunk(RESNET101_LAYERS, output_stride)
        hidden = list(lstm_channels) + [classes]
        inputs = [self.backbone.out_channels + classes] + hidden[:-1]
        self.cells = nn.ModuleList(ConvLSTMCell(i, h, kernel_size) for i, h in zip(inputs, hidden))

    def forward(self, x):
        features = self.backbone(x)
        zero = torch.zeros_like(features[:, :1])  # N x 1 x h x w
        canvas = zero.expand(-1, self.classes, -1, -1)
        hs = [zero.expand(-1, cell.hidden, -1, -1) for cell in self.cells]
        cs = list(hs)  # zero initial state (the paper found learned initial states generalise worse)
        size = x.shape[-2:]
        outputs = []
        for _ in range(self.iterations):
            inp = torch.cat([features, canvas], 1)
            for index, cell in enumerate(self.cells):
                hs[index], cs[index] = cell(inp, hs[index], cs[index])
                inp = hs[index]
            canvas = canvas + inp
            outputs.append(F.interpolate(canvas, size=size, mode="bilinear", align_corners=True))
        return outputs


@register_model("recurrent-seg", default_dataset="pascal")
def recurrent_seg(*, dataset: str = "pascal", classes: int | None = None, iterations: int = 6,
                  lstm_channels: Sequence[int] = (512, 256), kernel_size: int = 1,
                  output_stride: int = 16) -> nn.Module:
    """Recurrent segmentation (McIntosh et al. 2018): ResNet-101 features + 3 stacked 1x1 ConvLSTMs + additive canvas.

    Paper: L. McIntosh, N. Maheswaranathan, D. Sussillo, J. Shlens, "Recurrent Segmentation for
    Variable Computational Budgets", CVPR 2018 Workshops, arXiv:1711.10151.

    Published numbers (PASCAL VOC 2012, 513x513, single scale, output stride 16):
      * Feature extractor ("conv4_x (block4)" of ResNet-V1-101, 2048 channels): 42.5M params,
        54.4 GFLOPs. Whole model, Table 3: 61.1 / 67.7 / 74.4 / 81.0 / 87.7 / 94.3 GFLOPs after
        1..6 iterations ("less than 7 GFLOPs" per extra iteration); multi-scale 1,040..1,610.
        The numbers match multiply-accumulates: they are what we call MACs.
      * mIoU: 80.3 on PASCAL VOC 2012 val with 6 iterations (multi-scale, COCO pre-training,
        Table 1); 72.7 class IoU on Cityscapes val (Table 2). No parameter count for the RNN.
    Measured here (MACs of conv/linear only) at 1x3x513x513, 21 classes:
      * trunk 42,500,160 params (= the paper's 42.5M; conv1..layer3 alone would be 27.5M),
        54.71 GMAC (paper 54.4, +0.6%);
      * ConvLSTM stack 6,098,744 params, 6.638 GMAC per iteration (paper 6.6-6.7);
      * total 48,598,904 params; 61.35 GMAC at 1 iteration (paper 61.1), 94.54 GMAC at 6 (94.3).
      * Video (Sec. 4.3, 180x270, 2 iterations): 12.7 GMAC vs the paper's 15.4 GFLOPs (-17%;
        the paper does not say how the frames were padded).

    Design choices (the paper's appendix with the details is not in our copy):
      * Trunk: the paper says "conv4_x (block4)" (TF-slim names the stages block1..block4) and
        "2048 feature channels" and "42.5M learned parameters": that is ResNet-101 up to its
        last stage (torchvision ``layer4``, Caffe ``conv5_x``) without pooling/classifier, so
        layer4 is included. Output stride 16 (layer4 dilated by 2, as DeepLabV3 and the paper's
        "ResNet output stride of 16"); 513x513 gives 33x33 features (the paper's "65x65" is
        what output stride 8 would give, at ~183 GMAC, which contradicts its 54.4 GFLOPs).
        The stride sits in the first block of a stage on the 3x3 convolution (torchvision
        v1.5), which reproduces 54.4 GFLOPs within 0.6%; TF-slim's v1 placement (stride in the
        last unit of blocks 1-3) would give 52.6 GMAC. Written here, not imported from torchvision.
      * ConvLSTM depths 2048+classes -> 512 -> 256 -> classes (``lstm_channels=(512, 256)``):
        the paper only says the depth decreases from the feature channels to the classes; these
        widths reproduce its per-iteration cost (6.64 GMAC vs 6.6-6.7 GFLOPs in Table 3).
        1x1 kernels, biases, no peepholes, zero initial states and zero initial canvas.
      * The last LSTM layer has ``classes`` channels and its hidden output is added to the
        canvas directly (no extra projection); the canvas is concatenated with the features as
        the first LSTM's input at every iteration.
      * Outputs: one per iteration, the canvas bilinearly upsampled to the input size with
        align_corners=True (DeepLab's TF convention; exact for 513 = 32*16 + 1).
      * Knobs: ``iterations`` (default 6, the training unroll), ``classes`` (default: the
        dataset's), ``lstm_channels`` (hidden depths of all but the last ConvLSTM; the last
        one has ``classes``), ``kernel_size`` (odd, default 1), ``output_stride`` (8, 16, 32).
    """
    preset = DATASETS[dataset]
    classes = preset.classes if classes is None else check_int("classes", classes)
    check_int("iterations", iterations, 1, MAX_REPEATS)
    if isinstance(lstm_channels, int) and not isinstance(lstm_channels, bool):
        lstm_channels = (lstm_channels,)
    if not isinstance(lstm_channels, (tuple, list)):
        raise ValueError(f"lstm_channels must be a sequence of positive integers, got {lstm_channels!r}")
    lstm_channels = tuple(check_int("each entry of lstm_channels", c, 1, MAX_WIDTH) for c in lstm_channels)
    if check_int("kernel_size", kernel_size) % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size!r}")
    if output_stride not in (8, 16, 32) or isinstance(output_stride, bool):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    return RecurrentSeg(classes=classes, iterations=iterations, lstm_channels=lstm_channels,
                        kernel_size=kernel_size, output_stride=output_stride)
