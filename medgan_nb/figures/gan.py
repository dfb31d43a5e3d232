"""Figures of what a GAN adds and what it costs: the perception–distortion plane and lesion crops.

- `perception_distortion_figure(points, curve)`: each method as a point, PSNR across (distortion: right is
  closer to the truth on average) and the naturalness score up (`medgan_nb.naturalness`; drawn so that *up is
  more natural*), with the points of `curve` (e.g. the L1 model, interpolations, the GAN model) joined in order.
  Blau & Michaeli (CVPR 2018) prove that no method can reach the top right corner: past some point, looking
  more natural costs PSNR. The clean frames' own naturalness is drawn as a line where known.
- `lesion_comparison_figure(clean, outputs, masks, keys)`: crops around polyps, one row per image, one column per
  output and the clean frame last, the mask outlined, PSNR and gradient energy (clean = 1) inside the mask in
  each title: whether a model invented or removed texture on a lesion.
"""

from __future__ import annotations

from typing import Sequence

import torch
from matplotlib.figure import Figure

from ..evaluation.plots import lesion_box
from ..metrics import psnr_masked
from ..sharpness import gradient_energy_ratio
from ..utils.images import to_numpy_images


def perception_distortion_figure(points: dict[str, dict[str, float]], curve: Sequence[str] = (),
                                 clean_naturalness: float | None = None, title: str = "") -> Figure:
    """points: name -> {"psnr_mean", "naturalness_mean"}; curve: names to join in order (drawn in colour)."""
    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.subplots()
    for name, p in points.items():
        on_curve = name in curve
        ax.scatter(p["psnr_mean"], p["naturalness_mean"], s=36 if on_curve else 24,
                   color="tab:red" if on_curve else "tab:blue", zorder=3)
        ax.annotate(name, (p["psnr_mean"], p["naturalness_mean"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    if len(curve) > 1:
        ax.plot([points[n]["psnr_mean"] for n in curve], [points[n]["naturalness_mean"] for n in curve], "-",
                color="tab:red", alpha=0.6, zorder=2)
    if clean_naturalness is not None:
        ax.axhline(clean_naturalness, color="grey", ls="--", lw=0.8)
        ax.annotate("clean frames", (ax.get_xlim()[0], clean_naturalness), textcoords="offset points",
                    xytext=(2, 3), fontsize=7, color="grey")
    ax.invert_yaxis()                                    # lower score = more natural: up is better
    ax.set_xlabel("PSNR (dB): distortion, right is closer to the truth")
    ax.set_ylabel("naturalness score (up: more natural)")
    ax.set_title(title or "perception–distortion plane", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def lesion_comparison_figure(clean: torch.Tensor, outputs: dict[str, torch.Tensor],
                             masks: Sequence[torch.Tensor], keys: Sequence[str]) -> Figure:
    """clean: (N, C, H, W) in [-1, 1]; outputs: name -> a batch like `clean`; masks: N boolean (H, W) masks."""
    columns = [*outputs.items(), ("clean", clean)]
    fig = Figure(figsize=(2.6 * len(columns), 2.6 * len(clean)))
    axes = fig.subplots(len(clean), len(columns), squeeze=False)
    for r, mask in enumerate(masks):
        mask = torch.as_tensor(mask, dtype=torch.bool)
        t, b, le, ri = lesion_box(mask)
        for c, (name, batch) in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(to_numpy_images(batch[r])[t:b, le:ri])
            ax.contour(mask[t:b, le:ri].numpy().astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
            ax.set_xticks([]), ax.set_yticks([])
            if name != "clean":
                inside = psnr_masked(batch[r:r + 1], clean[r:r + 1], mask)[0]
                sharp = gradient_energy_ratio(batch[r:r + 1], clean[r:r + 1], mask.numpy())[0]
                ax.set_title(f"{name}: {inside:.1f} dB, detail {sharp:.2f}", fontsize=8)
            else:
                ax.set_title("clean (detail 1.00)", fontsize=8)
        axes[r, 0].set_ylabel(str(keys[r])[-24:], fontsize=7)
    fig.tight_layout()
    return fig

