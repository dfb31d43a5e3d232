"""Classical restoration baselines: what the GAN has to beat.

Each baseline is a plain function ``fn(img, noise_std) -> restored`` on one
image: ``img`` is (H, W, 3) float in [0, 1], the result has the same shape and
range. ``noise_std`` is the standard deviation of the Gaussian noise in the
image (in [0, 1] units) when the caller knows it, else None; NLM and CBM3D use it.

The settings are fixed, typical values from scikit-image and SciPy, not tuned
per image or per data set. A GAN that cannot beat them has learnt little; one
that beats them only on some degradations should say so (`medgan_nb.evaluation`
does). `BASELINES` lists them by name, in the order reports show them.

CBM3D (colour BM3D, PyPI ``bm3d``) is the strongest of them and by far the
slowest (seconds per image, where the others take milliseconds). It is an optional extra
(``pip install medgan_nb[bm3d]``) because its licence allows non-commercial
use only; `missing_reason` says why a baseline cannot run here, and
`FAST_BASELINES` are the ones that always can, in milliseconds.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Callable

import numpy as np
from scipy import ndimage
from skimage.filters import gaussian as _gaussian_filter
from skimage.restoration import denoise_bilateral, denoise_nl_means, denoise_tv_chambolle

from ..models.guard import noise_level
from ..utils.images import from_numpy_images

Baseline = Callable[[np.ndarray, "float | None"], np.ndarray]


def _finish(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and return in the input's dtype (some filters return float64)."""
    return np.clip(out, 0, 1).astype(like.dtype, copy=False)


def identity(img: np.ndarray, noise_std: float | None = None) -> np.ndarray:
    """The degraded input unchanged: the score to beat at all. A method below it makes images worse."""
    return img.copy()


def median(img: np.ndarray, noise_std: float | None = None) -> np.ndarray:
    """3×3 median per channel. Removes salt-and-pepper almost completely; weak on Gaussian noise, useless on blur."""
    return _finish(ndimage.median_filter(img, size=(3, 3, 1), mode="reflect"), img)


def gaussian(img: np.ndarray, noise_std: float | None = None) -> np.ndarray:
    """Gaussian smoothing, sigma 1 pixel. Averages noise away but blurs edges too; makes blur worse."""
    return _finish(_gaussian_filter(img, sigma=1, channel_axis=-1, preserve_range=True), img)


def estimate_noise_std(img: np.ndarray) -> float:
    """Estimated Gaussian noise std of an image (H, W, C) in [0, 1]: the guard's robust estimate
    (`medgan_nb.models.guard.noise_level`, a median of second differences, near 0 on smooth content)."""
    return float(noise_level(from_numpy_images(img)[None])[0])


def nlm(img: np.ndarray, noise_std: float | None = None) -> np.ndarray:
    """Non-local means (fast mode, 5×5 patches, search distance 6, h = 0.8 sigma): strong on Gaussian noise.

    sigma is `noise_std` when given. The evaluation passes the noise level that
    the degradation drew for this very image: an oracle the GAN does not get,
    so NLM's scores there are a little optimistic. Without it, sigma is
    estimated from the image (`estimate_noise_std`). Salt-and-pepper specks
    survive (no similar patches to average with); blur is not undone.
    """
    sigma = estimate_noise_std(img) if noise_std is None else float(noise_std)
    out = denoise_nl_means(img, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5,
                           patch_distance=6, channel_axis=-1)
    return _finish(out, img)


def tv(img: np.ndarray, noise_std: float | None = None) -> np.ndarray:
    """Total-variation denoising (Chambolle, weight 0.08): flattens noise and keeps strong edges.

    Good on Gaussian noise in smooth regions; turns fine texture cartoon-like; no deblurring.
    """
    return _finish(denoise_tv_chambolle(img, weight=0.08, channel_axis=-1), img)


def bilateral(img: np.ndarray, noise_std: float | None = None) -> np.ndarray:
    """Bilateral filter (sigma_color 0.1, sigma_spatial 1.5): smooths within regions, not across edges.

    Good on mild Gaussian noise; salt-and-pepper specks differ too much from
    their neighbours to be averaged away; no deblurring.
    """
    return _finish(denoise_bilateral(img, sigma_color=0.1, sigma_spatial=1.5, channel_axis=-1), img)


BM3D_MISSING = "CBM3D skipped: pip install bm3d (non-commercial licence)"


def _bm3d() -> ModuleType | None:
    """The optional ``bm3d`` package, or None when it is not installed (imported on use: it is optional)."""
    try:
        return importlib.import_module("bm3d")
    except ImportError:
        return None


def cbm3d(img: np.ndarray, noise_std: float | None = None) -> np.ndarray:
    """Colour BM3D (Dabov et al. 2007; ``bm3d.bm3d_rgb``, opponent colour space): the strongest classical denoiser.

    It needs the noise std: the evaluation passes the one drawn for this very image (an oracle,
    as for NLM); without it, sigma is estimated from the image (`estimate_noise_std`), which
    underestimates noise that was blurred afterwards. Salt-and-pepper survives; blur is not undone.
    Much of its cost is fixed per call, so small crops are not proportionally cheaper.
    Raises ImportError naming the extra when ``bm3d`` is not installed.
    """
    module = _bm3d()
    if module is None:
        raise ImportError(BM3D_MISSING)
    sigma = estimate_noise_std(img) if noise_std is None else float(noise_std)
    return _finish(module.bm3d_rgb(img, sigma_psd=sigma), img)


def median_cbm3d(img: np.ndarray, noise_std: float | None = None) -> np.ndarray:
    """3×3 median, then CBM3D with the image's noise std: the best classic for salt-and-pepper + noise.

    The median removes the specks that BM3D cannot (they are not Gaussian); it also lowers the Gaussian
    noise a little, but a reduced std does no better than the true one, so the true std it is.
    """
    return cbm3d(median(img), noise_std)


BASELINES: dict[str, Baseline] = {
    "identity": identity,
    "median": median,
    "gaussian": gaussian,
    "nlm": nlm,
    "tv": tv,
    "bilateral": bilateral,
    "cbm3d": cbm3d,
    "median_cbm3d": median_cbm3d,
}
FAST_BASELINES: tuple[str, ...] = ("identity", "median", "gaussian", "nlm", "tv", "bilateral")  # ms per image
NEEDS_BM3D = ("cbm3d", "median_cbm3d")


def missing_reason(name: str) -> str | None:
    """Why baseline `name` cannot run in this environment (its optional package is missing), or None if it can."""
    return BM3D_MISSING if name in NEEDS_BM3D and _bm3d() is None else None
