"""MRI acquisition in k-space: thermal (Rician) noise, undersampling and motion between lines.

- `mri_degrade(x, noise_sigma, acceleration, ..., max_shift_px, fraction_of_lines)`: magnitude images
  (N, 1, H, W) in [0, 1] -> `Degraded`, the magnitude of the inverse FFT of the measured k-space. Order as
  in a scanner: motion -> complex Gaussian noise (sigma relative to each image's maximum) ->
  undersampling of phase-encode lines -> magnitude. The params hold the masks and shifts per image.
- `rician_noise`, `undersample_kspace`, `motion_kspace`: each effect alone.
- `mri_acquire`: the measured k-space itself (complex128 (N, H, W), centred, zero where not acquired),
  which `tv_reconstruction` (the compressed-sensing baseline) starts from.
- Building blocks: `kspace`, `magnitude_image`, `sampling_mask` (a fully sampled centre plus random or
  equispaced lines, `PATTERNS`), `motion_phases` (the Fourier shift theorem per line).

Work runs on the CPU with per-image generators; invalid strengths raise ValueError.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .ops import Keys, _check_batch, _generators, _values
from .pipeline import Degraded, Params

PATTERNS = ("random", "equispaced")


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
