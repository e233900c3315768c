"""The zoo's table of contents, readable without importing torch.

``graphcost models`` lists it (so that command starts in a fraction of a second), and
:func:`~graphcost.models.registry.model_entry` imports only the family file a name lives in.
The ``@register_model`` builders stay the truth: ``tests/test_startup.py`` checks this table
equals what they register (name, family file, default dataset, first docstring line) and prints
the line to add for a new builder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class ZooItem:
    """One zoo model as ``graphcost models`` lists it."""

    family: str  #: the file in ``models/`` whose import registers it
    default_dataset: str
    description: str


ZOO: Dict[str, ZooItem] = {
    "cgnet": ZooItem("cgnet", "cityscapes",
                     "CGNet_M3N21 (Wu et al. 2018), the light-weight Context Guided Network."),
    "digits-cnn": ZooItem("digits_cnn", "digits",
                          "A small CNN for the 8x8 handwritten digits (scikit-learn's load_digits); ~15.4 K params."),
    "enet": ZooItem("enet", "camvid",
                    "ENet (Paszke et al. 2016), the real-time encoder-decoder of the paper's Table 1."),
    "espnetv2": ZooItem("espnetv2", "cityscapes",
                        "ESPNetv2 segmentation network (Mehta et al., CVPR 2019), EdgeNets segmentation head."),
    "espnetv2-s0.5": ZooItem("espnetv2", "cityscapes",
                             "ESPNetv2 segmentation network at width scale s=0.5 (see ``espnetv2``)."),
    "espnetv2-s1.0": ZooItem("espnetv2", "cityscapes",
                             "ESPNetv2 segmentation network at width scale s=1.0 (see ``espnetv2``)."),
    "espnetv2-s1.5": ZooItem("espnetv2", "cityscapes",
                             "ESPNetv2 segmentation network at width scale s=1.5 (see ``espnetv2``)."),
    "espnetv2-s2.0": ZooItem("espnetv2", "cityscapes",
                             "ESPNetv2 segmentation network at width scale s=2.0 (see ``espnetv2``)."),
    "iterative-resnet": ZooItem("iterative_resnet", "camvid",
                                "IterativeNet152 (Leroux et al. 2022): ResNet-152 stages as one bottleneck iterated "
                                "3/8/36/3x, with ACT."),
    "itnet": ZooItem("itnet", "camvid",
                     "ItNet (Pfeil): data block, N iterations of a multi-scale iterative block, N outputs."),
    "recunet": ZooItem("recunet", "camvid",
                       "Recurrent U-Net with a DRU bottleneck (Wang et al., ICCV 2019), one output per iteration."),
    "recurrent-seg": ZooItem("recurrent_seg", "pascal",
                             "Recurrent segmentation (McIntosh et al. 2018): ResNet-101 features + 3 stacked 1x1 "
                             "ConvLSTMs + additive canvas."),
    "tiny-gpt": ZooItem("tiny_gpt", "pydoc",
                        "A GPT-2-style byte-level language model (vocab 256, context 64); ~1.0 M params."),
    "vgg8": ZooItem("vgg8", "cifar10",
                    "VGG-8 for ``dataset`` (square inputs; ``classes`` defaults to the dataset's)."),
}

#: the family files, each imported once when one of its models is first asked for
FAMILIES = tuple(sorted({item.family for item in ZOO.values()}))
