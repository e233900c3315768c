"""Train the shipped ItNet checkpoint on the synthetic segmentation set.

    python -m graphcost.crossbar.train                # ~7 min on 2 idle CPU cores, writes the shipped file
    python -m graphcost.crossbar.train --epochs 1 --out /tmp/itnet.pt   # a quick smoke run

The model is the DEFAULT ``graphcost map itnet`` network (ItNet, CamVid preset: shared weights,
N=16, L=3, K=1, f=51, 11 classes; fully convolutional). Training follows the ItNet paper
(Pfeil, Sec. II-B): the multi-output loss of Eq. 1,

    L = sum_n a_n CE(m_n, labels) / sum_n a_n      (a_n = 1 for every output by default),

Adam (beta 0.9 / 0.999) with learning rate 1e-3, multiplied by 0.1 after 70 % and 85 % of
training (here counted in steps), batch size 8. The data are :class:`~graphcost.crossbar.data.
SyntheticSegmentation` images (training seed, disjoint from the evaluation images) of 96 x 128,
trained on random 64 x 64 crops with random horizontal flips (fully convolutional, so the
crops only make CPU training affordable; evaluation runs at 96 x 128). Everything random is
seeded from ``--seed``. The state dict is saved as float32 next to a JSON file with the command,
seed, epochs, timing and the final per-output mIoU on the synthetic evaluation images.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F

from .accuracy import SHIPPED_CONFIG, confusion_matrix, default_weights_path, miou
from .data import IGNORE_INDEX, SYNTHETIC_SHAPE, SYNTHETIC_TEST_SEED, SYNTHETIC_TRAIN_SEED, SyntheticSegmentation


def multi_output_loss(outputs: Sequence[torch.Tensor], labels: torch.Tensor,
                      weights: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Eq. 1 of the ItNet paper: ``sum_n a_n CE(m_n) / sum_n a_n`` (pixels labelled 255 ignored)."""
    a = list(weights) if weights is not None else [1.0] * len(outputs)
    if len(a) != len(outputs):
        raise ValueError(f"{len(a)} loss weights for {len(outputs)} outputs")
    total = sum(a)
    loss = sum(w * F.cross_entropy(o, labels, ignore_index=IGNORE_INDEX) for w, o in zip(a, outputs) if w)
    return loss / total


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, classes: int) -> List[float]:
    """mIoU of every output on ``images`` (eval mode, batches of 8)."""
    model.eval()
    confs = None
    with torch.inference_mode():
        for s in range(0, images.shape[0], 8):
            outs = model(images[s:s + 8])
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            c = [confusion_matrix(o.argmax(1), labels[s:s + 8], classes) for o in outs]
            confs = c if confs is None else [a + b for a, b in zip(confs, c)]
    return [miou(c) for c in confs]


def train(*, epochs: int = 24, train_samples: int = 512, batch_size: int = 8, lr: float = 1e-3, seed: int = 0,
          crop: int = 64, eval_samples: int = 32, loss_weights: Optional[Sequence[float]] = None,
          out: Optional[str] = None, log=print) -> dict:
    from graphcost.models import get_model

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    params = {k: v for k, v in SHIPPED_CONFIG.items()}
    model = get_model("itnet", dataset="camvid", **params)
    classes = params["classes"]
    H, W = SYNTHETIC_SHAPE
    t0 = time.time()
    images, labels = SyntheticSegmentation(train_samples, H, W, classes, seed=SYNTHETIC_TRAIN_SEED).tensors()
    test_images, test_labels = SyntheticSegmentation(eval_samples, H, W, classes, seed=SYNTHETIC_TEST_SEED).tensors()
    steps_per_epoch = train_samples // batch_size
    total = epochs * steps_per_epoch
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(0.7 * total), int(0.85 * total)], gamma=0.1)
    log(f"training ItNet {params} on {train_samples} synthetic {H}x{W} images ({crop}x{crop} crops), "
        f"{epochs} epochs x {steps_per_epoch} steps of {batch_size}")
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(train_samples, generator=gen)
        running = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            y0 = int(torch.randint(0, H - crop + 1, (), generator=gen)) if crop < H else 0
            x0 = int(torch.randint(0, W - crop + 1, (), generator=gen)) if crop < W else 0
            ch, cw = min(crop, H), min(crop, W)
            x = images[idx, :, y0:y0 + ch, x0:x0 + cw]
            y = labels[idx, y0:y0 + ch, x0:x0 + cw]
            if bool(torch.rand((), generator=gen) < 0.5):
                x, y = x.flip(-1), y.flip(-1)
            loss = multi_output_loss(model(x), y, loss_weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            running += float(loss.detach())
        log(f"epoch {epoch + 1}/{epochs}: loss {running / steps_per_epoch:.4f}, lr {sched.get_last_lr()[0]:.0e}, "
            f"{time.time() - t0:.0f} s")
    per_output = evaluate(model, test_images, test_labels, classes)
    default_eval = evaluate(model, test_images[:8], test_labels[:8], classes)
    seconds = time.time() - t0
    log(f"synthetic test mIoU per output ({eval_samples} images): " + " ".join(f"{m:.3f}" for m in per_output))
    meta = {
        "model": "itnet",
        "params": params,
        "dataset_preset": "camvid",
        "data": f"synthetic {H}x{W}, train seed {SYNTHETIC_TRAIN_SEED}, test seed {SYNTHETIC_TEST_SEED}",
        "command": "python -m graphcost.crossbar.train " + " ".join(sys.argv[1:]),
        "seed": seed,
        "epochs": epochs,
        "train_samples": train_samples,
        "batch_size": batch_size,
        "crop": crop,
        "lr": lr,
        "schedule": "x0.1 after 70% and 85% of the steps",
        "loss_weights": list(loss_weights) if loss_weights is not None else "a_n = 1",
        "train_seconds": round(seconds, 1),
        "torch": torch.__version__,
        "eval_samples": eval_samples,
        "final_miou": per_output[-1],
        "miou_per_output": per_output,
        "final_miou_first8": default_eval[-1],
    }
    if out:
        from graphcost.render import write_atomic

        state = {k: (v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        write_atomic(out, lambda tmp: torch.save(state, tmp))
        text = json.dumps(meta, indent=2) + "\n"
        write_atomic(os.path.splitext(out)[0] + ".json", lambda tmp: open(tmp, "w").write(text))
        log(f"wrote {out}")
    return meta


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m graphcost.crossbar.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--train-samples", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop", type=int, default=64, help="square training crop (multiple of 16)")
    p.add_argument("--eval-samples", type=int, default=32)
    p.add_argument("--loss-weights", default=None, help="comma-separated a_n, one per output (default all 1)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(default_weights_path()))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = [float(v) for v in args.loss_weights.split(",")] if args.loss_weights else None
    train(epochs=args.epochs, train_samples=args.train_samples, batch_size=args.batch_size, lr=args.lr,
          seed=args.seed, crop=args.crop, eval_samples=args.eval_samples, loss_weights=weights, out=args.out,
          log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
