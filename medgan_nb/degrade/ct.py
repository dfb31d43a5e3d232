"""Low-dose and sparse-view CT, simulated where the noise really arises: in the projections.

- `low_dose_ct(hu_images, dose, n_views, pixel_mm, filter_name)`: a batch (N, 1, S, S) in Hounsfield units
  -> `Degraded` in HU. Each slice is converted to attenuation (`hu_to_mu`), projected (`project`, a
  sinogram (S, n_views) over 180 degrees), given Poisson photon noise for `dose` photons per detector bin
  (`photon_noise`) and reconstructed by filtered back-projection (`fbp`). Pixels outside the inscribed
  circle come back as air, -1000 HU. The noise this gives is streaky and correlated, unlike white image
  noise, and few views give streaks even without noise.
- The steps are public for the lessons: `hu_to_mu` / `mu_to_hu`, `view_angles`, `full_views` (the angular
  Nyquist count for a full scan), `outside_circle`, `low_dose_sinogram`.

Images must be square (radon/iradon); the work runs on the CPU with per-image generators. Invalid doses,
view counts or pixel sizes raise ValueError.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from skimage.transform import iradon, radon

from .ops import Keys, _check_batch, _generators, _values
from .pipeline import Degraded

MU_WATER_PER_MM = 0.0192     # linear attenuation of water at ~70 keV (effective CT energy), per mm
AIR_HU = -1000.0
FOV_MM = 350.0               # default field of view (an adult body): pixel_mm = FOV_MM / width


# ----------------------------------------------------------------------- CT
def hu_to_mu(hu: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Hounsfield units -> linear attenuation per pixel (dimensionless), >= 0: what a ray integrates."""
    return np.clip(MU_WATER_PER_MM * (1 + np.asarray(hu, dtype=np.float64) / 1000), 0, None) * pixel_mm


def mu_to_hu(mu: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Linear attenuation per pixel -> Hounsfield units (the inverse of `hu_to_mu` for mu >= 0)."""
    return (np.asarray(mu, dtype=np.float64) / (pixel_mm * MU_WATER_PER_MM) - 1) * 1000


def view_angles(n_views: int) -> np.ndarray:
    """`n_views` projection angles in degrees, equally spaced over 180 (parallel beam needs no more)."""
    if int(n_views) < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    return np.linspace(0.0, 180.0, int(n_views), endpoint=False)


def full_views(size: int) -> int:
    """Views for a fully sampled scan of a size² image: about pi/2 per detector bin (angular Nyquist)."""
    return int(math.ceil(math.pi / 2 * size))


def outside_circle(size: int) -> np.ndarray:
    """Pixels outside the circle inscribed in a size² image, exactly as skimage's radon/iradon define it."""
    yy, xx = np.ogrid[:size, :size]
    return (yy - size // 2) ** 2 + (xx - size // 2) ** 2 > (size // 2) ** 2


def project(hu_image: np.ndarray, theta: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Line integrals of attenuation (sinogram, (size, n_views)) of a square HU image; outside the circle is air."""
    mu = hu_to_mu(hu_image, pixel_mm)
    mu[outside_circle(mu.shape[0])] = 0.0
    return radon(mu, theta=theta, circle=True)


def photon_noise(line_integrals: np.ndarray, dose: float, generator: torch.Generator | None = None) -> np.ndarray:
    """Measured line integrals ``-log(N / I0)``, ``N ~ Poisson(I0 exp(-p))`` clamped to >= 1 (a bin with no
    photon would give log 0): the quantum noise of a CT detector. ``dose=inf`` returns them unchanged."""
    if not dose > 0:
        raise ValueError(f"dose (photons per detector bin) must be > 0, got {dose}")
    if math.isinf(dose):
        return np.array(line_integrals, dtype=np.float64)
    rate = torch.from_numpy(dose * np.exp(-np.asarray(line_integrals, dtype=np.float64)))
    counts = torch.poisson(rate, generator=generator).clamp_(min=1).numpy()
    return -np.log(counts / dose)


def fbp(sinogram: np.ndarray, theta: np.ndarray, filter_name: str | None = "ramp",
        output_size: int | None = None) -> np.ndarray:
    """Filtered back-projection (skimage ``iradon``, circle=True): the classic CT reconstruction.

    The ramp filter is exact for noiseless data; "hann" (or "hamming", "shepp-logan", "cosine")
    rolls it off at high frequencies, trading resolution for less noise. Returns attenuation per
    pixel (convert with `mu_to_hu`); zero outside the inscribed circle.
    """
    return iradon(np.asarray(sinogram, dtype=np.float64), theta=theta, output_size=output_size,
                  filter_name=filter_name, circle=True)


def low_dose_sinogram(hu_image: np.ndarray, dose: float, theta: np.ndarray, pixel_mm: float,
                      generator: torch.Generator | None = None) -> np.ndarray:
    """The noisy measured sinogram of one square HU image: `project` then `photon_noise`."""
    return photon_noise(project(hu_image, theta, pixel_mm), dose, generator)


def low_dose_ct(hu_images: torch.Tensor, dose: float | Sequence[float] | torch.Tensor,
                n_views: int | Sequence[int] | None = None, pixel_mm: float | None = None,
                filter_name: str | None = "ramp", generator: torch.Generator | None = None,
                keys: Keys = None, seed: int = 0) -> Degraded:
    """Low-dose and/or sparse-view CT of a batch (N, 1, S, S) in HU -> `Degraded` in HU.

    dose: photons per detector bin and view (per image or one for all); ``inf`` = no noise (only
    the view sampling and FBP). n_views: per image or one; None = `full_views` (a full scan).
    pixel_mm: pixel size; None = FOV_MM / S. filter_name: FBP filter. Pixels outside the inscribed
    circle are air: -1000 HU in the output. Params: ct_dose, ct_n_views, ct_pixel_mm (N,).
    """
    _check_batch(hu_images, square=True)
    n, size = hu_images.shape[0], hu_images.shape[-1]
    doses = _values(dose, n, "dose", strict=True)
    views = _values(full_views(size) if n_views is None else n_views, n, "n_views", low=1)
    if bool((views != views.round()).any()):
        raise ValueError(f"n_views must be whole numbers, got {views.tolist()}")
    pixel = FOV_MM / size if pixel_mm is None else float(pixel_mm)
    if not pixel > 0:
        raise ValueError(f"pixel_mm must be > 0, got {pixel_mm}")
    gens = _generators(n, generator, keys, seed)
    hu = hu_images.detach().cpu().double().numpy()[:, 0]
    out = np.empty_like(hu)
    for i in range(n):
        theta = view_angles(int(views[i]))
        sino = low_dose_sinogram(hu[i], float(doses[i]), theta, pixel, gens[i])
        out[i] = mu_to_hu(fbp(sino, theta, filter_name, output_size=size), pixel)
        out[i][outside_circle(size)] = AIR_HU
    image = torch.from_numpy(out)[:, None].to(hu_images.device, hu_images.dtype)
    return Degraded(image, {"ct_dose": doses, "ct_n_views": views,
                            "ct_pixel_mm": torch.full((n,), pixel, dtype=torch.float64)})
