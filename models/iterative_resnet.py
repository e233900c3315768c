"""Iterative (and adaptive) ResNets: IterativeNet152 of Leroux et al.

S. Leroux, P. Molchanov, P. Simoens, B. Dhoedt, T. Breuel, J. Kautz, "Iterative neural
networks for adaptive inference on resource-constrained devices", Neural Computing and
Applications (2022); extension of the ICLR 2018 workshop paper "IamNN: Iterative and Adaptive
Mobile Neural Network for Efficient Image Classification".

Every ResNet stage collapses to ONE bottleneck block that is iterated (3, 8, 36, 3 times for
the ResNet-152 pattern). The block keeps a state ``s`` (Eq. 1-3 of the paper)::

    s_0 = input;   y_i = F(s_{i-1});   s_i = s_{i-1} + y_i;   h_i = ACT(s_i, y_i)

with a separate set of batch-norm statistics per iteration, and an Adaptive Computation Time
unit (global average pooling of ``s_i`` and ``y_i``, concatenated, a two-layer fully connected
net with 64 hidden units and a sigmoid) that predicts the halting score ``h_i``. The stage
output is the ACT-weighted sum of the states (halting scores, the remainder at the halting
iteration, zero after it). Here every iteration is always computed (cost at the maximum
number of iterations) and the halting is expressed with masks, so the graph never branches on
a tensor value and traces with plain ``torch.fx``. See :func:`iterative_resnet`.

Design choices (the paper is silent or its figure/algorithm is not in our copy):
  * Stage transitions: the block maps ``expansion*n`` channels to themselves at a fixed
    resolution, so each stage starts with a non-shared 1x1 convolution + BN (stride 2 in
    stages 2-4, the ResNet projection shortcut) from the previous stage's channels; it is
    omitted when channels and resolution already match (stage 1 with expansion 1). This
    is the only transition that reproduces both CIFAR parameter counts (a full ResNet
    down-sampling block per stage would give about 8M / 14M instead of 4M / 9M).
  * Block: conv1x1-BN-ReLU, conv3x3-BN-ReLU, conv1x1-BN and ``s_i = s_{i-1} + y_i`` with no
    ReLU after the addition (Eq. 3). Stage widths n = width * 2**stage (64, 128, 256, 512)
    and ``expansion*n`` channels (expansion 4 = ResNet). ``depthwise=True`` replaces the
    3x3 convolution by a 3x3 depthwise + 1x1 pointwise convolution, each with BN + ReLU.
  * Per-iteration batch norm: one set of BN modules per iteration in both variants.
  * ACT unit: GAP of the state s_i and of the update y_i, concatenated, FC(2C->64)-ReLU-
    FC(64->1)-sigmoid; output bias initialised to -3. Threshold 1 - 0.01 as in ACT/SACT.
    Every iteration is computed (cost at the maximum iterations); the stage output is the
    ACT-weighted sum of the states (halting score while the cumulative score stays below
    the threshold, the remainder at the halting iteration and at the last one, 0 after),
    built from masks so nothing branches on data. ACT never uses the last iteration's
    score, so the halting unit runs k-1 times per stage of k iterations (k times with
    ``return_halting=True``), leaving no dead or zero-weight branch in the graph. The
    halting scores therefore shape the logits; ``return_halting=True`` also returns them
    and the ponder cost (N + R) as real outputs in a dict ``{"logits", "halting",
    "ponder_cost"}`` (graphcost then lists three outputs).
  * ``shared=False`` (``--independent``): the same graph with one block and one ACT unit
    per iteration (the unrolled ResNet counterpart); transitions, stem, head unchanged.
  * Stems: ``stem="imagenet"`` (default) 7x7/2 conv + 3x3/2 max-pool as ResNet;
    ``stem="cifar"`` a 3x3/1 conv without max-pool (the CIFAR ResNet-152 with 58M params
    and 3.7 GMAC that the paper compares against has this stem).
  * Output: this is the paper's image classifier; it returns ONE tensor of ``N x classes``
    logits (not per-iteration outputs, the paper has a single output). On the segmentation
    presets (camvid/cityscapes/pascal) only the input resolution and ``classes`` (default:
    the preset's class count) are taken from the preset; it still outputs image-level
    logits (the paper's UPerNet segmentation head is not reproduced).
  * ``iterations`` takes a sequence (one stage per entry, widths doubling) or one int
    (the same count in 4 stages). The IterativeNet152_double variant (two iterative blocks
    per stage) is not built: the paper does not say how it splits the iterations.
"""
from __future__ import annotations

import re
from typing import Dict, List, Sequence, Tuple, Union

import torch
from torch import nn

from .registry import DATASETS, MAX_REPEATS, MAX_WIDTH, check_int, register_model

__all__ = ["IterativeResNet", "IterativeStage", "ACTUnit", "iterative_resnet", "independent_state_dict",
           "RESNET152_ITERATIONS"]

#: Residual blocks per stage of ResNet-152 = maximum iterations per stage of IterativeNet152.
RESNET152_ITERATIONS: Tuple[int, int, int, int] = (3, 8, 36, 3)
_ACT_HIDDEN = 64  # "a small two-layer fully connected network with 64 hidden neurons"
_ACT_BIAS_INIT = -3.0  # "a small value" for the output bias: start at the maximum iterations
_ACT_EPS = 0.01  # ACT threshold 1 - eps (Graves 2016; Figurnov et al. SACT)


class BottleneckWeights(nn.Module):
    """The convolutions of one iterative block (no batch norm: that is per iteration).

    1x1 ``channels -> width``, 3x3 ``width -> width`` (or, with ``depthwise``, a 3x3 depthwise
    followed by a 1x1 pointwise convolution), 1x1 ``width -> channels``; bias-free as in ResNet.
    """

    def __init__(self, channels: int, width: int, depthwise: bool = False):
        super().__init__()
        self.depthwise = depthwise
        self.conv1 = nn.Conv2d(channels, width, 1, bias=False)
        if depthwise:
            self.conv2 = nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False)
            self.conv2_pw = nn.Conv2d(width, width, 1, bias=False)
        else:
            self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(width, channels, 1, bias=False)


class IterationNorms(nn.Module):
    """The batch norms of one iteration (one after every convolution of the block)."""

    def __init__(self, channels: int, width: int, depthwise: bool = False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(width)
        self.bn2 = nn.BatchNorm2d(width)
        if depthwise:
            self.bn2_pw = nn.BatchNorm2d(width)
        self.bn3 = nn.BatchNorm2d(channels)


class ACTUnit(nn.Module):
    """Halting unit: GAP(state) ++ GAP(update) -> FC(64) -> ReLU -> FC(1) -> sigmoid; ``N x 1``."""

    def __init__(self, channels: int, hidden: int = _ACT_HIDDEN):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(2 * channels, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, 1)
        nn.init.constant_(self.fc2.bias, _ACT_BIAS_INIT)

    def forward(self, state, update):
        pooled = torch.cat([torch.flatten(self.pool(state), 1), torch.flatten(self.pool(update), 1)], 1)
        return torch.sigmoid(self.fc2(self.relu(self.fc1(pooled))))


class IterativeStage(nn.Module):
    """One ResNet stage as an iterated bottleneck block with per-iteration BN and ACT halting.

    ``transition``: a 1x1 convolution (stride 2 except in the first stage) + BN that maps the
    previous stage's channels to ``channels`` where they differ (the ResNet projection shortcut);
    it is never shared. ``shared=True``: ONE :class:`BottleneckWeights` and ONE :class:`ACTUnit`
    called at every iteration; ``shared=False``: one of each per iteration (the unrolled
    ResNet counterpart). Batch norms are always one set per iteration. The halting unit is
    not evaluated at the last iteration (ACT uses the remainder there) unless ``ponder``.

    ``forward`` returns the ACT-weighted sum of the states; with ``ponder=True`` the tuple
    ``(output, halting scores N x iterations, ponder cost N x 1)``.
    """

    def __init__(self, in_channels: int, width: int, expansion: int, iterations: int, stride: int,
                 depthwise: bool, shared: bool, act_hidden: int = _ACT_HIDDEN, ponder: bool = False):
        super().__init__()
        channels = expansion * width
        self.iterations = iterations
        self.shared = shared
        self.ponder = ponder
        #: ACT halts once the cumulative halting score reaches this (1 - eps); an attribute, so an
        #: adaptive-inference sweep can move it (fx traces it as a constant).
        self.halting_threshold = 1.0 - _ACT_EPS
        if in_channels != channels or stride != 1:
            self.transition = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels))
        else:
            self.transition = nn.Identity()
        copies = 1 if shared else iterations
        self.blocks = nn.ModuleList(BottleneckWeights(channels, width, depthwise) for _ in range(copies))
        # Halting units that are evaluated: all iterations but the last (ACT uses the remainder
        # there) unless the scores are returned.
        scored = iterations if ponder else iterations - 1
        self.acts = nn.ModuleList(ACTUnit(channels, act_hidden) for _ in range(min(copies, scored)))
        self.norms = nn.ModuleList(IterationNorms(channels, width, depthwise) for _ in range(iterations))
        self.relu = nn.ReLU(inplace=True)

    # The halting-stage protocol (graphcost.crossbar.adaptive reads it): the halting units, called
    # once per iteration in order (not at the last one), and the module each iteration starts with.
    def halting_units(self) -> List[nn.Module]:
        """The ACT units whose ``N x 1`` outputs are the halting scores, in the order they are called."""
        return list(self.acts)

    def iteration_entry(self, i: int) -> nn.Module:
        """The first module iteration ``i`` (from 0) calls: its block's first convolution."""
        return self.blocks[0 if self.shared else i].conv1

    def _update(self, block: BottleneckWeights, norm: IterationNorms, s):
        """``y = F(s)``: conv-BN-ReLU, conv-BN-ReLU (depthwise: twice), conv-BN (no ReLU, Eq. 3)."""
        y = self.relu(norm.bn1(block.conv1(s)))
        y = self.relu(norm.bn2(block.conv2(y)))
        if block.depthwise:
            y = self.relu(norm.bn2_pw(block.conv2_pw(y)))
        return norm.bn3(block.conv3(y))

    def forward(self, x):
        s = self.transition(x)
        threshold = self.halting_threshold
        halting: List = []
        out = None
        ponder = None
        cum = None  # c_{i-1}: cumulative halting score before iteration i (None: 0)
        for i in range(self.iterations):
            k = 0 if self.shared else i
            last = i == self.iterations - 1
            y = self._update(self.blocks[k], self.norms[i], s)
            s = s + y
            # ACT weights without branching on data: h_i while the cumulative score stays below
            # 1 - eps, the remainder R = 1 - c_{i-1} at the halting iteration (forced at the last
            # one), 0 after. The last iteration's score is not needed for that, so the halting
            # unit runs there only when the scores are returned (no dead or zero-weight branch).
            remainder = 1.0 if cum is None else 1.0 - cum
            alive = None if cum is None else torch.lt(cum, threshold).type_as(cum)
            if last and not self.ponder:
                weight, stop = remainder, None
            else:
                h = self.acts[k](s, y)
                halting.append(h)
                new_cum = h if cum is None else cum + h
                stop = torch.ones_like(h) if last else 1.0 - torch.lt(new_cum, threshold).type_as(h)
                weight = stop * remainder + (1.0 - stop) * h
                cum = new_cum
            if alive is not None:
                weight = alive * weight
            term = s if isinstance(weight, float) else s * weight[:, :, None, None]
            out = term if out is None else out + term
            if self.ponder:  # this iteration's share of the ponder cost N + R
                used = 1.0 + stop * remainder
                ponder_i = used if alive is None else alive * used
                ponder = ponder_i if ponder is None else ponder + ponder_i
        if self.ponder:
            return out, torch.cat(halting, 1), ponder
        return out


class IterativeResNet(nn.Module):
    """Stem, one :class:`IterativeStage` per entry of ``iterations``, GAP and a linear classifier.

    ``forward(x)`` returns the ``N x classes`` logits; with ``return_halting=True`` a dict
    ``{"logits", "halting" (N x sum(iterations)), "ponder_cost" (N x 1)}``.
    """

    def __init__(self, *, iterations: Sequence[int] = RESNET152_ITERATIONS, classes: int = 1000,
                 expansion: int = 4, width: int = 64, depthwise: bool = False, shared: bool = True,
                 stem: str = "imagenet", act_hidden: int = _ACT_HIDDEN, return_halting: bool = False,
                 in_channels: int = 3):
        super().__init__()
        self.return_halting = return_halting
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        else:  # "cifar": 3x3/1 convolution, no max-pool
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(inplace=True))
        stages = []
        in_channels = width
        for index, k in enumerate(iterations):
            stage_width = width * 2 ** index
            stages.append(IterativeStage(in_channels, stage_width, expansion, k, 1 if index == 0 else 2,
                                         depthwise, shared, act_hidden, ponder=return_halting))
            in_channels = expansion * stage_width
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, classes)

    def forward(self, x):
        x = self.stem(x)
        halting = []
        ponder = None
        for stage in self.stages:
            if self.return_halting:
                result = stage(x)
                x = result[0]
                halting.append(result[1])
                ponder = result[2] if ponder is None else ponder + result[2]
            else:
                x = stage(x)
        logits = self.fc(torch.flatten(self.pool(x), 1))
        if self.return_halting:
            return {"logits": logits, "halting": torch.cat(halting, 1), "ponder_cost": ponder}
        return logits


def independent_state_dict(shared_state: Dict[str, torch.Tensor], independent: nn.Module
                           ) -> Dict[str, torch.Tensor]:
    """A shared iterative ResNet's state dict as the state dict of ``independent`` (the same model
    built with ``shared=False``): each stage's one block and one ACT unit copied into every
    iteration's; transitions, per-iteration batch norms, stem and head unchanged. Loaded,
    ``independent`` computes the shared model's function (same logits, same halting) as an unrolled
    graph.

    >>> shared = iterative_resnet(dataset="digits", iterations=(2, 3), width=4)
    >>> independent = iterative_resnet(dataset="digits", iterations=(2, 3), width=4, shared=False)
    >>> _ = independent.load_state_dict(independent_state_dict(shared.state_dict(), independent))
    >>> x = torch.randn(2, 1, 8, 8)
    >>> torch.equal(shared.eval()(x), independent.eval()(x))
    True
    """
    return {key: shared_state[re.sub(r"^(stages\.\d+\.(?:blocks|acts))\.\d+\.", r"\1.0.", key)].clone()
            for key in independent.state_dict()}


#: Builder defaults: the paper's IterativeNet152 (ResNet-152 pattern, ImageNet stem) ...
_PAPER_DEFAULTS = {"iterations": RESNET152_ITERATIONS, "expansion": 4, "width": 64, "stem": "imagenet"}
#: ... and, on the 8 x 8 grey digits preset, a small one that trains in a minute on a CPU (three stages
#: at 8x8, 4x4, 2x2; the shipped checkpoint, crossbar/weights/iterative_resnet_digits.pt, is this model).
_DIGITS_DEFAULTS = {"iterations": (4, 4, 4), "expansion": 1, "width": 16, "stem": "cifar"}


def _stage_iterations(iterations: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    """Iterations per stage: one int for all 4 stages, or one entry per stage."""
    if isinstance(iterations, bool):
        raise ValueError(f"iterations must be a positive integer or a sequence of them, got {iterations!r}")
    if isinstance(iterations, int):
        return (check_int("iterations", iterations, 1, MAX_REPEATS),) * 4
    if isinstance(iterations, (tuple, list)) and len(iterations) > 0:
        return tuple(check_int("each entry of iterations", k, 1, MAX_REPEATS) for k in iterations)
    raise ValueError(f"iterations must be a positive integer or a non-empty sequence of them, got {iterations!r}")


@register_model("iterative-resnet", default_dataset="camvid")
def iterative_resnet(*, dataset: str = "camvid", classes: int | None = None,
                     iterations: Union[int, Sequence[int], None] = None, expansion: int | None = None,
                     width: int | None = None, depthwise: bool = False, shared: bool = True, stem: str | None = None,
                     act_hidden: int = _ACT_HIDDEN, return_halting: bool = False) -> nn.Module:
    """IterativeNet152 (Leroux et al. 2022): ResNet-152 stages as one bottleneck iterated 3/8/36/3x, with ACT.

    Paper: S. Leroux et al., "Iterative neural networks for adaptive inference on
    resource-constrained devices", Neural Computing and Applications 2022 (extends IamNN,
    ICLR 2018 workshop). MACs counted by "a PyTorch Flop counter tool" (multiply-accumulates).

    Numbers in the paper's text (its tables are not in our copy):
      * CIFAR-10: IterativeNet152 with expansion 1: 4M params; expansion 4: 9M params;
        baseline ResNet-152 (CIFAR): 58M params, 3.7 GMAC; the iterative nets' upper bound
        (all iterations) is "slightly higher than" the 3.7 GMAC of ResNet-152.
      * ImageNet 224x224: IterativeNet152 9M params (ResNet-152: 60M), 5 GMAC on average
        (56% less than ResNet-152); IterativeNet152_small (expansion 2) 6M params, half the cost.
    Measured here (cost at the maximum number of iterations; MACs of conv/linear only):
      * CIFAR stem, 32x32, 10 classes: expansion 1 -> 4,205,774 params (paper 4M), 2.32 GMAC;
        expansion 4 -> 9,353,294 params (paper 9M), 3.69 GMAC (ResNet-152 CIFAR: 3.7).
      * ImageNet stem, 224x224, 1000 classes: expansion 4 -> 11.39M params, 11.40 GMAC
        (ResNet-152: 11.5, "the same number of convolutions"); expansion 2 -> 6.60M params,
        8.57 GMAC. Without the classifier (2.05M / 1.03M params) they are 9.34M and 5.58M,
        which is how the paper's 9M / 6M ImageNet figures read; with it, 9M is 27% below ours.
      * ``shared=False`` at 224x224: 66.5M params (ResNet-152: 60.2M), same MACs.

    On the ``digits`` preset (8 x 8 grey images) the defaults are a small model instead:
    iterations (4, 4, 4), expansion 1, width 16, the CIFAR stem, one input channel.

    Design choices where the paper is silent (transitions, block, ACT unit, stems, output): the
    module docstring.
    """
    preset = DATASETS[dataset]
    defaults = _DIGITS_DEFAULTS if dataset == "digits" else _PAPER_DEFAULTS
    iterations = defaults["iterations"] if iterations is None else iterations
    expansion = defaults["expansion"] if expansion is None else expansion
    width = defaults["width"] if width is None else width
    stem = defaults["stem"] if stem is None else stem
    classes = preset.classes if classes is None else check_int("classes", classes)
    iterations = _stage_iterations(iterations)
    check_int("expansion", expansion, 1, MAX_WIDTH)
    check_int("width", width, 1, MAX_WIDTH)
    check_int("act_hidden", act_hidden)
    for name, flag in (("depthwise", depthwise), ("shared", shared), ("return_halting", return_halting)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    if stem not in ("imagenet", "cifar"):
        raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
    return IterativeResNet(iterations=iterations, classes=classes, expansion=expansion, width=width,
                           depthwise=depthwise, shared=shared, stem=stem, act_hidden=act_hidden,
                           return_halting=return_halting, in_channels=preset.channels)
