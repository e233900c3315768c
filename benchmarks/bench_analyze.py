"""graphcost.analyze vs fvcore vs ptflops vs torch's FlopCounterMode on fake tensors.

Same process, same models: ItNet (Cityscapes) and torchvision resnet18 at 1x3x512x1024,
torchvision swin_t at 1x3x224x224 and an nn.TransformerEncoder (seq 1024, d 64, 2 layers).
Prints wall times (median of repeats, after a warm-up), MACs, and ratios against graphcost.
FlopCounterMode runs with attention on the math path and the fused nn fast paths off, so that
it counts what graphcost counts; a tool that fails on a model prints n/a.

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
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import graphcost
from graphcost.models import get_model

SHAPE = (1, 3, 512, 1024)


def run_graphcost(model, shape):
    return graphcost.analyze(model, shape).macs


def run_flop_counter_fake(model, shape):
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True), sdpa_kernel(SDPBackend.MATH):
            x = torch.empty(shape)
            with FlopCounterMode(display=False) as counter:
                model(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return counter.get_total_flops() // 2


def run_fvcore(model, shape):
    from fvcore.nn import FlopCountAnalysis

    counter = FlopCountAnalysis(model, torch.randn(shape))
    counter.unsupported_ops_warnings(False)
    counter.uncalled_modules_warnings(False)
    by_op = counter.by_operator()
    return sum(v for op, v in by_op.items() if op in {"conv", "linear", "matmul", "addmm", "bmm", "einsum"})


def run_ptflops(model, shape):
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(model, shape[1:], as_strings=False, print_per_layer_stat=False,
                                        verbose=False, backend="pytorch")
    return int(macs)


TOOLS = {"graphcost": run_graphcost, "FlopCounterMode(fake)": run_flop_counter_fake, "fvcore": run_fvcore,
         "ptflops": run_ptflops}


def timed(fn, model, shape, repeats):
    try:
        fn(model, shape)  # warm-up
    except Exception as exc:  # a peer that cannot handle the model: reported, not fatal
        return None, f"n/a ({type(exc).__name__})"
    times, macs = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            macs = fn(model, shape)
        times.append(time.perf_counter() - start)
    return statistics.median(times), macs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    models = {
        "itnet (cityscapes)": (get_model("itnet", dataset="cityscapes").eval(), SHAPE),
        "resnet18": (torchvision.models.resnet18(weights=None).eval(), SHAPE),
        "swin_t": (torchvision.models.swin_t(weights=None).eval(), (1, 3, 224, 224)),
        "nn.TransformerEncoder (seq 1024, d 64, 2 layers)": (
            torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(64, 4, 256, batch_first=True), 2).eval(),
            (1, 1024, 64)),
    }
    print(f"median of {args.repeats} after a warm-up; MACs = multiply-accumulates")
    for name, (model, shape) in models.items():
        results = {tool: timed(fn, model, shape, args.repeats) for tool, fn in TOOLS.items()}
        base_time, base_macs = results["graphcost"]
        print(f"\n{name} @ {'x'.join(map(str, shape))}")
        print(f"  {'tool':24s} {'wall s':>9s} {'x graphcost':>12s} {'GMACs':>9s} {'MACs / graphcost':>17s}")
        for tool, (seconds, macs) in results.items():
            if seconds is None:
                print(f"  {tool:24s} {macs}")
                continue
            print(f"  {tool:24s} {seconds:9.3f} {seconds / base_time:12.2f} {macs / 1e9:9.3f} "
                  f"{macs / base_macs:17.4f}")


if __name__ == "__main__":
    main()
