"""The scoring core of an evaluation: degrade, restore and score every image, then aggregate.

- `score(dataset, degraders, methods, generator, device)`: every image under every condition (a `Degradation`
  each) restored by every method (the GAN and the classical baselines), scored against its clean image with
  PSNR (dB, capped at `medgan_nb.metrics.PSNR_CAP`) and SSIM, with the sharpness ratios against the clean image
  (`medgan_nb.sharpness`: what PSNR hides) and the naturalness score (`medgan_nb.naturalness`, no reference,
  lower is more natural; NaN where an image is too small for its patches), each method timed; with lesion masks also
  inside and outside each mask, and the detail kept on each lesion. Returns `Scores`, whose ``inputs_sha256``
  fingerprints the keys, clean and degraded images, so two evaluations can prove that they scored the same inputs.
- `aggregate`, `aggregate_lesions`: mean, std and ms per image per condition and method.

Rows are plain tuples (`Row`, `LesionRow`), written as CSV by `medgan_nb.evaluation.core.write_results`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..degrade.pipeline import Degradation
from ..metrics import PSNR_CAP, psnr, psnr_masked, ssim, ssim_masked
from ..naturalness import NaturalnessModel, load_naturalness
from ..sharpness import gradient_energy_ratio, hf_power_ratio
from .methods import run_gan, run_method

Row = tuple[str, str, str, float, float, float, float, float]
# condition, method, key, PSNR, SSIM, gradient-energy ratio, high-frequency power ratio, naturalness
MEASURES = ("psnr", "ssim", "grad_ratio", "hf_ratio", "naturalness")


LesionRow = tuple[str, str, str, float, float, float, float, float, float]
# ..., PSNR and SSIM inside the mask, then outside it, then the gradient-energy ratio inside it and the
# high-frequency power ratio in the lesion's box (`lesion_box`)
LESION_MEASURES = ("psnr_in", "ssim_in", "psnr_out", "ssim_out", "grad_ratio_in", "hf_ratio_box")


@dataclass
class Scores:
    """What `score` measured: per-image rows, seconds per (condition, method), the inputs' fingerprint, and
    per-image rows inside/outside the lesion masks (empty without masks)."""
    rows: list[Row] = field(default_factory=list)
    seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    inputs_sha256: str = ""
    lesion_rows: list[LesionRow] = field(default_factory=list)


def score(dataset: Dataset, degraders: dict[str, Degradation], methods: Sequence[str],
          generator: nn.Module | None, device: str, batch_size: int = 4, num_workers: int = 0,
          quiet: bool = False, masks: Sequence[torch.Tensor | None] | None = None,
          naturalness: NaturalnessModel | None = None) -> Scores:
    """Degrade, restore and score every image under every condition with every method.

    masks: one lesion mask (H, W) or None per image of the dataset (`dataset_masks`): PSNR and SSIM are then
    also scored inside and outside them. ``inputs_sha256`` is a SHA-256 of the keys and the float32 bytes of
    the clean and degraded images of the first condition ("all", or the first named one), in order. Equal
    fingerprints mean two evaluations scored the very same inputs. naturalness: the model that scores it
    (default: the shipped one, fitted on clean Kvasir-SEG training frames at 256²).
    """
    naturalness = naturalness or load_naturalness()
    scores = Scores(seconds={(c, m): 0.0 for c in degraders for m in methods})
    inputs = hashlib.sha256()
    first = next(iter(degraders))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    warmed, start = False, 0
    for clean, keys in tqdm(loader, desc="evaluating", unit="batch", disable=quiet):
        keys = list(keys)
        batch_masks = masks[start:start + len(keys)] if masks is not None else None
        start += len(keys)
        for cond, degrade in degraders.items():
            d = degrade(clean, keys=keys)          # on the CPU, seeded per key: identical in every run
            if cond == first:
                _fingerprint(inputs, keys, clean, d.image)
            for method in methods:
                if method == "gan" and not warmed:     # the first call pays for allocation/cuDNN set-up
                    run_gan(generator, d.image, device)
                    warmed = True
                y, dt = run_method(method, d.image, d.params, generator, device)
                scores.seconds[cond, method] += dt
                scores.rows += [(cond, method, key, min(float(p), PSNR_CAP), *map(float, rest))
                                for key, p, *rest in zip(keys, psnr(y, clean), ssim(y, clean),
                                                         gradient_energy_ratio(y, clean), hf_power_ratio(y, clean),
                                                         naturalness.score(y))]
                if batch_masks is not None:
                    scores.lesion_rows += lesion_rows(cond, method, keys, y, clean, batch_masks)
    scores.inputs_sha256 = inputs.hexdigest()
    return scores


def _fingerprint(h: "hashlib._Hash", keys: Sequence[str], clean: torch.Tensor, degraded: torch.Tensor) -> None:
    for key, x, y in zip(keys, clean, degraded):
        h.update(key.encode("utf-8", "surrogateescape") + b"\0")
        h.update(x.float().contiguous().numpy().tobytes())
        h.update(y.float().contiguous().numpy().tobytes())


def lesion_rows(cond: str, method: str, keys: Sequence[str], restored: torch.Tensor, clean: torch.Tensor,
                masks: Sequence[torch.Tensor | None]) -> list[LesionRow]:
    """PSNR (capped) and SSIM inside and outside each image's mask, and the detail kept on the lesion: the
    gradient-energy ratio inside the mask and the high-frequency power ratio in its `lesion_box` (a spectrum needs
    a rectangle); NaN for an empty mask. Images without a mask give no row."""
    rows = []
    for key, y, x, m in zip(keys, restored, clean, masks):
        if m is None:
            continue
        m = torch.as_tensor(m, dtype=torch.bool)
        grad_in, hf_box = float(gradient_energy_ratio(y[None], x[None], m)[0]), float("nan")
        if m.any():
            t, b, le, ri = lesion_box(m)
            hf_box = float(hf_power_ratio(y[None, :, t:b, le:ri], x[None, :, t:b, le:ri])[0])
        rows.append((cond, method, key, *_masked_scores(y, x, m), *_masked_scores(y, x, ~m), grad_in, hf_box))
    return rows


def lesion_box(mask: torch.Tensor, pad: float = 0.25, min_pad: int = 4) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the mask's bounding box, widened by `pad` of its size on each side
    (at least `min_pad` pixels) and kept inside the image; a ValueError for an empty mask."""
    rows, cols = torch.nonzero(torch.as_tensor(mask, dtype=torch.bool), as_tuple=True)
    if len(rows) == 0:
        raise ValueError("the mask is empty: no lesion to crop")
    h, w = mask.shape[-2:]
    (t, b), (le, ri) = (int(rows.min()), int(rows.max()) + 1), (int(cols.min()), int(cols.max()) + 1)
    dy, dx = max(min_pad, round(pad * (b - t))), max(min_pad, round(pad * (ri - le)))
    return max(0, t - dy), min(h, b + dy), max(0, le - dx), min(w, ri + dx)


def _masked_scores(restored: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """PSNR (capped at PSNR_CAP; NaN for an empty mask) and SSIM of one image (3, H, W) within a mask."""
    p = float(psnr_masked(restored[None], clean[None], mask)[0])
    return (p if np.isnan(p) else min(p, PSNR_CAP)), float(ssim_masked(restored[None], clean[None], mask)[0])


def aggregate(rows: Sequence[Row], seconds: dict[tuple[str, str], float]) -> dict[str, dict[str, dict[str, float]]]:
    """condition -> method -> mean and std of PSNR and SSIM over images, the means of the sharpness ratios and
    the naturalness score (over the images that have one; None where none has), ms per image and n."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    for cond, method in seconds:               # in the order of the conditions and methods scored
        values = np.array([r[3:] for r in rows if r[0] == cond and r[1] == method], dtype=np.float64)
        values = values.reshape(-1, len(MEASURES))
        stats = {"psnr_mean": float(values[:, 0].mean()), "psnr_std": float(values[:, 0].std()),
                 "ssim_mean": float(values[:, 1].mean()), "ssim_std": float(values[:, 1].std())}
        for j, name in enumerate(MEASURES[2:], start=2):
            v = values[:, j][~np.isnan(values[:, j])]
            stats[f"{name}_mean"] = float(v.mean()) if len(v) else None
        results.setdefault(cond, {})[method] = {
            **stats, "ms_per_image": 1000 * seconds[cond, method] / max(len(values), 1), "n": int(len(values))}
    return results


def aggregate_lesions(rows: Sequence[LesionRow]) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """condition -> method -> the mean of each of `LESION_MEASURES` over the images where it is defined (a region
    that is not empty, n_in and n_out images); None where no image has one."""
    results: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for cond, method in dict.fromkeys((r[0], r[1]) for r in rows):
        values = np.array([r[3:] for r in rows if r[0] == cond and r[1] == method], dtype=np.float64)
        stats: dict[str, float | int | None] = {}
        for j, name in enumerate(LESION_MEASURES):
            v = values[:, j][~np.isnan(values[:, j])]
            stats[f"{name}_mean"] = float(v.mean()) if len(v) else None
        stats["n_in"] = int((~np.isnan(values[:, 0])).sum())
        stats["n_out"] = int((~np.isnan(values[:, 2])).sum())
        results.setdefault(cond, {})[method] = stats
    return results
