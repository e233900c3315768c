"""graphcost.analyze vs fvcore vs ptflops vs torch's FlopCounterMode on fake tensors.

Same process, same models: ItNet (Cityscapes) and torchvision resnet18 at 1x3x512x1024 (ItNet twice: with
real weights, and built on the meta device as ``graphcost analyze`` and sweeps build it),
torchvision swin_t at 1x3x224x224, an nn.TransformerEncoder (seq 1024, d 64, 2 layers) and
Hugging Face bert-base (``hf:bert``, default config: 12 layers, hidden 768) on 128 token ids,
which graphcost captures with torch.export. Prints wall and CPU times (median of interleaved
repeats, after a warm-up), MACs, and ratios against graphcost. FlopCounterMode runs with attention on the
math path and the fused nn fast paths off, so that it counts what graphcost counts; a tool that
fails on a model prints n/a. "graphcost (no memo)" is graphcost with every call shape-propagated
and costed on its own (``memoise=False``; graphcost.capture_memo is what it leaves out).

    nice -n 10 python benchmarks/bench_analyze.py [--repeats 5] [--only bert]
    nice -n 10 python benchmarks/bench_analyze.py --only itnet --tools "graphcost,FlopCounterMode(fake)" --repeats 9 --phases
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
from graphcost.inputs import InputSpec, split_inputs
from graphcost.models import get_model
from graphcost.resolve import ModelSpec, build

SHAPE = (1, 3, 512, 1024)


def example_inputs(inputs, device="cpu"):
    """(args, kwargs) of zero tensors for ``inputs`` (a shape or a dict of InputSpecs), in the active mode,
    on ``device`` (the model's: a model built on the meta device gets meta inputs)."""
    args, kwargs = split_inputs(inputs)

    def make(spec):
        return torch.zeros(spec.shape, dtype=spec.dtype or torch.float32, device=device)

    return [make(a) for a in args], {k: make(v) for k, v in kwargs.items()}


def run_graphcost(model, shape):
    return graphcost.analyze(model, shape).macs


def run_graphcost_plain(model, shape):
    return graphcost.analyze(model, shape, memoise=False).macs


def run_flop_counter_fake(model, shape):
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True), sdpa_kernel(SDPBackend.MATH):
            args, kwargs = example_inputs(shape, next(model.parameters()).device)
            with FlopCounterMode(display=False) as counter:
                model(*args, **kwargs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return counter.get_total_flops() // 2


def run_fvcore(model, shape):
    from fvcore.nn import FlopCountAnalysis

    args, kwargs = example_inputs(shape)
    counter = FlopCountAnalysis(model, tuple(args) + tuple(kwargs.values()))
    counter.unsupported_ops_warnings(False)
    counter.uncalled_modules_warnings(False)
    by_op = counter.by_operator()
    return sum(v for op, v in by_op.items() if op in {"conv", "linear", "matmul", "addmm", "bmm", "einsum"})


def run_ptflops(model, shape):
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(model, shape[1:], as_strings=False, print_per_layer_stat=False,
                                        verbose=False, backend="pytorch")
    return int(macs)


TOOLS = {"graphcost": run_graphcost, "graphcost (no memo)": run_graphcost_plain,
         "FlopCounterMode(fake)": run_flop_counter_fake, "fvcore": run_fvcore, "ptflops": run_ptflops}


def timed(models_tools, repeats):
    """{(model, tool): (median wall seconds, MACs, median CPU seconds) or (None, "n/a (...)", None)}: each
    repeat runs every tool once, in turn (interleaved), after one warm-up call each. CPU seconds (this
    process) are what other jobs on a shared machine move least."""
    results, times, cpu = {}, {}, {}
    for key, (fn, model, shape) in models_tools.items():
        try:
            fn(model, shape)  # warm-up
            times[key], cpu[key] = [], []
        except Exception as exc:  # a peer that cannot handle the model: reported, not fatal
            results[key] = (None, f"n/a ({type(exc).__name__})", None)
    for _ in range(repeats):
        for key in times:
            fn, model, shape = models_tools[key]
            start, start_cpu = time.perf_counter(), time.process_time()
            with torch.no_grad():
                macs = fn(model, shape)
            times[key].append(time.perf_counter() - start)
            cpu[key].append(time.process_time() - start_cpu)
            results[key] = (None, macs, None)
    return {key: (statistics.median(times[key]), results[key][1], statistics.median(cpu[key])) if key in times
            else results[key] for key in models_tools}


def phases(model, shape, repeats):
    """Median CPU milliseconds of each phase of one graphcost analysis, with and without the memo: where the
    time goes (the capture's two steps, the two graphs, the passes)."""
    import graphcost.analysis as analysis
    import graphcost.capture_fx as capture_fx
    import graphcost.tracing as tracing

    spent = {}
    wrapped = [(capture_fx, "_symbolic_trace", "fx symbolic tracing"),
               (capture_fx, "run_on_fake_inputs", "fake-tensor run"),
               (capture_fx, "run_on_meta_inputs", "meta-tensor run"),
               (tracing, "build_dag", "execution DAG"), (tracing, "build_loop_graph", "loop graph (in the passes)"),
               (analysis, "analyze_trace", "cost passes (incl. the loop graph)"), (analysis, "analyze", "all")]
    originals = [(module, name, getattr(module, name)) for module, name, _ in wrapped]

    def timing(fn, label, memoise):
        def run(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent.setdefault((label, memoise), []).append(time.process_time() - start)
        return run

    try:
        for _ in range(repeats):
            for memoise in (True, False):
                for (module, name, label), (_, _, fn) in zip(wrapped, originals):
                    setattr(module, name, timing(fn, label, memoise))
                analysis.analyze(model, shape, memoise=memoise)
    finally:
        for module, name, fn in originals:
            setattr(module, name, fn)
    for _, _, label in wrapped:
        on, off = (statistics.median(spent.get((label, m), [0.0])) * 1e3 for m in (True, False))
        print(f"  {label:36s} {on:7.1f} ms CPU   without the memo {off:7.1f} ms")


#: the tools that take a model built on the meta device (its inputs made on that device too)
META_TOOLS = ("graphcost", "graphcost (no memo)", "FlopCounterMode(fake)")


def _on_meta(model) -> bool:
    return any(p.is_meta for p in model.parameters())


def meta_built(factory, *args, **kwargs):
    with torch.device("meta"):
        return factory(*args, **kwargs).eval()


def hf_bert_base():
    """bert-base-uncased's shape (transformers' BertConfig defaults), random weights."""
    built = build(ModelSpec(name="hf:bert"))
    return built.module.eval(), {"input_ids": InputSpec((1, 128), torch.int64)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="run only the models whose name contains this")
    parser.add_argument("--phases", action="store_true", help="also print graphcost's CPU time per phase")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help=f"comma-separated tools to run (graphcost always runs): {', '.join(TOOLS)}")
    args = parser.parse_args()
    tools = {name: fn for name, fn in TOOLS.items() if name == "graphcost" or name in args.tools.split(",")}
    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    factories = {
        "itnet (cityscapes)": lambda: (get_model("itnet", dataset="cityscapes").eval(), SHAPE),
        # as `graphcost analyze itnet` and every sweep build it (graphcost.resolve.build_for_shapes): both tools
        # get the same model, parameters on the meta device (graphcost then runs on meta tensors, no fake mode)
        "itnet (cityscapes, built on the meta device)": lambda: (meta_built(get_model, "itnet", dataset="cityscapes"),
                                                                 SHAPE),
        "resnet18": lambda: (torchvision.models.resnet18(weights=None).eval(), SHAPE),
        "swin_t": lambda: (torchvision.models.swin_t(weights=None).eval(), (1, 3, 224, 224)),
        "nn.TransformerEncoder (seq 1024, d 64, 2 layers)": lambda: (
            torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(64, 4, 256, batch_first=True), 2).eval(),
            (1, 1024, 64)),
        "hf:bert (bert-base, seq 128)": hf_bert_base,
    }
    print(f"median of {args.repeats} interleaved runs after a warm-up; MACs = multiply-accumulates")
    for name, factory in factories.items():
        if args.only not in name:
            continue
        model, shape = factory()
        # fvcore and ptflops run real tensors: on a meta model they fail or miscount, and ptflops leaves its
        # hooks behind (which would make every later graphcost call unmemoisable)
        usable = {tool: fn for tool, fn in tools.items() if not _on_meta(model) or tool in META_TOOLS}
        results = timed({tool: (fn, model, shape) for tool, fn in usable.items()}, args.repeats)
        base_time, base_macs, base_cpu = results["graphcost"]
        shown = "x".join(map(str, shape)) if isinstance(shape, tuple) else \
            ", ".join(f"{k}={'x'.join(map(str, v.shape))}" for k, v in shape.items())
        print(f"\n{name} @ {shown}")
        print(f"  {'tool':24s} {'wall s':>9s} {'x graphcost':>12s} {'CPU s':>8s} {'x (CPU)':>8s} {'GMACs':>9s} "
              f"{'MACs / graphcost':>17s}")
        for tool, (seconds, macs, cpu) in results.items():
            if seconds is None:
                print(f"  {tool:24s} {macs}")
                continue
            print(f"  {tool:24s} {seconds:9.3f} {seconds / base_time:12.2f} {cpu:8.3f} {cpu / base_cpu:8.2f} "
                  f"{macs / 1e9:9.3f} {macs / base_macs:17.4f}")
        if args.phases:
            phases(model, shape, args.repeats)


if __name__ == "__main__":
    main()
