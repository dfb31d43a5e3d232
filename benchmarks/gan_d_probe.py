"""Can a discriminator tell a shipped L1 model's outputs from clean frames? D alone, G fixed.

    python -m benchmarks.gan_d_probe --input detail --init default --steps 400
    python -m benchmarks.gan_d_probe --input image --init default --steps 400

Before a GAN fine-tune can change anything, D must learn to separate the L1 model's restorations from the truth.
This trains only the conditional PatchGAN (3 layers, 32 base channels, BatchNorm; `medgan_nb.models.discriminator`)
on pairs (degraded, clean) -> real and (degraded, quality model's output) -> fake, with the quality preset's
training crops and degradations (`--frames` Kvasir-SEG training frames, batch 16, Adam lr `--lr`, betas
(0.5, 0.999), 1 thread, seed 0), and prints the mean D loss of every 10 steps (ln 2 = 0.693 is chance) and,
every 50 steps, D's loss and accuracy on 64 held-out validation frames (a D that memorises its training frames
separates them and not these).

--input image: D sees the images (pix2pix); detail: only their fine detail (``d_input="detail"``).
--norm none: the PatchGAN without its BatchNorm layers (BatchNorm normalises the all-real and the all-fake batch
separately, which a D can exploit without telling one image from another).
--init default: PyTorch's own initialisation; pix2pix: N(0, 0.02) as `medgan_nb.models.build.init_weights`,
which training uses.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch import nn

from medgan_nb.config.config import Config
from medgan_nb.data.datasets import default_dataset
from medgan_nb.degrade.pipeline import Degradation
from medgan_nb.models.build import init_weights
from medgan_nb.models.discriminator import PatchDiscriminator
from medgan_nb.models.zoo import load_model


def held_out_pairs(cfg: Config, generator: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(degraded, clean, restored) of 64 validation frames, centre crops, degraded with fixed seeds."""
    data = default_dataset("val", cfg.replace(max_images=64))
    clean = torch.stack([data[i][0] for i in range(len(data))])
    degraded = Degradation(cfg)(clean, keys=[data[i][1] for i in range(len(data))]).image
    with torch.no_grad():
        return degraded, clean, generator(degraded)


@torch.no_grad()
def held_out_score(D: nn.Module, bce: nn.Module, degraded: torch.Tensor, clean: torch.Tensor,
                   fake: torch.Tensor) -> str:
    """D's loss and the share of patches it calls right on the held-out pairs (D in eval mode)."""
    D.eval()
    real_logits, fake_logits = D(degraded, clean), D(degraded, fake)
    D.train()
    loss = (bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits))) / 2
    right = ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()) / 2
    return f"{loss.item():.3f}, {right.item():.0%} of patches right"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", choices=("image", "detail"), default="detail")
    p.add_argument("--init", choices=("default", "pix2pix"), default="default")
    p.add_argument("--norm", choices=("batch", "none"), default="batch",
                   help="batch: the PatchGAN's BatchNorm; none: without it")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--frames", type=int, default=256, help="training frames (0: all 780)")
    p.add_argument("--data", default="../shared/data/kvasir-seg")
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    print(f"{vars(args)}; load average {os.getloadavg()[0]:.2f}", flush=True)
    cfg = Config.from_preset("quality", data_dir=args.data, max_images=args.frames)
    loader = torch.utils.data.DataLoader(default_dataset("train", cfg), batch_size=16, shuffle=True)
    generator = load_model("quality")[0]
    degrade = Degradation(cfg)
    held_out = held_out_pairs(cfg, generator)
    D = PatchDiscriminator(3, 32, 3, detail=args.input == "detail")
    if args.norm == "none":
        D.model = nn.Sequential(*(nn.Identity() if isinstance(m, nn.BatchNorm2d) else m for m in D.model))
    if args.init == "pix2pix":
        init_weights(D)
    opt = torch.optim.Adam(D.parameters(), args.lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    start, step, losses = time.time(), 0, []
    while step < args.steps:
        for clean, keys in loader:
            degraded = degrade(clean, keys=list(keys)).image
            with torch.no_grad():
                fake = generator(degraded)
            real_logits, fake_logits = D(degraded, clean), D(degraded, fake)
            loss = (bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits))) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            losses.append(loss.item())
            if step % 10 == 0:
                print(f"step {step}: D loss {np.mean(losses[-10:]):.3f} ({time.time() - start:.0f} s)", flush=True)
            if step % 50 == 0:
                print(f"step {step}: held out: D loss {held_out_score(D, bce, *held_out)}", flush=True)
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
