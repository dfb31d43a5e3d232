"""Running the methods an evaluation compares: the model and the classical baselines, timed.

- `run_gan(generator, degraded, device)`: a batch (N, 3, H, W) in [-1, 1] through the generator and its
  ``guard`` when it has one, under ``torch.inference_mode``; returns (output on the CPU, seconds for the
  batch). CUDA work is synchronised before each clock reading.
- `run_baseline(name, degraded, noise_std)`: the batch image by image through a function of
  `medgan_nb.evaluation.baselines.BASELINES`, in [0, 1] numpy and back; returns (output, seconds per
  image).
- `run_method(method, degraded, params, generator, device)`: either, by name ("gan" or a baseline);
  baselines get the true per-image noise std from the degradation's params.

`LABELS` gives each method's name as reports and figures print it.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ..models.runner import restore
from ..utils.images import from_numpy_images, to_numpy_images
from .baselines import BASELINES

LABELS = {"gan": "the model", "identity": "identity", "median": "median", "gaussian": "Gaussian",
          "nlm": "NLM", "tv": "TV", "bilateral": "bilateral", "cbm3d": "CBM3D", "median_cbm3d": "median + CBM3D"}


# ------------------------------------------------------------------ restoring
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def run_gan(generator: nn.Module, degraded: torch.Tensor, device: str) -> tuple[torch.Tensor, float]:
    """Restore a batch (N, 3, H, W) in [-1, 1] with the generator and its ``guard`` if it has one
    (`medgan_nb.models.guard`; shipped models do), in one chunk (`medgan_nb.models.runner.restore`);
    (output on the CPU, seconds for the batch, guard included)."""
    _sync(device)
    start = time.perf_counter()
    y = restore(generator, degraded, device, batch_size=len(degraded), guard=getattr(generator, "guard", None))
    _sync(device)
    return y, time.perf_counter() - start


def run_baseline(name: str, degraded: torch.Tensor, noise_std: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, list[float]]:
    """Restore a batch (N, 3, H, W) in [-1, 1] image by image with a baseline; (output, seconds per image)."""
    fn = BASELINES[name]
    outs, seconds = [], []
    for i, img in enumerate(to_numpy_images(degraded)):
        sigma = None if noise_std is None else float(noise_std[i])
        start = time.perf_counter()
        outs.append(fn(img, sigma))
        seconds.append(time.perf_counter() - start)
    return from_numpy_images(np.stack(outs)), seconds


def run_method(method: str, degraded: torch.Tensor, params: dict, generator: nn.Module | None,
               device: str) -> tuple[torch.Tensor, float]:
    """One method's output for a batch and the seconds it took; baselines get the true per-image noise std."""
    if method == "gan":
        return run_gan(generator, degraded, device)
    y, seconds = run_baseline(method, degraded, params.get("noise_std"))
    return y, sum(seconds)


def _restore(method: str, degraded: torch.Tensor, params: dict, generator: nn.Module | None,
             device: str) -> torch.Tensor:
    """One method's output for a batch, untimed (for the figures)."""
    return run_method(method, degraded, params, generator, device)[0]
