"""graphcost's PCM noise vs aihwkit's ``PCMLikeNoiseModel``: per-layer relative error on resnet18 and
a tiny Llama, and the simulated forward's time per batch against aihwkit's.

    python benchmarks/bench_vs_aihwkit.py                      # sets up its venv on first use (~3 GB)
    python benchmarks/bench_vs_aihwkit.py --models llama --modes all --repeats 3 --threads 1
    python benchmarks/bench_vs_aihwkit.py --repeats 5 --json out.json
    python benchmarks/bench_vs_aihwkit.py --setup-only         # only create / check the venv

Set-up (done by the script, once): aihwkit 1.1.0's only working wheel pairs with torch 2.10.0 and
torchvision 0.25.0, so the comparison runs in its own virtual environment, by default
``~/.cache/graphcost-bench/aihwkit-venv`` (``--venv`` or ``GRAPHCOST_AIHWKIT_VENV`` to move it)::

    python -m venv ~/.cache/graphcost-bench/aihwkit-venv
    ~/.cache/graphcost-bench/aihwkit-venv/bin/pip install torch==2.10.0 torchvision==0.25.0 aihwkit==1.1.0
    ~/.cache/graphcost-bench/aihwkit-venv/bin/pip install networkx numpy pandas click rich transformers
    ~/.cache/graphcost-bench/aihwkit-venv/bin/pip install --no-deps -e REPO      # this checkout of graphcost

(torch 2.10.0 from PyPI pulls its CUDA libraries: ~3 GB, a few minutes.) The script then re-runs
itself with that interpreter, so aihwkit and graphcost run in the same process on the same
tensors.

What is compared (``--models``, both by default). ``resnet18``: torchvision's resnet18
(``weights=None``: seeded random initialisation, there is no download here) runs once in float on a
seeded random batch; every conv / linear layer's input is recorded. ``llama``: a Llama-style HF
causal LM from a tiny ``LlamaConfig`` (2 layers, hidden 256, MLP 512, 4 heads, 2 key-value heads,
vocabulary 512; random weights, nothing downloaded) on ``--batch`` x ``--seq`` random token ids; its
15 ``nn.Linear`` layers (q, k, v, o, gate, up, down per layer and the LM head; the 512-row down
projections span two 256-row tiles) with their inputs. Each layer is then run (a) by aihwkit,
converted with ``convert_to_analog`` to
256 x 256 analog tiles with perfect periphery (``IOParameters(is_perfect=True)``, so only the
device model acts), ``PCMLikeNoiseModel(g_max=25 uS)`` and ``GlobalDriftCompensation``, after
``program_analog_weights()`` and ``drift_analog_weights(t)``; and (b) by graphcost's
``CrossbarModel`` with the ``pcm`` noise preset at ``t_seconds = t``, one cell pair per weight
(``weight_bits = cell_bits = 16``), 16-bit DAC / ADC, 256 x 256 arrays, global drift
compensation. The error of a layer is ``||y_noisy - y_float|| / ||y_float||`` over its whole
output, averaged over ``--repeats`` noise draws (aihwkit: ``torch.manual_seed``, graphcost:
``seed``). Three noise configurations (``--modes``) at the times of ``--times`` after programming
(default 60 s, 1 h, 1 d, 1 y; the README's resnet18 table used ``--times 0s,1h,1d,1y``):

* ``programming`` — programming noise only (aihwkit ``read_noise_scale = drift_scale = 0``);
* ``drift`` — drift only, per-device exponents, compensated (``prog_noise_scale = read_noise_scale = 0``);
* ``all`` — programming noise, drift and 1/f read noise.

The summary gives, per configuration and time, the median over layers of the two errors and of
their ratio graphcost / aihwkit (target: within 0.8-1.2) with the range over layers; ``--per-layer``
prints every layer's row.

Speed (``--timing-repeats``, 0 to skip): the whole model's forward on the same batch, float, graphcost's
``CrossbarModel`` and aihwkit's ``convert_to_analog`` model, both configured as above with all noise at
1 d (programmed and drifted once, before timing), run in turn after a warm-up; the median (and
minimum) time per batch of each and the ratios. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PINS = ("torch==2.10.0", "torchvision==0.25.0", "aihwkit==1.1.0")
GRAPHCOST_DEPS = ("networkx", "numpy", "pandas", "click", "rich", "transformers")
DEFAULT_VENV = Path(os.environ.get("GRAPHCOST_AIHWKIT_VENV", Path.home() / ".cache" / "graphcost-bench" /
                                   "aihwkit-venv"))
REPO = Path(__file__).resolve().parent.parent
MODES = ("programming", "drift", "all")
MODELS = ("resnet18", "llama")
#: The tiny Llama: its linear layers are ``nn.Linear``, which aihwkit's ``convert_to_analog`` converts.
LLAMA = {"vocab_size": 512, "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256}
#: Time after programming of the speed comparison.
TIMING_T_SECONDS = 86400.0
G_MAX_US = 25.0


# --------------------------------------------------------------------------- the venv
def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path) -> Path:
    """Create ``venv`` with the pinned aihwkit stack and this graphcost checkout (once)."""
    python = _venv_python(venv)
    if not python.exists():
        print(f"creating {venv} (torch 2.10.0 + aihwkit 1.1.0: a few GB, a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    check = "import aihwkit, torch, torchvision, transformers, graphcost.crossbar.sim; print(torch.__version__)"
    probe = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    if probe.returncode != 0 or not probe.stdout.startswith("2.10.0"):
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run(pip + list(PINS), check=True)
        subprocess.run(pip + list(GRAPHCOST_DEPS), check=True)
        subprocess.run(pip + ["--no-deps", "-e", str(REPO)], check=True)
    return python


# --------------------------------------------------------------------------- the layers
def build_model(name: str, args):
    """The seeded float model (eval mode) and its input batch."""
    import torch

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    if name == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        model = LlamaForCausalLM(LlamaConfig(**LLAMA)).eval()
        return model, torch.randint(0, LLAMA["vocab_size"], (args.batch, args.seq), generator=gen)
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    return model, torch.rand(args.batch, 3, args.input, args.input, generator=gen)


def layer_inputs(model, x):
    """Every conv / linear layer of ``model`` (name, module) with the input it saw in float."""
    import torch

    records = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: records.append((name, mod, inp[0].detach())))
             for name, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return records


def _relative_error(y, ref) -> float:
    return float((y - ref).norm() / ref.norm().clamp(min=1e-30))


def aihwkit_config(mode: str):
    """aihwkit's inference config: perfect periphery, 256 x 256 tiles, PCM noise of ``mode``, global
    drift compensation."""
    from aihwkit.inference import GlobalDriftCompensation, PCMLikeNoiseModel
    from aihwkit.simulator.configs import InferenceRPUConfig
    from aihwkit.simulator.parameters.io import IOParameters

    rpu = InferenceRPUConfig()
    rpu.forward = IOParameters(is_perfect=True)
    rpu.mapping.max_input_size = rpu.mapping.max_output_size = 256
    rpu.noise_model = PCMLikeNoiseModel(g_max=G_MAX_US, prog_noise_scale=float(mode in ("programming", "all")),
                                        read_noise_scale=float(mode == "all"),
                                        drift_scale=float(mode in ("drift", "all")))
    rpu.drift_compensation = GlobalDriftCompensation()
    return rpu


def aihwkit_model(module, mode: str, t_seconds: float, seed: int):
    """``module`` converted by aihwkit, programmed and drifted to ``t_seconds``."""
    import torch
    from aihwkit.nn.conversion import convert_to_analog

    torch.manual_seed(seed)
    analog = convert_to_analog(module, aihwkit_config(mode)).eval()
    with torch.no_grad():
        analog.program_analog_weights()
        analog.drift_analog_weights(t_seconds)
    return analog


def aihwkit_error(module, x, mode: str, t_seconds: float, seed: int) -> float:
    import torch

    with torch.no_grad():
        ref = module(x)
        return _relative_error(aihwkit_model(module, mode, t_seconds, seed)(x), ref)


def graphcost_noise(mode: str, t_seconds: float):
    from dataclasses import replace

    from graphcost.crossbar.specs import NoiseSpec

    pcm = replace(NoiseSpec.pcm(), t_seconds=t_seconds)
    if mode == "programming":
        return replace(pcm, drift_nu=0.0, drift_nu_std=0.0, drift_vs_conductance=False, read_1f=0.0)
    if mode == "drift":
        return replace(pcm, programming=0.0, programming_poly_uS=(), read_1f=0.0)
    return pcm


def graphcost_model(module, x, mode: str, t_seconds: float, seed: int):
    """``module`` on graphcost's arrays (one 16-bit cell pair per weight, 16-bit DAC / ADC), calibrated on ``x``."""
    import torch

    from graphcost.crossbar.sim import CrossbarModel
    from graphcost.crossbar.specs import ArraySpec

    array = ArraySpec(256, 256, weight_bits=16, cell_bits=16, dac_bits=16, adc_bits=16)
    sim = CrossbarModel(module, array, graphcost_noise(mode, t_seconds), seed=seed)
    with torch.no_grad():
        sim.calibrate(x)
    return sim


def graphcost_error(module, x, mode: str, t_seconds: float, seed: int) -> float:
    import torch

    with torch.no_grad():
        ref = module(x)
        return _relative_error(graphcost_model(module, x, mode, t_seconds, seed)(x), ref)


# --------------------------------------------------------------------------- the comparison
def compare_layers(name: str, args) -> list:
    """Per mode, time and layer of model ``name``: the mean error of each simulator and their ratio."""
    model, x = build_model(name, args)
    records = layer_inputs(model, x)[:args.layers] if args.layers else layer_inputs(model, x)
    rows = []
    start = time.perf_counter()
    for mode in args.modes:
        for label, t in args.times:
            block = []
            for layer, module, inp in records:
                a = statistics.fmean(aihwkit_error(module, inp, mode, t, args.seed + r) for r in range(args.repeats))
                g = statistics.fmean(graphcost_error(module, inp, mode, t, args.seed + r) for r in range(args.repeats))
                block.append({"model": name, "mode": mode, "time": label, "t_seconds": t, "layer": layer,
                              "aihwkit": a, "graphcost": g, "ratio": g / a if a > 0 else float("nan")})
            _print_summary(name, mode, label, block, start, args.per_layer)
            rows += block
    return rows


def compare_speed(name: str, args) -> dict:
    """The whole model's forward per batch: float, graphcost and aihwkit (all noise, 1 d), interleaved."""
    import torch

    model, x = build_model(name, args)
    sim = graphcost_model(model, x, "all", TIMING_T_SECONDS, args.seed)
    analog = aihwkit_model(model, "all", TIMING_T_SECONDS, args.seed)
    fns = {"float": lambda: model(x), "graphcost": lambda: sim(x), "aihwkit": lambda: analog(x)}
    times = {k: [] for k in fns}
    with torch.no_grad():
        for _ in range(2):  # warm-up
            for fn in fns.values():
                fn()
        for _ in range(args.timing_repeats):
            for k, fn in fns.items():
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    print(f"{name:9s} speed, input {'x'.join(map(str, x.shape))}: float {med['float'] * 1e3:.1f} ms "
          f"({low['float'] * 1e3:.1f}), graphcost {med['graphcost'] * 1e3:.1f} ms ({low['graphcost'] * 1e3:.1f}), "
          f"aihwkit {med['aihwkit'] * 1e3:.1f} ms ({low['aihwkit'] * 1e3:.1f}); graphcost / aihwkit "
          f"{med['graphcost'] / med['aihwkit']:.2f} (min {low['graphcost'] / low['aihwkit']:.2f}), graphcost / float "
          f"{med['graphcost'] / med['float']:.2f}, aihwkit / float {med['aihwkit'] / med['float']:.2f}", flush=True)
    return {"model": name, "input": list(x.shape), "median_s": med, "min_s": low, "repeats": args.timing_repeats}


def compare(args) -> dict:
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    rows, speed = [], []
    for name in args.models:
        if args.repeats > 0:
            rows += compare_layers(name, args)
        if args.timing_repeats > 0:
            speed.append(compare_speed(name, args))
    import aihwkit

    return {"torch": torch.__version__, "aihwkit": aihwkit.__version__, "input": args.input, "batch": args.batch,
            "seq": args.seq, "repeats": args.repeats, "seed": args.seed, "rows": rows, "speed": speed}


def _print_summary(model: str, mode: str, label: str, summary: list, start: float, per_layer: bool) -> None:
    a = statistics.median(r["aihwkit"] for r in summary)
    g = statistics.median(r["graphcost"] for r in summary)
    if a < 1e-6:  # nothing to compare: aihwkit is exact, graphcost shows its 16-bit quantisation floor
        ratio = "ratio n/a (aihwkit exact; graphcost = 16-bit quantisation)"
    else:
        ratios = [r["ratio"] for r in summary]
        ratio = f"ratio median {statistics.median(ratios):.2f} (layers {min(ratios):.2f}-{max(ratios):.2f})"
    print(f"{model:9s} {mode:12s} {label:>5s}  aihwkit {a:.4f}  graphcost {g:.4f}  {ratio}  "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    if per_layer:
        for r in summary:
            print(f"    {r['layer']:32s} aihwkit {r['aihwkit']:.4f}  graphcost {r['graphcost']:.4f}  "
                  f"ratio {r['ratio']:.2f}", flush=True)


def _choices(allowed):
    def parse(text: str) -> tuple:
        items = tuple(v.strip() for v in text.split(",") if v.strip())
        bad = [v for v in items if v not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}, got {text!r}")
        return items
    return parse


def _times(text: str) -> tuple:
    """``"60s,1h"`` -> ``(("60s", 60.0), ("1h", 3600.0))`` (units s, m, h, d, y, as ``graphcost map --times``)."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "y": 365 * 86400.0}
    out = []
    for item in (v.strip() for v in text.split(",")):
        try:
            seconds = float(item[:-1]) * units[item[-1:]]
        except (KeyError, ValueError):
            raise argparse.ArgumentTypeError(f"times are NUMBER+UNIT (s, m, h, d, y), got {item!r}") from None
        if seconds < 0:
            raise argparse.ArgumentTypeError(f"times cannot be negative, got {item!r}")
        out.append((item, seconds))
    return tuple(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="where the aihwkit environment lives")
    p.add_argument("--setup-only", action="store_true", help="create / check the venv and stop")
    p.add_argument("--models", type=_choices(MODELS), default=MODELS, help="comma-separated: resnet18, llama")
    p.add_argument("--modes", type=_choices(MODES), default=MODES, help="comma-separated: programming, drift, all")
    p.add_argument("--times", type=_times, default=_times("60s,1h,1d,1y"), help="times after programming")
    p.add_argument("--repeats", type=int, default=3, help="noise draws per layer and configuration (0: no error rows)")
    p.add_argument("--timing-repeats", type=int, default=11, help="interleaved timed forwards (0: no speed row)")
    p.add_argument("--seq", type=int, default=64, help="token ids per sequence (llama)")
    p.add_argument("--per-layer", action="store_true", help="print every layer's row")
    p.add_argument("--input", type=int, default=64, help="side of the square input image")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--layers", type=int, default=None, help="only the first N layers (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="write every per-layer row here")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.inner:
        python = ensure_venv(args.venv)
        if args.setup_only:
            print(f"ready: {python}")
            return 0
        forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
        return subprocess.run([str(python), str(Path(__file__).resolve()), "--inner", *forwarded]).returncode
    result = compare(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
