"""A no-reference naturalness score in the manner of NIQE, fitted on this project's own clean frames.

Mittal, Soundararajan & Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE Signal Processing
Letters 20(3), 2013. Natural images, divided by their local contrast, have statistics that blur, noise and
invented texture all change. NIQE fits a multivariate Gaussian (MVG) to those statistics on sharp patches of
pristine images, fits another to the patches of an image under test, and reports the distance between the two:
**lower is more natural; the clean frames themselves score lowest.** It needs no clean reference at test time,
so it can judge what PSNR cannot: whether a restoration *looks* like a real frame.

The published NIQE model is fitted on outdoor photographs and ships as a MATLAB file that the Python packages
download. This one is fitted on clean colonoscopy frames (`fit_naturalness`), saved as JSON (`save`, no
pickle) and shipped in ``medgan_nb/weights/naturalness/`` (`load_naturalness`). Its scores are on their own scale,
not NIQE's: compare them between methods on the same images, never with published NIQE values.

Features (18 per scale, at full and half resolution: 36 per patch), on the luminance of each patch:

- MSCN coefficients ``(I - mu) / (sigma + 1/255)`` with a Gaussian window (sigma 7/6 pixels), and the
  products of neighbouring coefficients in four directions;
- the generalised Gaussian fit (shape, variance) of the coefficients, and the asymmetric generalised Gaussian
  fit (shape, mean, left and right variance) of each product, by moment matching (as in BRISQUE).

Patches are ``patch`` × ``patch`` pixels (32: a 256² frame gives 64). Fitting keeps the sharpest patches of each
clean frame (local contrast at least 0.75 of the frame's sharpest patch, as NIQE does); scoring uses every patch
that is not flat (mean local contrast under 1/255: the black border of an endoscope frame carries no statistics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from scipy.special import gamma

from .utils.files import atomic_write
from .utils.images import luminance

PATCH = 32
SHARP_SHARE = 0.75                 # fitting: patches with at least this share of the frame's sharpest patch contrast
FLAT = 1 / 255                     # scoring: patches with less mean local contrast are left out
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))     # neighbour products: horizontal, vertical, two diagonals
SHIPPED = Path(__file__).resolve().parent / "weights" / "naturalness" / "kvasir-seg.json"

# Moment ratios of the generalised Gaussian as a function of its shape, for fitting by interpolation.
_SHAPES = np.arange(0.2, 10.0, 0.001)
_GGD_RATIO = gamma(1 / _SHAPES) * gamma(3 / _SHAPES) / gamma(2 / _SHAPES) ** 2    # E[x²] / E[|x|]², decreasing


def mscn(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients of a [0, 1] image (H, W), and its local contrast sigma."""
    mu = gaussian_filter(gray, 7 / 6, truncate=3.0)
    sigma = np.sqrt(np.abs(gaussian_filter(gray * gray, 7 / 6, truncate=3.0) - mu * mu))
    return (gray - mu) / (sigma + FLAT), sigma


def _shape(ratio: np.ndarray) -> np.ndarray:
    """The generalised Gaussian shape whose E[x²] / E[|x|]² is `ratio` (clipped to the table's range)."""
    return np.interp(ratio, _GGD_RATIO[::-1], _SHAPES[::-1])


def _ggd(x: np.ndarray) -> np.ndarray:
    """Generalised Gaussian fit of each row of x (P, n): (P, 2) shape and variance."""
    var = (x * x).mean(axis=1)
    mean_abs = np.abs(x).mean(axis=1)
    return np.stack([_shape(var / np.maximum(mean_abs * mean_abs, 1e-12)), var], axis=1)


def _aggd(x: np.ndarray) -> np.ndarray:
    """Asymmetric generalised Gaussian fit of each row of x (P, n): (P, 4) shape, mean, left and right variance."""
    neg, pos = x < 0, x > 0
    left = (x * x * neg).sum(axis=1) / np.maximum(neg.sum(axis=1), 1)
    right = (x * x * pos).sum(axis=1) / np.maximum(pos.sum(axis=1), 1)
    g = np.sqrt(left) / np.maximum(np.sqrt(right), 1e-12)
    r = np.abs(x).mean(axis=1) ** 2 / np.maximum((x * x).mean(axis=1), 1e-12)
    ratio = r * (g ** 3 + 1) * (g + 1) / (g * g + 1) ** 2            # estimates E[|x|]² / E[x²] of the fit
    a = _shape(1 / np.maximum(ratio, 1e-12))
    mean = (np.sqrt(right) - np.sqrt(left)) * gamma(2 / a) / np.sqrt(gamma(1 / a) * gamma(3 / a))
    return np.stack([a, mean, left, right], axis=1)


def _patches(a: np.ndarray, p: int) -> np.ndarray:
    """(H, W) -> (P, p*p): the non-overlapping p × p tiles, row by row (the remainder is dropped)."""
    rows, cols = a.shape[0] // p, a.shape[1] // p
    return a[:rows * p, :cols * p].reshape(rows, p, cols, p).swapaxes(1, 2).reshape(rows * cols, p * p)


def _scale_features(gray: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, 18) features and (P,) mean local contrast of the p × p patches of one image at one scale."""
    coef, sigma = mscn(gray)
    feats = [_ggd(_patches(coef, p))]
    for dy, dx in SHIFTS:
        product = coef * np.roll(coef, (-dy, -dx), axis=(0, 1))      # the last row/column wraps: a small bias
        feats.append(_aggd(_patches(product, p)))                     # that clean and restored images share
    return np.concatenate(feats, axis=1), _patches(sigma, p).mean(axis=1)


def image_features(gray: np.ndarray, patch: int = PATCH) -> tuple[np.ndarray, np.ndarray]:
    """(P, 36) features of the patch × patch tiles of a [0, 1] image (H, W), at full and half resolution, and
    (P,) each tile's mean local contrast at full resolution. ValueError if the image holds no whole tile."""
    if patch % 2 or min(gray.shape) < patch:
        raise ValueError(f"patch must be even and fit the image: patch {patch}, image {gray.shape}")
    full, sharpness = _scale_features(gray, patch)
    h, w = (gray.shape[0] // 2) * 2, (gray.shape[1] // 2) * 2
    half = gray[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return np.concatenate([full, _scale_features(half, patch // 2)[0]], axis=1), sharpness


def _as_gray(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """A batch (N, C, H, W) in [-1, 1] (tensor) or grey images (N, H, W) in [0, 1] (array) -> (N, H, W)."""
    return luminance(images) if isinstance(images, torch.Tensor) else np.asarray(images, dtype=np.float64)


@dataclass
class NaturalnessModel:
    """The multivariate Gaussian of pristine patch features: mean (36,), covariance (36, 36), and how it was made."""
    mean: np.ndarray
    cov: np.ndarray
    patch: int = PATCH
    n_images: int = 0
    n_patches: int = 0
    fitted_on: str = ""

    def score(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """NIQE-style distance of each image from the pristine model, (N,) float64: lower is more natural.

        images: a batch (N, C, H, W) in [-1, 1] or grey images (N, H, W) in [0, 1], at the scale the model was
        fitted at. NaN for an image with fewer than two non-flat patches (no covariance to fit)."""
        out = np.full(len(images), np.nan)
        for i, gray in enumerate(_as_gray(images)):
            feats, sharpness = image_features(gray, self.patch)
            feats = feats[sharpness >= FLAT]
            if len(feats) >= 2:
                d = feats.mean(axis=0) - self.mean
                pooled = (self.cov + np.cov(feats, rowvar=False)) / 2
                out[i] = float(np.sqrt(max(d @ np.linalg.pinv(pooled) @ d, 0.0)))
        return out

    def to_dict(self) -> dict:
        return {"kind": "niqe-style MVG", "patch": self.patch, "n_images": self.n_images,
                "n_patches": self.n_patches, "fitted_on": self.fitted_on,
                "mean": self.mean.tolist(), "cov": self.cov.tolist()}

    def save(self, path: str | Path) -> Path:
        """Write as JSON (atomically; full float precision)."""
        with atomic_write(path) as f:
            f.write((json.dumps(self.to_dict(), indent=1) + "\n").encode())
        return Path(path)


def fit_naturalness(images: torch.Tensor | np.ndarray, patch: int = PATCH, fitted_on: str = "") -> NaturalnessModel:
    """Fit the pristine model on clean images (a batch, as for `NaturalnessModel.score`): the features of each
    image's sharpest patches (`SHARP_SHARE`). ValueError if fewer patches than twice the features are found."""
    kept = []
    for gray in _as_gray(images):
        feats, sharpness = image_features(gray, patch)
        if sharpness.max() > 0:
            kept.append(feats[sharpness >= SHARP_SHARE * sharpness.max()])
    feats = np.concatenate(kept) if kept else np.empty((0, 36))
    if len(feats) < 2 * feats.shape[1]:
        raise ValueError(f"only {len(feats)} sharp patches in {len(images)} images; fit on more (or larger) images")
    return NaturalnessModel(feats.mean(axis=0), np.cov(feats, rowvar=False), patch, len(kept), len(feats), fitted_on)


def load_naturalness(path: str | Path | None = None) -> NaturalnessModel:
    """Read a model written by `NaturalnessModel.save` (default: the shipped one, fitted on the clean frames of
    Kvasir-SEG's training split). Plain JSON: loading it runs no code. ValueError for a file that is not one."""
    path = Path(path) if path is not None else SHIPPED
    data = json.loads(path.read_text())
    if data.get("kind") != "niqe-style MVG":
        raise ValueError(f"{path} is not a naturalness model (no \"kind\": \"niqe-style MVG\")")
    mean, cov = np.asarray(data["mean"], dtype=np.float64), np.asarray(data["cov"], dtype=np.float64)
    if mean.shape != (36,) or cov.shape != (36, 36):
        raise ValueError(f"{path}: mean {mean.shape} / cov {cov.shape}, expected (36,) / (36, 36)")
    return NaturalnessModel(mean, cov, int(data["patch"]), int(data["n_images"]), int(data["n_patches"]),
                            str(data["fitted_on"]))
