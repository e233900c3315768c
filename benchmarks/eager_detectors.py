"""The eager capture against FlopCounterMode on the same forward: torchvision detectors and an MoE
(the README table).

Each detector is torchvision's builder with ``weights=None, weights_backbone=None`` (random weights,
seeded) at its default configuration, called on a list of one random 3x320x320 image; graphcost
analyses it with ``tracer="auto"`` (fx, meta and export all fail on NMS: it runs eagerly), and
FlopCounterMode counts the very same forward (same weights, same image). Times are wall seconds of
one run each, in this process. Prints a Markdown table.

    nice -n 10 python benchmarks/eager_detectors.py
"""
from __future__ import annotations

import time
import warnings

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import graphcost

DETECTORS = ["fasterrcnn_mobilenet_v3_large_320_fpn", "retinanet_resnet50_fpn", "maskrcnn_resnet50_fpn"]


def main():
    warnings.filterwarnings("ignore")
    print("| model | input | capture | params | graphcost MACs | FlopCounterMode, same forward | complete | "
          "graphcost s | FlopCounterMode s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in DETECTORS:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None, weights_backbone=None).eval()
        images = [torch.rand(3, 320, 320, generator=torch.Generator().manual_seed(1))]
        start = time.perf_counter()
        a = graphcost.analyze(model, (images,))
        ours = time.perf_counter() - start
        start = time.perf_counter()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(images)
        theirs = time.perf_counter() - start
        print(f"| `torchvision:{name}` | [3x320x320] | {a.capture} | {a.params:,} | {a.macs:,} | "
              f"{counter.get_total_flops() // 2:,} | {str(a.complete).lower()} | {ours:.1f} | {theirs:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
