"""Image quality metrics: PSNR and SSIM, computed with scikit-image on [0, 1] images.

Both take batches in the models' range [-1, 1] and map them to [0, 1] first
(`medgan_nb.utils.images.to_numpy_images`), so ``data_range=1`` is right.

SSIM is Wang et al.'s (2004), the one that papers and the reference levels
0.85 / 0.90 use: a Gaussian window of sigma 1.5 pixels (11×11, cut at 3.5 sigma),
population (not sample) variances, K1 = 0.01, K2 = 0.03; the SSIM map is
averaged without the 5-pixel border the window overhangs, and the colour
channels are scored separately and averaged (``channel_axis=-1``, not a third
spatial dimension; many papers score the luminance channel instead, which gives
other values). scikit-image's own default, a uniform 7×7 window with sample
variances, gives other values too (``gaussian=False``, for old reports).

`psnr_masked` and `ssim_masked` score only the pixels of a mask (e.g. a polyp),
to show whether a restoration keeps a lesion as well as it keeps the rest.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .utils.images import to_numpy_images

PSNR_CAP = 100.0        # dB; identical images have infinite PSNR, which would make every mean infinite
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


def _ssim_settings(side: int, gaussian: bool = True) -> dict:
    """structural_similarity's keyword arguments for images whose shorter side is `side` pixels."""
    settings: dict = dict(WANG_SSIM) if gaussian else {}
    if gaussian and side < 11:                   # tiny images: same filter, a narrower border left out
        settings["win_size"] = side if side % 2 else side - 1
    return settings


def ssim(pred: torch.Tensor, target: torch.Tensor, gaussian: bool = True) -> np.ndarray:
    """SSIM per image (N,), in [-1, 1]; 1 means identical.

    gaussian: Wang et al.'s Gaussian window (see the module docstring); False: scikit-image's
    default uniform 7×7 window with sample variances (what medgan_nb reported before).
    """
    p, t = _as_unit_images(pred), _as_unit_images(target)
    settings = _ssim_settings(min(p.shape[1:3]), gaussian)
    return np.array([structural_similarity(a, b, data_range=1.0, channel_axis=-1, **settings)
                     for a, b in zip(t, p)])


def _as_masks(mask: torch.Tensor | np.ndarray, images: np.ndarray) -> np.ndarray:
    """(H, W) or (N, H, W) masks as bool (N, H, W) matching `images` (N, H, W, C); a clear error otherwise."""
    m = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).astype(bool)
    m = np.broadcast_to(m, images.shape[:1] + m.shape) if m.ndim == 2 else m
    if m.shape != images.shape[:3]:
        raise ValueError(f"mask of shape {tuple(np.shape(mask))} does not fit images of shape "
                         f"{images.shape[1:3]} (expected (H, W) or (N, H, W) = {images.shape[:3]})")
    return m


def psnr_masked(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """PSNR in dB per image (N,) over the pixels where `mask` (H, W or N, H, W; true = scored) is set.

    The mean squared error runs over those pixels and all three channels; identical pixels give inf,
    an empty mask NaN (there is nothing to score).
    """
    p, t = _as_unit_images(pred), _as_unit_images(target)
    m = _as_masks(mask, p)
    out = np.full(len(p), np.nan)
    for i, (a, b, keep) in enumerate(zip(p, t, m)):
        if keep.any():
            mse = float(np.mean((a[keep] - b[keep]) ** 2))
            out[i] = np.inf if mse == 0 else 10 * np.log10(1.0 / mse)
    return out


def ssim_masked(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """SSIM per image (N,) averaged over the pixels where `mask` is set: the SSIM map of `ssim` (Wang's
    settings, mean over the channels) restricted to the mask.

    As `ssim` does, the border that the window overhangs (5 pixels) is left out, so an all-true mask gives
    exactly `ssim`; a mask that is empty there gives NaN.
    """
    p, t = _as_unit_images(pred), _as_unit_images(target)
    m = _as_masks(mask, p)
    settings = _ssim_settings(min(p.shape[1:3]))
    border = (settings.get("win_size") or 11) // 2      # Wang's window: 11 taps (sigma 1.5 cut at 3.5 sigma)
    out = np.full(len(p), np.nan)
    for i, (a, b, keep) in enumerate(zip(p, t, m)):
        inner = np.zeros_like(keep)
        inner[border:keep.shape[0] - border, border:keep.shape[1] - border] = True
        keep = keep & inner
        if keep.any():
            _, full = structural_similarity(b, a, data_range=1.0, channel_axis=-1, full=True, **settings)
            out[i] = float(full.mean(axis=-1)[keep].mean())
    return out
