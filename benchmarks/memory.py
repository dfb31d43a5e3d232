"""``python -m benchmarks.memory CASE DEVICE [FOLDER]``: run one case in this fresh process and print its peak memory
as JSON.

The inference cases start from files, as a user does: the original loads its saved ``state_dict`` into a new
UnetGenerator and runs one frame; the project runs `medgan_nb.inference.files.enhance` on the same frame with a training
checkpoint as `train` writes it (generator, EMA, discriminator and both Adam states). `prepare` writes those files
into FOLDER beforehand (``python -m benchmarks.memory prepare DEVICE FOLDER``), in another process, so
that writing them does not count.
"""
from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medgan_nb.models import save_checkpoint
from medgan_nb.config import Config
from medgan_nb.data import SHIPPED_DATA, list_images, load_image, to_tensor
from medgan_nb.utils import to_numpy_images
from medgan_nb.losses import VGGPerceptualLoss
from medgan_nb.models import build_discriminator, build_generator
from medgan_nb.training import make_trainer

from . import seed_reference as ref

PROJECT_CASES = {"infer_project_seed": "original", "infer_lite": "lite"}


def prepare(folder: Path) -> Path:
    """Write the inference cases' inputs into `folder`: one 256² frame, the original's generator file and a
    training checkpoint per project case (Adam's moments as zeros: the same sizes as after training)."""
    frame = to_numpy_images(to_tensor(load_image(list_images(SHIPPED_DATA / "images")[0]), 256))   # centre 256²
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    Image.fromarray((frame * 255).round().astype(np.uint8)).save(folder / "frames" / "frame.png")
    torch.save(ref.UnetGenerator().state_dict(), folder / "seed_reference.pth")      # the original's file
    for case, preset in PROJECT_CASES.items():
        cfg = Config.from_preset(preset)
        g, d = build_generator(cfg), build_discriminator(cfg)
        save_checkpoint({"config": cfg.to_dict(), "generator": g.state_dict(), "generator_ema": g.state_dict(),
                         "discriminator": d.state_dict(), "opt_g": _adam_state(g), "opt_d": _adam_state(d)},
                        folder / f"{case}.pt")
    return folder


def _adam_state(model: torch.nn.Module) -> dict:
    params = list(model.parameters())
    return {"state": {i: {"step": torch.tensor(1.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
                      for i, p in enumerate(params)},
            "param_groups": [{"lr": 2e-4, "params": list(range(len(params)))}]}


def peak_mb(device: torch.device) -> float:
    """Peak CUDA allocation, or this process's peak resident memory.

    On Linux VmHWM, not getrusage's ru_maxrss: the latter survives exec and so
    would report the (large) parent benchmark process's peak.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024                            # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(case: str, device: torch.device, folder: Path | None = None) -> dict:
    torch.manual_seed(0)
    baseline = peak_mb(device)
    if case == "train_seed_reference":
        batch = torch.rand(4, 3, 256, 256, device=device) * 2 - 1
        ref.Trainer(str(device), vgg_weights=None).iteration(batch, batch)
    elif case == "train_project":
        batch = torch.rand(4, 3, 256, 256, device=device) * 2 - 1
        make_trainer(Config.from_preset("original", device=str(device)), device, VGGPerceptualLoss(weights=None))(batch, batch)
    elif case == "infer_seed_reference":                # the original's loading and evaluation forward
        g = ref.UnetGenerator().to(device)
        g.load_state_dict(torch.load(folder / "seed_reference.pth", map_location=device))
        x = torch.from_numpy(np.asarray(Image.open(folder / "frames" / "frame.png"), dtype=np.float32) / 127.5 - 1)
        ref.enhance(g, x.permute(2, 0, 1)[None].to(device))
    elif case in PROJECT_CASES:
        from medgan_nb.inference import enhance
        with tempfile.TemporaryDirectory() as out:
            enhance(folder / "frames", out, folder / f"{case}.pt", device=str(device), quiet=True)
    else:
        raise SystemExit(f"unknown case {case!r}")
    return {"peak_mb": round(peak_mb(device), 1), "before_mb": round(baseline, 1)}


if __name__ == "__main__":
    case, device = sys.argv[1], torch.device(sys.argv[2] if len(sys.argv) > 2 else "cpu")
    folder = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    if case in ("prepare", *PROJECT_CASES, "infer_seed_reference") and folder is None:
        raise SystemExit(f"{case} needs a FOLDER (python -m benchmarks.memory prepare cpu FOLDER writes its files)")
    print(json.dumps({"prepared": str(prepare(folder))} if case == "prepare" else run(case, device, folder)))
