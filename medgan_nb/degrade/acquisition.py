"""Degradations that CT, MRI and X-ray images really have.

Unlike `medgan_nb.degrade.pipeline` (camera-like degradations of RGB endoscopy frames), each one here
follows the physics of one modality's acquisition, on 1-channel batches (N, 1, H, W):

- CT, low dose (`low_dose_ct`): photon (Poisson) noise is added to the *projections*, not to the
  image. HU -> linear attenuation per pixel (``mu = MU_WATER_PER_MM * (1 + HU/1000) * pixel_mm``),
  forward projection (``skimage.transform.radon``, `n_views` angles over 180 degrees), counts
  ``N ~ Poisson(I0 * exp(-line integral))`` for the dose I0 (counts per detector bin and view
  without an object), plus Gaussian electronic (read-out) noise, clamped to >= 1, ``-log(N / I0)``,
  filtered back-projection (`fbp`) and back to HU. A dose is stated in HU by `water_cylinder_noise`: the
  noise std in the centre of a 20-cm water cylinder on the same grid. The noise that results is
  correlated and streaky, unlike white image noise. Few views
  (sparse-view CT) give streaks even without noise. radon/iradon need a square image and only
  see the inscribed circle: pixels outside it are treated as air and come back as -1000 HU.
- MRI (`rician_noise`, `undersample_kspace`, `motion_kspace`, or all three via `mri_degrade`): the
  scanner measures k-space (the image's 2-D Fourier transform, rows = phase-encode lines,
  DC in the centre after fftshift) and shows the magnitude of its inverse. Order, as in an
  acquisition: motion (phase errors of the lines acquired while the patient had moved) ->
  thermal noise (complex Gaussian, white in k-space and hence, the FFT being unitary, white in
  the image with the same sigma) -> undersampling (lines not acquired are zero: zero-filled
  reconstruction, aliasing) -> magnitude (Rician noise). The image first gets a smooth random phase
  (a real image's k-space is Hermitian: each kept line would give its mirror for free, halving the
  acceleration), and the lines are undersampled within the acquired matrix (`acquired_extent`); the
  params carry the effective acceleration. Noise sigma is relative to each clean image's maximum.
- X-ray (`xray_degrade`, `detector_blur`, `quantum_noise`): a processed CR/DR stores values that are
  logarithmic in exposure, so intensity t in [0, 1] (rising with exposure: the display inverted) is
  mapped to relative exposure ``10 ** (-decades (1 - t))``; absorbed quanta ~ Poisson(exposure x that);
  the scintillator blur spreads the noisy quanta (so the noise is correlated); electronic noise; back
  to the log display. Noise therefore rises where exposure falls (behind bone and mediastinum).

Units. The functions take physical units: HU for CT, [0, 1] magnitude for MRI, for X-ray the [0, 1] log
display rising with exposure (outputs are not clamped: noise can push a magnitude above 1).
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

import torch

from ..config.config import MODALITIES
from ..utils.images import WINDOWS, from_unit, to_unit
from .ct import low_dose_ct
from .mri import mri_degrade
from .ops import Keys, _check_batch, _generators
from .pipeline import Degraded, Params
from .xray import xray_degrade

CT_WINDOW = (0.0, 2000.0)    # (center, width) in HU used by ModalityDegradation: -1000 ... +1000 HU
SCAN_MODALITIES = tuple(m for m in MODALITIES if m != "endoscopy")   # the ones simulated from a clean slice


# ----------------------------------------------------------------- pipeline
STRENGTHS = {
    "ct": ("dose", "n_views", "pixel_mm", "filter_name", "window", "electronic_noise"),
    "mri": ("noise_sigma", "acceleration", "centre_fraction", "pattern", "max_shift_px", "fraction_of_lines",
            "phase_rad", "acquired_lines"),
    "xray": ("exposure", "blur_sigma", "electronic_noise", "decades"),
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
    `window` ((center, width) or a name in `medgan_nb.data.dicom.WINDOWS`; default `CT_WINDOW`), see the
    module docstring; MRI and X-ray: [-1, 1] is [0, 1]. Defaults: CT dose 1e4 and full views;
    MRI nothing (give at least one strength); X-ray exposure 200, no blur. The physics knobs
    (``electronic_noise``, ``decades``, ``phase_rad``, ``acquired_lines``) default to their modules' constants.
    """

    def __init__(self, modality: str, seed: int = 0, **strengths):
        if modality not in SCAN_MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; use one of {SCAN_MODALITIES}")
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
            if fixed.get("acquired_lines") is not None:        # sized for real images, not the 16² check batch
                if int(fixed["acquired_lines"]) < 1:
                    raise ValueError(f"acquired_lines must be >= 1 or None (detect), got {fixed['acquired_lines']}")
                fixed["acquired_lines"] = None
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
