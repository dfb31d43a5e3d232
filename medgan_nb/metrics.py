"""Image quality metrics: PSNR and SSIM, computed with scikit-image on [0, 1] images.

Both take batches in the models' range [-1, 1] and map them to [0, 1] first
(`medgan_nb.data.to_numpy_images`), so ``data_range=1`` is right.

SSIM is Wang et al.'s (2004), the one that papers and the reference levels
0.85 / 0.90 use: a Gaussian window of sigma 1.5 pixels (11×11, cut at 3.5 sigma),
population (not sample) variances, K1 = 0.01, K2 = 0.03; the SSIM map is
averaged without the 5-pixel border the window overhangs, and the colour
channels are scored separately and averaged (``channel_axis=-1``, not a third
spatial dimension). scikit-image's own default, a uniform 7×7 window with
sample variances, gives other values (``gaussian=False``, for old reports).
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .data import to_numpy_images

WANG_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)    # Wang et al. 2004
SSIM_DESCRIPTION = ("as Wang et al. (2004): Gaussian window (σ = 1.5, 11×11), population variances, "
                    "averaged over the RGB channels")


def _as_unit_images(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) or (3, H, W) in [-1, 1] -> (N, H, W, 3) float64 in [0, 1]."""
    return to_numpy_images(x if x.ndim == 4 else x[None]).astype(np.float64)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """PSNR in dB per image (N,); identical images give inf."""
    p, t = _as_unit_images(pred), _as_unit_images(target)
    with np.errstate(divide="ignore"):
        return np.array([peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(t, p)])


def ssim(pred: torch.Tensor, target: torch.Tensor, gaussian: bool = True) -> np.ndarray:
    """SSIM per image (N,), in [-1, 1]; 1 means identical.

    gaussian: Wang et al.'s Gaussian window (see the module docstring); False: scikit-image's
    default uniform 7×7 window with sample variances (what medgan_nb reported before).
    """
    p, t = _as_unit_images(pred), _as_unit_images(target)
    settings = dict(WANG_SSIM) if gaussian else {}
    side = min(p.shape[1:3])
    if gaussian and side < 11:                   # tiny images: same filter, a narrower border left out
        settings["win_size"] = side if side % 2 else side - 1
    return np.array([structural_similarity(a, b, data_range=1.0, channel_axis=-1, **settings)
                     for a, b in zip(t, p)])
