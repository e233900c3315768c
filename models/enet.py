"""ENet (Paszke, Chaurasia, Kim, Culurciello 2016, arXiv:1606.02147).

Layer for layer the network of Table 1 of the paper, with the per-layer details (biases,
kernel of the final full convolution, decoder non-linearity, dropout rates) taken from the
authors' Torch code (``e-lab/ENet-training``, ``train/models/encoder.lua`` and
``decoder.lua``) where the paper is silent. See :func:`enet` for the list of choices.

Design choices where the paper is silent (all from the authors' Torch code):

* projection ratio 4 everywhere: internal = out/4 (16 and 32 in the encoder, 16 and 4 in
  the decoder); down-sampling bottlenecks project with a bias-free 2x2/2 conv;
* bias: projection, expansion, the 5x1 half of an asymmetric conv and every decoder 1x1
  are bias-free; the 3x3 regular/dilated conv, the 1x5 half, the transposed 3x3 conv,
  the initial conv and the fullconv have a bias; BN eps 1e-3;
* down-sampling shortcut: 2x2/2 max-pool (indices kept) then zero-padding of the channels
  (``F.pad``, no parameters, no MACs);
* encoder uses per-channel PReLU; the decoder uses ReLU (``cudnn.ReLU`` in decoder.lua)
  and no dropout; SpatialDropout p=0.01 in stage 1 and p=0.1 afterwards (a no-op in eval);
* up-sampling bottleneck shortcut: bias-free 1x1 conv + BN, then max-unpooling; its main
  conv is a 3x3/2 transposed conv (padding 1, output padding 1);
* fullconv: the Torch code's ``SpatialFullConvolution(16, C, 2, 2, 2, 2)``, i.e. a 2x2
  kernel, not the 3x3 some ports use (the paper's Table 1 gives no kernel size);
* max-unpooling is called without ``output_size``, so H and W must be divisible by 8
  (true for CamVid 360x480, Cityscapes 512x1024 and the paper's 512x512 / 640x360);
  a dataset preset that is not (PASCAL 513x513) is rejected.
* no width multiplier: ENet's channel plan is fixed; ``classes`` is the only knob.
* default dataset: CamVid 360x480 (one of the paper's benchmarks); ``dataset="cityscapes"``
  gives 19 output classes at 512x1024.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import DATASETS, register_model

__all__ = ["ENet", "enet"]

_BN_EPS = 1e-3  # the Torch code's SpatialBatchNormalization(n, 1e-3)
_PROJECTION_RATIO = 4  # internal = output / 4 in every bottleneck


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class InitialBlock(nn.Module):
    """3x3/2 convolution (13 maps) concatenated with a 2x2/2 max-pool of the input (3 maps)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1, bias=True)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = _bn(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x):
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class EncoderBottleneck(nn.Module):
    """Encoder bottleneck: 1x1 (2x2/2 when down-sampling) projection, main conv, 1x1 expansion.

    ``kind`` picks the main convolution: ``"regular"`` 3x3, ``"dilated"`` 3x3 with ``dilation``,
    ``"asymmetric"`` a 5x1 followed by a 1x5. A down-sampling bottleneck max-pools the shortcut
    (keeping the indices for the decoder) and zero-pads it to ``out_channels``; it returns
    ``(output, indices)``, every other bottleneck returns the output only.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kind: str = "regular", dilation: int = 1,
                 asymmetric: int = 5, downsample: bool = False, dropout: float = 0.1):
        super().__init__()
        internal = out_channels // _PROJECTION_RATIO
        self.downsample = downsample
        self.pad_channels = out_channels - in_channels
        stride = 2 if downsample else 1
        # Projection: bias-free (``:noBias()`` in the Torch code).
        self.project = nn.Sequential(
            nn.Conv2d(in_channels, internal, stride, stride=stride, bias=False), _bn(internal), nn.PReLU(internal))
        if kind == "regular":
            main = [nn.Conv2d(internal, internal, 3, padding=1, bias=True)]
        elif kind == "dilated":
            main = [nn.Conv2d(internal, internal, 3, padding=dilation, dilation=dilation, bias=True)]
        elif kind == "asymmetric":
            pad = (asymmetric - 1) // 2
            main = [nn.Conv2d(internal, internal, (asymmetric, 1), padding=(pad, 0), bias=False),
                    nn.Conv2d(internal, internal, (1, asymmetric), padding=(0, pad), bias=True)]
        else:  # pragma: no cover - internal use only
            raise ValueError(f"unknown bottleneck kind {kind!r}")
        self.conv = nn.Sequential(*main, _bn(internal), nn.PReLU(internal))
        self.expand = nn.Sequential(nn.Conv2d(internal, out_channels, 1, bias=False), _bn(out_channels))
        self.dropout = nn.Dropout2d(dropout)
        if downsample:
            self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.act = nn.PReLU(out_channels)

    def forward(self, x):
        ext = self.dropout(self.expand(self.conv(self.project(x))))
        if self.downsample:
            pooled = self.pool(x)
            shortcut, indices = pooled[0], pooled[1]
        else:
            shortcut = x
        if self.pad_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.pad_channels))
        out = self.act(shortcut + ext)
        if self.downsample:
            return out, indices
        return out


class DecoderBottleneck(nn.Module):
    """Decoder bottleneck (ReLU, as in the authors' decoder.lua; no dropout).

    ``upsample=True``: the shortcut is a bias-free 1x1 conv + BN followed by max-unpooling with
    the indices of the matching encoder pool, and the main conv is a 3x3/2 transposed conv.
    """

    def __init__(self, in_channels: int, out_channels: int, *, upsample: bool = False):
        super().__init__()
        internal = out_channels // _PROJECTION_RATIO
        self.upsample = upsample
        self.project = nn.Sequential(nn.Conv2d(in_channels, internal, 1, bias=False), _bn(internal), nn.ReLU())
        if upsample:
            main = nn.ConvTranspose2d(internal, internal, 3, stride=2, padding=1, output_padding=1, bias=True)
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), _bn(out_channels))
            self.unpool = nn.MaxUnpool2d(2, stride=2)
        else:
            if in_channels != out_channels:  # pragma: no cover - ENet never does this
                raise ValueError("a regular decoder bottleneck keeps its channel count")
            main = nn.Conv2d(internal, internal, 3, padding=1, bias=True)
        self.conv = nn.Sequential(main, _bn(internal), nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(internal, out_channels, 1, bias=False), _bn(out_channels))
        self.act = nn.ReLU()

    def forward(self, x, indices=None):
        ext = self.expand(self.conv(self.project(x)))
        if self.upsample:
            shortcut = self.unpool(self.shortcut(x), indices)
        else:
            shortcut = x
        return self.act(shortcut + ext)


class ENet(nn.Module):
    """ENet: initial block, stages 1-3 (encoder), stages 4-5 (decoder), 2x2/2 full convolution."""

    def __init__(self, classes: int):
        super().__init__()
        self.initial = InitialBlock(3, 16)
        # Stage 1 (dropout 0.01, like the 5 first bottlenecks of the Torch code).
        self.bottleneck1_0 = EncoderBottleneck(16, 64, downsample=True, dropout=0.01)
        self.stage1 = nn.Sequential(*[EncoderBottleneck(64, 64, dropout=0.01) for _ in range(4)])
        # Stage 2 and 3 (dropout 0.1).
        self.bottleneck2_0 = EncoderBottleneck(64, 128, downsample=True, dropout=0.1)
        self.stage2 = self._context_stage()
        self.stage3 = self._context_stage()
        # Stage 4 and 5: decoder.
        self.bottleneck4_0 = DecoderBottleneck(128, 64, upsample=True)
        self.stage4 = nn.Sequential(DecoderBottleneck(64, 64), DecoderBottleneck(64, 64))
        self.bottleneck5_0 = DecoderBottleneck(64, 16, upsample=True)
        self.stage5 = nn.Sequential(DecoderBottleneck(16, 16))
        self.fullconv = nn.ConvTranspose2d(16, classes, 2, stride=2, bias=True)

    @staticmethod
    def _context_stage() -> nn.Sequential:
        # bottleneck x.1 .. x.8 of Table 1: regular, dilated 2, asymmetric 5, dilated 4,
        # regular, dilated 8, asymmetric 5, dilated 16.
        spec = [("regular", 1), ("dilated", 2), ("asymmetric", 1), ("dilated", 4),
                ("regular", 1), ("dilated", 8), ("asymmetric", 1), ("dilated", 16)]
        return nn.Sequential(*[EncoderBottleneck(128, 128, kind=k, dilation=d, dropout=0.1) for k, d in spec])

    def forward(self, x):
        x = self.initial(x)
        x, indices1 = self.bottleneck1_0(x)
        x = self.stage1(x)
        x, indices2 = self.bottleneck2_0(x)
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.bottleneck4_0(x, indices2))
        x = self.stage5(self.bottleneck5_0(x, indices1))
        return self.fullconv(x)


@register_model("enet", default_dataset="camvid")
def enet(*, dataset: str = "camvid", classes: int | None = None) -> nn.Module:
    """ENet (Paszke et al. 2016), the real-time encoder-decoder of the paper's Table 1.

    Paper: A. Paszke, A. Chaurasia, S. Kim, E. Culurciello, "ENet: A Deep Neural Network
    Architecture for Real-Time Semantic Segmentation", arXiv:1606.02147 (2016); code:
    github.com/e-lab/ENet-training (Torch). Reported (Table 3, FLOPs "estimated for an input
    of 3x640x360"): 0.37 M parameters and 3.83 GFLOPs (SegNet: 29.46 M, 286.03 GFLOPs -- the
    abstract's "79x less parameters, 75x less FLOPs").

    Measured here (conv/linear MACs; 11 classes unless said):

    * parameters: 363,791 (0.364 M, -1.7 % vs 0.37 M); 364,311 with 19 classes. Counting the
      BN running statistics too would give 372,143; the paper does not say how it counted.
    * 3x360x640: 1.694 G MACs = 3.39 GFLOPs at 2 FLOPs/MAC, 11.5 % below 3.83. The gap is
      exactly the four asymmetric 5x1+1x5 convs (32 ch, 45x80) counted as full 5x5 convs:
      1.694 G + 4 * 32*32*(25-10)*45*80 = 1.915 G MACs = 3.83 GFLOPs (to 4 digits). So the
      paper's FLOPs are 2 x MACs with the asymmetric convs costed as 5x5; this builder keeps
      the real 5x1 + 1x5 pair (as in the authors' code), hence the lower count.
      (SegNet's 286.03 GFLOPs is likewise ~2 x its 141.7 G conv MACs at 640x360.)
    * CamVid preset 3x360x480: 1.271 G MACs; Cityscapes preset 3x512x1024 (19 classes):
      3.922 G MACs; the paper's 3x512x512 training size: 1.927 G MACs.

    Structure (paper Table 1 + the authors' Torch code, e-lab/ENet-training):

    * initial: 3x3/2 conv 3->13 (with bias) || 2x2/2 max-pool of the input -> 16, BN, PReLU;
    * stage 1: bottleneck1.0 down-sampling 16->64, then 4 regular bottlenecks (64);
    * stage 2: bottleneck2.0 down-sampling 64->128, then regular, dilated 2, asymmetric 5,
      dilated 4, regular, dilated 8, asymmetric 5, dilated 16; stage 3 repeats stage 2
      without bottleneck2.0;
    * stage 4: up-sampling bottleneck 128->64 (unpooling with bottleneck2.0's indices) + 2 regular;
    * stage 5: up-sampling bottleneck 64->16 (bottleneck1.0's indices) + 1 regular;
    * fullconv: 2x2/2 transposed conv 16->classes (with bias).

    Design choices where the paper is silent (from the authors' Torch code): the module docstring.
    """
    preset = DATASETS[dataset]
    if classes is None:
        classes = preset.classes
    if classes < 1:
        raise ValueError(f"classes must be a positive integer, got {classes}")
    if preset.height % 8 or preset.width % 8:
        raise ValueError(f"enet needs an input height and width divisible by 8; dataset {dataset!r} is "
                         f"{preset.height}x{preset.width}")
    return ENet(classes)
