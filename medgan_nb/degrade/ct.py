"""Low-dose and sparse-view CT, simulated where the noise really arises: in the projections.

- `low_dose_ct(hu_images, dose, n_views, pixel_mm, filter_name)`: a batch (N, 1, S, S) in Hounsfield units
  -> `Degraded` in HU. Each slice is converted to attenuation (`hu_to_mu`), projected (`project`, a
  sinogram (S, n_views) over 180 degrees), given Poisson photon noise for `dose` photons per detector bin
  plus Gaussian electronic (read-out) noise of `electronic_noise` quanta per bin (`photon_noise`) and
  reconstructed by filtered back-projection (`fbp`). Pixels outside the inscribed circle come back as air,
  -1000 HU. The noise this gives is streaky and correlated, unlike white image noise, and few views give
  streaks even without noise. Where few photons get through (thick or dense anatomy, very low dose) the
  electronic noise dominates: the noise then grows faster than 1/sqrt(dose).
- Dose in HU. Photons per bin mean different noise on different grids (pixel size, views, filter), so a dose
  is stated by `water_cylinder_noise`: the HU noise std in the centre of a 20-cm water cylinder simulated on
  the same grid (pixel size, views, filter, electronic noise) for that dose. The same HU number then means
  the same noise on every slice.
- The steps are public for the lessons: `hu_to_mu` / `mu_to_hu`, `view_angles`, `full_views` (the angular
  Nyquist count for a full scan), `outside_circle`, `low_dose_sinogram`.

Simulation and reconstruction share one grid: the slice's own pixels are projected (radon) and
reconstructed (iradon) on the same S x S grid with the same detector bins, the "inverse crime". A real scan
projects a continuous patient, so this simulation's noiseless FBP is closer to its input than a scanner's
would be (its residual error is FBP's discretisation, not a model mismatch); the noise itself is not affected.

Images must be square (radon/iradon); the work runs on the CPU with per-image generators. Invalid doses,
view counts, pixel sizes or electronic noise raise ValueError.
"""

from __future__ import annotations

import functools
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
ELECTRONIC_NOISE = 5.0       # read-out noise of a detector bin, std in detected quanta per view
WATER_CYLINDER_MM = 200.0    # the dose reference: a water cylinder of this diameter ...
CYLINDER_ROI_MM = 40.0       # ... whose noise is measured in a central disk of this diameter


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


def photon_noise(line_integrals: np.ndarray, dose: float, generator: torch.Generator | None = None,
                 electronic_noise: float = ELECTRONIC_NOISE) -> np.ndarray:
    """Measured line integrals ``-log(N / I0)``, ``N = Poisson(I0 exp(-p)) + electronic_noise * Normal(0, 1)``
    clamped to >= 1 (a bin with no signal would give log 0): the quantum noise of a CT detector plus its
    read-out noise (std in quanta, per bin and view). ``dose=inf`` returns them unchanged."""
    if not dose > 0:
        raise ValueError(f"dose (photons per detector bin) must be > 0, got {dose}")
    if not electronic_noise >= 0:
        raise ValueError(f"electronic_noise (quanta per detector bin) must be >= 0, got {electronic_noise}")
    if math.isinf(dose):
        return np.array(line_integrals, dtype=np.float64)
    rate = torch.from_numpy(dose * np.exp(-np.asarray(line_integrals, dtype=np.float64)))
    counts = torch.poisson(rate, generator=generator)
    if electronic_noise > 0:
        counts = counts + electronic_noise * torch.randn(counts.shape, generator=generator, dtype=counts.dtype)
    return -np.log(counts.clamp_(min=1).numpy() / dose)


def fbp(sinogram: np.ndarray, theta: np.ndarray, filter_name: str | None = "ramp",
        output_size: int | None = None) -> np.ndarray:
    """Filtered back-projection (skimage ``iradon``, circle=True): the classic CT reconstruction.

    With the ramp filter it inverts the continuous Radon transform exactly; from a sampled sinogram on a pixel
    grid it is close, not exact (discretisation and interpolation error, largest at edges). "hann" (or "hamming",
    "shepp-logan", "cosine")
    rolls it off at high frequencies, trading resolution for less noise. Returns attenuation per
    pixel (convert with `mu_to_hu`); zero outside the inscribed circle.
    """
    return iradon(np.asarray(sinogram, dtype=np.float64), theta=theta, output_size=output_size,
                  filter_name=filter_name, circle=True)


def low_dose_sinogram(hu_image: np.ndarray, dose: float, theta: np.ndarray, pixel_mm: float,
                      generator: torch.Generator | None = None,
                      electronic_noise: float = ELECTRONIC_NOISE) -> np.ndarray:
    """The noisy measured sinogram of one square HU image: `project` then `photon_noise`."""
    return photon_noise(project(hu_image, theta, pixel_mm), dose, generator, electronic_noise)


def low_dose_ct(hu_images: torch.Tensor, dose: float | Sequence[float] | torch.Tensor,
                n_views: int | Sequence[int] | None = None, pixel_mm: float | None = None,
                filter_name: str | None = "ramp", generator: torch.Generator | None = None,
                keys: Keys = None, seed: int = 0, electronic_noise: float = ELECTRONIC_NOISE) -> Degraded:
    """Low-dose and/or sparse-view CT of a batch (N, 1, S, S) in HU -> `Degraded` in HU.

    dose: photons per detector bin and view (per image or one for all); ``inf`` = no noise (only
    the view sampling and FBP). n_views: per image or one; None = `full_views` (a full scan).
    pixel_mm: pixel size; None = FOV_MM / S. filter_name: FBP filter. electronic_noise: read-out noise,
    quanta per bin and view. Pixels outside the inscribed circle are air: -1000 HU in the output. Params:
    ct_dose, ct_n_views, ct_pixel_mm (N,). `water_cylinder_noise` says what a dose means in HU.
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
        sino = low_dose_sinogram(hu[i], float(doses[i]), theta, pixel, gens[i], electronic_noise)
        out[i] = mu_to_hu(fbp(sino, theta, filter_name, output_size=size), pixel)
        out[i][outside_circle(size)] = AIR_HU
    image = torch.from_numpy(out)[:, None].to(hu_images.device, hu_images.dtype)
    return Degraded(image, {"ct_dose": doses, "ct_n_views": views,
                            "ct_pixel_mm": torch.full((n,), pixel, dtype=torch.float64)})


def water_cylinder_noise(dose: float, size: int, pixel_mm: float | None = None, n_views: int | None = None,
                         filter_name: str | None = "ramp", electronic_noise: float = ELECTRONIC_NOISE,
                         realisations: int = 1, seed: int = 0) -> float:
    """The HU noise std that `dose` gives in the centre of a 20-cm water cylinder on a slice's grid: the dose
    stated in HU, comparable between slices.

    The grid is the slice's: `pixel_mm` (None = FOV_MM / size) and `n_views` (None = `full_views(size)`, as
    `low_dose_ct` uses), the same filter and electronic noise. The cylinder (WATER_CYLINDER_MM across, in air)
    is simulated on the smallest square grid of that pixel size that holds it, whatever the slice's size, so
    a small field of view gives the same number. The std is of (noisy - noiseless) reconstruction over a
    central disk CYLINDER_ROI_MM across, pooled over `realisations` seeded realisations.
    """
    pixel = FOV_MM / size if pixel_mm is None else float(pixel_mm)
    if not pixel > 0:
        raise ValueError(f"pixel_mm must be > 0, got {pixel_mm}")
    views = full_views(size) if n_views is None else int(n_views)
    if int(realisations) < 1:
        raise ValueError(f"realisations must be >= 1, got {realisations}")
    phantom, clean, roi = _water_cylinder(pixel, views, filter_name)
    noisy = low_dose_ct(phantom.repeat(realisations, 1, 1, 1), dose, views, pixel, filter_name,
                        keys=[f"water cylinder {i}" for i in range(realisations)], seed=seed,
                        electronic_noise=electronic_noise).image[:, 0].numpy()
    return float((noisy - clean)[:, roi].std())


@functools.lru_cache(maxsize=8)
def _water_cylinder(pixel_mm: float, n_views: int, filter_name: str | None
                    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The water cylinder in air on its grid (1, 1, S, S) HU, its noiseless reconstruction (S, S) and the central
    ROI (S, S) bool; cached, as every dose of a grid shares them (callers must not modify them)."""
    side = 2 * math.ceil(0.55 * WATER_CYLINDER_MM / pixel_mm) + 2          # the cylinder plus a margin of air
    yy, xx = np.ogrid[:side, :side]
    r = np.hypot(yy - side // 2, xx - side // 2) * pixel_mm
    phantom = torch.from_numpy(np.where(r < WATER_CYLINDER_MM / 2, 0.0, AIR_HU))[None, None]
    clean = low_dose_ct(phantom, math.inf, n_views, pixel_mm, filter_name).image[0, 0].numpy()
    return phantom, clean, r < CYLINDER_ROI_MM / 2
