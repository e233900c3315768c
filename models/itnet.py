"""ItNet: iterative neural networks with small computational graphs (Pfeil).

T. Pfeil, "ItNet: iterative neural networks with small graphs for accurate, efficient and
anytime semantic segmentation" (Bosch Center for AI). Figures 1, 2 and A1 of the paper.

The network is a data block (run once), an iterative block over ``L`` spatial scales (run
``N`` times, its output fed back as its next input) and one classification block per
iteration, so the model returns ``N`` full-resolution logit maps (anytime prediction).

Design choices where Fig. A1 (a picture) is silent, chosen by a search over readings of
the figure that had to land all the paper's numbers (listed in :func:`itnet`):
  * Data block: two ENet initial-block stages, [conv3x3 s2 -> f_r || maxpool 2] -> concat
    (f_r+3) -> BN -> ReLU, then [conv3x3 s2 -> f || maxpool 2] -> concat (f+f_r+3) -> BN
    -> ReLU, at 1/4 resolution. Each scale l gets conv3x3 stride 2^l -> f_r, BN, ReLU,
    conv3x3 -> f_r, BN, ReLU. Data-block convs have no bias (BN follows).
  * Scales are 1/4, 1/8, 1/16 (... 1/4 * 2^-(L-1)) of the input; the iterative state has
    f_r channels at every scale (only widths near f/2 at a 1/4 finest scale fit the
    params/MACs/graph-size triple). The classification block works at 1/8 (the 1/4 scale
    is average-pooled, coarser ones bilinearly up-sampled) so that its 8x up-sampling
    restores the input size: H and W must be multiples of 8.
  * Mixing residual block, per scale l: concat of all L scales resampled to scale l
    (adaptive avg-pool down, bilinear up) -> conv3x3 (L*f_r -> f_r) -> add scale l's
    input -> ReLU. Skipped in iteration 1 (so independent weights have N-1 of them).
  * BRB: conv1x1 f_r -> 6 f_r, ReLU, depthwise 3x3, ReLU, conv1x1 -> f_r (linear), + x.
    No BN inside the iterative block (the paper moves BN between iterations), so its
    convs carry biases; ReLU instead of ReLU6 (Fig. A1 only names ReLU).
  * BN between iterations: N-1 sets of L BatchNorm2d, one set on the feedback entering
    iterations 2..N; never shared. The classifier reads the block output before BN.
  * Classification block: conv1x1 (L*f_r -> C, with bias), unique per iteration.
  * Cityscapes width: not in the paper. f=50 with N=16, L=3, K=1 fits all three numbers
    within 11%. (f=56 gives the 4.8 MB state exactly and a 293 MB graph, but 23.0 GMACs
    for the 16th output; its 11th/12th outputs cost 16.1/17.5 GMACs, so the paper's figure
    may quote an intermediate output. f=56, N=12 fits all three within 5%: 17.5 GMACs,
    279 MB, 4.82 MB.)
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .registry import DATASETS, MAX_REPEATS, MAX_WIDTH, check_int, register_model

#: Expansion factor of the bottleneck residual blocks (Fig. A1: t = 6, as in MobileNetV2).
EXPANSION = 6

#: Paper default width f per (dataset, shared). CamVid values are the paper's (Sec. III-C);
#: the paper does not give the Cityscapes width: f = 50 is the width with N=16, L=3, K=1 that
#: lands its reported 16.7 GMACs, 276 MB graph and 4.8 MB iterative-block state within 11%.
DEFAULT_WIDTH = {
    ("camvid", True): 51,
    ("camvid", False): 29,
    ("cityscapes", True): 50,
    ("cityscapes", False): 50,
}


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DownStage(nn.Module):
    """ENet-style down-sampling stage: [conv3x3 stride 2 || max-pool 2] -> concat -> BN -> ReLU."""

    def __init__(self, cin: int, conv_out: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, conv_out, 3, stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn = nn.BatchNorm2d(conv_out + cin)
        self.act = nn.ReLU(inplace=True)
        self.out_channels = conv_out + cin

    def forward(self, x):
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class DataBlock(nn.Module):
    """Fig. A1a: two down-sampling stages to 1/4, then one branch per scale l (1/4 * 2^-l)."""

    def __init__(self, f: int, f_r: int, levels: int, in_channels: int = 3):
        super().__init__()
        self.stage1 = DownStage(in_channels, f_r)  # 1/2, f_r + 3 channels
        self.stage2 = DownStage(self.stage1.out_channels, f)  # 1/4, f + f_r + 3 channels
        c = self.stage2.out_channels
        self.scales = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(c, f_r, stride=2 ** l), _conv_bn_relu(f_r, f_r))
            for l in range(levels)
        )

    def forward(self, x) -> List[torch.Tensor]:
        x = self.stage2(self.stage1(x))
        return [branch(x) for branch in self.scales]


def _resample(x, ref):
    """Bring ``x`` to the spatial size of ``ref`` (avg-pool down, bilinear up; not a conv)."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def _down(x, ref):
    return F.adaptive_avg_pool2d(x, ref.shape[-2:])


class MixingBlock(nn.Module):
    """Fig. A1b: per scale, concat all L scales (resampled to it) -> conv3x3 -> + input -> ReLU."""

    def __init__(self, channels: int, levels: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(channels * levels, channels, 3, padding=1) for _ in range(levels)
        )
        self.act = nn.ReLU(inplace=False)

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        out = []
        for l, conv in enumerate(self.convs):
            ref = xs[l]
            cat = torch.cat(
                [x if j == l else (_down(x, ref) if j < l else _resample(x, ref)) for j, x in enumerate(xs)],
                dim=1,
            )
            out.append(self.act(ref + conv(cat)))
        return out


class BottleneckResidual(nn.Module):
    """MobileNetV2 bottleneck residual block (expansion t): 1x1 -> dw3x3 -> 1x1 (linear) + x."""

    def __init__(self, channels: int, t: int = EXPANSION):
        super().__init__()
        hidden = channels * t
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.project = nn.Conv2d(hidden, channels, 1)
        self.act = nn.ReLU(inplace=False)

    def forward(self, x):
        return x + self.project(self.act(self.depthwise(self.act(self.expand(x)))))


class IterativeBlock(nn.Module):
    """Fig. A1b: mixing residual block (optional) followed by K BRBs on each of the L scales."""

    def __init__(self, channels: int, levels: int, blocks: int, mixing: bool = True):
        super().__init__()
        self.mix = MixingBlock(channels, levels) if mixing else None
        self.brbs = nn.ModuleList(
            nn.Sequential(*[BottleneckResidual(channels) for _ in range(blocks)]) for _ in range(levels)
        )

    def forward(self, xs: List[torch.Tensor], mix: bool = True) -> List[torch.Tensor]:
        if mix:
            xs = self.mix(xs)
        return [brb(x) for brb, x in zip(self.brbs, xs)]


class ClassificationBlock(nn.Module):
    """Concat the feedback at 1/8 resolution -> conv1x1 (C classes) -> bilinear 8x up-sampling."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, classes, 1)

    def forward(self, xs: List[torch.Tensor]):
        if len(xs) > 1:
            ref = xs[1]
            feats = [_down(xs[0], ref), ref] + [_resample(x, ref) for x in xs[2:]]
        else:
            feats = [F.avg_pool2d(xs[0], 2)]
        y = self.conv(torch.cat(feats, dim=1))
        return F.interpolate(y, scale_factor=8, mode="bilinear", align_corners=False)


class ItNet(nn.Module):
    """Iterative network; ``forward`` returns a list of ``N`` logit maps (1/8-res upsampled 8x)."""

    def __init__(self, *, f: int, N: int, L: int, K: int, classes: int, shared: bool, in_channels: int = 3):
        super().__init__()
        self.f, self.f_r = f, f // 2
        self.N, self.L, self.K, self.classes, self.shared = N, L, K, classes, shared
        c = self.f_r
        self.data = DataBlock(f, c, L, in_channels)
        if shared:
            self.block = IterativeBlock(c, L, K, mixing=N > 1)
        else:
            # Iteration 1 skips the mixing block, so its copy has none: N-1 mixing blocks.
            self.blocks = nn.ModuleList(IterativeBlock(c, L, K, mixing=n > 0) for n in range(N))
        # Batch norm between iterations, never shared: bn[n] normalises the feedback of
        # iteration n+1 before it enters iteration n+2 (N-1 sets of L layers).
        self.bns = nn.ModuleList(nn.ModuleList(nn.BatchNorm2d(c) for _ in range(L)) for _ in range(N - 1))
        self.classifiers = nn.ModuleList(ClassificationBlock(c * L, classes) for _ in range(N))

    # --- sizes -------------------------------------------------------------------------
    @property
    def state_channels(self) -> Tuple[int, ...]:
        """Channels of the feedback signal (iterative-block output) at each of the L scales."""
        return (self.f_r,) * self.L

    def state_shapes(self, height: int, width: int) -> List[Tuple[int, int, int]]:
        """(C, H, W) of the feedback tensor at each scale for one ``height`` x ``width`` image."""
        h4, w4 = height // 4, width // 4
        out = []
        for l, c in enumerate(self.state_channels):
            s = 2 ** l  # conv3x3, padding 1, stride s
            out.append((c, (h4 - 1) // s + 1, (w4 - 1) // s + 1))
        return out

    def state_bytes(self, height: int, width: int, bytes_per_element: int = 4) -> int:
        """Bytes of the iterative-block state (feedback at all L scales) for one image."""
        return bytes_per_element * sum(c * h * w for c, h, w in self.state_shapes(height, width))

    # --- forward -----------------------------------------------------------------------
    def forward(self, x):
        xs = self.data(x)
        outputs = []
        for n in range(self.N):
            block = self.block if self.shared else self.blocks[n]
            if n > 0:
                xs = [bn(s) for bn, s in zip(self.bns[n - 1], xs)]
            xs = block(xs, mix=n > 0)
            outputs.append(self.classifiers[n](xs))
        return outputs


def independent_state_dict(shared_state: Dict[str, torch.Tensor], independent: nn.Module
                           ) -> Dict[str, torch.Tensor]:
    """A shared ItNet's state dict as the state dict of ``independent`` (the same ItNet built with
    ``shared=False`` and the same ``f``, ``N``, ``L``, ``K``): the one iterative block copied into every
    iteration's block (iteration 1's copy has no mixing block, as iteration 1 skips it); data block,
    batch norms and classifiers unchanged. Loaded, ``independent`` gives the shared model's outputs:
    the same function as a different graph (``N`` blocks of arrays on a chip).

    >>> shared = itnet(N=3, L=2, f=8, classes=4)
    >>> independent = itnet(N=3, L=2, f=8, classes=4, shared=False)
    >>> _ = independent.load_state_dict(independent_state_dict(shared.state_dict(), independent))
    >>> x = torch.randn(1, 3, 32, 32)
    >>> _ = shared.eval(), independent.eval()
    >>> all(torch.equal(a, b) for a, b in zip(shared(x), independent(x)))
    True
    """
    return {key: shared_state[re.sub(r"^blocks\.\d+\.", "block.", key)].clone() for key in independent.state_dict()}


@register_model("itnet", default_dataset="camvid")
def itnet(
    *,
    dataset: str = "camvid",
    shared: bool = True,
    N: int = 16,
    L: int = 3,
    K: int = 1,
    f: Optional[int] = None,
    classes: Optional[int] = None,
) -> ItNet:
    """ItNet (Pfeil): data block, N iterations of a multi-scale iterative block, N outputs.

    T. Pfeil, "ItNet: iterative neural networks with small graphs for accurate, efficient and
    anytime semantic segmentation", Bosch Center for AI (Figs. 1, 2, A1; Secs. II, III-C).

    Knobs: ``N`` iterations (= outputs), ``L`` scales, ``K`` bottleneck residual blocks per
    scale, width ``f`` (f_r = f // 2), ``shared`` (one iterative block called N times vs N
    independent copies), ``classes`` (default: the dataset's). ``f=None`` picks the paper's
    width: CamVid 51 (shared) / 29 (independent); Cityscapes 50 (not given in the paper).

    Reported by the paper (fp32; graph size counts each unique conv layer once: params +
    input + output feature map, "MB" read as 10**6 bytes, which fits better than 2**20):
      * CamVid 480x360, shared, f=51:      182 K params, 6.2 GMACs, graph 83 MB.
      * CamVid 480x360, independent, f=29: 424 K params, 2.0 GMACs, graph 384 MB.
      * Cityscapes 1024x512 (shared):      16.7 GMACs, graph 276 MB, iterative-block state 4.8 MB.
      * Latency identical for shared and independent (same N, L, K).
    This implementation (MACs for the last output; total adds the other N-1 classifiers):
      * CamVid shared f=51:      178,092 params, 6.10 GMACs (total 6.14), graph 86.1 MB.
      * CamVid independent f=29: 433,307 params, 2.00 GMACs (total 2.02), graph 406.2 MB.
      * Cityscapes shared f=50:  186,891 params, 18.5 GMACs (total 18.7), graph 263.2 MB,
        state 4.30 MB (f_r=25 channels at 128x256, 64x128, 32x64).
      * Latency 68 conv layers to the last output (4 + 3 + 15*4 + 1), 8 to the first.

    Design choices where Fig. A1 (a picture) is silent (data block, scales, mixing, BRB, BN, widths):
    the module docstring.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    preset = DATASETS[dataset]
    if classes is None:
        classes = preset.classes
    if f is None:
        f = DEFAULT_WIDTH.get((dataset, bool(shared)), DEFAULT_WIDTH[("camvid", bool(shared))])
    check_int("N", N, 1, MAX_REPEATS)
    check_int("L", L, 1, MAX_REPEATS)
    check_int("K", K, 0, MAX_REPEATS)
    check_int("f", f, 2, MAX_WIDTH)
    check_int("classes", classes, 1)
    if not isinstance(shared, bool):
        raise ValueError(f"shared must be True or False, got {shared!r}")
    return ItNet(f=f, N=N, L=L, K=K, classes=classes, shared=shared, in_channels=preset.channels)
