"""The CT lesson's figures: from the slice to the measurement and back, and what low dose does.

Every function takes a `medgan_nb.data.scans.Slice` of a CT scan and works in Hounsfield units:

- `ct_hu(s)`: the stored slice in HU, float64 (S, S).
- `ct_noise(s, dose, seed)`, `ct_noise_std(...)`: a low-dose reconstruction and its noise alone (FBP of
  Poisson-noisy projections minus FBP of clean ones), and that noise's std inside the scanned circle.
- `ct_chain_figure`, `ct_noise_vs_image_noise_figure`, `ct_dose_curve`, `ct_sparse_views_figure`: the
  sinogram and its reconstructions, projection noise against white image noise of the same std (with
  `noise_spectrum`, a radially averaged power spectrum), noise std against dose beside the 1/sqrt(dose)
  law, and the streaks of few views. Each returns a matplotlib figure.

Seeded: the same arguments give the same figure.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data.scans import Slice, from_model
from ..degrade.ct import (
    AIR_HU,
    FOV_MM,
    fbp,
    full_views,
    low_dose_ct,
    mu_to_hu,
    outside_circle,
    photon_noise,
    project,
    view_angles,
)
from ..utils.images import window
from .scans import SOFT, _gen, _gray


# ----------------------------------------------------------------------- CT
def ct_hu(s: Slice) -> np.ndarray:
    """The stored CT slice (what the scanner measures through) in HU, float64 (S, S)."""
    return from_model(s.image if s.source is None else s.source, "ct", s.lo, s.hi).astype(np.float64)


def _ct_geometry(s: Slice, n_views: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(HU image, view angles, pixel size in mm) of a CT slice; a full scan unless `n_views` says otherwise."""
    hu = ct_hu(s)
    size = hu.shape[0]
    theta = view_angles(full_views(size) if n_views is None else n_views)
    return hu, theta, s.pixel_mm or FOV_MM / size


def _recon_hu(sinogram: np.ndarray, theta: np.ndarray, pixel: float, size: int, filter_name: str) -> np.ndarray:
    """FBP of a sinogram in HU, air outside the scanned circle (as `low_dose_ct` returns it)."""
    out = mu_to_hu(fbp(sinogram, theta, filter_name, output_size=size), pixel)
    out[outside_circle(size)] = AIR_HU
    return out


def _inside_std(noise: np.ndarray) -> float:
    """Standard deviation of a noise image inside the scanned circle."""
    return float(np.std(noise[~outside_circle(noise.shape[0])]))


def ct_noise(s: Slice, dose: float, seed: int = 0, filter_name: str = "ramp") -> tuple[np.ndarray, np.ndarray]:
    """(low-dose reconstruction, its noise alone) in HU: FBP of Poisson-noisy projections minus FBP of clean ones."""
    hu, theta, pixel = _ct_geometry(s)
    p = project(hu, theta, pixel)
    clean = _recon_hu(p, theta, pixel, hu.shape[0], filter_name)
    noisy = _recon_hu(photon_noise(p, dose, _gen(seed)), theta, pixel, hu.shape[0], filter_name)
    return noisy, noisy - clean


def ct_noise_std(s: Slice, dose: float, seed: int = 0, filter_name: str = "ramp") -> float:
    """Noise std in HU inside the scanned circle of a low-dose reconstruction (`ct_noise`)."""
    return _inside_std(ct_noise(s, dose, seed, filter_name)[1])


def ct_chain_figure(s: Slice, dose: float, seed: int = 0) -> plt.Figure:
    """CT: the measurement on top (sinogram, noisy sinogram, photon noise), image below (slice, FBP ramp, Hann)."""
    hu, theta, pixel = _ct_geometry(s)
    size = hu.shape[0]
    p = project(hu, theta, pixel)
    noisy = photon_noise(p, dose, _gen(seed))
    fig, axes = plt.subplots(2, 3, figsize=(10.5, 7.2))
    extent = (0, 180, size, 0)
    for ax, sino, title in ((axes[0, 0], p, "sinogram: line integrals of attenuation"),
                            (axes[0, 1], noisy, f"measured at dose {dose:g}: -log(N / I0)")):
        ax.imshow(sino, cmap="gray", aspect="auto", extent=extent, vmin=0, vmax=float(p.max()))
        ax.set_title(title, fontsize=8), ax.set_xlabel("view angle (degrees)", fontsize=8)
        ax.set_ylabel("detector bin", fontsize=8)
    diff = noisy - p
    lim = float(np.percentile(np.abs(diff), 99))
    axes[0, 2].imshow(diff, cmap="RdBu_r", aspect="auto", extent=extent, vmin=-lim, vmax=lim)
    axes[0, 2].set_title("photon noise (measured - sinogram):\nlargest where fewest photons pass", fontsize=8)
    axes[0, 2].set_xlabel("view angle (degrees)", fontsize=8)
    _gray(axes[1, 0], window(hu, *SOFT), f"stored slice, soft-tissue window\n{size}², {pixel:.2f} mm pixels")
    for ax, name in zip(axes[1, 1:], ("ramp", "hann")):
        clean = _recon_hu(p, theta, pixel, size, name)
        recon = _recon_hu(noisy, theta, pixel, size, name)
        _gray(ax, window(recon, *SOFT), f"FBP, {name} filter: noise {_inside_std(recon - clean):.0f} HU")
    fig.suptitle(f"{s.key}: {len(theta)} views, dose {dose:g} photons per detector bin and view", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def noise_spectrum(noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a noise image (mean removed, DC left out): (frequency in cycles per
    pixel, up to 0.5; mean power per frequency, normalised so that white noise of variance v gives about v)."""
    noise = np.asarray(noise, dtype=np.float64)
    power = np.abs(np.fft.fftshift(np.fft.fft2(noise - noise.mean()))) ** 2 / noise.size
    h, w = noise.shape
    fy, fx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij")
    radius = np.hypot(fy, fx)
    n = min(h, w)
    step = max(1, n // 50)                                     # about 25 bands
    band = np.rint(radius * n / step).astype(int).ravel()
    keep = (radius.ravel() > 0) & (band <= (n // 2) // step)
    total = np.bincount(band[keep], power.ravel()[keep])
    count = np.bincount(band[keep])
    used = count > 0
    return (np.arange(len(count)) * step / n)[used], total[used] / count[used]


def ct_noise_vs_image_noise_figure(s: Slice, dose: float, seed: int = 0) -> plt.Figure:
    """Projection-domain Poisson noise after FBP vs white image noise of the same std: images, noise, spectra."""
    recon, noise = ct_noise(s, dose, seed)
    inside = ~outside_circle(noise.shape[0])
    std = _inside_std(noise)
    white = std * torch.randn(noise.shape, generator=_gen(seed + 1), dtype=torch.float64).numpy() * inside
    clean = recon - noise
    fig = plt.figure(figsize=(13, 7.4))
    grid = fig.add_gridspec(2, 4, width_ratios=(1, 1, 1, 1.25))
    lim = 3 * std
    spectra = {}
    for row, (label, n) in enumerate((("projection noise (Poisson, then FBP)", noise),
                                      ("image noise (white Gaussian)", white))):
        image = np.where(inside, clean + n, AIR_HU)
        _gray(fig.add_subplot(grid[row, 0]), window(image, *SOFT), f"{label}\nsoft-tissue window")
        _gray(fig.add_subplot(grid[row, 1]), n, f"the noise alone, std {_inside_std(n):.0f} HU", -lim, lim, "RdBu_r")
        power = np.abs(np.fft.fftshift(np.fft.fft2(n))) ** 2
        _gray(fig.add_subplot(grid[row, 2]), np.log10(power + 1e-12), "its power spectrum (log; centre = DC)",
              float(np.log10(power.max() + 1e-12)) - 4, float(np.log10(power.max() + 1e-12)), "magma")
        spectra[label] = noise_spectrum(n)
    ax = fig.add_subplot(grid[:, 3])
    for label, (f, p) in spectra.items():
        ax.plot(f, p, "o-", ms=3, label=label)
    ax.set_xlabel("spatial frequency (cycles per pixel)"), ax.set_ylabel("noise power (HU² per frequency bin)")
    ax.set_title("radially averaged spectra: same total power,\nspread differently over frequencies", fontsize=8)
    ax.legend(fontsize=7)
    fig.suptitle(f"{s.key}, dose {dose:g}: the same noise std, not the same noise", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def ct_dose_curve(s: Slice, doses: Sequence[float], seed: int = 0) -> plt.Figure:
    """Measured CT noise std (HU) against dose on log axes, with the 1/sqrt(dose) law through the middle point."""
    doses = np.asarray(sorted(float(d) for d in doses))
    stds = np.array([ct_noise_std(s, d, seed) for d in doses])
    mid = len(doses) // 2
    slope = float(np.polyfit(np.log(doses), np.log(stds), 1)[0]) if len(doses) > 1 else float("nan")
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.loglog(doses, stds, "o-", label="measured (FBP, ramp filter)")
    ax.loglog(doses, stds[mid] * np.sqrt(doses[mid] / doses), "k--", label="1 / sqrt(dose)")
    ax.set_xlabel("dose (photons per detector bin and view)"), ax.set_ylabel("noise std inside the circle (HU)")
    ax.set_title(f"{s.key}: fitted slope {slope:.2f} (the law: -0.50)", fontsize=9)
    ax.legend(fontsize=8), ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def ct_sparse_views_figure(s: Slice, views: Sequence[int | None] = (30, 90, None)) -> plt.Figure:
    """Noiseless CT from fewer views (dose inf): streaks without any noise; None is a full scan."""
    hu, _, pixel = _ct_geometry(s)
    size = hu.shape[0]
    batch = torch.from_numpy(hu)[None, None]
    full = low_dose_ct(batch, float("inf"), pixel_mm=pixel).image[0, 0].numpy()
    fig, axes = plt.subplots(1, len(views), figsize=(3.2 * len(views), 3.5), squeeze=False)
    for ax, v in zip(axes[0], views):
        recon = low_dose_ct(batch, float("inf"), n_views=v, pixel_mm=pixel).image[0, 0].numpy()
        n = full_views(size) if v is None else v
        rmse = float(np.sqrt(np.mean((recon - full)[~outside_circle(size)] ** 2)))
        _gray(ax, window(recon, *SOFT), f"{n} views{' (full scan)' if v is None else ''}, no noise\n"
                                        f"RMSE vs the full scan {rmse:.0f} HU")
    fig.tight_layout()
    return fig
