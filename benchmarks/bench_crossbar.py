"""Simulated crossbar forward vs the float forward, same process: ItNet, resnet18, tiny-gpt, bert-base.

    python benchmarks/bench_crossbar.py                  # noise none (the CLI default) and pcm
    python benchmarks/bench_crossbar.py --noise none --repeats 15
    python benchmarks/bench_crossbar.py --hwa          # also an HWA training step vs a float one
    python benchmarks/bench_crossbar.py --models tiny-gpt,bert-base --noise pcm   # the transformers

Spec: 256x256 arrays, 8-bit weights in 2-bit cells, differential pairs, 8-bit DAC / ADC (the
``graphcost map`` defaults), fast ADC mode, dense depthwise mapping (``--depthwise`` to change);
noise ``none`` (the CLI default) and ``pcm`` (programming, read noise and drift; with
programming noise the zero cells of dense / packed depthwise blocks are simulated too, which
costs ItNet, whose depthwise convs then cost ~25x their MACs, the most). Models: the default ItNet
(CamVid preset: shared, N=16, L=3, K=1, f=51) at 1x3x192x256, resnet18 at 1x3x224x224, the zoo's
``tiny-gpt`` on 4x64 token ids (its evaluation batch) and HF bert-base (``BertModel(BertConfig())``,
random weights, nothing downloaded; needs ``transformers``) on 1x128 token ids.
Float and simulated runs are interleaved after a warm-up (so a busy machine slows both alike);
the script prints the median (and minimum) wall time of each and their ratio. The simulator runs
2-d convs on channels-last activations (``CrossbarModel(channels_last=True)``, the default), on
which oneDNN's depthwise and 1x1 convs are much faster than on the NCHW of the float model as
given (transformers have no 2-d activations: their peer column repeats the float model); the last
column is the ratio against the float model run channels-last too
(``model.to(memory_format=torch.channels_last)``, a peer, not the target's denominator). The target is a
simulated forward within 1.5x of the float one with noise (issue 12), an HWA training step within 2x of
a float step (`--hwa`). Timings are printed, never asserted.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch


#: Clocks of ``--clock``: wall time, or the CPU time of this process (all its threads), which a loaded
#: machine's preemption does not inflate (with ``--threads 1`` the two agree on an idle machine).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _time_interleaved(fns, repeats: int, warmup: int = 2, clock=time.perf_counter):
    """Times (by ``clock``) of every function of ``fns``, run in turn ``repeats`` times after a warm-up."""
    for _ in range(warmup):
        for f in fns:
            f()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for f, ts in zip(fns, times):
            t = clock()
            f()
            ts.append(clock() - t)
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--noise", choices=("none", "pcm", "both"), default="both")
    p.add_argument("--itnet-input", default="192x256", help="HxW of the ItNet input (multiple of 8)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                   help="wall time, or this process's CPU time (steadier on a loaded machine)")
    p.add_argument("--models", default="itnet,resnet18,tiny-gpt,bert-base")
    p.add_argument("--depthwise", default="dense", help="grouped-conv strategy: dense, packed, time-multiplexed")
    p.add_argument("--hwa", action="store_true", help="also time a hardware-aware training step against a float one")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from graphcost.crossbar.sim import CrossbarModel
    from graphcost.crossbar.specs import ArraySpec, NoiseSpec

    builders = _builders(args.itnet_input)
    noises = {"none": NoiseSpec.none(), "pcm": NoiseSpec.pcm()}
    chosen = list(noises) if args.noise == "both" else [args.noise]
    array = ArraySpec(256, 256)  # 8-bit weights, 2-bit cells, differential, 8-bit DAC/ADC
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; array {array.label}, "
          f"{array.weight_bits}-bit weights / {array.cell_bits}-bit cells, DAC {array.dac_bits} / ADC "
          f"{array.adc_bits} bits, {args.depthwise} depthwise; median (min) of {args.repeats} interleaved runs, "
          f"{args.clock} clock")
    print(f"{'model':10s} {'input':>14s} {'noise':>5s} {'build s':>8s} {'float ms':>16s} {'simulated ms':>16s} "
          f"{'ratio':>6s} {'(min)':>6s} {'float CL ms':>12s} {'vs CL':>6s}")
    torch.manual_seed(0)
    for name in args.models.split(","):
        build, make_input = builders[name]
        model = build().eval()
        model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x = make_input()
        shape = tuple(x.shape)
        x_cl = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
        for noise_name in chosen:
            t = time.perf_counter()
            sim = CrossbarModel(model, array, noises[noise_name], seed=0, depthwise=args.depthwise)
            with torch.inference_mode():
                sim.calibrate(x)
            built = time.perf_counter() - t
            with torch.inference_mode():
                a, b, c = _time_interleaved([lambda: model(x), lambda: sim(x), lambda: model_cl(x_cl)], args.repeats,
                                            clock=CLOCKS[args.clock])
            fa, fb, fc = statistics.median(a), statistics.median(b), statistics.median(c)
            print(f"{name:10s} {'x'.join(map(str, shape)):>14s} {noise_name:>5s} {built:8.2f} "
                  f"{fa * 1e3:8.1f} ({min(a) * 1e3:5.1f}) {fb * 1e3:8.1f} ({min(b) * 1e3:5.1f}) "
                  f"{fb / fa:6.2f} {min(b) / min(a):6.2f} {fc * 1e3:12.1f} {fb / fc:6.2f}")
    if args.hwa:
        _bench_hwa(args.repeats)
    return 0


def _builders(itnet_input: str) -> dict:
    """Per model name: its builder and the maker of its input batch."""
    import torchvision

    from graphcost.models import get_model

    h, w = (int(v) for v in itnet_input.lower().split("x"))
    return {
        "itnet": (lambda: get_model("itnet"), lambda: torch.rand(1, 3, h, w)),
        "resnet18": (lambda: torchvision.models.resnet18(weights=None), lambda: torch.rand(1, 3, 224, 224)),
        "tiny-gpt": (lambda: get_model("tiny-gpt"), lambda: torch.randint(0, 256, (4, 64))),
        "bert-base": (_bert_base, lambda: torch.randint(0, 30522, (1, 128))),
    }


def _bert_base():
    """HF bert-base (``BertConfig()``'s defaults: 12 layers, width 768) with random weights."""
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig())


def _bench_hwa(repeats: int) -> None:
    """One training step (forward, Eq. 1 loss, backward, Adam step) in float vs hardware-aware (HWA)."""
    from graphcost.crossbar.sim.hwa import HWASpec, hwa_model
    from graphcost.crossbar.specs import NoiseSpec
    from graphcost.crossbar.training import as_outputs, multi_output_loss
    from graphcost.models import get_model

    cases = {"digits-cnn": (get_model("digits-cnn"), (32, 1, 8, 8), 10),
             "itnet": (get_model("itnet"), (8, 3, 64, 64), 11)}
    print(f"\nHWA training step (HWASpec.for_noise(pcm): programmed-weight noise, STE quantisers) vs float step; median (min) of "
          f"{repeats} interleaved steps")
    print(f"{'model':10s} {'batch':>14s} {'float ms':>16s} {'HWA ms':>16s} {'ratio':>6s} {'(min)':>6s}")
    for name, (model, shape, classes) in cases.items():
        x = torch.rand(shape)
        y = torch.randint(0, classes, (shape[0],) if name == "digits-cnn" else (shape[0], *shape[2:]))
        net = hwa_model(model, HWASpec.for_noise(NoiseSpec.pcm()))
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step(forward):
            loss = multi_output_loss(as_outputs(forward(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        model.train(), net.train()
        a, b = _time_interleaved([lambda: step(model), lambda: step(net)], repeats)
        fa, fb = statistics.median(a), statistics.median(b)
        print(f"{name:10s} {'x'.join(map(str, shape)):>14s} {fa * 1e3:8.1f} ({min(a) * 1e3:5.1f}) "
              f"{fb * 1e3:8.1f} ({min(b) * 1e3:5.1f}) {fb / fa:6.2f} {min(b) / min(a):6.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
