"""Measure the physics of the simulated scan degradations and print one Markdown table per modality.

    python scripts/measure_physics.py            # a few minutes on 2 CPU cores
    MEDGAN_TINY=1 python scripts/measure_physics.py   # seconds: smaller slices, fewer doses and seeds

- X-ray: the simulated noise std against exposure, in bands of the chest CR's display value (t: 0 = least
  exposure, behind the mediastinum; 1 = most, the lungs), for the corrected log-domain model and for the old
  one (noise linear in the display value), and the share of the test radiograph's pixels left exactly unchanged.
- MRI: the effective acceleration of the mri preset's nominal factors on each sample slice: acquired rows
  (`acquired_extent`), the corrected model (phase, undersampling of the acquired rows) and the old one (a real
  image, all rows: Hermitian mirrors count).
- CT: the HU noise std in the centre of a 20-cm water cylinder per dose of the ct preset's range, on each sample
  slice's grid (pixel size, full views), with and without electronic noise.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from medgan_nb.config.config import Config
from medgan_nb.data.scans import sample_slices
from medgan_nb.degrade import (ModalityDegradation, acquired_extent, effective_acceleration, full_views,
                               sampling_mask, undersample_kspace, water_cylinder_noise, xray_degrade)
from medgan_nb.utils.text import markdown_table

TINY = os.environ.get("MEDGAN_TINY") == "1"
BANDS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0))


def old_xray_noise(t: torch.Tensor, exposure: float, seed: int) -> torch.Tensor:
    """The old model, for comparison: counts ~ Poisson(exposure t), display = counts / exposure."""
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(t.clamp(min=0) * exposure, generator=g) / exposure


def xray_table(size: int) -> str:
    """Noise std per display band and exposure on the chest CR: corrected vs old model (blur 0)."""
    s = sample_slices("xray", "train", size)[0]
    t = torch.from_numpy((s.image + 1) / 2).double()[None, None]
    rows = []
    for exposure in (20.0, 200.0, 1000.0):
        new = (xray_degrade(t, exposure, keys=["a"]).image - xray_degrade(t, exposure, keys=["b"]).image)
        old = old_xray_noise(t, exposure, 1) - old_xray_noise(t, exposure, 2)
        for lo, hi in BANDS:
            band = (t >= lo) & (t < hi) if hi < 1 else (t >= lo)
            if int(band.sum()) < 50:
                continue
            std_new, std_old = (float(d[band].std()) / math.sqrt(2) for d in (new, old))   # two realisations
            rows.append((f"{exposure:g}", f"{lo:.1f} - {hi:.1f}", f"{float(band.double().mean()):.0%}",
                         f"{std_new:.4f}", f"{std_old:.4f}"))
    return markdown_table(("exposure (photons/pixel at t = 1)", "display band t", "pixels", "noise std, corrected",
                           "noise std, old"), rows)


def unchanged_share(size: int) -> str:
    """Share of the test radiograph's pixels the degradation leaves exactly as they were (exposure 200)."""
    s = sample_slices("xray", "test", size)[0]
    x = torch.from_numpy(s.image)[None, None]
    new = ModalityDegradation("xray", exposure=200.0)(x, keys=["k"]).image
    t = (x.double() + 1) / 2
    old = old_xray_noise(t, 200.0, 0) * 2 - 1
    floor = x <= -1                                   # the band at the window's floor (least exposure)
    return (f"{s.key}, exposure 200: pixels exactly unchanged: corrected {float((new == x).double().mean()):.1%}, "
            f"old {float((old.float() == x).double().mean()):.1%}; noise std (model units) in the "
            f"{float(floor.double().mean()):.0%} of pixels at the window floor: corrected "
            f"{float((new - x)[floor].std()):.3f}, old {float((old.float() - x)[floor].std()):.3f}")


def mri_table(size: int, factors: tuple[float, ...], seeds: int) -> str:
    """Effective acceleration of nominal factors per sample slice, corrected vs old."""
    rows = []
    for split in ("train", "val", "test"):
        for s in sample_slices("mri", split, size)[:1]:
            x = torch.from_numpy((s.image + 1) / 2).double()[None, None]
            h = x.shape[-2]
            acquired = acquired_extent(x[0, 0])
            for r in factors:
                new = [float(undersample_kspace(x, r, keys=[f"{s.key} {i}"]).params["mri_effective_acceleration"][0])
                       for i in range(seeds)]
                old = [effective_acceleration(sampling_mask(h, r, generator=torch.Generator().manual_seed(i)),
                                              acquired, hermitian=True) for i in range(seeds)]
                rows.append((s.key, f"{h}", f"{acquired}", f"{r:g}x", f"{np.mean(new):.2f}x", f"{np.mean(old):.2f}x"))
    return markdown_table(("slice", "rows", "acquired rows (99.9 % energy)", "nominal", "effective, corrected",
                           "effective, old"), rows)


def ct_table(size: int, doses: tuple[float, ...], realisations: int) -> str:
    """HU noise on the water cylinder per dose and slice grid, with and without electronic noise."""
    grids = {}
    for split in ("train", "test"):
        for s in sample_slices("ct", split, size):
            grids.setdefault(round(s.pixel_mm, 3), (s.key, s.image.shape[0]))
    rows = []
    for pixel, (key, n) in sorted(grids.items()):
        for dose in doses:
            hu = water_cylinder_noise(dose, n, pixel, realisations=realisations)
            quantum = water_cylinder_noise(dose, n, pixel, electronic_noise=0.0, realisations=realisations)
            rows.append((key, f"{pixel:.2f} mm, {full_views(n)} views", f"{dose:.0e}", f"{hu:.1f}", f"{quantum:.1f}",
                         f"{hu * math.sqrt(dose):.0f}"))
    return markdown_table(("grid of", "pixel, views", "dose (photons/bin/view)", "HU std", "HU std, no electronic",
                           "HU std x sqrt(dose)"), rows)


def main() -> None:
    ct_cfg, mri_cfg, xray_cfg = (Config.from_preset(m) for m in ("ct", "mri", "xray"))
    lo, hi = ct_cfg.ct_dose
    doses = (lo, hi) if TINY else (lo, 1e4, hi)
    factors = tuple(float(f) for f in (2, 3, 4) if mri_cfg.mri_acceleration[0] <= f <= mri_cfg.mri_acceleration[1])
    print(f"ct preset dose range {ct_cfg.ct_dose}, mri preset acceleration range {mri_cfg.mri_acceleration}, "
          f"xray preset exposure range {xray_cfg.xray_exposure}\n")
    print("X-ray: simulated noise std (display units, [0, 1]) per band of the chest CR (blur 0)\n")
    print(xray_table(128 if TINY else xray_cfg.scan_size))
    print("\n" + unchanged_share(128 if TINY else xray_cfg.scan_size) + "\n")
    print("MRI: effective acceleration (acquired rows / rows known), mean of seeds\n")
    print(mri_table(128 if TINY else mri_cfg.scan_size, factors, 2 if TINY else 5))
    print("\nCT: HU noise std in the centre (40 mm) of a 20-cm water cylinder, ramp filter\n")
    print(ct_table(64 if TINY else ct_cfg.scan_size, doses, 1))


if __name__ == "__main__":
    main()
