"""graphcost's PCM noise vs aihwkit's ``PCMLikeNoiseModel``: per-layer relative error on resnet18.

    python benchmarks/bench_vs_aihwkit.py                      # sets up its venv on first use (~3 GB)
    python benchmarks/bench_vs_aihwkit.py --repeats 5 --json out.json
    python benchmarks/bench_vs_aihwkit.py --setup-only         # only create / check the venv

Set-up (done by the script, once): aihwkit 1.1.0's only working wheel pairs with torch 2.10.0 and
torchvision 0.25.0, so the comparison runs in its own virtual environment, by default
``~/.cache/graphcost-bench/aihwkit-venv`` (``--venv`` or ``GRAPHCOST_AIHWKIT_VENV`` to move it)::

    python -m venv ~/.cache/graphcost-bench/aihwkit-venv
    ~/.cache/graphcost-bench/aihwkit-venv/bin/pip install torch==2.10.0 torchvision==0.25.0 aihwkit==1.1.0
    ~/.cache/graphcost-bench/aihwkit-venv/bin/pip install networkx numpy pandas click rich
    ~/.cache/graphcost-bench/aihwkit-venv/bin/pip install --no-deps -e REPO      # this checkout of graphcost

(torch 2.10.0 from PyPI pulls its CUDA libraries: ~3 GB, a few minutes.) The script then re-runs
itself with that interpreter, so aihwkit and graphcost run in the same process on the same
tensors.

What is compared. torchvision's resnet18 (``weights=None``: seeded random initialisation, there
is no download here) runs once in float on a seeded random batch; every conv / linear layer's
input is recorded. Each layer is then run (a) by aihwkit, converted with ``convert_to_analog`` to
256 x 256 analog tiles with perfect periphery (``IOParameters(is_perfect=True)``, so only the
device model acts), ``PCMLikeNoiseModel(g_max=25 uS)`` and ``GlobalDriftCompensation``, after
``program_analog_weights()`` and ``drift_analog_weights(t)``; and (b) by graphcost's
``CrossbarModel`` with the ``pcm`` noise preset at ``t_seconds = t``, one cell pair per weight
(``weight_bits = cell_bits = 16``), 16-bit DAC / ADC, 256 x 256 arrays, global drift
compensation. The error of a layer is ``||y_noisy - y_float|| / ||y_float||`` over its whole
output, averaged over ``--repeats`` noise draws (aihwkit: ``torch.manual_seed``, graphcost:
``seed``). Three noise configurations at 0 s, 1 h, 1 d and 1 y after programming:

* ``programming`` — programming noise only (aihwkit ``read_noise_scale = drift_scale = 0``);
* ``drift`` — drift only, per-device exponents, compensated (``prog_noise_scale = read_noise_scale = 0``);
* ``all`` — programming noise, drift and 1/f read noise.

The summary gives, per configuration and time, the median over layers of the two errors and of
their ratio graphcost / aihwkit (target: within 0.8-1.2). Nothing is asserted.
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
GRAPHCOST_DEPS = ("networkx", "numpy", "pandas", "click", "rich")
DEFAULT_VENV = Path(os.environ.get("GRAPHCOST_AIHWKIT_VENV", Path.home() / ".cache" / "graphcost-bench" /
                                   "aihwkit-venv"))
REPO = Path(__file__).resolve().parent.parent
TIMES_SECONDS = {"0 s": 0.0, "1 h": 3600.0, "1 d": 86400.0, "1 y": 365 * 86400.0}
MODES = ("programming", "drift", "all")
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
    check = "import aihwkit, torch, torchvision, graphcost.crossbar.sim; print(torch.__version__)"
    probe = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    if probe.returncode != 0 or not probe.stdout.startswith("2.10.0"):
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run(pip + list(PINS), check=True)
        subprocess.run(pip + list(GRAPHCOST_DEPS), check=True)
        subprocess.run(pip + ["--no-deps", "-e", str(REPO)], check=True)
    return python


# --------------------------------------------------------------------------- the layers
def layer_inputs(input_hw: int, batch: int, seed: int):
    """resnet18 (seeded init) and every conv / linear layer with the input it saw in float."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None).eval()
    records = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: records.append((name, mod, inp[0].detach())))
             for name, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.rand(batch, 3, input_hw, input_hw, generator=torch.Generator().manual_seed(seed)))
    for h in hooks:
        h.remove()
    return records


def _relative_error(y, ref) -> float:
    return float((y - ref).norm() / ref.norm().clamp(min=1e-30))


def aihwkit_error(module, x, mode: str, t_seconds: float, seed: int) -> float:
    import torch
    from aihwkit.inference import GlobalDriftCompensation, PCMLikeNoiseModel
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import InferenceRPUConfig
    from aihwkit.simulator.parameters.io import IOParameters

    rpu = InferenceRPUConfig()
    rpu.forward = IOParameters(is_perfect=True)
    rpu.mapping.max_input_size = rpu.mapping.max_output_size = 256
    rpu.noise_model = PCMLikeNoiseModel(g_max=G_MAX_US, prog_noise_scale=float(mode in ("programming", "all")),
                                        read_noise_scale=float(mode == "all"),
                                        drift_scale=float(mode in ("drift", "all")))
    rpu.drift_compensation = GlobalDriftCompensation()
    torch.manual_seed(seed)
    analog = convert_to_analog(module, rpu).eval()
    with torch.no_grad():
        ref = module(x)
        analog.program_analog_weights()
        analog.drift_analog_weights(t_seconds)
        return _relative_error(analog(x), ref)


def graphcost_noise(mode: str, t_seconds: float):
    from dataclasses import replace

    from graphcost.crossbar.specs import NoiseSpec

    pcm = replace(NoiseSpec.pcm(), t_seconds=t_seconds)
    if mode == "programming":
        return replace(pcm, drift_nu=0.0, drift_nu_std=0.0, drift_vs_conductance=False, read_1f=0.0)
    if mode == "drift":
        return replace(pcm, programming=0.0, programming_poly_uS=(), read_1f=0.0)
    return pcm


def graphcost_error(module, x, mode: str, t_seconds: float, seed: int) -> float:
    import torch

    from graphcost.crossbar.sim import CrossbarModel
    from graphcost.crossbar.specs import ArraySpec

    array = ArraySpec(256, 256, weight_bits=16, cell_bits=16, dac_bits=16, adc_bits=16)
    with torch.no_grad():
        ref = module(x)
        sim = CrossbarModel(module, array, graphcost_noise(mode, t_seconds), seed=seed)
        sim.calibrate(x)
        return _relative_error(sim(x), ref)


# --------------------------------------------------------------------------- the comparison
def compare(args) -> dict:
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    records = layer_inputs(args.input, args.batch, args.seed)
    if args.layers:
        records = records[:args.layers]
    rows = []
    start = time.perf_counter()
    for mode in MODES:
        for label, t in TIMES_SECONDS.items():
            for name, module, x in records:
                a = statistics.fmean(aihwkit_error(module, x, mode, t, args.seed + r) for r in range(args.repeats))
                g = statistics.fmean(graphcost_error(module, x, mode, t, args.seed + r) for r in range(args.repeats))
                rows.append({"mode": mode, "time": label, "t_seconds": t, "layer": name, "aihwkit": a,
                             "graphcost": g, "ratio": g / a if a > 0 else float("nan")})
            _print_summary(mode, label, [r for r in rows if r["mode"] == mode and r["time"] == label], start)
    import aihwkit

    return {"torch": torch.__version__, "aihwkit": aihwkit.__version__, "input": args.input, "batch": args.batch,
            "repeats": args.repeats, "seed": args.seed, "layers": len(records), "rows": rows}


def _print_summary(mode: str, label: str, summary: list, start: float) -> None:
    a = statistics.median(r["aihwkit"] for r in summary)
    g = statistics.median(r["graphcost"] for r in summary)
    if a < 1e-6:  # nothing to compare: aihwkit is exact, graphcost shows its 16-bit quantisation floor
        ratio = "ratio n/a (aihwkit exact; graphcost = 16-bit quantisation)"
    else:
        ratios = [r["ratio"] for r in summary]
        ratio = f"ratio median {statistics.median(ratios):.2f} (layers {min(ratios):.2f}-{max(ratios):.2f})"
    print(f"{mode:12s} {label:>4s}  aihwkit {a:.4f}  graphcost {g:.4f}  {ratio}  {time.perf_counter() - start:.0f} s",
          flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="where the aihwkit environment lives")
    p.add_argument("--setup-only", action="store_true", help="create / check the venv and stop")
    p.add_argument("--repeats", type=int, default=3, help="noise draws per layer and configuration")
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
