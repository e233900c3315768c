"""CGNet (Wu, Tang, Zhang, Cao, Zhang; arXiv:1811.08201, IEEE TIP 2021), variant CGNet_M3N21.

Context Guided blocks: a joint feature extractor (local 3x3 channel-wise conv f_loc and
dilated 3x3 channel-wise conv f_sur, concatenated, BN + PReLU) refined by a global context
extractor f_glo (squeeze-and-excitation style channel attention). Layer details (biases,
channel counts, SE reductions, where the input image is injected) follow the authors' code
(github.com/wutianyiRosun/CGNet, ``model/CGNet.py``). See :func:`cgnet`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import DATASETS, register_model

__all__ = ["CGNet", "cgnet"]

_BN_EPS = 1e-3


class ConvBNPReLU(nn.Sequential):
    """Bias-free kxk conv (padding k//2), BN, per-channel PReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_channels, eps=_BN_EPS),
            nn.PReLU(out_channels),
        )


class BNPReLU(nn.Sequential):
    def __init__(self, channels: int):
        super().__init__(nn.BatchNorm2d(channels, eps=_BN_EPS), nn.PReLU(channels))


class GlobalContext(nn.Module):
    """f_glo: global average pool, FC (c -> c/r) + ReLU, FC (c/r -> c) + sigmoid, channel re-weighting."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x):
        w = self.fc(torch.flatten(self.pool(x), 1))
        return x * w.unsqueeze(-1).unsqueeze(-1)


class CGBlock(nn.Module):
    """Context Guided block (residual, resolution and channels kept).

    1x1 ConvBNPReLU to c/2, f_loc (3x3 channel-wise) || f_sur (3x3 channel-wise, dilated),
    concat (c), BN + PReLU, f_glo, + input.
    """

    def __init__(self, channels: int, dilation: int, reduction: int):
        super().__init__()
        half = channels // 2
        self.reduce = ConvBNPReLU(channels, half, 1)
        self.f_loc = nn.Conv2d(half, half, 3, padding=1, groups=half, bias=False)
        self.f_sur = nn.Conv2d(half, half, 3, padding=dilation, dilation=dilation, groups=half, bias=False)
        self.bn_act = BNPReLU(channels)
        self.f_glo = GlobalContext(channels, reduction)

    def forward(self, x):
        y = self.reduce(x)
        joint = self.bn_act(torch.cat([self.f_loc(y), self.f_sur(y)], 1))
        return x + self.f_glo(joint)


class CGBlockDown(nn.Module):
    """Down-sampling Context Guided block (no residual): (H, W, c_in) -> (H/2, W/2, c_out).

    3x3/2 ConvBNPReLU to c_out, f_loc || f_sur on c_out channels each, concat (2 c_out),
    BN + PReLU, bias-free 1x1 conv back to c_out, f_glo.
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int, reduction: int):
        super().__init__()
        self.down = ConvBNPReLU(in_channels, out_channels, 3, stride=2)
        self.f_loc = nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels, bias=False)
        self.f_sur = nn.Conv2d(out_channels, out_channels, 3, padding=dilation, dilation=dilation,
                               groups=out_channels, bias=False)
        self.bn_act = BNPReLU(2 * out_channels)
        self.fuse = nn.Conv2d(2 * out_channels, out_channels, 1, bias=False)
        self.f_glo = GlobalContext(out_channels, reduction)

    def forward(self, x):
        y = self.down(x)
        joint = self.bn_act(torch.cat([self.f_loc(y), self.f_sur(y)], 1))
        return self.f_glo(self.fuse(joint))


class CGNet(nn.Module):
    """CGNet_M{M}N{N}: stage 1 (3 convs, 32 ch), stage 2 (M CG blocks, 64 ch, dilation 2),
    stage 3 (N CG blocks, 128 ch, dilation 4), 1x1 classifier, bilinear up-sampling x8."""

    def __init__(self, classes: int, M: int = 3, N: int = 21):
        super().__init__()
        # Stage 1: 1/2 resolution.
        self.stage1 = nn.Sequential(ConvBNPReLU(3, 32, 3, stride=2), ConvBNPReLU(32, 32, 3), ConvBNPReLU(32, 32, 3))
        # Input injection: the image average-pooled (3x3/2, padding 1) to 1/2 and 1/4.
        self.inject1 = nn.AvgPool2d(3, stride=2, padding=1)
        self.inject2 = nn.AvgPool2d(3, stride=2, padding=1)
        self.bn_act1 = BNPReLU(32 + 3)
        # Stage 2: 1/4 resolution.
        self.down2 = CGBlockDown(32 + 3, 64, dilation=2, reduction=8)
        self.stage2 = nn.Sequential(*[CGBlock(64, dilation=2, reduction=8) for _ in range(M - 1)])
        self.bn_act2 = BNPReLU(64 + 64 + 3)
        # Stage 3: 1/8 resolution.
        self.down3 = CGBlockDown(64 + 64 + 3, 128, dilation=4, reduction=16)
        self.stage3 = nn.Sequential(*[CGBlock(128, dilation=4, reduction=16) for _ in range(N - 1)])
        self.bn_act3 = BNPReLU(128 + 128)
        self.classifier = nn.Conv2d(256, classes, 1, bias=False)

    def forward(self, x):
        img2 = self.inject1(x)
        img4 = self.inject2(img2)
        s1 = self.bn_act1(torch.cat([self.stage1(x), img2], 1))
        d2 = self.down2(s1)
        s2 = self.bn_act2(torch.cat([self.stage2(d2), d2, img4], 1))
        d3 = self.down3(s2)
        s3 = self.bn_act3(torch.cat([d3, self.stage3(d3)], 1))
        logits = self.classifier(s3)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_model("cgnet", default_dataset="cityscapes")
def cgnet(*, dataset: str = "cityscapes", classes: int | None = None, M: int = 3, N: int = 21) -> nn.Module:
    """CGNet_M3N21 (Wu et al. 2018), the light-weight Context Guided Network.

    Paper: T. Wu, S. Tang, R. Zhang, J. Cao, Y. Zhang, "CGNet: A Light-weight Context Guided
    Network for Semantic Segmentation", arXiv:1811.08201 (2018) / IEEE TIP 30 (2021); code:
    github.com/wutianyiRosun/CGNet. Reported: 64.8 % mIoU on Cityscapes test "with less than
    0.5 M parameters" (0.5 M / 0.49 M for M3N21 in the paper's tables); a FLOPs figure of
    about 7 G for Cityscapes is quoted for it (said to be at 2048x1024; the table itself
    could not be checked here).

    Measured here (conv/linear MACs):

    * parameters: 496,306 with 19 classes (0.496 M: matches 0.5 M / 0.49 M), 494,258 with 11;
    * Cityscapes preset 3x512x1024: 6.762 G MACs (13.5 GFLOPs at 2 FLOPs/MAC);
      3x1024x2048: 27.05 G MACs; CamVid preset 3x360x480: 2.223 G MACs.
    * "~7 G at 2048x1024" cannot be this network's MAC or FLOP count at 2048x1024: the three
      3x3 stage-1 convs alone cost (3*32 + 2*32*32)*9*1024*512 = 10.1 G MACs there. It agrees
      (-3 %) with the MAC count at 1024x512, the resolution CGNet is trained and benchmarked
      at, so we read it as MACs ("FLOPs" = MACs) at 1024x512.

    Structure (authors' code): stage 1 = three bias-free 3x3 ConvBNPReLU (3->32 stride 2,
    32->32, 32->32); the image, average-pooled (3x3/2, padding 1) once and twice, is
    concatenated to the outputs of stage 1 (35 ch) and stage 2 (64 + 64 + 3 = 131 ch), each
    concat followed by BN + PReLU; stage 2 = a down-sampling CG block 35->64 and M-1 CG
    blocks (64 ch, dilation 2, f_glo reduction 8); stage 3 = a down-sampling CG block
    131->128 and N-1 CG blocks (128 ch, dilation 4, reduction 16); the stage-3 output is the
    concat of the down-sampling block's output and the last block's output (256 ch), BN +
    PReLU, a bias-free 1x1 classifier, bilinear up-sampling (align_corners=False) to the
    input size (x8).

    Design choices where the paper is silent (taken from the authors' code):

    * every convolution is bias-free; the two f_glo FC layers have a bias; BN eps 1e-3;
    * a CG block first reduces to c/2 with a 1x1 ConvBNPReLU, so f_loc and f_sur each give
      c/2 maps and their concat is c; the down-sampling block instead uses a 3x3/2
      ConvBNPReLU to c_out, concatenates 2 c_out maps and fuses them back to c_out with a
      bias-free 1x1 conv, and has no residual; f_glo reductions are 8 (stage 2) and 16 (stage 3);
    * ``M`` and ``N`` count the down-sampling block too (M3N21 = 2 + 20 residual CG blocks),
      so both must be at least 2 (the authors' forward needs one residual block per stage);
    * no dropout before the classifier (the authors' default ``dropout_flag=False``);
    * the final up-sampling uses ``size=`` the input's H x W (as the authors do), which
      traces with torch.fx and makes the output match the input for any size, e.g. 513x513;
    * default dataset: Cityscapes 512x1024 (the paper's main benchmark, 19 classes);
      ``dataset="camvid"`` gives 11 classes at 360x480.
    """
    preset = DATASETS[dataset]
    if classes is None:
        classes = preset.classes
    if classes < 1:
        raise ValueError(f"classes must be a positive integer, got {classes}")
    if M < 2:
        raise ValueError(f"M (blocks in stage 2, the down-sampling block included) must be at least 2, got {M}")
    if N < 2:
        raise ValueError(f"N (blocks in stage 3, the down-sampling block included) must be at least 2, got {N}")
    return CGNet(classes, M=M, N=N)
