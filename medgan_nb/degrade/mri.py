"""MRI acquisition in k-space: thermal (Rician) noise, undersampling and motion between lines.

- `mri_degrade(x, noise_sigma, acceleration, ..., max_shift_px, fraction_of_lines, phase_rad, acquired_lines)`:
  magnitude images (N, 1, H, W) in [0, 1] -> `Degraded`, the magnitude of the inverse FFT of the measured
  k-space. Order as in a scanner: smooth object phase -> motion -> complex Gaussian noise (sigma relative to
  each image's maximum) -> undersampling of phase-encode lines -> magnitude. The params hold the masks,
  shifts, the acquired extent and the effective acceleration per image.

Why the phase. A magnitude image is real: its k-space is Hermitian (the line at -ky is the conjugate of the
line at +ky), so every kept line also gives its mirror and "4x" keeps about half the information, i.e. is
about 2x. A real MR image has a smooth phase (field inhomogeneity, coil sensitivities): `smooth_phase` gives
each image a seeded random quadratic phase of peak `phase_rad` (default `PHASE_RAD`; 0 = the old real image)
before the FFT, so the mirrors are not free. (A phase-constrained, partial-Fourier reconstruction can still
win part of them back; the zero-filled input and the models do not.)

Why the acquired extent. Many stored MR images are interpolated: a 484-row reformat of a 142-row
acquisition holds its energy in the central rows and (almost) nothing outside. Undersampling all 484 rows
would mostly drop empty lines. `acquired_extent` takes the acquired matrix to be the smallest centred band of
rows holding `ACQUIRED_ENERGY` (99.9 %) of the k-space energy (or pass ``acquired_lines``); the sampling
mask then keeps ~1/acceleration of *those* lines, and rows outside it (never acquired) are left as they are.
`effective_acceleration` (in the params as ``mri_effective_acceleration``) is acquired lines / lines known,
counting mirrors when the image has no phase: the number a lesson should print.
- `rician_noise`, `undersample_kspace`, `motion_kspace`: each effect alone.
- `mri_acquire`: the measured k-space itself (complex128 (N, H, W), centred, zero where not acquired),
  which `tv_reconstruction` (the compressed-sensing baseline) starts from.
- Building blocks: `kspace`, `magnitude_image`, `sampling_mask` (a fully sampled centre plus random or
  equispaced lines, `PATTERNS`), `acquisition_mask` (that mask on the acquired rows only), `motion_phases`
  (the Fourier shift theorem per line), `smooth_phase`, `acquired_extent`, `mirror_lines`,
  `effective_acceleration`.

Work runs on the CPU with per-image generators; invalid strengths raise ValueError.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .ops import Keys, _check_batch, _generators, _values
from .pipeline import Degraded, Params

PATTERNS = ("random", "equispaced")
PHASE_RAD = math.pi          # peak of the smooth object phase added before the FFT (0: a real image)
ACQUIRED_ENERGY = 0.999      # the acquired extent: the centred rows holding this fraction of the k-space energy


# ---------------------------------------------------------------------- MRI
def kspace(x: torch.Tensor) -> torch.Tensor:
    """Centred k-space (DC at [H//2, W//2]) of real or complex images (..., H, W), unitary FFT."""
    if not x.is_complex():
        x = x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)
    k = torch.fft.fft2(x, norm="ortho")
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


def acquisition_mask(lines: int, acquired: int, acceleration: float, centre_fraction: float = 0.08,
                     pattern: str = "random", generator: torch.Generator | None = None) -> torch.Tensor:
    """`sampling_mask` of the `acquired` centred rows of a `lines`-row k-space (bool (lines,)); the rows
    outside the acquired extent (never measured, zero in the original acquisition) are kept as they are.
    Acceleration 1 keeps every row."""
    if not 1 <= acquired <= lines:
        raise ValueError(f"acquired_lines must be in [1, {lines}] (the image's rows), got {acquired}")
    inner = sampling_mask(acquired, acceleration, centre_fraction, pattern, generator)
    mask = torch.ones(lines, dtype=torch.bool)
    start = lines // 2 - acquired // 2
    mask[start:start + acquired] = inner
    return mask


def acquired_extent(image: torch.Tensor, energy: float = ACQUIRED_ENERGY) -> int:
    """The acquired phase-encode matrix of an image (H, W), real or complex: the number of rows of the smallest
    band centred on DC (row H//2 of centred k-space) that holds `energy` of the k-space energy; H for a blank
    image. An interpolated reformat gives its acquired rows; a natively sampled image nearly all of H."""
    h = image.shape[-2]
    rows = kspace(image.detach().cpu().double()).abs().pow(2).sum(-1)
    total = float(rows.sum())
    if total == 0:
        return h
    c = h // 2
    for half in range(h // 2 + 1):
        lo, hi = max(0, c - half), min(h, c + half + 1)
        if float(rows[lo:hi].sum()) >= energy * total:
            return hi - lo
    return h


def mirror_lines(a: torch.Tensor) -> torch.Tensor:
    """Rows of a centred k-space (or mask) (H, ...) reordered so that row ky holds row -ky (DC at H//2; for
    even H the unpaired Nyquist row maps to itself). For a real image ``mirror_lines(k).conj()`` is k."""
    h = a.shape[0]
    idx = (2 * (h // 2) - torch.arange(h)) % h
    if h % 2 == 0:
        idx[0] = 0
    out = a[idx]
    if a.is_complex() and a.ndim > 1:          # kx -> -kx too, the same way along the columns
        w = a.shape[1]
        col = (2 * (w // 2) - torch.arange(w)) % w
        if w % 2 == 0:
            col[0] = 0
        out = out[:, col]
    return out


def effective_acceleration(mask: torch.Tensor, acquired: int, hermitian: bool = False) -> float:
    """Acquired rows / rows known inside the acquired extent of a centred mask (H,): the true acceleration.
    ``hermitian=True`` (a real image, no phase): each kept row also gives its mirror, so mirrors count."""
    h = mask.shape[0]
    known = mask | mirror_lines(mask) if hermitian else mask
    start = h // 2 - acquired // 2
    return acquired / max(int(known[start:start + acquired].sum()), 1)


def smooth_phase(h: int, w: int, phase_rad: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A unit-magnitude complex (h, w) ``exp(i phi)``, phi a random quadratic in y, x (coefficients uniform in
    [-1, 1], always drawn so the random stream does not depend on `phase_rad`) scaled to peak |phi| =
    `phase_rad`: the smooth phase of a real MR image (B0 inhomogeneity, coil sensitivities). 0 = ones."""
    if not phase_rad >= 0:
        raise ValueError(f"phase_rad must be >= 0, got {phase_rad}")
    c = 2 * torch.rand(5, generator=generator, dtype=torch.float64) - 1
    y = torch.linspace(-1, 1, h, dtype=torch.float64)[:, None]
    x = torch.linspace(-1, 1, w, dtype=torch.float64)[None, :]
    phi = c[0] * y + c[1] * x + c[2] * (y ** 2 - 1 / 3) + c[3] * y * x + c[4] * (x ** 2 - 1 / 3)
    peak = float(phi.abs().max())
    phi = phi * (phase_rad / peak) if peak > 0 else phi * 0
    return torch.polar(torch.ones_like(phi), phi)


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
                keys: Keys = None, seed: int = 0, phase_rad: float = PHASE_RAD,
                acquired_lines: int | None = None) -> Degraded:
    """MR acquisition of magnitude images (N, 1, H, W) in [0, 1]: phase -> motion -> noise -> undersampling ->
    magnitude.

    noise_sigma: complex Gaussian std relative to each image's max; acceleration: 1 = all lines, else
    ~1/acceleration of the acquired rows are kept; max_shift_px, fraction_of_lines: motion between lines;
    phase_rad: peak of the smooth object phase (0: a real image, whose mirrored lines come free);
    acquired_lines: the acquired phase-encode matrix, None = `acquired_extent` of each image. Random draws
    per image in the order mask, motion, phase, noise. Params: mri_noise_sigma, mri_acceleration,
    mri_max_shift_px, mri_acquired_lines, mri_effective_acceleration (N,), mri_mask (N, H) bool, centred
    (row H//2 is DC), mri_motion_shift (N, H, 2) (dy, dx) per line.
    """
    k, params = mri_acquire(x, noise_sigma, acceleration, centre_fraction, pattern, max_shift_px,
                            fraction_of_lines, generator, keys, seed, phase_rad, acquired_lines)
    return Degraded(magnitude_image(k)[:, None].to(x.device, x.dtype), params)


def mri_acquire(x: torch.Tensor, noise_sigma: float | Sequence[float] | torch.Tensor = 0.0,
                acceleration: float | Sequence[float] | torch.Tensor = 1.0, centre_fraction: float = 0.08,
                pattern: str = "random", max_shift_px: float | Sequence[float] | torch.Tensor = 0.0,
                fraction_of_lines: float = 0.0, generator: torch.Generator | None = None,
                keys: Keys = None, seed: int = 0, phase_rad: float = PHASE_RAD,
                acquired_lines: int | None = None) -> tuple[torch.Tensor, Params]:
    """The measured k-space of `mri_degrade` (complex128 (N, H, W), centred, zero where not acquired) and its
    params: what a reconstruction (e.g. `tv_reconstruction`) starts from."""
    _check_batch(x)
    n, _, h, w = x.shape
    sigma = _values(noise_sigma, n, "noise_sigma")
    accel = _values(acceleration, n, "acceleration", low=1)
    shifts = _values(max_shift_px, n, "max_shift_px")
    _check_mri_args(1.0, centre_fraction, pattern)
    gens = _generators(n, generator, keys, seed)
    if acquired_lines is not None and not 1 <= int(acquired_lines) <= h:
        raise ValueError(f"acquired_lines must be in [1, {h}] (the image's rows) or None (detect), "
                         f"got {acquired_lines}")
    out, masks, motions, extents, effective = [], [], [], [], []
    for i in range(n):
        img = x[i, 0].detach().cpu().double()
        acquired = acquired_extent(img) if acquired_lines is None else int(acquired_lines)
        mask = acquisition_mask(h, acquired, float(accel[i]), centre_fraction, pattern, gens[i])
        phase, shift = motion_phases(h, w, float(shifts[i]), fraction_of_lines, gens[i])
        k = kspace(img * smooth_phase(h, w, phase_rad, gens[i])) * phase
        if sigma[i] > 0:
            std = float(sigma[i]) * float(img.abs().max())
            k = k + std * torch.complex(torch.randn(h, w, generator=gens[i], dtype=torch.float64),
                                        torch.randn(h, w, generator=gens[i], dtype=torch.float64))
        out.append(k * mask[:, None])
        masks.append(mask)
        motions.append(shift)
        extents.append(acquired)
        effective.append(effective_acceleration(mask, acquired, hermitian=phase_rad == 0))
    return torch.stack(out), {"mri_noise_sigma": sigma, "mri_acceleration": accel, "mri_max_shift_px": shifts,
                              "mri_acquired_lines": torch.tensor(extents, dtype=torch.float64),
                              "mri_effective_acceleration": torch.tensor(effective, dtype=torch.float64),
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
                       generator: torch.Generator | None = None, keys: Keys = None, seed: int = 0,
                       phase_rad: float = PHASE_RAD, acquired_lines: int | None = None) -> Degraded:
    """Zero-filled reconstruction from a fraction ~1/acceleration of the acquired phase-encode lines (fully
    sampled centre, see `acquisition_mask`): the aliasing of accelerated MRI. The mask is in params["mri_mask"],
    the true acceleration in params["mri_effective_acceleration"] (see the module docstring)."""
    return mri_degrade(x, acceleration=acceleration, centre_fraction=centre_fraction, pattern=pattern,
                       generator=generator, keys=keys, seed=seed, phase_rad=phase_rad,
                       acquired_lines=acquired_lines)


def motion_kspace(x: torch.Tensor, max_shift_px: float | Sequence[float] | torch.Tensor,
                  fraction_of_lines: float = 0.3, generator: torch.Generator | None = None,
                  keys: Keys = None, seed: int = 0) -> Degraded:
    """Rigid motion during the scan: a fraction of the lines get the phase ramp of a random shift
    (see `motion_phases`); ghosts along the phase-encode direction. Zero shift is the identity."""
    return mri_degrade(x, max_shift_px=max_shift_px, fraction_of_lines=fraction_of_lines,
                       generator=generator, keys=keys, seed=seed)
