"""Low-exposure radiographs: detector blur, then photon (quantum) noise.

Intensities are transmitted fractions in [0, 1] of batches (N, 1, H, W):

- `detector_blur(x, sigma)`: a Gaussian point spread of `sigma` pixels per image (focal spot, detector
  unsharpness); sigma 0 returns a copy.
- `quantum_noise(x, exposure)`: counts ~ Poisson(exposure * I), image = counts / exposure, so the
  variance is I / exposure; ``exposure=inf`` adds no noise. Returns `Degraded`.
- `xray_degrade(x, exposure, blur_sigma)`: both, in that order, with both strengths in the params.

The noise is added after the blur, so it stays white. Outputs are not clamped; invalid strengths raise
ValueError.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .ops import Keys, _check_batch, _generators, _values, gaussian_blur
from .pipeline import Degraded


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
