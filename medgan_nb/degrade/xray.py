"""Low-exposure radiographs: quanta absorbed, spread by the scintillator, read out, shown on a log scale.

Assumption (stated, because it decides where the noise goes): a processed CR/DR image's stored values are
*logarithmic* in the exposure that reached the detector, as CR/DR processing makes them: display value
~ a + b log(exposure). In the usual MONOCHROME2 display bright means more attenuation, i.e. less exposure;
`medgan_nb.data.scans` inverts X-rays for the models, so here an intensity t in [0, 1] rises with exposure:
t = 1 is the most exposed part of the image (its 99.5th exposure percentile), t = 0 the least, and the
window [0, 1] spans `decades` decades of exposure (default `DECADES`, one decade: about the lung to
mediastinum ratio of a chest). Relative exposure ``q = 10 ** (-decades * (1 - t))`` lies in [10^-decades, 1].

The chain of `xray_degrade(x, exposure, blur_sigma, electronic_noise, decades)`:

1. t -> relative exposure q (`to_exposure`); ``exposure`` is the photon count per pixel at q = 1 (t = 1).
2. absorbed quanta ~ Poisson(exposure * q) per pixel;
3. the scintillator / phosphor spreads each absorbed quantum's light: a Gaussian PSF of `blur_sigma`
   pixels applied to the *noisy quanta*, so it blurs the signal and correlates (and averages down) the noise;
4. electronic (read-out) noise: Gaussian, `electronic_noise` quanta std per pixel, white;
5. back to the log display (`to_display`), the count clamped to >= `MIN_QUANTA` (nothing detected has no log).

Noise therefore rises where exposure falls: without blur its std in t is about
``sqrt(exposure q + electronic_noise**2) / (exposure q ln(10) decades)`` (`xray_noise_std`), and no
pixel is left without noise. ``exposure=inf`` adds no noise (only the blur, in the exposure domain).
`quantum_noise` is the same chain without blur or electronic noise; `detector_blur` the plain Gaussian PSF of
an image. Outputs are not clamped; invalid strengths raise ValueError.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .ops import Keys, _check_batch, _generators, _values, gaussian_blur
from .pipeline import Degraded

DECADES = 1.0                # decades of exposure across the [0, 1] display window
ELECTRONIC_NOISE = 1.0       # read-out noise, std in absorbed quanta per pixel
MIN_QUANTA = 0.5             # a pixel's detected quanta are clamped to >= this before the log


# -------------------------------------------------------------------- X-ray
def to_exposure(t: torch.Tensor, decades: float = DECADES) -> torch.Tensor:
    """Display value t in [0, 1] (rising with exposure) -> relative exposure ``10 ** (-decades (1 - t))``."""
    return torch.pow(10.0, -decades * (1 - t))


def to_display(q: torch.Tensor, decades: float = DECADES) -> torch.Tensor:
    """Relative exposure q > 0 -> display value ``1 + log10(q) / decades`` (the inverse of `to_exposure`)."""
    return 1 + torch.log10(q) / decades


def xray_noise_std(t: float, exposure: float, electronic_noise: float = ELECTRONIC_NOISE,
                   decades: float = DECADES) -> float:
    """Predicted noise std of display value t without blur (first order in the noise): the quanta's relative
    std ``sqrt(N + electronic_noise**2) / N`` with ``N = exposure q(t)``, divided by ``ln(10) decades``."""
    n = exposure * 10.0 ** (-decades * (1 - t))
    return math.sqrt(n + electronic_noise ** 2) / n / (math.log(10) * decades)


def detector_blur(x: torch.Tensor, sigma: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Gaussian PSF of `sigma` pixels per image (focal spot, detector unsharpness); sigma 0 = identity."""
    _check_batch(x)
    s = _values(sigma, x.shape[0], "blur sigma")
    if not bool((s > 0).any()):
        return x.clone()
    size = min(2 * math.ceil(3 * float(s.max())) + 1, 2 * (min(x.shape[-2:]) // 2) - 1)
    return gaussian_blur(x, s.float().to(x.device), kernel_size=max(size, 1))


def _detect(q: torch.Tensor, exposure: float, sigma: float, electronic_noise: float,
            generator: torch.Generator | None) -> torch.Tensor:
    """Detected quanta of one image (1, H, W) of relative exposures q, in units of `exposure` (steps 2-4)."""
    if math.isinf(exposure):
        return detector_blur(q[None], sigma)[0]
    quanta = torch.poisson(q * exposure, generator=generator)
    quanta = detector_blur(quanta[None], sigma)[0]
    if electronic_noise > 0:
        quanta = quanta + electronic_noise * torch.randn(quanta.shape, generator=generator, dtype=quanta.dtype)
    return quanta.clamp(min=MIN_QUANTA) / exposure


def xray_degrade(x: torch.Tensor, exposure: float | Sequence[float] | torch.Tensor,
                 blur_sigma: float | Sequence[float] | torch.Tensor = 0.0, generator: torch.Generator | None = None,
                 keys: Keys = None, seed: int = 0, electronic_noise: float = ELECTRONIC_NOISE,
                 decades: float = DECADES) -> Degraded:
    """Low-exposure radiograph of display values (N, 1, H, W) in [0, 1] (rising with exposure; see the module):
    quanta, scintillator blur, electronic noise, log display. exposure: photons per pixel where t = 1 (per
    image or one); ``inf``: no noise. Params: xray_exposure, xray_blur_sigma (N,)."""
    _check_batch(x)
    n = x.shape[0]
    exp_ = _values(exposure, n, "exposure", strict=True)
    sig = _values(blur_sigma, n, "blur sigma")
    if not electronic_noise >= 0:
        raise ValueError(f"electronic_noise must be >= 0 (quanta per pixel), got {electronic_noise}")
    if not decades > 0:
        raise ValueError(f"decades must be > 0 (decades of exposure across [0, 1]), got {decades}")
    gens = _generators(n, generator, keys, seed)
    out = []
    for i in range(n):
        q = to_exposure(x[i].detach().cpu().double().clamp(0, 1), decades)
        detected = _detect(q, float(exp_[i]), float(sig[i]), electronic_noise, gens[i])
        out.append(to_display(detected, decades))
    return Degraded(torch.stack(out).to(x.device, x.dtype), {"xray_exposure": exp_, "xray_blur_sigma": sig})


def quantum_noise(x: torch.Tensor, exposure: float | Sequence[float] | torch.Tensor,
                  generator: torch.Generator | None = None, keys: Keys = None, seed: int = 0,
                  decades: float = DECADES) -> Degraded:
    """Quantum noise alone (no blur, no electronic noise) of display values in [0, 1], in the log display:
    quanta ~ Poisson(exposure q(t)); the noise std rises as exposure falls. ``exposure=inf``: no noise."""
    d = xray_degrade(x, exposure, 0.0, generator, keys, seed, electronic_noise=0.0, decades=decades)
    return Degraded(d.image, {"xray_exposure": d.params["xray_exposure"]})
