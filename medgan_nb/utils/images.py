"""Value ranges of images, and the display windows of scans.

Images are floats in [0, 1] on disk and for the classical filters, and in [-1, 1] for the models:

- `to_unit` ([-1, 1] -> [0, 1], not clamped) and `from_unit` ([0, 1] -> [-1, 1], clamped) on tensors;
- `to_numpy_images`: a tensor (N, C, H, W) or (C, H, W) in [-1, 1] -> float32 numpy (N, H, W, C) or
  (H, W, C) in [0, 1] on the CPU; `from_numpy_images` is its inverse;
- `luminance`: a batch (N, C, H, W) in [-1, 1] -> float64 (N, H, W) in [0, 1], Rec. 601 luma for RGB.

Windows map a scan's physical values onto [0, 1], float32: `window(values, center, width)` is the DICOM
linear window (PS3.3 C.11.2.1.2.1; ValueError for a width below 1), and `WINDOWS` names the standard CT
windows in Hounsfield units. `percentile_window` stretches between two percentiles, for MR and X-ray,
whose values have no fixed scale.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin  # noqa: F401 (registers PIL_FORMATS)


# ------------------------------------------------------------------- ranges
# Images are floats in [0, 1] on disk and for the classical filters, in [-1, 1] for the models.
def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (no clamp: callers that may hold values outside the range clamp themselves)."""
    return (x + 1) / 2


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], clamped."""
    return x.clamp(0, 1) * 2 - 1


def to_numpy_images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) or (C, H, W) tensor in [-1, 1] -> float32 numpy (N, H, W, C) or (H, W, C) in [0, 1]."""
    x = to_unit(x.detach().float().cpu().clamp(-1, 1))
    return x.movedim(-3, -1).contiguous().numpy()


def from_numpy_images(a: np.ndarray) -> torch.Tensor:
    """Float numpy (N, H, W, C) or (H, W, C) in [0, 1] -> float32 tensor (N, C, H, W) or (C, H, W) in [-1, 1]."""
    return from_unit(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).movedim(-1, -3)).contiguous()

def luminance(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W) float64 in [0, 1]: Rec. 601 luma (C = 3) or the one channel (C = 1).
    Not clamped. ValueError for any other shape."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected a batch (N, 1 or 3, H, W), got shape {tuple(x.shape)}")
    u = to_unit(x.detach().cpu().double()).numpy()
    return u[:, 0] if u.shape[1] == 1 else np.tensordot(LUMA_601, u, axes=([0], [1]))


LUMA_601 = (0.299, 0.587, 0.114)
# Standard CT display windows (center, width) in Hounsfield units.
WINDOWS: dict[str, tuple[float, float]] = {
    "soft_tissue": (40, 400),
    "lung": (-600, 1500),
    "bone": (400, 1800),
}


# ----------------------------------------------------------------- windows
def window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The DICOM linear window (PS3.3 C.11.2.1.2.1) onto [0, 1], float32: below the window 0, above 1."""
    if width < 1:
        raise ValueError(f"window width must be >= 1, got {width}")
    x = np.asarray(values, dtype=np.float64)
    if width == 1:                          # the standard's threshold case (its formula would divide by 0)
        return (x > center - 0.5).astype(np.float32)
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0, 1).astype(np.float32)


def percentile_window(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """[0, 1] between the `low` and `high` percentiles of `values` (all slices together, so they match);
    for MR and X-ray, whose values have no fixed scale. A constant image gives zeros."""
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    x = np.asarray(values, dtype=np.float64)
    lo, hi = np.percentile(x, [low, high])
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.float32)
    return np.clip((x - lo) / (hi - lo), 0, 1).astype(np.float32)
