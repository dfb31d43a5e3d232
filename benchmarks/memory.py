"""``python -m benchmarks.memory CASE DEVICE``: run one case in this fresh process and print its peak memory as JSON."""
from __future__ import annotations

import json
import resource
import sys

import torch

from medgan_nb.config import Config
from medgan_nb.export import fast_generator, fold_batchnorm
from medgan_nb.losses import VGGPerceptualLoss
from medgan_nb.models import build_generator
from medgan_nb.train import make_step

from . import seed_reference as ref


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


def run(case: str, device: torch.device) -> dict:
    torch.manual_seed(0)
    batch = torch.rand(4, 3, 256, 256, device=device) * 2 - 1
    frame = batch[:1]
    baseline = peak_mb(device)
    if case == "train_seed_reference":
        ref.Trainer(str(device), vgg_weights=None).iteration(batch, batch)
    elif case == "train_project":
        make_step(Config.preset("seed", device=str(device)), device, VGGPerceptualLoss(weights=None))(batch, batch)
    elif case == "infer_seed_reference":
        ref.enhance(ref.UnetGenerator().to(device), frame)
    elif case in ("infer_project_seed", "infer_lite"):      # as enhance runs weights it loaded: folded in place
        model = build_generator(Config.preset("seed" if case == "infer_project_seed" else "lite")).to(device)
        fold_batchnorm(model, inplace=True)
        with torch.inference_mode():
            fast_generator(model)(frame)
    else:
        raise SystemExit(f"unknown case {case!r}")
    return {"peak_mb": round(peak_mb(device), 1), "before_mb": round(baseline, 1)}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], torch.device(sys.argv[2] if len(sys.argv) > 2 else "cpu"))))
