"""Image quality metrics: PSNR and SSIM, computed with scikit-image on [0, 1] images.

Both take batches in the models' range [-1, 1] and map them to [0, 1] first,
so ``data_range=1`` is right; SSIM treats the colour axis as channels
(``channel_axis=-1``), not as a third spatial dimension.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _as_unit_images(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) float64 in [0, 1]."""
    if x.ndim == 3:
        x = x[None]
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).double().numpy()


def psnr(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """PSNR in dB per image (N,); identical images give inf."""
    p, t = _as_unit_images(pred), _as_unit_images(target)
    with np.errstate(divide="ignore"):
        return np.array([peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(t, p)])


def ssim(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """SSIM per image (N,), in [-1, 1]; 1 means identical."""
    p, t = _as_unit_images(pred), _as_unit_images(target)
    return np.array([structural_similarity(a, b, data_range=1.0, channel_axis=-1) for a, b in zip(t, p)])
