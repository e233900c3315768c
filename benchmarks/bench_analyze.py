"""graphcost.analyze vs fvcore vs ptflops vs torch's FlopCounterMode on fake tensors.

Same process, same models, 1x3x512x1024: ItNet (Cityscapes) and torchvision resnet18.
Prints wall times (median of repeats, after a warm-up), MACs, and ratios against graphcost.

    python benchmarks/bench_analyze.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torchvision
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

import graphcost
from graphcost.models import get_model

SHAPE = (1, 3, 512, 1024)


def run_graphcost(model):
    return graphcost.analyze(model, SHAPE).macs


def run_flop_counter_fake(model):
    with FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.empty(SHAPE)
        with FlopCounterMode(display=False) as counter:
            model(x)
    return counter.get_total_flops() // 2


def run_fvcore(model):
    from fvcore.nn import FlopCountAnalysis

    counter = FlopCountAnalysis(model, torch.randn(SHAPE))
    counter.unsupported_ops_warnings(False)
    counter.uncalled_modules_warnings(False)
    by_op = counter.by_operator()
    return sum(v for op, v in by_op.items() if op in {"conv", "linear", "matmul", "addmm", "bmm", "einsum"})


def run_ptflops(model):
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(model, SHAPE[1:], as_strings=False, print_per_layer_stat=False,
                                        verbose=False, backend="pytorch")
    return int(macs)


TOOLS = {"graphcost": run_graphcost, "FlopCounterMode(fake)": run_flop_counter_fake, "fvcore": run_fvcore,
         "ptflops": run_ptflops}


def timed(fn, model, repeats):
    fn(model)  # warm-up
    times, macs = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            macs = fn(model)
        times.append(time.perf_counter() - start)
    return statistics.median(times), macs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    models = {
        "itnet (cityscapes)": get_model("itnet", dataset="cityscapes").eval(),
        "resnet18": torchvision.models.resnet18(weights=None).eval(),
    }
    print(f"input {'x'.join(map(str, SHAPE))}, median of {args.repeats} after a warm-up; MACs = multiply-accumulates")
    for name, model in models.items():
        results = {tool: timed(fn, model, args.repeats) for tool, fn in TOOLS.items()}
        base_time, base_macs = results["graphcost"]
        print(f"\n{name}")
        print(f"  {'tool':24s} {'wall s':>9s} {'x graphcost':>12s} {'GMACs':>9s} {'MACs / graphcost':>17s}")
        for tool, (seconds, macs) in results.items():
            print(f"  {tool:24s} {seconds:9.3f} {seconds / base_time:12.2f} {macs / 1e9:9.3f} "
                  f"{macs / base_macs:17.4f}")


if __name__ == "__main__":
    main()
