"""``python -m benchmarks quality``: the lite generator against the seed architecture at equal training time.

Both train with everything the same but the generator: the ``lite`` preset's
data (embedded fundus/histology patches + synthetic endoscopy frames at 256²),
degradations (blur, noise, salt-and-pepper), losses, discriminator, batch and
learning rate, for the same number of wall-clock minutes (``max_minutes``;
validation and checkpoints count too, as they would for a user) and no LR
decay. Then both restore the held-out test split, degraded identically (per
image seeds), and we compare their PSNR gains over the degraded input.
"""
from __future__ import annotations

import torch

from medgan_nb.models import load_checkpoint, load_generator
from medgan_nb.config import Config
from medgan_nb.data import dataset_keys, default_dataset
from medgan_nb.degrade import Degradation
from medgan_nb.metrics import psnr, ssim
from medgan_nb.training import restore, train

from .common import now

SEED_ARCHITECTURE = dict(depth=8, base_channels=64, max_channels=512, dropout=0.5)


def configs(minutes: float, output_dir: str, device: str = "auto") -> dict[str, Config]:
    common = dict(max_minutes=minutes, epochs=1000, lr_decay_start=1000, output_dir=output_dir, device=device,
                  sample_every=0, save_every=1000)
    return {"lite": Config.from_preset("lite", **common),
            "seed_architecture": Config.from_preset("lite", **common, **SEED_ARCHITECTURE)}


def test_scores(run_dir, cfg: Config) -> dict:
    """Mean PSNR/SSIM on the test split: degraded input, and restored by the run's last generator."""
    test = default_dataset("test", cfg.replace(cache_images=False))
    clean = torch.stack([test[i][0] for i in range(len(test))])
    degraded = Degradation(cfg)(clean, keys=dataset_keys(test)).image
    generator, _ = load_generator(run_dir / "checkpoints" / "last.pt")
    restored = restore(generator, degraded, torch.device("cpu"), batch_size=4)
    p_in, p_out = psnr(degraded, clean).mean().item(), psnr(restored, clean).mean().item()
    return {"test_images": len(test), "psnr_degraded": round(p_in, 2), "psnr": round(p_out, 2),
            "psnr_gain": round(p_out - p_in, 2), "ssim_degraded": round(ssim(degraded, clean).mean().item(), 3),
            "ssim": round(ssim(restored, clean).mean().item(), 3)}


def quality(minutes: float, output_dir: str, device: str = "auto") -> dict:
    result: dict = {"created": now(), "minutes_each": minutes,
                    "what": "PSNR gain over the degraded input on the test split (256², lite preset's data and "
                            "degradations) after equal wall-clock training; goal: lite >= 90% of the seed architecture's"}
    for name, cfg in configs(minutes, output_dir, device).items():
        print(f"training {name} for {minutes} min ...", flush=True)
        run = train(cfg, name=f"quality-{name}")
        state = load_checkpoint(run / "checkpoints" / "last.pt")
        result[name] = {"run": str(run), "steps": state["step"], "epochs": state["epoch"],
                        "images_seen": state["step"] * cfg.batch_size, **test_scores(run, cfg)}
        print(f"  {name}: {result[name]}", flush=True)
    result["gain_ratio"] = round(result["lite"]["psnr_gain"] / result["seed_architecture"]["psnr_gain"], 3)
    result["goal_met"] = result["gain_ratio"] >= 0.9
    return result
