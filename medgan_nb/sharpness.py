"""Sharpness against the clean image: gradient energy and high-frequency power, as ratios (1.0 = as sharp as
the truth).

PSNR and SSIM reward a restoration for being close to the clean image on average, and an average of many
plausible textures is smooth: an L1- or L2-trained network (the posterior's median or mean per pixel) loses fine
texture and still scores well. These two ratios show what PSNR hides. Below 1 the output is smoother than the
clean frame (texture averaged away); above 1 it has more fine detail than the truth (left-over noise, ringing or
invented texture). Neither says whether the detail is the *right* detail: read them beside PSNR, which does.

- `gradient_energy(x, mask)`: the mean squared finite difference of the luminance over both axes, per image
  (within a mask, e.g. a polyp's, if given).
- `hf_power(x, cutoff)`: the power of the luminance's spectrum at radial frequencies of at least ``cutoff``
  cycles per pixel (0.5 is Nyquist; default 0.25: the upper half of the band), after a Hann window so that the
  image's borders do not leak into every frequency.
- `gradient_energy_ratio`, `hf_power_ratio`: each of a restored batch divided by the clean batch's, per image.

Inputs are batches (N, C, H, W) in the models' range [-1, 1] (C = 3: Rec. 601 luminance; C = 1: the channel),
as for `medgan_nb.metrics`; results are float64 arrays (N,).
"""

from __future__ import annotations

import numpy as np
import torch

from .utils.images import luminance

HF_CUTOFF = 0.25            # cycles per pixel: the upper half of the band up to Nyquist (0.5)


def gradient_energy(x: torch.Tensor, mask: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    """Mean of the squared horizontal and vertical differences of the luminance, per image (N,).

    mask: (H, W) or (N, H, W), true where to measure (e.g. a polyp): only differences between two pixels of
    the mask count; NaN for an image whose mask holds no such pair."""
    y = luminance(x)
    m = np.ones(y.shape, dtype=bool) if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), y.shape)
    total = np.zeros(len(y))
    for axis in (1, 2):
        pairs = np.logical_and(np.delete(m, 0, axis=axis), np.delete(m, -1, axis=axis))
        with np.errstate(invalid="ignore"):
            total += (np.diff(y, axis=axis) ** 2 * pairs).sum(axis=(1, 2)) / pairs.sum(axis=(1, 2))
    return total


def hf_power(x: torch.Tensor, cutoff: float = HF_CUTOFF) -> np.ndarray:
    """Mean power of the Hann-windowed luminance spectrum at radial frequencies >= cutoff (cycles/pixel), (N,)."""
    if not 0 < cutoff < 0.5:
        raise ValueError(f"cutoff must be between 0 and 0.5 cycles per pixel, got {cutoff}")
    y = luminance(x)
    h, w = y.shape[1:]
    window = np.outer(np.hanning(h), np.hanning(w))
    spectrum = np.abs(np.fft.rfft2((y - y.mean(axis=(1, 2), keepdims=True)) * window)) ** 2
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.rfftfreq(w), indexing="ij"))
    return spectrum[:, radius >= cutoff].mean(axis=1)


def _ratio(value: np.ndarray, reference: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(reference > 0, value / reference, np.nan)      # a flat (or NaN) reference: no ratio


def gradient_energy_ratio(pred: torch.Tensor, clean: torch.Tensor,
                          mask: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    """`gradient_energy` of each restored image over its clean image's (1.0: as sharp; NaN for a flat clean),
    within `mask` if given."""
    return _ratio(gradient_energy(pred, mask), gradient_energy(clean, mask))


def hf_power_ratio(pred: torch.Tensor, clean: torch.Tensor, cutoff: float = HF_CUTOFF) -> np.ndarray:
    """`hf_power` of each restored image over its clean image's (1.0: as much fine detail; NaN for a flat clean)."""
    return _ratio(hf_power(pred, cutoff), hf_power(clean, cutoff))
