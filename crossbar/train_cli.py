"""``graphcost train``: train a model (float or hardware-aware) and write its checkpoint.

The command parses options, calls :func:`graphcost.crossbar.training.train` and
:func:`~graphcost.crossbar.training.save_checkpoint`, and renders; every check a user can fail runs
before the first training step, and the checkpoint is only written (atomically) at the end.
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import Optional

import click

from graphcost.cli_options import model_options
from graphcost.errors import UserError
from graphcost.resolve import ModelSpec

from .cli import DATA, NOISE
from .specs import NoiseSpec


@click.command(name="train")
@model_options
@click.option("--data", "data_text", type=DATA, default=None,
              help="Training data; its held-out split scores the result (default: digits or pydoc for models on "
                   "those presets, else synthetic).")
@click.option("--init", "init_path", default=None, metavar="FILE",
              help="Start from these weights (a state dict of the same model), e.g. a float checkpoint to "
                   "fine-tune with --hwa.")
@click.option("--hwa", is_flag=True, help="Hardware-aware training: the simulator's analog layers in their "
              "differentiable mode (the programmed-weight noise of --noise every batch, output noise where the "
              "device has per-MVM read noise, DAC/ADC with straight-through estimators).")
@click.option("--noise", type=NOISE, default="pcm", show_default=True,
              help="With --hwa: the device noise whose programmed-weight error at its t_seconds (e.g. "
                   "pcm,t_seconds=86400 for one day) is the training noise.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Adam learning rate (x0.1 after 70% and 85% of the steps).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Use only the first N training images (default: the whole training split).")
@click.option("--crop", type=click.IntRange(min=16), default=64, show_default=True,
              help="Square random training crop of segmentation images (a multiple of 16 for ItNet).")
@click.option("--ponder", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of the ACT ponder cost (iterations used + remainder, Leroux et al.) for models with "
                   "halting stages, e.g. iterative-resnet: trains them to halt early.")
@click.option("--full-depth-weight", "full_depth", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="For models with halting stages: weight of the loss of each batch run again with halting "
                   "switched off (every iteration), so the model keeps its accuracy at the maximum iterations.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random draw.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write (.pt).")
def train_command(spec: ModelSpec, data_text: Optional[str], init_path: Optional[str], hwa: bool,
                  noise: NoiseSpec, epochs: int, lr: float,
                  batch_size: int, samples: Optional[int], crop: int, ponder: float, full_depth: float, seed: int,
                  out_path: str):
    """Train MODEL on --data (float or --hwa, Eq. 1 loss over anytime outputs) and write a checkpoint to --out."""
    from graphcost.runtime.executor import ProgressBar
    from graphcost.resolve import build

    from .accuracy import load_weights
    from .sim.hwa import HWASpec
    from .training import save_checkpoint, train

    _check_out(out_path)
    if spec.dataset is None and data_text == "digits":  # digits data: the model's digits preset (1 x 8 x 8)
        spec = replace(spec, dataset="digits")
    built = build(spec)
    data = data_text or (built.dataset if built.dataset in ("digits", "pydoc") else "synthetic")
    if init_path is not None:
        load_weights(built.module, init_path)

    hwa_spec = HWASpec.for_noise(noise) if hwa else None

    def on_epoch(epoch: int, epochs: int, loss: float) -> None:
        click.echo(f"epoch {epoch}/{epochs}: loss {loss:.4f}", err=True)

    with ProgressBar("training", 1) as bar:
        result = train(built.module, data, hwa=hwa_spec, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                       crop=crop, train_samples=samples, model_inputs=built.call_inputs, progress=bar,
                       on_epoch=on_epoch, ponder=ponder, full_depth=full_depth)
    meta = {"model": spec.name, "params": dict(spec.params), "dataset_preset": built.dataset,
            "init": os.path.basename(init_path) if init_path else None,
            "command": "graphcost train " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "graphcost train",
            **result.to_dict()}
    save_checkpoint(built.module, out_path, meta)
    click.echo(f"{result.metric} on the held-out {data} split: " +
               " ".join(f"{v:.4f}" for v in result.per_output) + f" ({result.seconds:.0f} s); wrote {out_path}")


def _check_out(path: str) -> None:
    """The checkpoint's folder must exist (or be creatable) before training starts."""
    if not path.endswith(".pt"):
        raise UserError(f"--out must name a .pt file, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    parent = folder
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UserError(f"--out {path!r}: cannot write into {parent!r}")
