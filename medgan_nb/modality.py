"""Degradations that CT, MRI and X-ray images really have (issue 12, part 2).

Unlike `medgan_nb.degrade` (camera-like degradations of RGB endoscopy frames), each one here
follows the physics of one modality's acquisition, on 1-channel batches (N, 1, H, W):

- CT, low dose (`low_dose_ct`): photon (Poisson) noise is added to the *projections*, not to the
  image. HU -> linear attenuation per pixel (``mu = MU_WATER_PER_MM * (1 + HU/1000) * pixel_mm``),
  forward projection (``skimage.transform.radon``, `n_views` angles over 180 degrees), counts
  ``N ~ Poisson(I0 * exp(-line integral))`` for the dose I0 (counts per detector bin and view
  without an object), clamped to >= 1, ``-log(N / I0)``, filtered back-projection (`fbp`) and back
  to HU. The noise that results is correlated and streaky, unlike white image noise. Few views
  (sparse-view CT) give streaks even without noise. radon/iradon need a square image and only
  see the inscribed circle: pixels outside it are treated as air and come back as -1000 HU.
- MRI (`rician_noise`, `undersample_kspace`, `motion_kspace`, or all three via `mri_degrade`): the
  scanner measures k-space (the image's 2-D Fourier transform, rows = phase-encode lines,
  DC in the centre after fftshift) and shows the magnitude of its inverse. Order, as in an
  acquisition: motion (phase errors of the lines acquired while the patient had moved) ->
  thermal noise (complex Gaussian, white in k-space and hence, the FFT being unitary, white in
  the image with the same sigma) -> undersampling (lines not acquired are zero: zero-filled
  reconstruction, aliasing) -> magnitude (Rician noise). The image is taken as real with zero
  phase; noise sigma is relative to each clean image's maximum.
- X-ray (`xray_degrade`, `detector_blur`, `quantum_noise`): intensity in [0, 1] is the transmitted
  fraction. Order: blur (Gaussian PSF, sigma in pixels: focal spot and detector unsharpness of
  the *signal*) -> quantum noise (``counts ~ Poisson(exposure * I)``, image = counts / exposure).
  The noise is therefore white; in an indirect (scintillator) detector the light spread would
  blur the noise too, which this model leaves out.

Units. The functions take physical units: HU for CT, [0, 1] magnitude / transmitted fraction
for MRI and X-ray (outputs are not clamped: noise can push a magnitude above 1).
`ModalityDegradation` takes and returns batches in [-1, 1] like `medgan_nb.degrade.Degradation`:
for CT through a window (default center 0, width 2000: -1000 ... +1000 HU, so air stays air; a
narrow window such as ``"soft_tissue"`` clips air to the window's bottom and misstates the
attenuation there), for MRI and X-ray through [0, 1]. Its output is clamped to [-1, 1].

Reproducibility, as in `medgan_nb.degrade`: pass ``generator=`` for a seeded batch, or ``keys=``
(one per image) for per-image CPU generators seeded by ``seed_for(key, seed)``: an image is then
degraded identically whatever batch it is in. Random numbers are always drawn per image, on the
CPU (so `generator` must be a CPU generator; the work runs on the CPU too, results go back to
the input's device and dtype). Parameters come back per image in `Degraded.params`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from skimage.transform import iradon, radon

from .data import from_unit, to_unit
from .degrade import Degraded, Params, gaussian_blur, seed_for
from .dicom import WINDOWS

MU_WATER_PER_MM = 0.0192     # linear attenuation of water at ~70 keV (effective CT energy), per mm
AIR_HU = -1000.0
FOV_MM = 350.0               # default field of view (an adult body): pixel_mm = FOV_MM / width
CT_WINDOW = (0.0, 2000.0)    # (center, width) in HU used by ModalityDegradation: -1000 ... +1000 HU
PATTERNS = ("random", "equispaced")
MODALITIES = ("ct", "mri", "xray")
Keys = Sequence[str | int] | None


# ------------------------------------------------------------------ helpers
def _generators(n: int, generator: torch.Generator | None, keys: Keys, seed: int) -> list[torch.Generator | None]:
    """One generator per image: CPU generators seeded by key if `keys` is given, else `generator` for all."""
    if keys is None:
        return [generator] * n
    if len(keys) != n:
        raise ValueError(f"got {len(keys)} keys for {n} images")
    return [torch.Generator().manual_seed(seed_for(k, seed)) for k in keys]


def _values(v: float | Sequence[float] | torch.Tensor, n: int, name: str, low: float = 0.0,
            strict: bool = False) -> torch.Tensor:
    """A scalar or per-image value as a float64 (N,) tensor, checked to be >= low (> low if strict)."""
    t = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"{name}: got {t.numel()} values for {n} images")
    bad = (t <= low) if strict else (t < low)
    if bool(bad.any()) or bool(t.isnan().any()):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {t.tolist()}")
    return t.clone()


def _check_batch(x: torch.Tensor, square: bool = False) -> None:
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected a batch of 1-channel images (N, 1, H, W), got shape {tuple(x.shape)}")
    if square and x.shape[-1] != x.shape[-2]:
        raise ValueError(f"CT needs square images (radon/iradon), got {tuple(x.shape[-2:])}; crop or pad first")


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


# ---------------------------------------------------------------------- MRI
def kspace(x: torch.Tensor) -> torch.Tensor:
    """Centred k-space (DC at [H//2, W//2]) of real images (..., H, W), unitary FFT."""
    k = torch.fft.fft2(x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64), norm="ortho")
    return torch.fft.fftshift(k, dim=(-2, -1))


def magnitude_image(k: torch.Tensor) -> torch.Tensor:
    """Magnitude of the inverse of centred k-space: what an MR scanner displays."""
    return torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho").abs()


def sampling_mask(lines: int, acceleration: float, centre_fraction: float = 0.08, pattern: str = "random",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Which phase-encode lines (centred order, bool (lines,)) are acquired.

    A fully sampled centre of ``round(lines * centre_fraction)`` lines (contrast lives there) plus:
    "random": other lines at random, ``round(lines / acceleration)`` lines in all (or just the centre
    if that is more); "equispaced": every `acceleration`-th line from a random offset (aliasing
    copies at H / acceleration), so the kept fraction is 1/acceleration plus the centre lines off
    that grid.
    """
    _check_mri_args(acceleration, centre_fraction, pattern)
    mask = torch.zeros(lines, dtype=torch.bool)
    n_centre = round(lines * centre_fraction)
    start = lines // 2 - n_centre // 2
    mask[start:start + n_centre] = True
    if pattern == "random":
        others = (~mask).nonzero().reshape(-1)
        extra = max(round(lines / acceleration) - n_centre, 0)
        mask[others[torch.randperm(others.numel(), generator=generator)[:extra]]] = True
    else:
        offset = float(torch.randint(0, max(int(math.ceil(acceleration)), 1), (1,), generator=generator))
        grid = torch.arange(offset, lines, acceleration, dtype=torch.float64).round().long()
        mask[grid[grid < lines]] = True
    return mask


def _check_mri_args(acceleration: float, centre_fraction: float, pattern: str) -> None:
    if not acceleration >= 1:
        raise ValueError(f"acceleration must be >= 1 (1 = fully sampled), got {acceleration}")
    if not 0 <= centre_fraction <= 1:
        raise ValueError(f"centre_fraction must be in [0, 1], got {centre_fraction}")
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; use one of {PATTERNS}")


def motion_phases(h: int, w: int, max_shift_px: float, fraction_of_lines: float,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-line k-space phase ramps of a rigid translation (centred order): (phase (h, w), shift (h, 2)).

    A fraction of the phase-encode lines is acquired with the object shifted by (dy, dx), each
    uniform in [-max_shift_px, max_shift_px]: by the Fourier shift theorem those lines are
    multiplied by exp(-i 2 pi (ky dy + kx dx)), k in cycles per pixel. Inconsistent lines ghost.
    """
    if not max_shift_px >= 0:
        raise ValueError(f"max_shift_px must be >= 0, got {max_shift_px}")
    if not 0 <= fraction_of_lines <= 1:
        raise ValueError(f"fraction_of_lines must be in [0, 1], got {fraction_of_lines}")
    moved = torch.randperm(h, generator=generator)[:round(h * fraction_of_lines)]
    shift = torch.zeros(h, 2, dtype=torch.float64)
    shift[moved] = (2 * torch.rand(moved.numel(), 2, generator=generator, dtype=torch.float64) - 1) * max_shift_px
    ky = torch.fft.fftshift(torch.fft.fftfreq(h, dtype=torch.float64))[:, None]
    kx = torch.fft.fftshift(torch.fft.fftfreq(w, dtype=torch.float64))[None, :]
    phase = torch.exp(-2j * math.pi * (ky * shift[:, :1] + kx * shift[:, 1:]))
    return phase, shift


def mri_degrade(x: torch.Tensor, noise_sigma: float | Sequence[float] | torch.Tensor = 0.0,
                acceleration: float | Sequence[float] | torch.Tensor = 1.0, centre_fraction: float = 0.08,
                pattern: str = "random", max_shift_px: float | Sequence[float] | torch.Tensor = 0.0,
                fraction_of_lines: float = 0.0, generator: torch.Generator | None = None,
                keys: Keys = None, seed: int = 0) -> Degraded:
    """MR acquisition of magnitude images (N, 1, H, W) in [0, 1]: motion -> noise -> undersampling -> magnitude.

    noise_sigma: complex Gaussian std relative to each image's max; acceleration: 1 = all lines;
    max_shift_px, fraction_of_lines: motion between lines. Random draws per image in the order
    mask, motion, noise. Params: mri_noise_sigma, mri_acceleration, mri_max_shift_px (N,),
    mri_mask (N, H) bool, centred (row H//2 is DC), mri_motion_shift (N, H, 2) (dy, dx) per line.
    """
    k, params = mri_acquire(x, noise_sigma, acceleration, centre_fraction, pattern, max_shift_px,
                            fraction_of_lines, generator, keys, seed)
    return Degraded(magnitude_image(k)[:, None].to(x.device, x.dtype), params)


def mri_acquire(x: torch.Tensor, noise_sigma: float | Sequence[float] | torch.Tensor = 0.0,
                acceleration: float | Sequence[float] | torch.Tensor = 1.0, centre_fraction: float = 0.08,
                pattern: str = "random", max_shift_px: float | Sequence[float] | torch.Tensor = 0.0,
                fraction_of_lines: float = 0.0, generator: torch.Generator | None = None,
                keys: Keys = None, seed: int = 0) -> tuple[torch.Tensor, Params]:
    """The measured k-space of `mri_degrade` (complex128 (N, H, W), centred, zero where not acquired) and its
    params: what a reconstruction (e.g. `tv_reconstruction`) starts from."""
    _check_batch(x)
    n, _, h, w = x.shape
    sigma = _values(noise_sigma, n, "noise_sigma")
    accel = _values(acceleration, n, "acceleration", low=1)
    shifts = _values(max_shift_px, n, "max_shift_px")
    _check_mri_args(1.0, centre_fraction, pattern)
    gens = _generators(n, generator, keys, seed)
    out, masks, motions = [], [], []
    for i in range(n):
        img = x[i, 0].detach().cpu().double()
        mask = sampling_mask(h, float(accel[i]), centre_fraction, pattern, gens[i])
        phase, shift = motion_phases(h, w, float(shifts[i]), fraction_of_lines, gens[i])
        k = kspace(img) * phase
        if sigma[i] > 0:
            std = float(sigma[i]) * float(img.abs().max())
            k = k + std * torch.complex(torch.randn(h, w, generator=gens[i], dtype=torch.float64),
                                        torch.randn(h, w, generator=gens[i], dtype=torch.float64))
        out.append(k * mask[:, None])
        masks.append(mask)
        motions.append(shift)
    return torch.stack(out), {"mri_noise_sigma": sigma, "mri_acceleration": accel, "mri_max_shift_px": shifts,
                              "mri_mask": torch.stack(masks), "mri_motion_shift": torch.stack(motions)}


def tv_reconstruction(k: torch.Tensor, mask: torch.Tensor, weight: float = 0.02, iterations: int = 30
                      ) -> torch.Tensor:
    """Total-variation reconstruction of MRI, the classic compressed-sensing baseline, as a magnitude (H, W).

    k: centred measured k-space (H, W), zero where not acquired; mask (H,) bool, the acquired lines.
    Undersampled: POCS, alternating TV denoising (Chambolle, real and imaginary parts) with data
    consistency (the acquired lines put back). Fully sampled there is nothing to fill in, so it is TV
    denoising of the magnitude image (data consistency would put the noise back).
    """
    from skimage.restoration import denoise_tv_chambolle
    image = torch.fft.ifft2(torch.fft.ifftshift(k), norm="ortho")
    if bool(mask.all()):
        return torch.from_numpy(denoise_tv_chambolle(image.abs().numpy(), weight=weight))
    rows = mask.to(torch.bool)[:, None].expand_as(k)
    for _ in range(iterations):
        z = image.numpy()
        image = torch.complex(torch.from_numpy(denoise_tv_chambolle(z.real, weight=weight)),
                              torch.from_numpy(denoise_tv_chambolle(z.imag, weight=weight)))
        current = torch.fft.fftshift(torch.fft.fft2(image, norm="ortho"))
        image = torch.fft.ifft2(torch.fft.ifftshift(torch.where(rows, k, current)), norm="ortho")
    return image.abs()


def rician_noise(x: torch.Tensor, sigma: float | Sequence[float] | torch.Tensor,
                 generator: torch.Generator | None = None, keys: Keys = None, seed: int = 0) -> Degraded:
    """Magnitude of image + complex Gaussian noise (std `sigma` x image max per component): Rician noise,
    biased upwards where the signal is low (mean sigma sqrt(pi/2) on a zero background)."""
    return mri_degrade(x, noise_sigma=sigma, generator=generator, keys=keys, seed=seed)


def undersample_kspace(x: torch.Tensor, acceleration: float | Sequence[float] | torch.Tensor,
                       centre_fraction: float = 0.08, pattern: str = "random",
                       generator: torch.Generator | None = None, keys: Keys = None, seed: int = 0) -> Degraded:
    """Zero-filled reconstruction from a fraction ~1/acceleration of the phase-encode lines (fully sampled
    centre, see `sampling_mask`): the aliasing of accelerated MRI. The mask is in params["mri_mask"]."""
    return mri_degrade(x, acceleration=acceleration, centre_fraction=centre_fraction, pattern=pattern,
                       generator=generator, keys=keys, seed=seed)


def motion_kspace(x: torch.Tensor, max_shift_px: float | Sequence[float] | torch.Tensor,
                  fraction_of_lines: float = 0.3, generator: torch.Generator | None = None,
                  keys: Keys = None, seed: int = 0) -> Degraded:
    """Rigid motion during the scan: a fraction of the lines get the phase ramp of a random shift
    (see `motion_phases`); ghosts along the phase-encode direction. Zero shift is the identity."""
    return mri_degrade(x, max_shift_px=max_shift_px, fraction_of_lines=fraction_of_lines,
                       generator=generator, keys=keys, seed=seed)


# -------------------------------------------------------------------- X-ray
def detector_blur(x: torch.Tensor, sigma: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Gaussian PSF of `sigma` pixels per image (focal spot, detector unsharpness); sigma 0 = identity."""
    _check_batch(x)
    s = _values(sigma, x.shape[0], "blur sigma")
    if not bool((s > 0).any()):
        return x.clone()
    size = min(2 * math.ceil(3 * float(s.max())) + 1, 2 * (min(x.shape[-2:]) // 2) - 1)
    return gaussian_blur(x, s.float().to(x.device), kernel_size=max(size, 1))


def quantum_noise(x: torch.Tensor, exposure: float | Sequence[float] | torch.Tensor,
                  generator: torch.Generator | None = None, keys: Keys = None, seed: int = 0) -> Degraded:
    """Counts ~ Poisson(exposure * I) for transmitted fraction I in [0, 1], image = counts / exposure:
    the quantum noise of an X-ray detector (variance I / exposure). ``exposure=inf``: no noise."""
    _check_batch(x)
    n = x.shape[0]
    exp_ = _values(exposure, n, "exposure", strict=True)
    gens = _generators(n, generator, keys, seed)
    out = []
    for i in range(n):
        img = x[i].detach().cpu().double().clamp(min=0)
        e = float(exp_[i])
        out.append(img if math.isinf(e) else torch.poisson(img * e, generator=gens[i]) / e)
    return Degraded(torch.stack(out).to(x.device, x.dtype), {"xray_exposure": exp_})


def xray_degrade(x: torch.Tensor, exposure: float | Sequence[float] | torch.Tensor,
                 blur_sigma: float | Sequence[float] | torch.Tensor = 0.0, generator: torch.Generator | None = None,
                 keys: Keys = None, seed: int = 0) -> Degraded:
    """Low-exposure radiograph of transmitted fractions (N, 1, H, W) in [0, 1]: detector blur, then quantum noise."""
    blurred = detector_blur(x, blur_sigma)
    noisy = quantum_noise(blurred, exposure, generator, keys, seed)
    return Degraded(noisy.image, {**noisy.params, "xray_blur_sigma": _values(blur_sigma, x.shape[0], "blur sigma")})


# ----------------------------------------------------------------- pipeline
STRENGTHS = {
    "ct": ("dose", "n_views", "pixel_mm", "filter_name", "window"),
    "mri": ("noise_sigma", "acceleration", "centre_fraction", "pattern", "max_shift_px", "fraction_of_lines"),
    "xray": ("exposure", "blur_sigma"),
}
_LOG_UNIFORM = ("dose", "exposure")          # photon numbers span decades: sampled log-uniformly
_RANGED = ("dose", "n_views", "noise_sigma", "acceleration", "max_shift_px", "exposure", "blur_sigma")


class ModalityDegradation:
    """One modality's degradation of batches (N, 1, H, W) in [-1, 1] -> `Degraded` in [-1, 1].

    ``ModalityDegradation("ct", dose=(1e3, 1e5), n_views=None)``,
    ``ModalityDegradation("mri", noise_sigma=0.03, acceleration=(2, 6))``,
    ``ModalityDegradation("xray", exposure=(50, 500), blur_sigma=(0, 1.5))``.
    A strength given as (lo, hi) is drawn per image (dose and exposure log-uniformly, n_views as
    integers, the others uniformly), a number is used for all. CT: the batch is HU mapped through
    `window` ((center, width) or a name in `medgan_nb.dicom.WINDOWS`; default `CT_WINDOW`), see the
    module docstring; MRI and X-ray: [-1, 1] is [0, 1]. Defaults: CT dose 1e4 and full views;
    MRI nothing (give at least one strength); X-ray exposure 200, no blur.
    """

    def __init__(self, modality: str, seed: int = 0, **strengths):
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; use one of {MODALITIES}")
        unknown = sorted(set(strengths) - set(STRENGTHS[modality]))
        if unknown:
            raise ValueError(f"unknown strength(s) {unknown} for {modality!r}; use {STRENGTHS[modality]}")
        defaults = {"ct": {"dose": 1e4}, "xray": {"exposure": 200.0}}.get(modality, {})
        self.modality, self.seed, self.strengths = modality, seed, {**defaults, **strengths}
        window = self.strengths.pop("window", CT_WINDOW)
        self.window = WINDOWS[window] if isinstance(window, str) and window in WINDOWS else window
        if isinstance(window, str) and window not in WINDOWS:
            raise ValueError(f"unknown window {window!r}; use (center, width) or one of {tuple(WINDOWS)}")
        if modality == "ct" and not float(self.window[1]) > 0:
            raise ValueError(f"window width must be > 0, got {self.window}")
        self._check()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.strengths.items())
        return f"ModalityDegradation({self.modality!r}{', ' + args if args else ''})"

    def _check(self) -> None:
        """Run the functions once on a tiny batch at both ends of every range: bad strengths fail now, clearly."""
        for end in (0, 1):
            fixed = {k: (v[end] if k in _RANGED and isinstance(v, (tuple, list)) else v)
                     for k, v in self.strengths.items()}
            for k, v in self.strengths.items():
                if k in _RANGED and isinstance(v, (tuple, list)) and (len(v) != 2 or v[0] > v[1]):
                    raise ValueError(f"{k}: a range is (lo, hi) with lo <= hi, got {v}")
            self._apply(torch.zeros(1, 1, 16, 16), fixed, torch.Generator().manual_seed(0))   # not the global RNG

    def _sample(self, g: torch.Generator | None) -> dict:
        """This image's strengths: ranges drawn with its generator, numbers as given."""
        out = {}
        for k, v in self.strengths.items():
            if k in _RANGED and isinstance(v, (tuple, list)):
                u = float(torch.rand((), generator=g, dtype=torch.float64))
                lo, hi = float(v[0]), float(v[1])
                if k in _LOG_UNIFORM and lo > 0 and not math.isinf(hi):
                    v = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
                elif k == "n_views":
                    v = int(lo + math.floor(u * (hi - lo + 1)))
                else:
                    v = lo + u * (hi - lo)
            out[k] = v
        return out

    def _apply(self, x: torch.Tensor, s: dict, g: torch.Generator | None) -> Degraded:
        """Degrade one batch in [-1, 1] with fixed strengths `s`."""
        if self.modality == "ct":
            center, width = float(self.window[0]), float(self.window[1])
            hu = center - width / 2 + to_unit(x) * width
            d = low_dose_ct(hu, generator=g, **s)
            return Degraded(from_unit((d.image - (center - width / 2)) / width), d.params)
        if self.modality == "mri":
            d = mri_degrade(to_unit(x).clamp(0, 1), generator=g, **s)
        else:
            d = xray_degrade(to_unit(x).clamp(0, 1), generator=g, **s)
        return Degraded(from_unit(d.image), d.params)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, keys: Keys = None) -> Degraded:
        """Degrade a batch (N, 1, H, W) in [-1, 1]; `generator` or `keys` as in `medgan_nb.degrade.Degradation`."""
        _check_batch(x, square=self.modality == "ct")
        gens = _generators(x.shape[0], generator, keys, self.seed)
        parts = [self._apply(x[i:i + 1], self._sample(gens[i]), gens[i]) for i in range(x.shape[0])]
        params: Params = {k: torch.cat([p.params[k] for p in parts]) for k in parts[0].params} if parts else {}
        return Degraded(torch.cat([p.image for p in parts]) if parts else x.clone(), params)
